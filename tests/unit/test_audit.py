"""The hash-chained audit trail: intact chains verify, any edit, deletion or reorder is named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvpatch.domain.audit import GENESIS, AuditEntry, append, verify

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i in range(n):
        out.append(append(out[-1] if out else None, at=T0 + timedelta(minutes=i),
                          actor=f"user{i % 3}", action="exception.approve",
                          subject=f"exception/{i}", details={"cve": f"CVE-2024-{i:04d}",
                                                             "n": i}))
    return out


def test_intact_chain_verifies() -> None:
    entries = chain(5)
    assert entries[0].prev_hash == GENESIS and entries[1].prev_hash == entries[0].hash
    result = verify(entries)
    assert result.ok and result.entries == 5
    assert verify([]).ok


def test_an_edited_entry_is_named() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], actor="mallory")
    result = verify(entries)
    assert not result.ok and result.first_bad_seq == 3 and "changed" in result.reason


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    forged = dataclasses.replace(entries[2], details={"cve": "CVE-2024-9999", "n": 2})
    entries[2] = dataclasses.replace(forged, hash=forged.expected_hash())
    result = verify(entries)
    assert not result.ok and result.first_bad_seq == 4 and "link" in result.reason


def test_deletion_and_reordering_are_detected() -> None:
    entries = chain(5)
    gone = verify(entries[:2] + entries[3:])
    assert not gone.ok and gone.first_bad_seq == 4 and "missing" in gone.reason
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    assert not verify(swapped).ok
    assert not verify(entries[1:]).ok  # the first entry removed


def test_hash_does_not_depend_on_the_time_zone_or_key_order() -> None:
    a = append(None, at=T0, actor="a", action="x", subject="s", details={"k": 1, "j": 2})
    local = T0.astimezone(timezone(timedelta(hours=5)))
    b = append(None, at=local, actor="a", action="x", subject="s", details={"j": 2, "k": 1})
    assert a.hash == b.hash
    with pytest.raises(ValueError, match="aware"):
        append(None, at=datetime(2026, 1, 1), actor="a", action="x", subject="s")


@given(st.integers(min_value=1, max_value=20), st.data())
def test_any_single_change_is_detected(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["actor", "action", "subject", "at", "details"]))
    value = {"actor": "x", "action": "y", "subject": "z", "at": T0 - timedelta(days=1),
             "details": {"tampered": True}}[field]
    entries[i] = dataclasses.replace(entries[i], **{field: value})
    result = verify(entries)
    assert not result.ok and result.first_bad_seq == i + 1
