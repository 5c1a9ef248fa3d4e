"""The audit log in the store: appends chain, survive a round trip, and tampering is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from sqlalchemy import delete, update

from hvpatch.adapters.store.models import AuditRow
from hvpatch.services.audit import list_entries, record, verify_store

T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def _append(store, n: int) -> None:
    for i in range(n):
        with store.session() as s:
            record(s, actor="alice", action="step.finished", subject=f"host-{i}",
                   details={"i": i, "evidence": {"version": "8.0.2"}},
                   at=T0 + timedelta(seconds=i))
            s.commit()


def test_entries_chain_and_verify_after_a_round_trip(store):
    _append(store, 5)
    result = verify_store(store)
    assert result.ok and result.entries == 5
    rows = list_entries(store)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["at"] == T0.isoformat()
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))


def test_a_rolled_back_transaction_leaves_no_entry(store):
    _append(store, 2)
    with store.session() as s:
        record(s, actor="bob", action="rollout.abort", subject="r1")
        s.rollback()
    _append(store, 1)
    assert verify_store(store).ok
    assert [r["seq"] for r in list_entries(store)] == [1, 2, 3]


def test_an_edited_entry_is_found(store):
    _append(store, 4)
    with store.session() as s:
        s.execute(update(AuditRow).where(AuditRow.seq == 2).values(actor="mallory"))
        s.commit()
    result = verify_store(store)
    assert not result.ok and result.first_bad_seq == 2
    assert "changed after it was written" in result.reason


def test_a_deleted_entry_in_the_middle_or_at_the_end_is_found(store):
    _append(store, 4)
    with store.session() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == 4))
        s.commit()
    result = verify_store(store)
    assert not result.ok and "deleted from the end" in result.reason
    with store.session() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == 2))
        s.commit()
    result = verify_store(store)
    assert not result.ok and result.first_bad_seq == 3


def test_filters(store):
    _append(store, 3)
    assert [r["subject"] for r in list_entries(store, subject="host-1")] == ["host-1"]
    assert list_entries(store, actor="nobody") == []
    assert len(list_entries(store, limit=2)) == 2
