"""What every report shares: its header, plain JSON-able values, KEV judgement, rollout evidence.

Reports are plain dicts of JSON types only (strings, numbers, booleans, None, lists, dicts), so
the JSON renderer writes them as they are and ``json.loads(json.dumps(r)) == r``: dates and
times become ISO 8601 strings here, once, in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    PlanRow,
    RolloutGateRow,
    RolloutHostRow,
    RolloutRow,
    RolloutStepRow,
)
from hvpatch.adapters.store.plan_codec import plan_from_dict
from hvpatch.services.audit import list_entries, verify_store

__all__ = ["KEV_STATUSES", "approvals_by_ring", "as_day", "audit_result", "header", "kev_status",
           "plain", "ring_order", "rollout_hosts", "verify_evidence"]

#: how a KEV finding stands against its CISA due date (BOD 22-01)
KEV_STATUSES = ("met", "missed", "pending", "no due date")

#: audit entries read to attach to approvals (an approval is one entry; this bounds the read)
_AUDIT_APPROVALS = 100_000


def _utc(value: datetime) -> datetime:
    # SQLite keeps no zone: every writer stores UTC, so a naive value is UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def plain(value: Any) -> Any:
    """``value`` with dates and times as ISO strings (UTC) and tuples as lists, recursively."""
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    return value


def header(store: Store, kind: str, title: str, now: datetime) -> dict[str, Any]:
    """The fields every report starts with: what, when, from which store, judged as of when."""
    now = _utc(now)
    return {"kind": kind, "title": title, "generated": now.isoformat(),
            "as_of": now.date().isoformat(), "store": store.safe_url}


def as_day(value: datetime | date | None) -> date | None:
    """The (UTC) day of a timestamp, or the date itself."""
    if value is None:
        return None
    return _utc(value).date() if isinstance(value, datetime) else value


def kev_status(due: date | None, state: str, closed: date | None,
               today: date) -> dict[str, Any]:
    """Judge one KEV finding against its CISA due date, as BOD 22-01 does.

    *met*: closed on or before the due date; *missed*: closed after it, or still open after
    it; *pending*: open and the due date not passed yet; *no due date*: the catalog gives none.
    ``days_late`` counts days past the due date (missed), ``days_left`` days until it (pending).
    """
    if due is None:
        return {"status": "no due date", "days_late": None, "days_left": None}
    if state != "open" and closed is not None:
        if closed <= due:
            return {"status": "met", "days_late": None, "days_left": None}
        return {"status": "missed", "days_late": (closed - due).days, "days_left": None}
    if today > due:
        return {"status": "missed", "days_late": (today - due).days, "days_left": None}
    return {"status": "pending", "days_late": None, "days_left": (due - today).days}


def audit_result(store: Store) -> dict[str, Any]:
    """The verification of the whole hash-chained audit log."""
    v = verify_store(store)
    return {"ok": v.ok, "entries": v.entries, "first_bad_seq": v.first_bad_seq,
            "reason": v.reason or None}


def ring_order(plan_data: Mapping[str, Any]) -> list[str]:
    """The rings of a stored plan, in the order they run."""
    return [r.ring for r in plan_from_dict(dict(plan_data)).rings]


def approvals_by_ring(store: Store, rollout_ids: Iterable[int],
                      ) -> dict[tuple[int, str], list[dict[str, Any]]]:
    """Per (rollout id, ring) the approvals that let the ring start.

    A ring is approved at its own entry gate (the first ring) or at the previous ring's exit
    gate (``docs/rollout.md``). Each approval carries the audit entry that recorded it.
    """
    ids = list(rollout_ids)
    if not ids:
        return {}
    with store.session() as s:
        rollouts = {r.id: r for r in s.scalars(select(RolloutRow)
                                               .where(RolloutRow.id.in_(ids)))}
        orders = {p.id: ring_order(p.data) for p in s.scalars(select(PlanRow).where(
            PlanRow.id.in_({r.plan_id for r in rollouts.values()})))}
        gates = list(s.scalars(select(RolloutGateRow).where(
            RolloutGateRow.rollout_id.in_(ids), RolloutGateRow.approved_by != "")
            .order_by(RolloutGateRow.id)))
    out: dict[tuple[int, str], list[dict[str, Any]]] = {}
    if not gates:
        return out
    audit = {(e["details"].get("rollout"), e["subject"], e["actor"]): e
             for e in list_entries(store, action="gate.approved", limit=_AUDIT_APPROVALS)}
    for g in gates:
        row = rollouts[g.rollout_id]
        ring: str | None = g.ring
        if g.kind != "entry":
            order = orders[row.plan_id]
            pos = order.index(g.ring) if g.ring in order else -1
            ring = order[pos + 1] if 0 <= pos < len(order) - 1 else None
        if ring is None:
            continue
        entry = audit.get((row.name, f"{g.ring}:{g.kind}", g.approved_by)) or {}
        out.setdefault((g.rollout_id, ring), []).append({
            "by": g.approved_by, "at": plain(g.approved_at), "gate": f"{g.ring}:{g.kind}",
            "comment": entry.get("details", {}).get("comment", ""),
            "audit_seq": entry.get("seq")})
    return out


def verify_evidence(s: Session, rollout_ids: Iterable[int],
                    ) -> dict[tuple[int, str], dict[str, Any]]:
    """Per (rollout id, host) the evidence and time of its finished ``verify`` step."""
    ids = list(rollout_ids)
    if not ids:
        return {}
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for row in s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.rollout_id.in_(ids), RolloutStepRow.step == "verify",
            RolloutStepRow.state == "finished").order_by(RolloutStepRow.id)):
        out[(row.rollout_id, row.host)] = {"at": plain(row.finished), **(row.evidence or {})}
    return out


def rollout_hosts(s: Session, rollout_ids: Iterable[int]) -> list[RolloutHostRow]:
    """The host rows of the given rollouts, by rollout, wave and host."""
    ids = list(rollout_ids)
    if not ids:
        return []
    return list(s.scalars(select(RolloutHostRow).where(RolloutHostRow.rollout_id.in_(ids))
                          .order_by(RolloutHostRow.rollout_id, RolloutHostRow.wave,
                                    RolloutHostRow.host)))

