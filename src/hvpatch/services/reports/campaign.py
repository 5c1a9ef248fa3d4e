"""The campaign report: one plan and its rollout, as evidence of how a campaign really went.

The plan as approved (targets, rings and their gates, hosts, what was skipped and why), then
the rollout: who started it, each ring's gate with its evidence and approvals, every host's
outcome with the versions before and after and the findings verification closed, every failed
step and retry, and the cleanup (cluster settings put back). A plan that was never rolled out
gets the plan part alone.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    PlanRow,
    RolloutChangeRow,
    RolloutGateRow,
    RolloutRow,
    RolloutStepRow,
)
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.services.plans import get_plan, summary
from hvpatch.services.reports._common import (
    approvals_by_ring,
    audit_result,
    header,
    plain,
    rollout_hosts,
    verify_evidence,
)
from hvpatch.services.rollouts import get_rollout, rollout_status

__all__ = ["campaign_report"]

#: end states of a host that did not end patched
_NOT_PATCHED = ("failed", "rolled-back", "cancelled")
#: the plan's reason for a host the campaign never targeted (not a skip worth listing)
_UNTARGETED = "no targeted finding on this host"


def campaign_report(store: Store, *, rollout: str | None = None, plan: str | None = None,
                    now: datetime | None = None) -> dict[str, Any]:
    """The report of rollout ``rollout``, or of plan ``plan`` (with its newest rollout, if any),
    or of the newest rollout. NotFoundError names what exists when the name is unknown."""
    now = now or datetime.now(UTC)
    row: RolloutRow | None = None
    if rollout or not plan:
        row = get_rollout(store, rollout)
        with store.session() as s:
            plan = s.get_one(PlanRow, row.plan_id).name
    meta, p = get_plan(store, plan or "")
    if row is None:
        with store.session() as s:
            row = s.scalars(select(RolloutRow).where(RolloutRow.plan_id == meta["id"])
                            .order_by(RolloutRow.id.desc()).limit(1)).first()
    out: dict[str, Any] = {
        **header(store, "campaign", f"Campaign report: {meta['name']}", now),
        "plan": _plan(meta, p), "rollout": None, "gates": [], "hosts": _planned_hosts(p),
        "failures": [], "cleanup": {"settings": [], "all_restored": True}, "approvals": [],
        "audit": audit_result(store)}
    if row is not None:
        out.update(_rollout(store, row))
    hosts = out["hosts"]
    out["summary"] = {
        "plan": meta["name"], "rollout": out["rollout"]["name"] if out["rollout"] else None,
        "state": out["rollout"]["state"] if out["rollout"] else "not rolled out",
        "hosts": len(hosts), "by_state": dict(Counter(h["state"] for h in hosts)),
        "patched": sum(1 for h in hosts if h["state"] == "done"),
        "not_patched": sum(1 for h in hosts if h["state"] in _NOT_PATCHED),
        "retries": sum(h["retries"] for h in hosts),
        "failed_steps": len(out["failures"]),
        "findings_closed": sum(h["findings_closed"] for h in hosts if h["state"] == "done"),
        "approvals": len(out["approvals"]),
        "settings_restored": out["cleanup"]["all_restored"],
        "audit_chain_ok": out["audit"]["ok"],
    }
    return out


def _plan(meta: dict[str, Any], p: CampaignPlan) -> dict[str, Any]:
    """The plan as it was stored: who asked, for what, targets, rings and their gates."""
    return {
        "id": meta["id"], "name": meta["name"], "created": plain(meta["created"]),
        "requester": meta["requester"], "scope": meta["scope"], "status": meta["status"],
        "emergency": p.emergency, "summary": plain(summary(p)), "targets": dict(p.targets),
        "rings": [{"ring": r.ring, "position": r.position, "waves": len(r.waves),
                   "hosts": sum(len(w.hosts) for w in r.waves),
                   "hours": round(r.seconds / 3600, 2), "fits_windows": r.fits_windows,
                   "entry_approval": r.entry_approval,
                   "gate": {"regression_suite": r.gate.regression_suite,
                            "soak_hours": r.gate.soak_hours,
                            "max_failures": r.gate.max_failures,
                            "max_failure_percent": r.gate.max_failure_percent,
                            "no_open_incident": r.gate.no_open_incident,
                            "approval": r.gate.approval}} for r in p.rings],
        "skipped": [{"host": sk.host, "reason": sk.reason} for sk in p.skipped
                    if sk.reason != _UNTARGETED],
        "untargeted_hosts": sum(1 for sk in p.skipped if sk.reason == _UNTARGETED),
        "notes": list(p.notes),
    }


def _planned_hosts(p: CampaignPlan) -> list[dict[str, Any]]:
    """The plan's hosts, before any rollout: where each would go."""
    waves = [(r.ring, w) for r in p.rings for w in r.waves]  # positions as rollouts number
    return [{"host": h.host, "cluster": h.cluster, "ring": ring, "wave": position,
             "state": "planned", "step": "", "retries": 0, "failed_steps": 0, "error": "",
             "before": h.current, "after": h.target, "verified_at": None,
             "findings_closed": 0, "closed": [], "note": ""}
            for position, (ring, w) in enumerate(waves) for h in w.hosts]


