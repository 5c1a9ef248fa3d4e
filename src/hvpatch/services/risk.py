"""Risk use cases: assess every open finding and decide per host; exceptions; explanations.

``assess_risk`` reads the stored findings, advisories, KEV and EPSS, the fleet and the product
lifecycle data, scores exposure per finding and patch risk per host, decides, and stores the
result next to the previous one, so a rerun after a feed or inventory change reports what
changed (new, gone, outcome or decision moved). Exceptions are requested, approved by someone
else (separation of duties), and lapse at their expiry.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from hvpatch.adapters.store.codec import kev_from_row, vuln_from_dict
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    ClusterRow,
    EpssRow,
    ExceptionRow,
    FindingRiskRow,
    FindingRow,
    GuestRow,
    HostRiskRow,
    HostRow,
    KevRow,
    RiskRunRow,
    SiteRow,
    TenantRow,
    VulnerabilityRow,
)
from hvpatch.adapters.yamlfile import load_yaml
from hvpatch.domain.advisories import AnalysisStatus, EpssScore, KevEntry, Vulnerability
from hvpatch.domain.fleet import Host
from hvpatch.domain.risk import (
    DEFAULT_POLICY,
    FindingRisk,
    Grant,
    HostDecision,
    Override,
    Policy,
    blast_radius,
    deadline,
    decide_host,
    exposure_risk,
    overrides_from_dict,
    patch_risk,
    policy_from_dict,
)
from hvpatch.errors import InputError, NotFoundError, Problem
from hvpatch.services.candidates import can_evacuate, candidate_for, maturity_for
from hvpatch.services.inventory import load_fleet


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (validated), or the defaults."""
    return policy_from_dict(load_yaml(path), str(path)) if path else DEFAULT_POLICY


def load_overrides(path: Path | None) -> dict[str, Override]:
    """The per-CVE overrides in ``path`` (validated), or none."""
    return overrides_from_dict(load_yaml(path), str(path)) if path else {}


@dataclass
class RiskSummary:
    """What one assessment run found and what changed since the previous one."""

    hosts: int = 0
    findings: int = 0
    new_findings: int = 0
    by_decision: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(vars(self))




def _placeholder(cve: str) -> Vulnerability:
    return Vulnerability(cve, None, None, "", AnalysisStatus.UNANALYSED, "distro")


def _grants(rows: list[ExceptionRow], names: dict[int, str]) -> list[Grant]:
    return [Grant(r.id, names[r.host_id], r.cve_id, r.expires_on, r.state == "approved",
                  r.compensating_control) for r in rows if r.state in ("approved", "pending")]


