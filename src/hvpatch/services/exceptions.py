"""Risk exceptions: defer a finding with a compensating control, approved by someone else.

An exception is requested (pending), approved by a different person (separation of duties),
and lapses at its expiry; it can also be expired early. Every change records who and when, and
writes an audit entry (``exception.request|approve|expire``, subject ``exception:<id>``) in the
same transaction.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import ExceptionRow, HostRow
from hvpatch.domain.risk import DEFAULT_POLICY, Policy
from hvpatch.errors import InputError, NotFoundError, Problem, SeparationOfDutiesError
from hvpatch.services.audit import record

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


def _row(r: ExceptionRow, host: str, today: date) -> dict[str, Any]:
    state = "expired" if r.state == "approved" and r.expires_on < today else r.state
    return {"id": r.id, "host": host, "cve": r.cve_id or "*", "state": state,
            "reason": r.reason, "compensating_control": r.compensating_control,
            "expires_on": r.expires_on, "requested_by": r.requested_by,
            "requested_at": r.requested_at, "approved_by": r.approved_by,
            "approved_at": r.approved_at, "closed_by": r.closed_by, "closed_at": r.closed_at}


def add_exception(store: Store, *, host: str, cve: str | None, reason: str, control: str,
                  expires_on: date, actor: str, policy: Policy = DEFAULT_POLICY,
                  now: datetime | None = None) -> dict[str, Any]:
    """Request an exception; it defers nothing until someone else approves it."""
    now = now or datetime.now(UTC)
    today = now.date()
    problems = []
    if cve is not None and not _CVE.match(cve.upper()):
        problems.append(Problem("CVE", f"{cve!r} is not a CVE id (expected CVE-YYYY-NNNN) or *"))
    if not reason.strip():
        problems.append(Problem("--reason", "say why the finding is deferred"))
    if not control.strip():
        problems.append(Problem("--control", "name the compensating control in place"))
    if expires_on <= today:
        problems.append(Problem("--expires", f"{expires_on} is not in the future"))
    elif (expires_on - today).days > policy.max_exception_days:
        problems.append(Problem("--expires", f"{expires_on} is more than the policy's "
                                f"{policy.max_exception_days} days away"))
    if not actor.strip():
        problems.append(Problem("--actor", "who is asking must be known"))
    with store.session() as s:
        host_id = s.scalar(select(HostRow.id).where(HostRow.name == host))
        if host_id is None:
            problems.append(Problem("HOST", f"no host named {host!r}"))
        if problems:
            raise InputError("the exception was not recorded", problems)
        row = ExceptionRow(host_id=host_id, cve_id=cve.upper() if cve else None, reason=reason,
                           compensating_control=control, expires_on=expires_on,
                           requested_by=actor, requested_at=now,
                           state="pending" if policy.exception_needs_approval else "approved")
        s.add(row)
        s.flush()
        record(s, actor=actor, action="exception.request", subject=f"exception:{row.id}",
               details={"host": host, "cve": row.cve_id or "*", "expires_on": str(expires_on),
                        "state": row.state}, at=now)
        s.commit()
        return _row(row, host, today)


def _get(s: Any, exception_id: int) -> tuple[ExceptionRow, str]:
    row = s.get(ExceptionRow, exception_id)
    if row is None:
        raise NotFoundError(f"no exception with id {exception_id} (see hvpatch exceptions list)")
    return row, s.get_one(HostRow, row.host_id).name


def approve_exception(store: Store, exception_id: int, *, actor: str,
                      now: datetime | None = None) -> dict[str, Any]:
    """Approve a pending exception; the approver must not be the requester."""
    now = now or datetime.now(UTC)
    with store.session() as s:
        row, host = _get(s, exception_id)
        if row.state != "pending":
            raise InputError(f"exception {exception_id} is {row.state}, not pending",
                             [Problem("ID", "only a pending exception can be approved")])
        if actor.strip().lower() == row.requested_by.strip().lower():
            raise SeparationOfDutiesError(
                "separation of duties: nobody approves their own exception",
                [Problem("--actor", f"{actor!r} requested exception {exception_id}")])
        if row.expires_on < now.date():
            raise InputError(f"exception {exception_id} already expired on {row.expires_on}")
        row.state, row.approved_by, row.approved_at = "approved", actor, now
        record(s, actor=actor, action="exception.approve", subject=f"exception:{row.id}",
               details={"host": host, "cve": row.cve_id or "*",
                        "requested_by": row.requested_by}, at=now)
        s.commit()
        return _row(row, host, now.date())


def expire_exception(store: Store, exception_id: int, *, actor: str,
                     now: datetime | None = None) -> dict[str, Any]:
    """End an exception now (pending or approved); the finding is back at the next assess."""
    now = now or datetime.now(UTC)
    with store.session() as s:
        row, host = _get(s, exception_id)
        if row.state not in ("pending", "approved"):
            raise InputError(f"exception {exception_id} is already {row.state}")
        row.state, row.closed_by, row.closed_at = "expired", actor, now
        record(s, actor=actor, action="exception.expire", subject=f"exception:{row.id}",
               details={"host": host, "cve": row.cve_id or "*"}, at=now)
        s.commit()
        return _row(row, host, now.date())


def list_exceptions(store: Store, *, state: str | None = None,
                    today: date | None = None) -> list[dict[str, Any]]:
    """Every exception with its effective state (an approved one past expiry is expired)."""
    today = today or datetime.now(UTC).date()
    with store.session() as s:
        rows = [_row(r, name, today) for r, name in s.execute(
            select(ExceptionRow, HostRow.name).join(HostRow, HostRow.id == ExceptionRow.host_id)
            .order_by(ExceptionRow.id))]
    return [r for r in rows if state is None or r["state"] == state]
