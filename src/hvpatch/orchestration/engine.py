"""The durable rollout engine: a campaign plan executed as a persisted state machine.

``campaign -> ring -> wave -> host -> step``. The engine walks the plan: rings in order (each
behind its gate), a ring's clusters side by side and each cluster's waves one after the other,
a wave's hosts concurrently, each host through :data:`~hvpatch.domain.rollout.HOST_STEPS`. Each
step is recorded before and after (:mod:`.records`) and runs through the
:class:`~hvpatch.ports.executor.Executor` as an idempotent activity (:mod:`.activities`).

* **Resume.** A restarted engine skips every step recorded as finished and re-runs the one that
  was started but not finished; the activity reconciles with the platform's live state, so
  nothing is applied twice and nothing is skipped. A lease (:mod:`.lease`) keeps a second engine
  off the same rollout.
* **Failure policy.** A temporary error is retried with back-off up to the host's retry budget;
  a permanent one (or a failed regression check) fails the host: it is rolled back where the
  platform can, taken out of maintenance, and its stopped guests are restarted. A failure beyond
  the ring's budget halts the campaign; the first failure in a ring the policy names (prod)
  pauses it for a human. A withdrawn target release halts it before the next host gets it.
* **Maintenance windows.** A plan made with windows keeps them; each wave starts inside the
  next one that fits it (the clock waits, reading pause and abort as it does), and the rollout
  pauses with the reason when none fits within the search horizon.
* **Operator control.** ``pause`` and ``abort`` requests are read at every safe point: hosts not
  yet past their point of no return (the apply) are put back as they were; hosts past it finish.
* **Cleanup in every ending.** Completed, paused, halted, aborted, awaiting approval or failed
  with a bug: no host the rollout put into maintenance stays there (unless it no longer answers,
  which the final reason names), guests it stopped run again, and cluster settings it changed
  are restored. Only a lost lease (another engine now drives) skips cleanup.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.clock import SystemClock
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    ClusterRow,
    HostRow,
    PlanRow,
)
from hvpatch.adapters.store.plan_codec import plan_from_dict
from hvpatch.domain.planning.gates import GateEvidence, evaluate_gate, failure_allowance
from hvpatch.domain.planning.model import CampaignPlan, HostStep, MoveKind, RingPlan, Wave
from hvpatch.domain.planning.windows import find_slot
from hvpatch.domain.rollout import (
    GUEST_CHECKS,
    HOST_STEPS,
    backoff_seconds,
    rollout_policy_from_dict,
)
from hvpatch.errors import DriverError, TemporaryStepError
from hvpatch.orchestration.activities import StepContext
from hvpatch.orchestration.cleanup import TERMINAL, Cleanup
from hvpatch.orchestration.errors import CheckFailed
from hvpatch.orchestration.executor import InProcessExecutor
from hvpatch.orchestration.lease import Lease, new_owner
from hvpatch.orchestration.records import Records
from hvpatch.ports.checks import Check, CheckContext
from hvpatch.ports.clock import Clock
from hvpatch.ports.driver import HypervisorDriver
from hvpatch.ports.executor import Executor, StepTask
from hvpatch.services.incidents import open_count
from hvpatch.services.rollouts import rollout_name
from hvpatch.services.verification import IndexCache

__all__ = ["ENDED", "TERMINAL", "RolloutEngine"]

ENDED = ("done", "failed", "rolled-back", "cancelled")
#: steps after which the host runs (or may run) the new software: a failure there rolls back
_PATCHED = ("reboot", "wait-ready", "verify", "checks")

Event = Callable[[str, Mapping[str, Any]], None]


class _LeaseLost(Exception):
    pass


class RolloutEngine(Cleanup):
    """Drives one rollout to an end state; see the module docstring."""

    def __init__(self, store: Store, driver: HypervisorDriver, *, clock: Clock,
                 wall: Clock | None = None, checks: Sequence[Check] = (),
                 executor: Executor | None = None, owner: str | None = None,
                 on_event: Event | None = None, heartbeat_s: float = 1.0,
                 verify_findings: bool = True,
                 ring_checks: Callable[[str], Sequence[Check]] | None = None) -> None:
        self.store, self.driver, self.clock = store, driver, clock
        self.wall = wall or SystemClock()
        self.checks = list(checks)
        self.ring_checks = ring_checks or (lambda _ring: [c for c in checks
                                                          if c.scope == "ring"])
        self.owner = owner or new_owner()
        self.on_event = on_event
        self.heartbeat_s = heartbeat_s
        self.context = StepContext(store, driver, clock,
                                   [c for c in self.checks if c.scope == "host"],
                                   IndexCache(store) if verify_findings else None)
        self.executor = executor or InProcessExecutor(self.context)
        self._stop: str | None = None
        self._why = ""
        self._failures: dict[str, int] = defaultdict(int)
        self._notes: list[str] = []

    # --- entry point ------------------------------------------------------------------------

    async def run(self, rollout_id: int) -> str:
        """Drive the rollout until it completes, pauses, waits for approval or halts."""

        rec = Records(self.store, rollout_id, rollout_name(self.store, rollout_id), self.clock,
                      self.wall)
        self.rec = rec
        row = rec.rollout()
        if row.state in TERMINAL:
            return row.state
        self.policy = rollout_policy_from_dict(row.policy)
        self.context.ready_timeout_s = self.policy.host_ready_timeout_s
        self.requester = row.requester
        with self.store.session() as s:
            plan = plan_from_dict(s.get_one(PlanRow, row.plan_id).data)
        lease = Lease(self.store, rollout_id, self.owner, self.policy.lease_seconds, rec.name)
        lease.acquire(self.wall.now())
        beat = asyncio.create_task(self._heartbeat(lease))
        final: tuple[str, str] | None = ("paused", "the engine stopped unexpectedly")
        try:
            self.plan = plan
            self._load(plan)
            if row.control == "abort":
                final = ("aborted", "aborted by an operator before it ran")
            else:
                rec.set_state("running", f"driven by {self.owner}", clear_control=True)
                self._emit("rollout", {"state": "running", "rollout": rec.name})
                await self._hold_settings(plan)
                final = await self._rings(plan, row.ring_index)
        except _LeaseLost:
            final = None
        except BaseException as exc:  # the top-level runner: clean up, then re-raise
            final = ("paused", f"engine error, cleaned up; resume when fixed: {exc!r}")
            raise
        finally:
            beat.cancel()
            if final is not None:
                await self._finish(plan, *final)
            lease.release()
        return final[0] if final else "lost-lease"

    # --- helpers ------------------------------------------------------------------------

    def _emit(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _load(self, plan: CampaignPlan) -> None:
        self.finished = self.rec.finished_steps()
        self.hosts = {h.host: h for h in self.rec.hosts()}
        for h in self.hosts.values():
            if h.state in ("failed", "rolled-back"):
                self._failures[h.ring] += 1
        self.ring_hosts = {r.ring: [s.host for w in r.waves for s in w.hosts] for r in plan.rings}
        # every host of each cluster (not only the planned ones): guests move to all of them
        self.cluster_hosts: dict[str, list[str]] = defaultdict(list)
        with self.store.session() as s:
            for host, cluster in s.execute(select(HostRow.name, ClusterRow.name)
                                           .join(ClusterRow, ClusterRow.id == HostRow.cluster_id)
                                           .order_by(HostRow.name)):
                self.cluster_hosts[cluster].append(host)
        for w in plan.waves():
            known = set(self.cluster_hosts[w.cluster])
            self.cluster_hosts[w.cluster].extend(h.host for h in w.hosts if h.host not in known)

    def _stop_requested(self, kind: str, why: str) -> None:
        order = {"pause": 1, "halt": 2, "abort": 3, "lease": 4}
        if self._stop is None or order[kind] > order[self._stop]:
            self._stop, self._why = kind, why
            self._emit("stop", {"kind": kind, "reason": why})

    async def _heartbeat(self, lease: Lease) -> None:
        interval = max(0.05, min(self.heartbeat_s, self.policy.lease_seconds / 3))
        while True:
            await asyncio.sleep(interval)
            if not lease.renew(self.wall.now()):
                self._stop_requested("lease", "the lease was lost to another engine")
                return
            control = self.rec.rollout().control
            if control == "pause":
                self._stop_requested("pause", "paused by an operator")
            elif control == "abort":
                self._stop_requested("abort", "aborted by an operator")

    def _check_lease(self) -> None:
        if self._stop == "lease":
            raise _LeaseLost

    # --- rings and gates ------------------------------------------------------------------

    async def _rings(self, plan: CampaignPlan, start: int) -> tuple[str, str]:
        for i in range(start, len(plan.rings)):
            ring = plan.rings[i]
            if ring.entry_approval and not self._entry_approved(ring):
                return ("awaiting-approval", f"ring {ring.ring} needs an approval by someone "
                        f"other than {self.requester} before it starts")
            await self._ring(ring)
            self._check_lease()
            if self._stop is not None:
                return self._stopped_state()
            verdict = await self._gate(ring)
            if verdict is not None:
                return verdict
            self.rec.set_ring_index(i + 1)
        return ("completed", f"{sum(h.state == 'done' for h in self.rec.hosts())} host(s) "
                "patched")

    def _stopped_state(self) -> tuple[str, str]:
        kind = {"pause": "paused", "halt": "halted", "abort": "aborted"}[self._stop or "pause"]
        return (kind, self._why)

    def _entry_approved(self, ring: RingPlan) -> bool:
        gate = self.rec.gate(ring.ring, "entry")
        if gate is None or not gate.approved_by:
            return False
        if gate.approved_by.strip().casefold() == self.requester.strip().casefold():
            return False  # separation of duties, checked again here (not only when approving)
        if gate.state != "passed":
            self.rec.gate_evaluated(ring.ring, "entry", "passed", {
                "approved_by": gate.approved_by, "requested_by": self.requester})
        return True

    async def _ring(self, ring: RingPlan) -> None:
        by_cluster: dict[str, list[Wave]] = defaultdict(list)
        for w in ring.waves:
            by_cluster[w.cluster].append(w)
        self._emit("ring", {"ring": ring.ring, "hosts": len(self.ring_hosts[ring.ring])})

        async def cluster(waves: list[Wave]) -> None:
            for w in waves:
                if self._stop is not None:
                    return
                await self._wave(ring, w)

        await asyncio.gather(*(cluster(ws) for ws in by_cluster.values()))

    async def _gate(self, ring: RingPlan) -> tuple[str, str] | None:
        done_at = self.rec.ring_done(ring.ring)
        names = self.ring_hosts[ring.ring]
        suites_ok, suite_evidence = await self._suites(ring, names)
        if self._stop is not None:
            return self._stopped_state()
        soak_s = ring.gate.soak_hours * 3600.0
        if self.policy.wait_for_soak:
            while (left := soak_s - (self.clock.now() - done_at).total_seconds()) > 0:
                if self._stop is not None:
                    return self._stopped_state()
                self._check_lease()
                await self.clock.sleep(min(left, 600.0))
        states = [self.hosts[n].state for n in names]
        passed = states.count("done") if suites_ok else 0
        failed = len(states) - states.count("done") if suites_ok else len(states)
        gate_row = self.rec.gate(ring.ring, "exit")
        evidence = GateEvidence(
            hosts=len(states), passed=passed, failed=failed,
            soak_hours_elapsed=(self.clock.now() - done_at).total_seconds() / 3600.0,
            open_incidents=open_count(self.store),
            approved_by=gate_row.approved_by if gate_row else "", requested_by=self.requester)
        result = evaluate_gate(ring.gate, evidence)
        record = {"passed": result.passed, "reasons": list(result.reasons),
                  "hosts": evidence.hosts, "hosts_passed": passed, "hosts_failed": failed,
                  "soak_hours": round(evidence.soak_hours_elapsed, 3),
                  "open_incidents": evidence.open_incidents, "suites": suite_evidence}
        self._emit("gate", {"ring": ring.ring, **record})
        if result.passed:
            self.rec.gate_evaluated(ring.ring, "exit", "passed", record)
            return None
        why = f"gate after ring {ring.ring}: " + "; ".join(result.reasons)
        budget = failure_allowance(ring.gate, len(states))
        if not suites_ok or failed > budget:
            self.rec.gate_evaluated(ring.ring, "exit", "failed", record)
            return ("halted", why)
        only_approval = all("approv" in r for r in result.reasons)
        state = "awaiting-approval" if only_approval else "blocked"
        self.rec.gate_evaluated(ring.ring, "exit", state, record)
        return ("awaiting-approval" if only_approval else "paused", why)

    async def _suites(self, ring: RingPlan, hosts: list[str]) -> tuple[bool, dict[str, Any]]:
        suites = list(self.ring_checks(ring.ring))
        step = f"suites:{ring.ring}"
        if not suites or not ring.gate.regression_suite:
            return True, {}
        if step in self.finished.get("", set()):
            return True, self.rec.step_evidence("", step)
        sid = self.rec.started("", ring.ring, step, 1)
        ctx = CheckContext(rollout=self.rec.name, ring=ring.ring, hosts=tuple(hosts))
        results = [await c.run(ctx, self.driver) for c in suites]
        evidence = {r.name: {"ok": r.ok, "summary": r.summary, **dict(r.evidence)}
                    for r in results}
        ok = all(r.ok for r in results)
        self.rec.ended(sid, ok=ok, evidence=evidence,
                       error="" if ok else "; ".join(f"{r.name}: {r.summary}"
                                                     for r in results if not r.ok))
        self._emit("suites", {"ring": ring.ring, "ok": ok})
        return ok, evidence

    # --- waves and hosts ------------------------------------------------------------------

    async def _wave(self, ring: RingPlan, wave: Wave) -> None:
        todo = [h for h in wave.hosts if self.hosts[h.host].state not in ENDED]
        if todo and not await self._window(ring, wave):
            return
        self._emit("wave", {"ring": ring.ring, "cluster": wave.cluster, "wave": wave.index,
                            "hosts": [h.host for h in wave.hosts]})
        await asyncio.gather(*(self._host(ring, wave, h) for h in todo))
        self._check_lease()
        back = [m for m in wave.moves if m.kind is MoveKind.MIGRATE_BACK]
        step = f"migrate-back:{ring.ring}:{wave.cluster}:{wave.index}"
        if back and step not in self.finished.get("", set()):
            bad = [h for h, r in self.hosts.items() if r.state != "done"]
            ok, error = await self._step("", ring.ring, step, {
                "moves": [[m.guest, m.kind.value, m.source, m.destination] for m in back],
                "failed_hosts": bad}, activity="migrate-back")
            if not ok:  # the guests stay where they are, which the plan proved safe
                self._notes.append(f"migrate-back of wave {wave.index} in {wave.cluster} "
                                   f"stopped: {error}; its guests stay on their patched hosts")
                self._emit("stop", {"kind": "note", "reason": self._notes[-1]})

    async def _window(self, ring: RingPlan, wave: Wave) -> bool:
        """Wait until the wave may start inside the plan's maintenance windows; False when the
        rollout stops meanwhile (or no window fits: it pauses with the reason). A wave some of
        whose hosts have begun carries on at once (the engine restarted within it)."""
        plan = self.plan
        if not (plan.windows or plan.blackouts) or not self.policy.wait_for_windows:
            return True
        if any(self.finished.get(h.host) for h in wave.hosts):
            return True
        told = False
        while True:   # again after each wait: the clock may have run past a window's start
            now = self.clock.now()
            found = find_slot(plan.windows, now, wave.seconds, cluster=wave.cluster,
                              tenants=wave.tenants, blackouts=plan.blackouts)
            if found.slot is None:
                self._stop_requested("pause", f"cluster {wave.cluster}, wave {wave.index}: "
                                     f"{found.reason}")
                return False
            start = found.slot.start
            if start <= now:
                return True
            if not told:
                told = True
                self._emit("window", {"ring": ring.ring, "cluster": wave.cluster,
                                      "wave": wave.index, "window": found.slot.window,
                                      "start": start.isoformat()})
            # in steps of a minute of campaign time: a pause or an abort is read between them
            while (left := (start - self.clock.now()).total_seconds()) > 0:
                if self._stop is not None:
                    return False
                self._check_lease()
                await self.clock.sleep(min(left, 60.0))

    def _args(self, ring: RingPlan, wave: Wave, hs: HostStep, step: str) -> dict[str, Any]:
        host = hs.host
        if step in ("precheck", "evacuate"):
            return {"cluster": wave.cluster, "moves": [
                [m.guest, m.kind.value, m.source, m.destination] for m in wave.moves
                if m.source == host and m.kind in (MoveKind.EVACUATE, MoveKind.SHUTDOWN)]}
        if step == "restart":
            return {"guests": [m.guest for m in wave.moves
                               if m.kind is MoveKind.RESTART and m.source == host]}
        if step in ("checks", "guest-checks"):
            before = dict(self.hosts[host].before or {})
            names = [c for c in self.policy.checks
                     if (c in GUEST_CHECKS) == (step != "checks")]
            return {"rollout": self.rec.name, "ring": ring.ring, "checks": names,
                    "components": [list(c) for c in hs.components],
                    "before": before.get("before"), "baseline": before.get("baseline", {}),
                    "hosts": self.cluster_hosts[wave.cluster]}
        if step == "wait-ready":
            return {"timeout_s": self.policy.host_ready_timeout_s}
        return {"components": [list(c) for c in hs.components]}

    async def _host(self, ring: RingPlan, wave: Wave, hs: HostStep) -> None:
        host = hs.host
        done = self.finished.setdefault(host, set())
        if not done and self._stop is not None:
            return
        for step in HOST_STEPS:
            if step in done:
                continue
            self._check_lease()
            if step == "apply":
                withdrawn = self.rec.withdrawn(hs.components)
                if withdrawn:
                    self._stop_requested("halt", "the target release was withdrawn: "
                                         + "; ".join(withdrawn))
                if self._stop is not None:
                    await self._put_back(ring, wave, hs)
                    return
            ok, error = await self._step(host, ring.ring, step, self._args(ring, wave, hs, step))
            if not ok:
                await self._fail(ring, wave, hs, step, error)
                return
            done.add(step)
            if step == "precheck":
                self.hosts[host].before = self.rec.step_evidence(host, "precheck")
        self.hosts[host].state = "done"
        self.rec.host_ended(host, "done", after=self.rec.step_evidence(host, "verify"))
        self._emit("host", {"host": host, "state": "done", "ring": ring.ring})

    async def _step(self, host: str, ring: str, step: str, args: Mapping[str, Any], *,
                    activity: str | None = None) -> tuple[bool, str]:
        attempt = 1
        while True:
            sid = self.rec.started(host, ring, step, attempt)
            self._emit("step", {"host": host, "ring": ring, "step": step, "attempt": attempt})
            task = StepTask(self.rec.rollout_id, host, activity or step, attempt, dict(args))
            try:
                outcome = await self.executor.run(task)
            except TemporaryStepError as exc:
                self.rec.ended(sid, ok=False, evidence={"retrying": True}, error=str(exc))
                n = self.rec.count_attempt(host) if host else attempt
                if n > self.policy.max_retries_per_host:
                    return False, f"{exc} (gave up after {n - 1} retries)"
                wait = backoff_seconds(self.policy, n, exc.delay)
                self._emit("retry", {"host": host, "step": step, "error": str(exc),
                                     "wait_s": wait})
                await self.clock.sleep(wait)
                self._check_lease()
                attempt += 1
                continue
            except CheckFailed as exc:
                self.rec.ended(sid, ok=False, evidence=exc.evidence, error=str(exc))
                return False, str(exc)
            except DriverError as exc:
                self.rec.ended(sid, ok=False, evidence={}, error=str(exc))
                return False, str(exc)
            self.rec.ended(sid, ok=True, evidence=outcome.evidence,
                           already_done=outcome.already_done,
                           host_before=outcome.evidence if step == "precheck" else None)
            if host == "":
                self.finished.setdefault("", set()).add(step)
            return True, ""

    async def _fail(self, ring: RingPlan, wave: Wave, hs: HostStep, step: str,
                    error: str) -> None:
        host = hs.host
        state = "failed"
        if step in _PATCHED and self.policy.rollback_on_failure \
                and self.driver.capabilities.rollback:
            before = (self.hosts[host].before or {}).get("before") or {}
            previous = [c for c in before.get("components", [])
                        if c[0] in {x for x, _ in hs.components}]
            ok, _ = await self._step(host, ring.ring, "rollback", {"previous": previous})
            state = "rolled-back" if ok else "failed"
        if not await self._cleanup_host(ring, wave, hs):
            error += "; the host does not answer: it needs a human (left as it is)"
        self.hosts[host].state = state
        self.rec.host_ended(host, state, error=error, step=step)
        self._failures[ring.ring] += 1
        self._emit("host", {"host": host, "state": state, "ring": ring.ring, "error": error})
        n, allowed = self._failures[ring.ring], failure_allowance(
            ring.gate, len(self.ring_hosts[ring.ring]))
        if n > allowed:
            self._stop_requested("halt", f"ring {ring.ring}: {n} failed host(s) exceed its "
                                 f"failure budget of {allowed} (last: {host} at {step}: {error})")
        elif ring.ring in self.policy.pause_on_first_failure:
            self._stop_requested("pause", f"first failure in ring {ring.ring}: {host} at "
                                 f"{step}: {error}; look, then resume or abort")