def assess_risk(store: Store, *, policy: Policy = DEFAULT_POLICY,
                overrides: dict[str, Override] | None = None, actor: str = "hvpatch",
                today: date | None = None, now: datetime | None = None) -> RiskSummary:
    """Assess and decide for every host with open findings; store and return the summary."""
    now = now or datetime.now(UTC)
    today = today or now.date()
    overrides = overrides or {}
    fleet = load_fleet(store)
    hosts: dict[str, Host] = {h.name: h for h in fleet.hosts()}
    clusters = {(c.site, c.name): c for c in fleet.clusters()}
    summary = RiskSummary()
    with store.session() as s:
        names = dict(s.execute(select(HostRow.id, HostRow.name)).all())
        findings = list(s.execute(select(FindingRow.id, FindingRow.host_id, FindingRow.cve_id,
                                         FindingRow.component, FindingRow.confidence,
                                         FindingRow.first_seen, FindingRow.fixed_in)
                                  .where(FindingRow.state == "open")).all())
        cves = sorted({f[2] for f in findings})
        vulns: dict[str, Vulnerability] = {}
        kev: dict[str, KevEntry] = {}
        epss: dict[str, EpssScore] = {}
        for i in range(0, len(cves), 500):
            chunk = cves[i:i + 500]
            for d in s.scalars(select(VulnerabilityRow.data).where(
                    VulnerabilityRow.cve_id.in_(chunk))):
                vulns[d["id"]] = vuln_from_dict(d)
            for r in s.scalars(select(KevRow).where(KevRow.cve_id.in_(chunk))):
                kev[r.cve_id] = kev_from_row(r)
            for e in s.scalars(select(EpssRow).where(EpssRow.cve_id.in_(chunk))):
                epss[e.cve_id] = EpssScore(e.cve_id, e.epss, e.percentile, e.score_date,
                                           e.model_version)
        exc_rows = list(s.scalars(select(ExceptionRow)))
        for ex in exc_rows:  # lapse: an expired exception stops deferring, on the record
            if ex.state == "approved" and ex.expires_on < today:
                ex.state, ex.closed_by, ex.closed_at = "expired", "hvpatch (expiry)", now
        grants = _grants(exc_rows, names)
        by_host: dict[int, list[Any]] = defaultdict(list)
        for f in findings:
            by_host[f[1]].append(f)
        decisions: dict[int, HostDecision] = {}
        labels: dict[int, str] = {}
        risks: dict[int, FindingRisk] = {}
        for host_id, rows in by_host.items():
            host = hosts[names[host_id]]
            cluster = clusters.get((host.site, host.cluster))
            blast = blast_radius(host, cluster)
            frs = []
            for fid, _hid, cve, component, confidence, first_seen, _fixed in rows:
                o = overrides.get(cve)
                er = exposure_risk(vulns.get(cve) or _placeholder(cve), blast, kev=kev.get(cve),
                                   epss=epss.get(cve), confidence=confidence,
                                   impact_override=o.impact if o else None,
                                   component=component)
                due, why = deadline(er.outcome, first_seen.date(), policy.sla_days, kev.get(cve))
                fr = FindingRisk(cve, component, er, due, why)
                frs.append(fr)
                risks[fid] = fr
            cand = candidate_for(host, [r[6] for r in rows])
            labels[host_id] = cand.label
            pr = patch_risk(cand, maturity_for(host, today),
                            family=host.family.value, guests=len(host.guests),
                            tenants=len(host.tenants), ring=host.ring,
                            can_evacuate=can_evacuate(host, cluster), today=today)
            d = decide_host(host.name, frs, pr, policy, grants=grants,
                            mitigations={c: o.mitigation for c, o in overrides.items()
                                         if o.mitigation}, today=today)
            if d is not None:
                mat = maturity_for(host, today)
                if mat is not None and mat.status in ("end-of-life", "security-only"):
                    d = replace(d, reasons=(*d.reasons, f"{mat.product} {mat.line} is "
                                            f"{mat.status}: plan the move to a supported line"))
                decisions[host_id] = d
                for fr in d.findings:  # carry the exception that deferred it
                    for fid, *_ in rows:
                        if risks[fid].cve == fr.cve and risks[fid].component == fr.component:
                            risks[fid] = fr
        where = {f[0]: (names[f[1]], f[2]) for f in findings}
        _store(s, decisions, labels, risks, where, now, summary)
        summary.hosts = len(decisions)
        summary.findings = len(risks)
        summary.new_findings = sum(1 for c in summary.changes if c["change"] == "new finding")
        summary.by_decision = dict(Counter(d.decision.value for d in decisions.values()))
        summary.by_outcome = dict(Counter(d.outcome.value for d in decisions.values()))
        summary.overdue = sum(1 for d in decisions.values() if d.deadline and d.deadline < today)
        s.add(RiskRunRow(at=now, actor=actor, policy=policy.as_dict(), summary={
            k: v for k, v in summary.as_dict().items() if k != "changes"}
            | {"changes": summary.changes[:500]}))
        s.commit()
    store.analyze(FindingRiskRow, HostRiskRow)
    return summary