def _rollout(store: Store, row: RolloutRow) -> dict[str, Any]:
    """What the rollout did: status, gates, per-host outcome, failures, cleanup, approvals."""
    status = rollout_status(store, row.name)
    with store.session() as s:
        hosts = rollout_hosts(s, [row.id])
        verified = verify_evidence(s, [row.id])
        gates = list(s.scalars(select(RolloutGateRow).where(RolloutGateRow.rollout_id == row.id)
                               .order_by(RolloutGateRow.id)))
        failed = list(s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.rollout_id == row.id, RolloutStepRow.state == "failed")
            .order_by(RolloutStepRow.id)))
        changes = list(s.scalars(select(RolloutChangeRow).where(
            RolloutChangeRow.rollout_id == row.id).order_by(RolloutChangeRow.id)))
    approvals = approvals_by_ring(store, [row.id])
    failed_by_host = Counter(f.host for f in failed)
    out_hosts = []
    for h in hosts:
        ev = verified.get((row.id, h.host), {})
        closed = [{"cve": c["cve"], "component": c["component"], "before": c["before"],
                   "after": c["after"]} for c in ev.get("closed", ())]
        out_hosts.append({
            "host": h.host, "cluster": h.cluster, "ring": h.ring, "wave": h.wave,
            "state": h.state, "step": h.step, "retries": h.attempts,
            "failed_steps": failed_by_host.get(h.host, 0), "error": h.error,
            "before": ev.get("before", ""), "after": ev.get("after", ""),
            "verified_at": ev.get("at"), "findings_closed": len(closed), "closed": closed,
            "note": (f"verification closed {len(closed)} finding(s) before the host was "
                     f"{h.state}: the store still records them closed"
                     if closed and h.state in ("rolled-back", "failed") else "")})
    keep = ("name", "state", "reason", "requester", "driver", "created", "updated", "finished",
            "hosts", "steps", "findings_closed")
    return {
        "rollout": {k: status[k] for k in keep},
        "gates": [{"ring": g.ring, "kind": g.kind, "state": g.state,
                   "ring_done": plain(g.ring_done), "evaluated": plain(g.evaluated),
                   "approved_by": g.approved_by, "approved_at": plain(g.approved_at),
                   "reasons": list((g.evidence or {}).get("reasons", [])),
                   "evidence": plain(g.evidence or {})} for g in gates],
        "hosts": out_hosts,
        "failures": [{"host": f.host, "ring": f.ring, "step": f.step, "attempt": f.attempt,
                      "started": plain(f.started), "finished": plain(f.finished),
                      "error": f.error} for f in failed],
        "cleanup": {"settings": [{"cluster": c.cluster, "key": c.key, "old": c.old,
                                  "new": c.new, "restored": c.restored} for c in changes],
                    "all_restored": all(c.restored for c in changes)},
        "approvals": [{"ring": ring, **a} for (_rid, ring), items in approvals.items()
                      for a in items],
    }
