"""The engine's persisted state: step records before and after, host states, gates, audit.

Every write is a short transaction that starts with a write (which keeps SQLite's WAL writers
from tripping over each other) and, for events worth auditing, appends the audit entry in the
same transaction -- the state change and its audit entry commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    RolloutChangeRow,
    RolloutGateRow,
    RolloutHostRow,
    RolloutRow,
    RolloutStepRow,
    WithdrawnReleaseRow,
)
from hvpatch.ports.clock import Clock
from hvpatch.services.audit import record

ACTOR = "engine"


@dataclass(frozen=True, slots=True)
class StepRef:
    """A started step record: its id and what it is about (so its end needs no re-read)."""

    id: int
    host: str
    ring: str
    step: str
    attempt: int


class Records:
    """Reads and writes of one rollout's state."""

    def __init__(self, store: Store, rollout_id: int, name: str, clock: Clock,
                 wall: Clock) -> None:
        self.store, self.rollout_id, self.name = store, rollout_id, name
        self.clock, self.wall = clock, wall

    def _audit(self, s: Any, action: str, subject: str, details: Mapping[str, Any]) -> None:
        record(s, actor=ACTOR, action=action, subject=subject,
               details={"rollout": self.name, **details}, at=self.wall.now())

    # --- steps --------------------------------------------------------------------------

    def finished_steps(self) -> dict[str, set[str]]:
        """Per host ("" for ring/wave level) the steps recorded as finished."""
        out: dict[str, set[str]] = {}
        with self.store.session() as s:
            for host, step in s.execute(select(RolloutStepRow.host, RolloutStepRow.step).where(
                    RolloutStepRow.rollout_id == self.rollout_id,
                    RolloutStepRow.state == "finished")):
                out.setdefault(host, set()).add(step)
        return out

    def step_evidence(self, host: str, step: str) -> dict[str, Any]:
        """The evidence of the finished record of ``step`` ({} when none)."""
        with self.store.session() as s:
            row = s.scalar(select(RolloutStepRow.evidence).where(
                RolloutStepRow.rollout_id == self.rollout_id, RolloutStepRow.host == host,
                RolloutStepRow.step == step, RolloutStepRow.state == "finished")
                .order_by(RolloutStepRow.id.desc()).limit(1))
        return dict(row or {})

    def started(self, host: str, ring: str, step: str, attempt: int) -> StepRef:
        """Record a step's start (and the host's current step); returns the record's handle."""
        with self.store.session() as s:
            if host:
                s.execute(update(RolloutHostRow).where(
                    RolloutHostRow.rollout_id == self.rollout_id, RolloutHostRow.host == host)
                    .values(step=step, state="in-progress", updated=self.wall.now()))
            step_id = s.execute(insert(RolloutStepRow).values(
                rollout_id=self.rollout_id, host=host, ring=ring, step=step, attempt=attempt,
                state="started", started=self.clock.now(), error="", evidence={})
                .returning(RolloutStepRow.id)).scalar_one()
            s.commit()
        return StepRef(step_id, host, ring, step, attempt)

    def ended(self, ref: StepRef, *, ok: bool, evidence: Mapping[str, Any], error: str = "",
              already_done: bool = False, host_before: Mapping[str, Any] | None = None) -> None:
        """Record a step's end (finished or failed) with its evidence, and audit it."""
        with self.store.session() as s:
            s.execute(update(RolloutStepRow).where(RolloutStepRow.id == ref.id).values(
                state="finished" if ok else "failed", finished=self.clock.now(),
                error=error, evidence={**evidence, **({"already_done": True}
                                                      if already_done else {})}))
            if host_before is not None:
                s.execute(update(RolloutHostRow).where(
                    RolloutHostRow.rollout_id == self.rollout_id,
                    RolloutHostRow.host == ref.host).values(before=dict(host_before)))
            details: dict[str, Any] = {"ring": ref.ring, "attempt": ref.attempt}
            if error:
                details["error"] = error
            if already_done:
                details["reconciled"] = "already done on the platform"
            self._audit(s, f"step.{'finished' if ok else 'failed'}",
                        f"{ref.host or ref.ring}:{ref.step}", details)
            s.commit()

    # --- hosts --------------------------------------------------------------------------

    def hosts(self) -> list[RolloutHostRow]:
        """Every host of the rollout."""
        with self.store.session() as s:
            return list(s.scalars(select(RolloutHostRow).where(
                RolloutHostRow.rollout_id == self.rollout_id).order_by(RolloutHostRow.id)))

    def host_ended(self, host: str, state: str, *, error: str = "",
                   after: Mapping[str, Any] | None = None, step: str | None = None) -> None:
        """A host reached an end state: done, failed, rolled-back, cancelled (``step``: where
        it failed, shown instead of the cleanup that followed)."""
        with self.store.session() as s:
            values: dict[str, Any] = {"state": state, "error": error, "updated": self.wall.now()}
            if step is not None:
                values["step"] = step
            if after is not None:
                values["after"] = dict(after)
            s.execute(update(RolloutHostRow).where(
                RolloutHostRow.rollout_id == self.rollout_id, RolloutHostRow.host == host)
                .values(**values))
            self._audit(s, f"host.{state}", host, {"error": error} if error else {})
            s.commit()

    def count_attempt(self, host: str) -> int:
        """Count one more retry of ``host``; returns the new total."""
        with self.store.session() as s:
            s.execute(update(RolloutHostRow).where(
                RolloutHostRow.rollout_id == self.rollout_id, RolloutHostRow.host == host)
                .values(attempts=RolloutHostRow.attempts + 1))
            n = s.scalar(select(RolloutHostRow.attempts).where(
                RolloutHostRow.rollout_id == self.rollout_id, RolloutHostRow.host == host))
            s.commit()
            return int(n or 0)

    # --- the rollout ----------------------------------------------------------------------

    def rollout(self) -> RolloutRow:
        """The rollout row as stored now."""
        with self.store.session() as s:
            return s.get_one(RolloutRow, self.rollout_id)

    def set_state(self, state: str, reason: str = "", *, finished: datetime | None = None,
                  clear_control: bool = False, **details: Any) -> None:
        """Change the rollout's state (audited)."""
        with self.store.session() as s:
            values: dict[str, Any] = {"state": state, "reason": reason,
                                      "updated": self.wall.now()}
            if finished is not None:
                values["finished"] = finished
            if clear_control:
                values["control"] = ""
            s.execute(update(RolloutRow).where(RolloutRow.id == self.rollout_id).values(**values))
            self._audit(s, f"rollout.{state}", self.name, {"reason": reason, **details})
            s.commit()

    def set_ring_index(self, index: int) -> None:
        """The ring the rollout works on (its gate passed for the ones before)."""
        with self.store.session() as s:
            s.execute(update(RolloutRow).where(RolloutRow.id == self.rollout_id)
                      .values(ring_index=index, updated=self.wall.now()))
            s.commit()

    # --- gates ----------------------------------------------------------------------------

    def gate(self, ring: str, kind: str) -> RolloutGateRow | None:
        """The gate row of ``ring`` (``exit`` or ``entry``)."""
        with self.store.session() as s:
            return s.scalar(select(RolloutGateRow).where(
                RolloutGateRow.rollout_id == self.rollout_id, RolloutGateRow.ring == ring,
                RolloutGateRow.kind == kind))

    def ring_done(self, ring: str) -> datetime:
        """Mark when ``ring``'s waves finished (soak counts from here); returns that time."""
        with self.store.session() as s:
            now = self.clock.now()
            s.execute(update(RolloutGateRow).where(
                RolloutGateRow.rollout_id == self.rollout_id, RolloutGateRow.ring == ring,
                RolloutGateRow.kind == "exit", RolloutGateRow.ring_done.is_(None))
                .values(ring_done=now))
            done = s.scalar(select(RolloutGateRow.ring_done).where(
                RolloutGateRow.rollout_id == self.rollout_id, RolloutGateRow.ring == ring,
                RolloutGateRow.kind == "exit"))
            s.commit()
            return done or now

    def gate_evaluated(self, ring: str, kind: str, state: str,
                       evidence: Mapping[str, Any]) -> None:
        """Record a gate evaluation (audited)."""
        with self.store.session() as s:
            s.execute(update(RolloutGateRow).where(
                RolloutGateRow.rollout_id == self.rollout_id, RolloutGateRow.ring == ring,
                RolloutGateRow.kind == kind).values(state=state, evaluated=self.clock.now(),
                                                    evidence=dict(evidence)))
            self._audit(s, f"gate.{state}", f"{ring}:{kind}", dict(evidence))
            s.commit()

    def withdrawn(self, components: tuple[tuple[str, str], ...]) -> list[str]:
        """Which of ``components`` the vendor withdrew (as ``component version: reason``)."""
        if not components:
            return []
        with self.store.session() as s:
            rows = s.execute(select(WithdrawnReleaseRow.component, WithdrawnReleaseRow.version,
                                    WithdrawnReleaseRow.reason)).all()
        wanted = set(components)
        return [f"{c} {v}: {r}" for c, v, r in rows if (c, v) in wanted]

    # --- cluster settings -------------------------------------------------------------------

    def changes(self, *, restored: bool | None = None) -> list[RolloutChangeRow]:
        """Cluster settings this rollout changed."""
        q = select(RolloutChangeRow).where(RolloutChangeRow.rollout_id == self.rollout_id)
        if restored is not None:
            q = q.where(RolloutChangeRow.restored == restored)
        with self.store.session() as s:
            return list(s.scalars(q.order_by(RolloutChangeRow.id)))

    def change_recorded(self, cluster: str, key: str, old: str, new: str) -> None:
        """Remember a setting's old value *before* changing it (so cleanup can restore it)."""
        with self.store.session() as s:
            row = s.scalar(select(RolloutChangeRow).where(
                RolloutChangeRow.rollout_id == self.rollout_id, RolloutChangeRow.cluster == cluster,
                RolloutChangeRow.key == key))
            if row is None:
                s.add(RolloutChangeRow(rollout_id=self.rollout_id, cluster=cluster, key=key,
                                       old=old, new=new, restored=False))
            else:
                row.restored = False
            self._audit(s, "cluster.setting", cluster, {"key": key, "from": old, "to": new})
            s.commit()

    def change_restored(self, change_id: int) -> None:
        """A changed setting is back to its old value."""
        with self.store.session() as s:
            row = s.get_one(RolloutChangeRow, change_id)
            row.restored = True
            self._audit(s, "cluster.restored", row.cluster, {"key": row.key, "to": row.old})
            s.commit()
