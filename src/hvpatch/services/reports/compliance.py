"""The compliance report: evidence for an auditor, built from what the store recorded.

What was exposed (every KEV finding, judged against its CISA due date as BOD 22-01 does), what
was decided and why (the latest decision per host with its reasons), what is overdue against
the policy's deadlines, what was patched when and by whom (rollouts, their requesters and
approvers, the findings verification closed with the versions before and after), exceptions
with their approver and expiry, and whether the audit chain verifies. Nothing is recomputed:
the findings, risk, exceptions, rollout and audit services are read, and their stored results
queried, so the report says what the system decided at the time.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    FindingRiskRow,
    FindingRow,
    HostRiskRow,
    HostRow,
    KevRow,
    PlanRow,
    RolloutRow,
)
from hvpatch.services.exceptions import list_exceptions
from hvpatch.services.findings import list_findings
from hvpatch.services.reports._common import (
    KEV_STATUSES,
    approvals_by_ring,
    as_day,
    audit_result,
    header,
    kev_status,
    plain,
    rollout_hosts,
    verify_evidence,
)
from hvpatch.services.risk import ranked

__all__ = ["compliance_report"]


def compliance_report(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """The compliance report as plain data, judged as of ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    today = as_day(now) or now.date()
    patched, rollouts, closed_by, reverted = _patched(store)
    kev = _kev_rows(store, today, closed_by, reverted)
    overdue = _overdue(store, today)
    decisions = _decisions(store, today)
    exceptions = plain(list_exceptions(store, today=today))
    audit = audit_result(store)
    with store.session() as s:
        hosts = s.scalar(select(func.count()).select_from(HostRow)) or 0
        states = dict(s.execute(select(FindingRow.state, func.count())
                                .group_by(FindingRow.state)).all())
        exposed = s.scalar(select(func.count(func.distinct(FindingRow.host_id)))
                           .where(FindingRow.state == "open")) or 0
    kev_counts = Counter(r["status"] for r in kev)
    summary = {
        "hosts": hosts,
        "hosts_with_open_findings": exposed,
        "findings_open": states.get("open", 0),
        "findings_closed": states.get("closed", 0),
        "kev_findings": len(kev),
        "kev_cves": len({r["cve"] for r in kev}),
        "kev_by_status": {k: kev_counts.get(k, 0) for k in KEV_STATUSES},
        "kev_closed_on_rolled_back_hosts": sum(1 for r in kev if r["rolled_back_in"]),
        "overdue_findings": len(overdue),
        "overdue_deferred_by_exception": sum(1 for r in overdue if r["deferred_by"]),
        "hosts_overdue": sum(1 for d in decisions if d["overdue"]),
        "decisions": dict(Counter(d["decision"] for d in decisions)),
        "outcomes": dict(Counter(d["outcome"] for d in decisions)),
        "rollouts": len(rollouts),
        "hosts_patched": len({p["host"] for p in patched}),
        "findings_closed_by_rollouts": sum(len(p["findings_closed"]) for p in patched),
        "exceptions": dict(Counter(e["state"] for e in exceptions)),
        "audit_chain_ok": audit["ok"],
    }
    return {**header(store, "compliance", "Compliance report", now), "summary": summary,
            "kev": kev, "overdue": overdue, "decisions": decisions, "patched": patched,
            "rollouts": rollouts, "exceptions": exceptions, "audit": audit}


