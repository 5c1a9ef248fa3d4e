"""Operational incidents: while one is open, ring gates that require none stay closed.

An operator opens an incident when something is wrong in production (whatever its cause) and
closes it when it is over; a rollout's gate reads :func:`open_count`. Opening and closing each
write an audit entry (``incident.open`` / ``incident.close``, subject ``incident:<id>``) in the
same transaction as the change, so neither can happen without the other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import IncidentRow
from hvpatch.errors import InputError, NotFoundError, Problem
from hvpatch.services.audit import record

__all__ = ["close_incident", "list_incidents", "open_count", "open_incident"]

#: the longest name an actor may have (the store's column)
_ACTOR_MAX = 128


def _dict(r: IncidentRow) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "state": "open" if r.closed is None else "closed",
            "opened": r.opened, "opened_by": r.opened_by, "closed": r.closed,
            "closed_by": r.closed_by or None}


def _check_actor(actor: str, problems: list[Problem]) -> None:
    if not actor.strip():
        problems.append(Problem("--as", "who is acting must be known"))
    elif len(actor) > _ACTOR_MAX:
        problems.append(Problem("--as", f"at most {_ACTOR_MAX} characters"))


def open_incident(store: Store, title: str, actor: str, *, now: datetime | None = None) -> int:
    """Open an incident; returns its id."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    problems: list[Problem] = []
    if not title.strip():
        problems.append(Problem("TITLE", "say what the incident is"))
    _check_actor(actor, problems)
    if problems:
        raise InputError("the incident was not opened", problems)
    with store.session() as s:
        row = IncidentRow(title=title.strip(), opened_by=actor.strip(), opened=now, closed=None,
                          closed_by="")
        s.add(row)
        s.flush()
        record(s, actor=row.opened_by, action="incident.open", subject=f"incident:{row.id}",
               details={"title": row.title}, at=now)
        s.commit()
        return row.id


def close_incident(store: Store, incident_id: int, actor: str, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """Close an open incident; returns it. NotFoundError for an unknown id, InputError when it
    is already closed."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    problems: list[Problem] = []
    _check_actor(actor, problems)
    if problems:
        raise InputError(f"incident {incident_id} was not closed", problems)
    with store.session() as s:
        # the row lock (PostgreSQL) keeps two people from closing it twice
        row = s.get(IncidentRow, incident_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no incident with id {incident_id} (see hvpatch incident list)")
        if row.closed is not None:
            raise InputError(f"incident {incident_id} is already closed",
                             [Problem("ID", f"closed by {row.closed_by} at "
                                      f"{row.closed:%Y-%m-%d %H:%M} UTC")])
        row.closed, row.closed_by = now, actor.strip()
        record(s, actor=row.closed_by, action="incident.close", subject=f"incident:{row.id}",
               details={"title": row.title, "opened_by": row.opened_by,
                        "opened": row.opened.isoformat()}, at=now)
        s.commit()
        return _dict(row)


def list_incidents(store: Store, open_only: bool = False) -> list[dict[str, Any]]:
    """Incidents, newest first (only the open ones with ``open_only``)."""
    q = select(IncidentRow)
    if open_only:
        q = q.where(IncidentRow.closed.is_(None))
    with store.session() as s:
        return [_dict(r) for r in s.scalars(q.order_by(IncidentRow.id.desc()))]


def open_count(store: Store) -> int:
    """How many incidents are open now."""
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(IncidentRow)
                            .where(IncidentRow.closed.is_(None))) or 0)