def _store(s: Any, decisions: dict[int, HostDecision], labels: dict[int, str],
           risks: dict[int, FindingRisk], where: dict[int, tuple[str, str]], now: datetime,
           summary: RiskSummary) -> None:
    old_f = {r.finding_id: r for r in s.scalars(select(FindingRiskRow))}
    first_run = not old_f
    ins, upd = [], []
    for fid, fr in risks.items():
        e = fr.exposure
        row: dict[str, Any] = {"finding_id": fid, "score": e.score, "outcome": e.outcome.value,
               "impact_class": e.impact_class.value, "deadline": fr.deadline,
               "deadline_reason": fr.deadline_reason, "deferred_by": fr.deferred_by,
               "factors": [[f.name, f.value, f.weight, f.part, f.note] for f in e.factors],
               "ssvc": [list(p) for p in e.ssvc], "computed_at": now}
        old = old_f.get(fid)
        host, cve = where[fid]
        if old is None:
            ins.append({**row, "prev_score": None, "prev_outcome": None})
            if not first_run:
                summary.changes.append({"host": host, "cve": cve, "change": "new finding",
                                        "to": e.outcome.value})
        else:
            upd.append({"id": old.id, **row, "prev_score": old.score,
                        "prev_outcome": old.outcome})
            if old.outcome != e.outcome.value:
                summary.changes.append({"host": host, "cve": cve, "change": "outcome",
                                        "from": old.outcome, "to": e.outcome.value})
    for batch, stmt in ((upd, update(FindingRiskRow)), (ins, insert(FindingRiskRow))):
        for i in range(0, len(batch), 5000):
            s.execute(stmt, batch[i:i + 5000])
    old_h = {r.host_id: r for r in s.scalars(select(HostRiskRow))}
    names = dict(s.execute(select(HostRow.id, HostRow.name)).all())
    ins, upd = [], []
    for hid, d in decisions.items():
        hrow: dict[str, Any] = {
               "host_id": hid, "decision": d.decision.value, "outcome": d.outcome.value,
               "exposure_score": d.exposure_score, "patch_score": d.patch.score,
               "candidate": labels.get(hid, "")[:255],
               "deadline": d.deadline, "reasons": list(d.reasons),
               "patch_factors": [[f.name, f.value, f.weight, f.part, f.note]
                                 for f in d.patch.factors],
               "mitigation": d.mitigation, "suggest_defer": d.suggest_defer,
               "defer_until": d.defer_until, "open_findings": len(d.findings),
               "computed_at": now}
        old_d = old_h.get(hid)
        if old_d is None:
            ins.append({**hrow, "prev_decision": None, "prev_outcome": None})
            summary.changes.append({"host": names[hid], "change": "new",
                                    "decision": d.decision.value, "outcome": d.outcome.value})
        else:
            upd.append({"id": old_d.id, **hrow, "prev_decision": old_d.decision,
                        "prev_outcome": old_d.outcome})
            if (old_d.decision, old_d.outcome) != (d.decision.value, d.outcome.value):
                summary.changes.append({"host": names[hid], "change": "changed",
                                        "from": f"{old_d.decision}/{old_d.outcome}",
                                        "to": f"{d.decision.value}/{d.outcome.value}"})
    for hid, gone in old_h.items():
        if hid not in decisions:
            summary.changes.append({"host": names.get(hid, str(hid)), "change": "resolved",
                                    "from": f"{gone.decision}/{gone.outcome}"})
            s.delete(gone)
    for batch, stmt in ((upd, update(HostRiskRow)), (ins, insert(HostRiskRow))):
        for i in range(0, len(batch), 5000):
            s.execute(stmt, batch[i:i + 5000])


_OUTCOME_RANK = {"Track": 0, "Track*": 1, "Attend": 2, "Act": 3}


