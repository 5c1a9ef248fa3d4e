"""Findings use cases: match the stored fleet against the stored advisories, keep the result.

A run is *full* (every host against every relevant record) or *incremental* (every host against
only the records that changed since the last run); an inventory import since the last run forces
a full run. Findings are reconciled, not rewritten: new matches open a finding, matches that
persist refresh it, and a finding that no longer matches is closed with the time -- so the store
keeps history (first seen, closed at) for reports and burn-down charts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from hvpatch.adapters.store.codec import kev_from_row, vuln_from_dict
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    AssessmentRow,
    EpssRow,
    FindingRow,
    HostRow,
    InventoryImportRow,
    KevRow,
    PackageFixRow,
    VulnerabilityRow,
    VulnProductRow,
)
from hvpatch.domain.advisories import FixStatus, KevEntry, PackageFix
from hvpatch.domain.fleet import Fleet
from hvpatch.domain.matching import AdvisoryIndex, Verdict, assess_software, component_alias
from hvpatch.domain.matching.platform import targets
from hvpatch.errors import NotFoundError
from hvpatch.services.inventory import get_host, load_fleet


@dataclass
class RefreshSummary:
    """What one matching run did."""

    scope: str
    cves_considered: int = 0
    hosts: int = 0
    opened: int = 0
    still_open: int = 0
    closed: int = 0
    reopened: int = 0
    open_total: int = 0
    by_confidence: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(vars(self))


def _kev(s: Session) -> list[KevEntry]:
    return [kev_from_row(r) for r in s.scalars(select(KevRow))]


def _fixes(s: Session) -> list[PackageFix]:
    return [PackageFix(r.source, r.advisory_id, r.distro, r.package, r.scheme, tuple(r.cves),
                       FixStatus(r.status), r.fixed, r.introduced, r.published, r.title, r.url)
            for r in s.scalars(select(PackageFixRow))]


def relevant_vuln_ids(s: Session, fleet: Fleet) -> set[int]:
    """Ids of the stored records whose products the fleet runs (the pre-filter of matching)."""
    pairs: set[tuple[str, str]] = set()
    components: set[str] = set()
    for sw in {h.software for h in fleet.hosts()}:
        for t in targets(sw):
            if isinstance(t.cpe.vendor, str) and isinstance(t.cpe.product, str):
                pairs.add((t.cpe.vendor, t.cpe.product))
            components.add(t.component)
    known = s.execute(select(VulnProductRow.vendor, VulnProductRow.product).distinct())
    wanted = [p for p in known if p in pairs or component_alias(*p) in components]
    ids: set[int] = set()
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        ids.update(s.scalars(select(VulnProductRow.vuln_id).where(
            tuple_(VulnProductRow.vendor, VulnProductRow.product).in_(chunk))))
    return ids


def load_index(store: Store, fleet: Fleet, only: set[str] | None = None) -> AdvisoryIndex:
    """The advisory index for ``fleet``: relevant records, every fix record, the KEV catalog."""
    with store.session() as s:
        ids = relevant_vuln_ids(s, fleet)
        kev = _kev(s)
        kev_cves = {k.cve_id for k in kev}
        q = select(VulnerabilityRow.data).where(VulnerabilityRow.id.in_(ids))
        extra = select(VulnerabilityRow.data).where(VulnerabilityRow.cve_id.in_(kev_cves),
                                                    VulnerabilityRow.status == "unanalysed")
        datas = list(s.scalars(q)) if ids else []
        datas += list(s.scalars(extra))
        vulns = [vuln_from_dict(d) for d in datas if only is None or d["id"] in only]
        return AdvisoryIndex.build(vulns, _fixes(s), kev)


def _changed_since(s: Session, since: datetime) -> set[str]:
    cves = set(s.scalars(select(VulnerabilityRow.cve_id).where(
        VulnerabilityRow.changed_at > since)))
    for row in s.scalars(select(PackageFixRow.cves).where(PackageFixRow.changed_at > since)):
        cves.update(row)
    cves.update(s.scalars(select(KevRow.cve_id).where(KevRow.changed_at > since)))
    return cves


def refresh_findings(store: Store, *, full: bool = False,
                     now: datetime | None = None) -> RefreshSummary:
    """Match and reconcile the stored findings; see the module docstring."""
    now = now or datetime.now(UTC)
    with store.session() as s:
        last = s.scalars(select(AssessmentRow).order_by(AssessmentRow.id.desc()).limit(1)).first()
        last_inventory = s.scalar(select(func.max(InventoryImportRow.id)))
        only: set[str] | None = None
        if not full and last is not None and last.inventory_import_id == last_inventory:
            only = _changed_since(s, last.at)
    fleet = load_fleet(store)
    summary = RefreshSummary("full" if only is None else "incremental")
    index = load_index(store, fleet, only)
    summary.cves_considered = len(index.vulns) if only is None else len(only)
    verdicts: dict[Any, list[Verdict]] = {}
    for sw in {h.software for h in fleet.hosts()}:
        verdicts[sw] = [v for v in assess_software(sw, index, only) if v.affected]
    with store.session() as s:
        host_ids = dict(s.execute(select(HostRow.name, HostRow.id)).all())
        wanted: dict[tuple[int, str, str], Verdict] = {}
        for host in fleet.hosts():
            for v in verdicts[host.software]:
                wanted[(host_ids[host.name], v.cve_id, v.component)] = v
        summary.hosts = len(host_ids)
        _reconcile(s, wanted, only, now, summary)
        summary.open_total = s.scalar(select(func.count()).select_from(FindingRow)
                                      .where(FindingRow.state == "open")) or 0
        summary.by_confidence = dict(s.execute(
            select(FindingRow.confidence, func.count()).where(FindingRow.state == "open")
            .group_by(FindingRow.confidence)).all())
        s.add(AssessmentRow(at=now, scope=summary.scope, inventory_import_id=last_inventory,
                            summary=summary.as_dict()))
        s.commit()
    store.analyze(FindingRow)
    return summary


def _row(v: Verdict) -> dict[str, Any]:
    return {"installed": v.installed, "fixed_in": v.fixed_in, "confidence": v.confidence.value,
            "source": v.source,
            "evidence": [[e.source, e.rule, e.comparison] for e in v.evidence]}


def _reconcile(s: Session, wanted: dict[tuple[int, str, str], Verdict], only: set[str] | None,
               now: datetime, summary: RefreshSummary) -> None:
    q = select(FindingRow.id, FindingRow.host_id, FindingRow.cve_id, FindingRow.component,
               FindingRow.state, FindingRow.evidence, FindingRow.confidence)
    existing = {}
    if only is None:
        existing = {(r[1], r[2], r[3]): r for r in s.execute(q)}
    else:
        cves = sorted(only)
        for i in range(0, len(cves), 500):
            for r in s.execute(q.where(FindingRow.cve_id.in_(cves[i:i + 500]))):
                existing[(r[1], r[2], r[3])] = r
    inserts, updates, closes = [], [], []
    for key, v in wanted.items():
        row = existing.get(key)
        data = _row(v)
        if row is None:
            inserts.append({"host_id": key[0], "cve_id": key[1], "component": key[2],
                            "state": "open", "first_seen": now, "last_seen": now, **data})
            summary.opened += 1
        else:
            if row[4] != "open":
                summary.reopened += 1
            else:
                summary.still_open += 1
            updates.append({"id": row[0], "state": "open", "last_seen": now,
                            "closed_at": None, **data})
    for key, row in existing.items():
        if key not in wanted and row[4] == "open":
            closes.append({"id": row[0], "state": "closed", "closed_at": now})
    summary.closed = len(closes)
    for batch in (updates, closes):
        for i in range(0, len(batch), 5000):
            s.execute(update(FindingRow), batch[i:i + 5000])
    if inserts:
        for i in range(0, len(inserts), 5000):
            s.execute(insert(FindingRow), inserts[i:i + 5000])


def _findings_query(*, host: str | None, cve: str | None, kev_only: bool, state: str,
                    confidence: Iterable[str]) -> Any:
    q = (select(FindingRow, HostRow.name, KevRow.due_date, KevRow.known_ransomware,
                EpssRow.epss)
         .join(HostRow, HostRow.id == FindingRow.host_id)
         .outerjoin(KevRow, KevRow.cve_id == FindingRow.cve_id)
         .outerjoin(EpssRow, EpssRow.cve_id == FindingRow.cve_id))
    if state != "all":
        q = q.where(FindingRow.state == state)
    if host:
        q = q.where(HostRow.name == host)
    if cve:
        q = q.where(FindingRow.cve_id == cve.upper())
    if kev_only:
        q = q.where(KevRow.cve_id.is_not(None))
    conf = list(confidence)
    if conf:
        q = q.where(FindingRow.confidence.in_(conf))
    return q


def _finding_dict(f: FindingRow, name: str, due: Any, ransomware: Any,
                  epss: Any) -> dict[str, Any]:
    return {
        "host": name, "cve": f.cve_id, "component": f.component, "installed": f.installed,
        "fixed_in": f.fixed_in, "confidence": f.confidence, "source": f.source,
        "state": f.state, "kev": due is not None or ransomware is not None,
        "kev_due": due, "ransomware": bool(ransomware), "epss": epss,
        "first_seen": f.first_seen, "closed_at": f.closed_at,
    }


def list_findings(store: Store, *, host: str | None = None, cve: str | None = None,
                  kev_only: bool = False, state: str = "open", confidence: Iterable[str] = (),
                  limit: int | None = None) -> list[dict[str, Any]]:
    """Findings with their host, KEV and EPSS data, newest CVE first."""
    q = _findings_query(host=host, cve=cve, kev_only=kev_only, state=state,
                        confidence=confidence)
    q = q.order_by(FindingRow.cve_id.desc(), HostRow.name, FindingRow.component)
    if limit:
        q = q.limit(limit)
    with store.session() as s:
        return [_finding_dict(*row) for row in s.execute(q)]


def page_findings(store: Store, *, after: int | None = None, limit: int = 100,
                  host: str | None = None, cve: str | None = None, kev_only: bool = False,
                  state: str = "open", confidence: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Up to ``limit`` findings (as :func:`list_findings`, with their ``id``) in id order after
    the id ``after``: keyset pagination that visits every finding once."""
    q = _findings_query(host=host, cve=cve, kev_only=kev_only, state=state,
                        confidence=confidence)
    if after is not None:
        q = q.where(FindingRow.id > after)
    with store.session() as s:
        return [{"id": row[0].id, **_finding_dict(*row)}
                for row in s.execute(q.order_by(FindingRow.id).limit(limit))]


