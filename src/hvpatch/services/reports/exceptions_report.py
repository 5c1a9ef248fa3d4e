"""The exceptions report: every risk exception, its state, who asked, who approved, its expiry.

An auditor checks that each deferral had a reason and a compensating control, was approved by
someone other than the requester (separation of duties), and lapses on a date; and which open
findings each one defers right now (from the latest assessment).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRiskRow, FindingRow
from hvpatch.services.audit import list_entries
from hvpatch.services.exceptions import list_exceptions
from hvpatch.services.reports._common import as_day, header, plain

__all__ = ["EXPIRING_DAYS", "exceptions_report"]

#: an active exception that lapses within this many days is flagged as expiring soon
EXPIRING_DAYS = 14
#: approval entries read from the audit log (one per approved exception)
_AUDIT_READ = 100_000


def exceptions_report(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """Every exception with its effective state as of ``now``, and the findings it defers."""
    now = now or datetime.now(UTC)
    today = as_day(now) or now.date()
    with store.session() as s:
        defers = dict(s.execute(
            select(FindingRiskRow.deferred_by, func.count())
            .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
            .where(FindingRow.state == "open", FindingRiskRow.deferred_by.is_not(None))
            .group_by(FindingRiskRow.deferred_by)).all())
    approvals = {e["subject"]: e["seq"] for e in list_entries(
        store, action="exception.approve", limit=_AUDIT_READ)}
    rows = []
    for e in list_exceptions(store, today=today):
        expires: date = e["expires_on"]
        left = (expires - today).days
        rows.append({**plain(e), "days_to_expiry": left,
                     "expiring_soon": e["state"] == "approved" and 0 <= left <= EXPIRING_DAYS,
                     "separate_approver": (None if not e["approved_by"] else
                                           e["approved_by"].strip().casefold()
                                           != e["requested_by"].strip().casefold()),
                     "approval_audit_seq": approvals.get(f"exception:{e['id']}"),
                     "defers_open_findings": defers.get(e["id"], 0)})
    states = Counter(r["state"] for r in rows)
    summary = {
        "exceptions": len(rows), "by_state": dict(states),
        "active": states.get("approved", 0), "pending_approval": states.get("pending", 0),
        "expiring_soon": sum(1 for r in rows if r["expiring_soon"]),
        "expiring_within_days": EXPIRING_DAYS,
        "separation_of_duties_kept": all(r["separate_approver"] is not False for r in rows),
        "open_findings_deferred": sum(r["defers_open_findings"] for r in rows
                                      if r["state"] == "approved"),
    }
    return {**header(store, "exceptions", "Risk exceptions report", now), "summary": summary,
            "exceptions": rows}