def ranked(store: Store, *, by: str = "host", today: date | None = None) -> list[dict[str, Any]]:
    """The latest decisions ranked by urgency, per host or rolled up per cluster/tenant/site."""
    if by not in ("host", "cluster", "tenant", "site"):
        raise InputError("unknown grouping", [Problem("--by", f"{by!r} is not host, cluster, "
                                                      "tenant or site")])
    today = today or datetime.now(UTC).date()
    with store.session() as s:
        rows = s.execute(
            select(HostRiskRow, HostRow.name, ClusterRow.name, SiteRow.name)
            .join(HostRow, HostRow.id == HostRiskRow.host_id)
            .join(ClusterRow, ClusterRow.id == HostRow.cluster_id)
            .join(SiteRow, SiteRow.id == ClusterRow.site_id)).all()
        tenants_of: dict[str, set[str]] = defaultdict(set)
        if by == "tenant":
            for host, tenant in s.execute(
                    select(HostRow.name, TenantRow.name).join(GuestRow, GuestRow.host_id ==
                                                              HostRow.id)
                    .join(TenantRow, TenantRow.id == GuestRow.tenant_id).distinct()):
                tenants_of[host].add(tenant)
    hosts: list[dict[str, Any]] = [{
        "host": host, "cluster": cluster, "site": site, "decision": r.decision,
        "outcome": r.outcome, "exposure": r.exposure_score, "patch_risk": r.patch_score,
        "deadline": r.deadline, "overdue": bool(r.deadline and r.deadline < today),
        "open_findings": r.open_findings, "candidate": r.candidate,
        "suggest_defer": r.suggest_defer, "mitigation": r.mitigation,
        "changed_from": (f"{r.prev_decision}/{r.prev_outcome}"
                         if r.prev_decision and (r.prev_decision, r.prev_outcome) !=
                         (r.decision, r.outcome) else None),
    } for r, host, cluster, site in rows]

    def key(x: dict[str, Any]) -> tuple[Any, ...]:
        return (-_OUTCOME_RANK[x["outcome"]], -x["exposure"], x["deadline"] or date.max,
                x.get("host") or x.get(by) or "")

    if by == "host":
        return sorted(hosts, key=key)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in hosts:
        names = tenants_of[h["host"]] if by == "tenant" else {h[by]}
        for n in names:
            groups[n].append(h)
    out = []
    for name, hs in groups.items():
        top = max(hs, key=lambda h: (_OUTCOME_RANK[h["outcome"]], h["exposure"]))
        deadlines = [h["deadline"] for h in hs if h["deadline"]]
        out.append({by: name, "hosts": len(hs), "outcome": top["outcome"],
                    "exposure": top["exposure"], "deadline": min(deadlines, default=None),
                    "overdue": sum(1 for h in hs if h["overdue"]),
                    "decisions": dict(Counter(h["decision"] for h in hs)),
                    "open_findings": sum(h["open_findings"] for h in hs)})
    return sorted(out, key=key)


def explain_risk(store: Store, host: str, cve: str | None = None) -> dict[str, Any]:
    """The decision for ``host`` and every factor behind it (one CVE's when given)."""
    with store.session() as s:
        hid = s.scalar(select(HostRow.id).where(HostRow.name == host))
        if hid is None:
            raise NotFoundError(f"no host named {host!r}")
        decision = s.scalars(select(HostRiskRow).where(HostRiskRow.host_id == hid)).first()
        q = (select(FindingRiskRow, FindingRow.cve_id, FindingRow.component)
             .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
             .where(FindingRow.host_id == hid, FindingRow.state == "open"))
        if cve:
            q = q.where(FindingRow.cve_id == cve.upper())
        findings = s.execute(q.order_by(FindingRiskRow.score.desc())).all()
    if decision is None:
        raise NotFoundError(f"{host} has no risk assessment: it has no open findings, or "
                            "`hvpatch assess` has not run since")
    if cve and not findings:
        raise NotFoundError(f"{host} has no open finding for {cve.upper()}")
    return {
        "host": host, "decision": decision.decision, "outcome": decision.outcome,
        "exposure": decision.exposure_score, "patch_risk": decision.patch_score,
        "candidate": decision.candidate, "deadline": decision.deadline,
        "reasons": decision.reasons, "mitigation": decision.mitigation,
        "suggest_defer": decision.suggest_defer, "defer_until": decision.defer_until,
        "patch_factors": [dict(zip(("name", "value", "weight", "part", "note"), f, strict=True))
                          for f in decision.patch_factors],
        "findings": [{
            "cve": c, "component": comp, "score": r.score, "outcome": r.outcome,
            "impact_class": r.impact_class, "deadline": r.deadline,
            "deadline_reason": r.deadline_reason, "deferred_by": r.deferred_by,
            "ssvc": dict(r.ssvc),
            "factors": [dict(zip(("name", "value", "weight", "part", "note"), f, strict=True))
                        for f in r.factors],
            "previous": {"score": r.prev_score, "outcome": r.prev_outcome},
        } for r, c, comp in findings],
    }


def risk_runs(store: Store, *, before: int | None = None, limit: int = 100
              ) -> list[dict[str, Any]]:
    """Risk assessment runs, newest first (ids below ``before``): when, by whom, what changed."""
    q = select(RiskRunRow)
    if before is not None:
        q = q.where(RiskRunRow.id < before)
    with store.session() as s:
        return [{"id": r.id, "at": r.at, "actor": r.actor, "summary": r.summary}
                for r in s.scalars(q.order_by(RiskRunRow.id.desc()).limit(limit))]