def _risks(store: Store) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The stored exposure assessment per (host, CVE, component): outcome, policy deadline."""
    with store.session() as s:
        rows = s.execute(
            select(HostRow.name, FindingRow.cve_id, FindingRow.component, FindingRiskRow.outcome,
                   FindingRiskRow.score, FindingRiskRow.deadline, FindingRiskRow.deadline_reason,
                   FindingRiskRow.deferred_by)
            .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
            .join(HostRow, HostRow.id == FindingRow.host_id)).all()
    return {(h, c, comp): {"outcome": o, "score": round(sc, 1), "deadline": plain(d),
                           "deadline_reason": why, "deferred_by": by}
            for h, c, comp, o, sc, d, why, by in rows}


def _kev_rows(store: Store, today: date, closed_by: dict[tuple[str, str, str], str],
              reverted: dict[tuple[str, str, str], str]) -> list[dict[str, Any]]:
    """Every finding of a KEV-listed CVE, open or closed, judged against its due date.

    A finding closed by the verification of a host that its rollout then rolled back is judged
    as still open (the host runs the old release again), and names that rollout.
    """
    found = list_findings(store, kev_only=True, state="all")
    cves = sorted({f["cve"] for f in found})
    with store.session() as s:
        kev: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(cves), 500):
            for r in s.execute(select(KevRow.cve_id, KevRow.date_added, KevRow.required_action)
                               .where(KevRow.cve_id.in_(cves[i:i + 500]))):
                kev[r[0]] = tuple(r[1:])
    risks = _risks(store)
    out = []
    for f in found:
        due, closed = f["kev_due"], as_day(f["closed_at"])
        added, action = kev.get(f["cve"], (None, ""))
        key = (f["host"], f["cve"], f["component"])
        risk = risks.get(key, {})
        first = as_day(f["first_seen"])
        back = reverted.get(key) if f["state"] == "closed" else None
        out.append({
            "host": f["host"], "cve": f["cve"], "component": f["component"],
            "installed": f["installed"], "fixed_in": f["fixed_in"],
            "kev_added": plain(added), "due": plain(due), "ransomware": f["ransomware"],
            "first_seen": plain(f["first_seen"]), "state": f["state"],
            "closed_at": plain(f["closed_at"]), "closed_by": closed_by.get(key),
            "rolled_back_in": back,
            **kev_status(due, "open" if back else f["state"], closed, today),
            "seen_after_due": bool(due and first and first > due),
            "policy_deadline": risk.get("deadline"), "outcome": risk.get("outcome"),
            "deferred_by": risk.get("deferred_by"), "required_action": action,
        })
    order = {"missed": 0, "pending": 1, "no due date": 2, "met": 3}
    return sorted(out, key=lambda r: (order[r["status"]], r["due"] or "", r["cve"], r["host"]))


def _overdue(store: Store, today: date) -> list[dict[str, Any]]:
    """Open findings past the policy deadline their last assessment gave them."""
    with store.session() as s:
        rows = s.execute(
            select(HostRow.name, FindingRow.cve_id, FindingRow.component, FindingRow.first_seen,
                   FindingRiskRow.outcome, FindingRiskRow.score, FindingRiskRow.deadline,
                   FindingRiskRow.deadline_reason, FindingRiskRow.deferred_by, KevRow.due_date)
            .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
            .join(HostRow, HostRow.id == FindingRow.host_id)
            .outerjoin(KevRow, KevRow.cve_id == FindingRow.cve_id)
            .where(FindingRow.state == "open", FindingRiskRow.deadline < today)
            .order_by(FindingRiskRow.deadline, HostRow.name, FindingRow.cve_id)).all()
    return [{"host": h, "cve": c, "component": comp, "first_seen": plain(first),
             "outcome": o, "score": round(sc, 1), "deadline": plain(d),
             "days_overdue": (today - d).days, "deadline_reason": why, "deferred_by": by,
             "kev": kev_due is not None}
            for h, c, comp, first, o, sc, d, why, by, kev_due in rows]


def _decisions(store: Store, today: date) -> list[dict[str, Any]]:
    """The latest decision per host, most urgent first, with the reasons it was taken."""
    with store.session() as s:
        stored = s.execute(select(HostRow.name, HostRiskRow.reasons, HostRiskRow.computed_at)
                           .join(HostRow, HostRow.id == HostRiskRow.host_id)).all()
    reasons: dict[str, list[Any]] = {h: list(r or []) for h, r, _at in stored}
    computed: dict[str, datetime] = {h: at for h, _r, at in stored}
    return [{"host": r["host"], "cluster": r["cluster"], "site": r["site"],
             "decision": r["decision"], "outcome": r["outcome"],
             "exposure": round(r["exposure"], 1), "patch_risk": round(r["patch_risk"], 1),
             "deadline": plain(r["deadline"]), "overdue": r["overdue"],
             "open_findings": r["open_findings"], "candidate": r["candidate"],
             "mitigation": r["mitigation"], "suggest_defer": r["suggest_defer"],
             "decided_at": plain(computed.get(r["host"])),
             "reasons": reasons.get(r["host"], [])}
            for r in ranked(store, by="host", today=today)]


def _patched(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                    dict[tuple[str, str, str], str],
                                    dict[tuple[str, str, str], str]]:
    """Hosts rollouts patched (who asked, who approved, when verified, what closed), the
    rollouts, which rollout closed each (host, CVE, component), and which closures a rollback
    undid on the platform (the rollout that rolled the host back; a later patch supersedes)."""
    with store.session() as s:
        rows = s.execute(select(RolloutRow, PlanRow.name, PlanRow.requester)
                         .join(PlanRow, PlanRow.id == RolloutRow.plan_id)
                         .order_by(RolloutRow.id)).all()
        ids = [r.id for r, _p, _q in rows]
        hosts = rollout_hosts(s, ids)
        verified = verify_evidence(s, ids)
    approvals = approvals_by_ring(store, ids)
    meta = {r.id: (r, plan, preq) for r, plan, preq in rows}
    patched: list[dict[str, Any]] = []
    closed_by: dict[tuple[str, str, str], str] = {}
    reverted: dict[tuple[str, str, str], str] = {}
    counts: dict[int, Counter[str]] = {}
    for h in hosts:  # in rollout order, so a later rollout's outcome wins
        counts.setdefault(h.rollout_id, Counter())[h.state] += 1
        r, plan, preq = meta[h.rollout_id]
        ev = verified.get((h.rollout_id, h.host), {})
        closed = [{"cve": c["cve"], "component": c["component"], "before": c["before"],
                   "after": c["after"]} for c in ev.get("closed", ())]
        if h.state == "done":
            for key in [k for k in reverted if k[0] == h.host]:
                del reverted[key]
        for c in closed:
            key = (h.host, c["cve"], c["component"])
            if h.state == "done":
                closed_by[key] = r.name
            elif h.state in ("rolled-back", "failed"):
                reverted[key] = r.name
        if h.state != "done":
            continue
        patched.append({
            "host": h.host, "rollout": r.name, "plan": plan, "ring": h.ring,
            "requested_by": r.requester, "plan_requested_by": preq,
            "approvals": approvals.get((h.rollout_id, h.ring), []),
            "verified_at": ev.get("at"), "rollout_finished": plain(r.finished),
            "before": ev.get("before", ""), "after": ev.get("after", ""),
            "findings_closed": closed, "still_open": list(ev.get("still_open", ())),
        })
    rollouts = [{"name": r.name, "plan": plan, "state": r.state, "requested_by": r.requester,
                 "plan_requested_by": preq, "created": plain(r.created),
                 "finished": plain(r.finished), "reason": r.reason,
                 "hosts": dict(counts.get(r.id, Counter()))} for r, plan, preq in rows]
    return patched, rollouts, closed_by, reverted
