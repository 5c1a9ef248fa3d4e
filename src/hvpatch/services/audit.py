"""The audit log in the store: append in the caller's transaction, list, verify.

:func:`record` appends an entry to the hash chain (:mod:`hvpatch.domain.audit`) inside the
caller's session, so the event and the change it describes commit or roll back together. The
chain's head is a single row that :func:`record` *updates first*: on PostgreSQL the row lock,
on SQLite the write lock, serialises concurrent writers (engines, operators' commands, the API),
so two appenders can never both link to the same predecessor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditHeadRow, AuditRow
from hvpatch.domain.audit import GENESIS, AuditEntry, Verification, append, verify

__all__ = ["entry_dict", "list_entries", "page_entries", "record", "verify_store"]


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(row.seq, row.at, row.actor, row.action, row.subject, row.details,
                      row.prev_hash, row.hash)


def record(session: Session, *, actor: str, action: str, subject: str,
           details: Mapping[str, Any] | None = None, at: datetime | None = None) -> AuditEntry:
    """Append one entry in ``session``'s transaction (the caller commits)."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    # write first: taking the head's lock before reading keeps writers in line
    head = session.execute(
        update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq)
        .returning(AuditHeadRow.seq, AuditHeadRow.hash)).first()
    if head is None:
        session.execute(insert(AuditHeadRow).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head
    # ``append`` needs only the predecessor's number and hash, which the head keeps
    last = AuditEntry(seq, at, "", "", "", {}, "", prev) if seq else None
    entry = append(last, at=at, actor=actor, action=action, subject=subject,
                   details=details or {})
    session.execute(insert(AuditRow).values(
        seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
        subject=entry.subject, details=dict(entry.details), prev_hash=entry.prev_hash,
        hash=entry.hash))
    session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1)
                    .values(seq=entry.seq, hash=entry.hash))
    return entry


def _iter(store: Store, batch: int = 5000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        with store.session() as s:
            rows = s.scalars(select(AuditRow).where(AuditRow.seq > after)
                             .order_by(AuditRow.seq).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1].seq


def verify_store(store: Store) -> Verification:
    """Verify the whole stored chain, and that its head row points at its last entry."""
    result = verify(_iter(store))
    if not result.ok:
        return result
    with store.session() as s:
        head = s.get(AuditHeadRow, 1)
        last = s.scalar(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1))
    if head is not None and (last is None or head.seq != last.seq or head.hash != last.hash):
        seq = last.seq if last is not None else 0
        return Verification(False, result.entries, seq + 1 if head.seq > seq else seq,
                            f"the chain ends at entry {seq} but its head records entry "
                            f"{head.seq}: entries were deleted from the end")
    return result


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    """An entry as plain data (JSON output, reports)."""
    return {"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
            "subject": e.subject, "details": dict(e.details), "prev_hash": e.prev_hash,
            "hash": e.hash}


def _filtered(subject: str | None, action: str | None, actor: str | None) -> Any:
    q = select(AuditRow)
    if subject:
        q = q.where(AuditRow.subject == subject)
    if action:
        q = q.where(AuditRow.action == action)
    if actor:
        q = q.where(AuditRow.actor == actor)
    return q


def page_entries(store: Store, *, after: int = 0, limit: int = 100, subject: str | None = None,
                 action: str | None = None, actor: str | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` entries after entry ``after``, oldest first (keyset pagination)."""
    q = _filtered(subject, action, actor).where(AuditRow.seq > after)
    with store.session() as s:
        return [entry_dict(_entry(r))
                for r in s.scalars(q.order_by(AuditRow.seq).limit(limit))]


def list_entries(store: Store, *, subject: str | None = None, action: str | None = None,
                 actor: str | None = None, limit: int = 100,
                 before: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` entries (oldest first), optionally filtered; with ``before``, the
    newest of those older than entry ``before`` (paging back through the log)."""
    q = _filtered(subject, action, actor)
    if before is not None:
        q = q.where(AuditRow.seq < before)
    with store.session() as s:
        rows = s.scalars(q.order_by(AuditRow.seq.desc()).limit(limit)).all()
    return [entry_dict(_entry(r)) for r in reversed(rows)]
