"""Putting things back: hosts stopped before their apply, failed hosts, and every rollout's end.

:class:`Cleanup` is the part of :class:`~hvpatch.orchestration.engine.RolloutEngine` that makes
the cleanup guarantee (``docs/rollout.md``): no host the rollout put into maintenance stays
there, guests it stopped run again, and cluster settings it changed are restored -- in every
ending but a lost lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import RolloutHostRow, RolloutStepRow
from hvpatch.domain.planning.model import CampaignPlan, HostStep, RingPlan, Wave
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.errors import DriverError
from hvpatch.orchestration.records import Records
from hvpatch.ports.clock import Clock
from hvpatch.ports.driver import HypervisorDriver

TERMINAL = ("completed", "halted", "aborted")


class Cleanup:
    """Cleanup steps of the engine (a mixin: the engine provides the attributes below)."""

    store: Store
    driver: HypervisorDriver
    wall: Clock
    rec: Records
    policy: RolloutPolicy
    hosts: dict[str, RolloutHostRow]
    finished: dict[str, set[str]]
    _stop: str | None
    _why: str
    _notes: list[str]

    def _emit(self, kind: str, data: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def _step(self, host: str, ring: str, step: str, args: Mapping[str, Any], *,
                    activity: str | None = None) -> tuple[bool, str]:
        raise NotImplementedError

    def _args(self, ring: RingPlan, wave: Wave, hs: HostStep, step: str) -> dict[str, Any]:
        raise NotImplementedError

    async def _put_back(self, ring: RingPlan, wave: Wave, hs: HostStep) -> None:
        """A host stopped before its apply: out of maintenance, guests restarted, and its steps
        superseded so that a resume starts it afresh (pause) -- or cancelled (abort, halt)."""
        await self._cleanup_host(ring, wave, hs)
        with self.store.session() as s:
            s.execute(update(RolloutStepRow).where(
                RolloutStepRow.rollout_id == self.rec.rollout_id,
                RolloutStepRow.host == hs.host, RolloutStepRow.state == "finished")
                .values(state="superseded"))
            s.execute(update(RolloutHostRow).where(
                RolloutHostRow.rollout_id == self.rec.rollout_id,
                RolloutHostRow.host == hs.host).values(state="pending", step=""))
            s.commit()
        self.finished[hs.host] = set()
        if self._stop in ("abort", "halt"):
            self.hosts[hs.host].state = "cancelled"
            self.rec.host_ended(hs.host, "cancelled", error=self._why)
        else:
            self.hosts[hs.host].state = "pending"

    async def _cleanup_host(self, ring: RingPlan, wave: Wave, hs: HostStep) -> bool:
        """Best effort: out of maintenance and its stopped guests started; False if it is
        unreachable (a human must look at it)."""
        try:
            state = await self.driver.host_state(hs.host)
        except DriverError:
            return False
        if not state.reachable:
            return False
        before = (self.hosts[hs.host].before or {}).get("before") or {}
        if state.maintenance and not before.get("maintenance", False):
            ok, _ = await self._step(hs.host, ring.ring, "cleanup:exit-maintenance", {},
                                     activity="exit-maintenance")
            if not ok:
                return False
        restart = self._args(ring, wave, hs, "restart")
        if restart["guests"]:
            await self._step(hs.host, ring.ring, "cleanup:restart", restart, activity="restart")
        return True


    async def _hold_settings(self, plan: CampaignPlan) -> None:
        clusters = sorted({w.cluster for w in plan.waves()})
        for c in clusters:
            current = await self.driver.cluster_settings(c)
            for key, value in sorted(self.policy.cluster_settings.items()):
                # a setting the platform does not have (DRS on KVM hosts) has nothing to hold
                if key in current and current[key] != value:
                    self.rec.change_recorded(c, key, current.get(key, ""), value)
                    await self.driver.set_cluster_settings(c, {key: value})

    async def _finish(self, plan: CampaignPlan, state: str, reason: str) -> None:
        notes: list[str] = list(self._notes)
        stuck = [h for h in self.rec.hosts() if h.state == "in-progress"]
        by_host = {s.host: (r, w, s) for r in plan.rings for w in r.waves for s in w.hosts}
        for h in stuck:
            if h.host in by_host and not await self._cleanup_host(*by_host[h.host]):
                notes.append(f"{h.host} does not answer: it needs a human")
        for h in self.rec.hosts():
            if h.state == "failed" and "needs a human" in h.error:
                notes.append(f"{h.host} does not answer: it needs a human")
        for change in self.rec.changes(restored=False):
            try:
                await self.driver.set_cluster_settings(change.cluster, {change.key: change.old})
            except DriverError as exc:
                notes.append(f"could not restore {change.key} of {change.cluster}: {exc}")
                continue
            self.rec.change_restored(change.id)
        if state in ("halted", "aborted"):
            for h in self.rec.hosts():
                if h.state == "pending":
                    self.rec.host_ended(h.host, "cancelled", error=f"not started: {reason}")
        if notes:
            reason = f"{reason}; " + "; ".join(sorted(set(notes)))
        finished = self.wall.now() if state in TERMINAL else None
        self.rec.set_state(state, reason, finished=finished, clear_control=True)
        self._emit("rollout", {"state": state, "reason": reason, "rollout": self.rec.name})
