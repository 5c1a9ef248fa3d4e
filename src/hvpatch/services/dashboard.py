"""What the dashboard shows that no other view computes: exposure now, a burn-down of open
findings over time, exposure by tenant and the age of what is open.

Everything else the dashboard shows (hosts, findings, plans, rollouts, gates) comes from the
services the API and the CLI use. Counts here are read in SQL; the burn-down reads two columns
of every finding and counts with bisection, so a 10,000-host store answers in well under a second.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    FindingRow,
    GuestRow,
    HostRiskRow,
    HostRow,
    KevRow,
    TenantRow,
    VulnerabilityRow,
)
from hvpatch.domain.risk.policy import OUTCOMES
from hvpatch.services.findings import overview
from hvpatch.services.metrics import snapshot
from hvpatch.services.rollouts import ACTIVE, list_rollouts

__all__ = ["AGE_BUCKETS", "NO_DECISION", "Burndown", "burndown", "exposure_by_tenant",
           "exposure_now", "findings_age", "hosts_by_outcome"]

#: (label, upper bound in days, exclusive) of the age buckets; the last has no bound
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 30 d", 30), ("30-90 d", 90), ("90-180 d", 180), ("180 d-1 y", 365), ("1-2 y", 730),
    ("2-5 y", 1826), ("> 5 y", None))
#: hosts without a risk decision (nothing open, or not assessed yet)
NO_DECISION = "none"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def exposure_now(store: Store, today: date | None = None) -> dict[str, Any]:
    """The overview's headline: hosts by outcome, overdue hosts and findings, KEV exposure,
    the most urgent CVEs and the rollouts in flight."""
    snap = snapshot(store, today)
    by_outcome = hosts_by_outcome(store)
    seen = overview(store, top=10)
    return {
        "hosts": sum(by_outcome.values()), "hosts_by_outcome": by_outcome,
        "open_findings": seen["open"], "hosts_affected": seen["hosts_affected"],
        "cves": seen["cves"], "kev_cves": seen["kev_cves"],
        "hosts_with_kev": seen["hosts_with_kev"], "top": seen["top"],
        "overdue_findings": snap.overdue_findings, "overdue_hosts": snap.overdue_hosts,
        "open_by_outcome": {o: snap.open_by_outcome.get(o, 0) for o in OUTCOMES},
        "in_flight": [r for r in list_rollouts(store) if r["state"] in ACTIVE],
    }


def hosts_by_outcome(store: Store) -> dict[str, int]:
    """Hosts by the outcome of their decision, most urgent first; ``none`` for the rest."""
    with store.session() as s:
        counts = {o: int(n) for o, n in s.execute(
            select(HostRiskRow.outcome, func.count()).group_by(HostRiskRow.outcome))}
        hosts = int(s.scalar(select(func.count()).select_from(HostRow)) or 0)
    out = {o: counts.get(o, 0) for o in OUTCOMES}
    out[NO_DECISION] = max(0, hosts - sum(out.values()))
    return out


@dataclass(frozen=True, slots=True)
class Burndown:
    """Open findings at evenly spaced instants, and the opened/closed totals of the span."""

    at: list[datetime]
    open: list[int]
    opened: int
    closed: int


def burndown(store: Store, *, now: datetime | None = None, days: int = 30,
             points: int = 48) -> Burndown:
    """Open findings over the last ``days`` up to now or the last event, whichever is later
    (or since the first finding, when that is more recent, so a young store still shows its
    curve), sampled at ``points`` instants.

    A finding counts as open at instant t when it was first seen at or before t and was not
    closed by t; a finding closed and opened again counts from its last opening.
    """
    now = _utc(now or datetime.now(UTC))
    with store.session() as s:
        rows = s.execute(select(FindingRow.first_seen, FindingRow.closed_at)).all()
    seen = sorted(_utc(a) for a, _ in rows)
    gone = sorted(_utc(c) for _, c in rows if c is not None)
    # a rollout on the simulator's accelerated clock records its closures at simulated
    # instants, which can lie ahead of the wall clock: the curve runs to the last event
    now = max([now, *seen[-1:], *gone[-1:]])
    start = now - timedelta(days=days)
    if seen and seen[0] > start:
        start = seen[0] - min(timedelta(minutes=5), (now - seen[0]) / 10)
    span = max(now - start, timedelta(minutes=1))
    steps = max(2, points)
    at = [start + span * i / (steps - 1) for i in range(steps)]
    counts = [bisect_right(seen, t) - bisect_right(gone, t) for t in at]
    return Burndown(at=at, open=counts,
                    opened=len(seen) - bisect_right(seen, start),
                    closed=len(gone) - bisect_right(gone, start))


def exposure_by_tenant(store: Store, *, top: int = 15) -> list[dict[str, Any]]:
    """Per tenant, its guests by the outcome of the host they run on (the tenant's blast
    radius), most exposed tenants first; guests on hosts without a decision are left out."""
    with store.session() as s:
        rows = s.execute(select(TenantRow.name, HostRiskRow.outcome, func.count())
                         .join(GuestRow, GuestRow.tenant_id == TenantRow.id)
                         .join(HostRiskRow, HostRiskRow.host_id == GuestRow.host_id)
                         .group_by(TenantRow.name, HostRiskRow.outcome)).all()
    tenants: dict[str, dict[str, int]] = {}
    for name, outcome, n in rows:
        tenants.setdefault(name, dict.fromkeys(OUTCOMES, 0))[outcome] = int(n)
    # most guests on Act hosts first, then Attend, ...: OUTCOMES runs from the most urgent
    ordered = sorted(tenants.items(), key=lambda kv: (tuple(-kv[1][o] for o in OUTCOMES),
                                                      kv[0]))
    return [{"tenant": name, "guests": counts, "total": sum(counts.values())}
            for name, counts in ordered[:top]]


def findings_age(store: Store, today: date | None = None) -> dict[str, Any]:
    """Open findings by how long their advisory has been public (days since NVD published
    it), split into KEV and the rest; findings of advisories without a date are counted apart."""
    today = today or datetime.now(UTC).date()
    with store.session() as s:
        rows = s.execute(select(VulnerabilityRow.published, KevRow.cve_id.is_not(None),
                                func.count())
                         .select_from(FindingRow)
                         .outerjoin(VulnerabilityRow,
                                    VulnerabilityRow.cve_id == FindingRow.cve_id)
                         .outerjoin(KevRow, KevRow.cve_id == FindingRow.cve_id)
                         .where(FindingRow.state == "open")
                         .group_by(VulnerabilityRow.published,
                                   KevRow.cve_id.is_not(None))).all()
    labels = [label for label, _ in AGE_BUCKETS]
    kev = [0] * len(labels)
    other = [0] * len(labels)
    undated = 0
    for published, is_kev, n in rows:
        if published is None:
            undated += int(n)
            continue
        age = (today - _utc(published).date()).days
        i = next(i for i, (_, bound) in enumerate(AGE_BUCKETS) if bound is None or age < bound)
        (kev if is_kev else other)[i] += int(n)
    return {"buckets": labels, "kev": kev, "other": other, "undated": undated}