def explain(store: Store, host_name: str, cve: str) -> dict[str, Any]:
    """The evidence chain for one host and CVE, recomputed now, with the stored record."""
    host = get_host(store, host_name)
    cve = cve.upper()
    with store.session() as s:
        row = s.scalars(select(VulnerabilityRow).where(VulnerabilityRow.cve_id == cve)).first()
        kev = s.scalars(select(KevRow).where(KevRow.cve_id == cve)).first()
        epss = s.scalars(select(EpssRow).where(EpssRow.cve_id == cve)).first()
        stored = list(s.scalars(select(FindingRow).join(HostRow, HostRow.id == FindingRow.host_id)
                                .where(HostRow.name == host_name, FindingRow.cve_id == cve)))
        fixes = [f for f in _fixes(s) if cve in f.cves]
    if row is None and not fixes and kev is None:
        raise NotFoundError(f"{cve} is in no imported feed (try hvpatch feeds status)")
    vulns = [vuln_from_dict(row.data)] if row else []
    index = AdvisoryIndex.build(vulns, fixes, [kev_from_row(kev)] if kev else [])
    verdicts = assess_software(host.software, index, {cve})
    vuln = vulns[0] if vulns else None
    best = vuln.best_cvss if vuln else None
    return {
        "host": host.name, "software": host.software.label, "cve": cve,
        "description": vuln.description if vuln else "",
        "nvd_status": vuln.status.value if vuln else "not in NVD data",
        "cvss": {"version": best.version, "score": best.base_score, "vector": best.vector}
        if best else None,
        "kev": {"date_added": kev.date_added, "due_date": kev.due_date,
                "ransomware": kev.known_ransomware, "action": kev.required_action}
        if kev else None,
        "epss": {"score": epss.epss, "percentile": epss.percentile, "date": epss.score_date}
        if epss else None,
        "verdicts": [{"component": v.component, "installed": v.installed,
                      "affected": v.affected, "confidence": v.confidence.value,
                      "source": v.source, "fixed_in": v.fixed_in,
                      "evidence": [{"source": e.source, "rule": e.rule, "comparison": e.comparison}
                                   for e in v.evidence]} for v in verdicts],
        "stored": [{"component": f.component, "state": f.state, "first_seen": f.first_seen,
                    "closed_at": f.closed_at} for f in stored],
    }


