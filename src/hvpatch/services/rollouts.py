"""Rollout use cases that need no driver: create, list, status, pause/abort requests, approve.

A rollout is one execution of a stored plan. Creating it writes a row per host (ring, wave,
cluster) and a gate per ring, so ``status`` can show the whole campaign before the first step.
Operators steer a running engine through the rollout row: a pause or abort request is picked up
at the engine's next safe point. Approvals enforce separation of duties: neither the rollout's
requester nor the plan's may approve its gates. Everything here is audited.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    PlanRow,
    RolloutGateRow,
    RolloutHostRow,
    RolloutRow,
    RolloutStepRow,
)
from hvpatch.adapters.store.plan_codec import plan_from_dict
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.errors import InputError, NotFoundError, Problem, SeparationOfDutiesError
from hvpatch.services.audit import record

__all__ = ["ACTIVE", "approve", "create_rollout", "get_rollout", "list_rollouts",
           "request_control", "rollout_gates", "rollout_name", "rollout_status", "rollout_steps",
           "rollout_timeline"]

#: states in which an engine may still have work to do
ACTIVE = ("pending", "running", "paused", "awaiting-approval")
ENDS = ("completed", "halted", "aborted")


def _now() -> datetime:
    return datetime.now(UTC)


def get_rollout(store: Store, name: str | None = None) -> RolloutRow:
    """The rollout named ``name`` (the newest one when None); NotFoundError otherwise."""
    with store.session() as s:
        q = select(RolloutRow)
        q = q.where(RolloutRow.name == name) if name else q.order_by(RolloutRow.id.desc())
        row = s.scalars(q.limit(1)).first()
        if row is None:
            names = list(s.scalars(select(RolloutRow.name).order_by(RolloutRow.id.desc())
                                   .limit(5)))
            hint = f" (rollouts: {', '.join(names)})" if names else " (there is none yet)"
            what = f"no rollout named {name!r}" if name else "no rollout yet"
            raise NotFoundError(what + hint)
        return row


def rollout_name(store: Store, rollout_id: int) -> str:
    """The name of rollout ``rollout_id``."""
    with store.session() as s:
        return s.get_one(RolloutRow, rollout_id).name


def create_rollout(store: Store, plan_name: str, *, requester: str, driver: dict[str, Any],
                   policy: RolloutPolicy, name: str | None = None) -> int:
    """A new rollout of the stored plan ``plan_name``: its hosts and gates, state ``pending``."""
    if not requester.strip():
        raise InputError("a rollout needs a requester", [Problem("--as", "name who starts it")])
    now = _now()
    with store.session() as s:
        plan_row = s.scalar(select(PlanRow).where(PlanRow.name == plan_name))
        if plan_row is None:
            raise NotFoundError(f"no plan named {plan_name!r} (see hvpatch plan list)")
        busy = s.scalar(select(RolloutRow.name).where(RolloutRow.plan_id == plan_row.id,
                                                      RolloutRow.state.in_(ACTIVE)))
        if busy is not None:
            raise InputError("the plan already has an unfinished rollout", [Problem(
                plan_name, f"rollout {busy!r} is not finished: resume or abort it first")])
        name = name or f"{plan_name}-rollout-{now:%Y%m%d-%H%M%S}"
        if s.scalar(select(RolloutRow.id).where(RolloutRow.name == name)) is not None:
            raise InputError("rollout name taken", [Problem("--name", f"{name!r} exists")])
        plan = plan_from_dict(plan_row.data)
        if not plan.waves():
            raise InputError("nothing to roll out", [Problem(plan_name, "the plan has no wave")])
        row = RolloutRow(name=name, plan_id=plan_row.id, state="pending",
                         requester=requester.strip(), driver=dict(driver),
                         policy=policy.to_dict(), created=now, updated=now, ring_index=0,
                         control="", reason="", lease_owner="")
        s.add(row)
        s.flush()
        position = 0
        for ring in plan.rings:
            s.add(RolloutGateRow(rollout_id=row.id, ring=ring.ring, kind="exit",
                                 state="pending", evidence={}, approved_by=""))
            if ring.entry_approval:
                s.add(RolloutGateRow(rollout_id=row.id, ring=ring.ring, kind="entry",
                                     state="pending", evidence={}, approved_by=""))
            for wave in ring.waves:
                for h in wave.hosts:
                    s.add(RolloutHostRow(rollout_id=row.id, host=h.host, cluster=h.cluster,
                                         ring=ring.ring, wave=position, state="pending",
                                         step="", attempts=0, error="", before={}, after={},
                                         updated=now))
                position += 1
        record(s, actor=requester.strip(), action="rollout.create", subject=name,
               details={"plan": plan_name, "driver": driver.get("name", ""),
                        "hosts": sum(len(w.hosts) for w in plan.waves())})
        s.commit()
        return row.id


def list_rollouts(store: Store) -> list[dict[str, Any]]:
    """Every rollout, newest first, with host counts by state."""
    with store.session() as s:
        rows = s.execute(select(RolloutRow, PlanRow.name).join(PlanRow)
                         .order_by(RolloutRow.id.desc())).all()
        counts: dict[int, Counter[str]] = {}
        for rid, state, n in s.execute(select(RolloutHostRow.rollout_id, RolloutHostRow.state,
                                              func.count()).group_by(RolloutHostRow.rollout_id,
                                                                     RolloutHostRow.state)):
            counts.setdefault(rid, Counter())[state] = n
    return [{"name": r.name, "plan": plan, "state": r.state, "requester": r.requester,
             "created": r.created.isoformat(), "reason": r.reason,
             "hosts": dict(counts.get(r.id, Counter()))} for r, plan in rows]


def rollout_status(store: Store, name: str | None = None) -> dict[str, Any]:
    """The whole picture of a rollout: state, rings and gates, waves and hosts, recent steps."""
    row = get_rollout(store, name)
    with store.session() as s:
        plan_name = s.get_one(PlanRow, row.plan_id).name
        hosts = list(s.scalars(select(RolloutHostRow).where(RolloutHostRow.rollout_id == row.id)
                               .order_by(RolloutHostRow.wave, RolloutHostRow.host)))
        gates = list(s.scalars(select(RolloutGateRow).where(RolloutGateRow.rollout_id == row.id)
                               .order_by(RolloutGateRow.id)))
        steps = s.scalar(select(func.count()).select_from(RolloutStepRow)
                         .where(RolloutStepRow.rollout_id == row.id)) or 0
        verified = list(s.scalars(select(RolloutStepRow.evidence).where(
            RolloutStepRow.rollout_id == row.id, RolloutStepRow.step == "verify",
            RolloutStepRow.state == "finished")))
        failed_steps = list(s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.rollout_id == row.id, RolloutStepRow.state == "failed")
            .order_by(RolloutStepRow.id.desc()).limit(10)))
    rings: dict[str, dict[str, Any]] = {}
    for h in hosts:
        r = rings.setdefault(h.ring, {"ring": h.ring, "hosts": Counter(), "waves": {}})
        r["hosts"][h.state] += 1
        r["waves"].setdefault(h.wave, []).append({
            "host": h.host, "cluster": h.cluster, "state": h.state, "step": h.step,
            "attempts": h.attempts, "error": h.error})
    for g in gates:
        r = rings.setdefault(g.ring, {"ring": g.ring, "hosts": Counter(), "waves": {}})
        r[f"{g.kind}_gate"] = {"state": g.state, "approved_by": g.approved_by,
                               "reasons": (g.evidence or {}).get("reasons", [])}
    return {
        "name": row.name, "plan": plan_name, "state": row.state, "reason": row.reason,
        "requester": row.requester, "driver": row.driver.get("name", ""),
        "control": row.control, "ring_index": row.ring_index,
        "lease": {"owner": row.lease_owner, "expires": row.lease_expires.isoformat()
                  if row.lease_expires else None},
        "created": row.created.isoformat(), "updated": row.updated.isoformat(),
        "finished": row.finished.isoformat() if row.finished else None,
        "hosts": dict(Counter(h.state for h in hosts)), "steps": steps,
        "findings_closed": sum(len((e or {}).get("closed", ())) for e in verified),
        "rings": [{"ring": r["ring"], "hosts": dict(r["hosts"]),
                   "exit_gate": r.get("exit_gate"), "entry_gate": r.get("entry_gate"),
                   "waves": [{"wave": w, "hosts": hs} for w, hs in sorted(r["waves"].items())]}
                  for r in rings.values()],
        "recent_failures": [{"host": f.host, "step": f.step, "attempt": f.attempt,
                             "error": f.error} for f in failed_steps],
    }


def rollout_gates(store: Store, name: str) -> list[dict[str, Any]]:
    """Every gate of a rollout with its whole evidence (checks, soak, incidents, approvals)."""
    row = get_rollout(store, name)
    with store.session() as s:
        gates = s.scalars(select(RolloutGateRow).where(RolloutGateRow.rollout_id == row.id)
                          .order_by(RolloutGateRow.id))
        return [{"ring": g.ring, "kind": g.kind, "state": g.state, "ring_done": g.ring_done,
                 "evaluated": g.evaluated, "evidence": g.evidence or {},
                 "approved_by": g.approved_by or None, "approved_at": g.approved_at}
                for g in gates]


def rollout_timeline(store: Store, name: str) -> dict[str, Any]:
    """When each wave of a rollout actually ran: per (ring, wave), from its hosts' first step
    start to their last step end (or the last start, for a wave still running), with host
    counts by state; times in seconds from the rollout's first step. For the rollout's Gantt
    chart (the plan's chart shows what was expected)."""
    row = get_rollout(store, name)
    with store.session() as s:
        spans = {h: (a, b, c) for h, a, b, c in s.execute(
            select(RolloutStepRow.host, func.min(RolloutStepRow.started),
                   func.max(RolloutStepRow.finished), func.max(RolloutStepRow.started))
            .where(RolloutStepRow.rollout_id == row.id, RolloutStepRow.host != "")
            .group_by(RolloutStepRow.host))}
        hosts = list(s.execute(select(RolloutHostRow.host, RolloutHostRow.ring,
                                      RolloutHostRow.wave, RolloutHostRow.cluster,
                                      RolloutHostRow.state)
                               .where(RolloutHostRow.rollout_id == row.id)
                               .order_by(RolloutHostRow.wave)))
    waves: dict[tuple[str, int], dict[str, Any]] = {}
    for host, ring, wave, cluster, state in hosts:
        w = waves.setdefault((ring, wave), {"ring": ring, "wave": wave, "clusters": set(),
                                            "hosts": Counter(), "start": None, "end": None})
        w["clusters"].add(cluster)
        w["hosts"][state] += 1
        if host in spans:
            first, last_end, last_start = spans[host]
            end = max(x for x in (last_end, last_start) if x is not None)
            w["start"] = first if w["start"] is None else min(w["start"], first)
            w["end"] = end if w["end"] is None else max(w["end"], end)
    begun = [w for w in waves.values() if w["start"] is not None]
    origin = min((w["start"] for w in begun), default=None)
    return {"name": row.name, "start": origin.isoformat() if origin else None, "waves": [{
        "ring": w["ring"], "wave": w["wave"], "clusters": sorted(w["clusters"]),
        "hosts": dict(w["hosts"]),
        "start_s": (w["start"] - origin).total_seconds() if origin else 0.0,
        "seconds": (w["end"] - w["start"]).total_seconds()} for w in begun]}


def rollout_steps(store: Store, name: str, *, after: int = 0, limit: int = 100,
                  host: str | None = None) -> list[dict[str, Any]]:
    """A rollout's recorded step attempts with their evidence, in order, after step id
    ``after`` (keyset pagination)."""
    row = get_rollout(store, name)
    q = select(RolloutStepRow).where(RolloutStepRow.rollout_id == row.id,
                                     RolloutStepRow.id > after)
    if host is not None:
        q = q.where(RolloutStepRow.host == host)
    with store.session() as s:
        return [{"id": r.id, "host": r.host, "ring": r.ring, "step": r.step,
                 "attempt": r.attempt, "state": r.state, "started": r.started,
                 "finished": r.finished, "error": r.error, "evidence": r.evidence or {}}
                for r in s.scalars(q.order_by(RolloutStepRow.id).limit(limit))]


def request_control(store: Store, name: str | None, action: str, *, actor: str,
                    reason: str = "") -> dict[str, Any]:
    """Ask the engine driving the rollout to pause or abort at its next safe point.

    A rollout no engine drives (pending, paused, awaiting approval) is marked at once; an abort
    of such a rollout still needs ``rollout resume`` (or ``abort``'s own run) to clean up.
    """
    if action not in ("pause", "abort"):
        raise InputError("unknown request", [Problem("action", "expected pause or abort")])
    row = get_rollout(store, name)
    if row.state in ENDS:
        raise InputError(f"rollout {row.name} has ended ({row.state})",
                         [Problem(row.name, "nothing to pause or abort")])
    with store.session() as s:
        s.execute(update(RolloutRow).where(RolloutRow.id == row.id)
                  .values(control=action, updated=_now()))
        record(s, actor=actor, action=f"rollout.{action}-requested", subject=row.name,
               details={"reason": reason, "state": row.state})
        s.commit()
    return {"name": row.name, "requested": action, "state": row.state,
            "driven": bool(row.lease_owner)}


def approve(store: Store, name: str | None, *, actor: str, ring: str | None = None,
            comment: str = "") -> dict[str, Any]:
    """Approve the gate the rollout waits for (or ``ring``'s); the approver must differ from the
    rollout's and the plan's requester."""
    row = get_rollout(store, name)
    actor = actor.strip()
    with store.session() as s:
        plan_requester = s.get_one(PlanRow, row.plan_id).requester
        for who, what in ((row.requester, "started this rollout"),
                          (plan_requester, "requested its plan")):
            if actor.casefold() == who.strip().casefold():
                raise SeparationOfDutiesError("separation of duties", [Problem(
                    "--as", f"{actor} {what}; an approval must come from someone else")])
        gates = list(s.scalars(select(RolloutGateRow).where(
            RolloutGateRow.rollout_id == row.id, RolloutGateRow.approved_by == "")
            .order_by(RolloutGateRow.id)))
        if ring:
            gates = [g for g in gates if g.ring == ring]
        waiting = [g for g in gates if g.state in ("awaiting-approval", "pending")]
        target = next((g for g in waiting if g.state == "awaiting-approval"), None)
        if target is None:
            target = next((g for g in waiting if g.kind == "entry"), None) or (
                waiting[0] if ring and waiting else None)
        if target is None:
            raise InputError("nothing to approve", [Problem(
                ring or row.name, "no gate of this rollout waits for an approval")])
        target.approved_by, target.approved_at = actor, _now()
        record(s, actor=actor, action="gate.approved", subject=f"{target.ring}:{target.kind}",
               details={"rollout": row.name, "comment": comment})
        s.commit()
        return {"name": row.name, "ring": target.ring, "gate": target.kind,
                "approved_by": actor, "state": row.state}