def overview(store: Store, top: int = 10) -> dict[str, Any]:
    """Open findings at a glance: totals, per family and confidence, and the top CVEs."""
    with store.session() as s:
        base = (select(FindingRow.cve_id, FindingRow.confidence, HostRow.family, HostRow.name,
                       KevRow.due_date, EpssRow.epss)
                .join(HostRow, HostRow.id == FindingRow.host_id)
                .outerjoin(KevRow, KevRow.cve_id == FindingRow.cve_id)
                .outerjoin(EpssRow, EpssRow.cve_id == FindingRow.cve_id)
                .where(FindingRow.state == "open"))
        rows = s.execute(base).all()
    by_family: dict[str, dict[str, int]] = {}
    cves: dict[str, dict[str, Any]] = {}
    hosts: set[str] = set()
    kev_hosts: set[str] = set()
    for cve, conf, family, host, due, epss in rows:
        fam = by_family.setdefault(family, {"high": 0, "medium": 0, "low": 0, "hosts": 0})
        fam[conf] += 1
        c = cves.setdefault(cve, {"cve": cve, "hosts": set(), "kev_due": due, "epss": epss,
                                  "families": set()})
        c["hosts"].add(host)
        c["families"].add(family)
        hosts.add(host)
        if due is not None:
            kev_hosts.add(host)
    for family in by_family:
        by_family[family]["hosts"] = len({h for cve, _c, f, h, _d, _e in rows if f == family})
    ranked = sorted(cves.values(), key=lambda c: (c["kev_due"] is None, -(c["epss"] or 0),
                                                  -len(c["hosts"]), c["cve"]))
    return {
        "open": len(rows), "hosts_affected": len(hosts), "cves": len(cves),
        "kev_cves": sum(1 for c in cves.values() if c["kev_due"] is not None),
        "hosts_with_kev": len(kev_hosts), "by_family": by_family,
        "top": [{"cve": c["cve"], "hosts": len(c["hosts"]), "families": sorted(c["families"]),
                 "kev_due": c["kev_due"], "epss": c["epss"]} for c in ranked[:top]],
    }
