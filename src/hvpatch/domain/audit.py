"""A tamper-evident audit trail: append-only entries chained by SHA-256 hashes.

Each entry's hash covers its own content *and* the previous entry's hash, so editing, deleting,
inserting or reordering any entry breaks every hash after it. :func:`verify` names the first
entry that does not fit and why. Canonical JSON (sorted keys, no whitespace, UTC timestamps)
makes the hash independent of how an entry was stored and read back.

This is the domain part; the store keeps the entries and the CLI/API append and verify them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def _canonical(details: Mapping[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def entry_hash(seq: int, at: datetime, actor: str, action: str, subject: str,
               details: Mapping[str, Any], prev_hash: str) -> str:
    """The SHA-256 of an entry's content chained to ``prev_hash`` (hex)."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be time-zone aware")
    body = _canonical({
        "seq": seq, "at": at.astimezone(UTC).isoformat(), "actor": actor, "action": action,
        "subject": subject, "details": details, "prev": prev_hash,
    })
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event: who did what to which subject, when, with its details and chain hashes."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """What the hash must be for this content and predecessor."""
        return entry_hash(self.seq, self.at, self.actor, self.action, self.subject,
                          self.details, self.prev_hash)


def append(last: AuditEntry | None, *, at: datetime, actor: str, action: str, subject: str,
           details: Mapping[str, Any] | None = None) -> AuditEntry:
    """The entry that follows ``last`` (the first entry when ``last`` is None)."""
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.hash
    data = dict(details or {})
    return AuditEntry(seq, at, actor, action, subject, data,
                      prev, entry_hash(seq, at, actor, action, subject, data, prev))


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether a trail is intact; if not, the first entry that breaks it and why."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify(entries: Iterable[AuditEntry]) -> Verification:
    """Check the whole chain in order: sequence, links and hashes."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for e in entries:
        count += 1
        if e.seq != expected_seq:
            what = "missing or reordered" if e.seq > expected_seq else "duplicated or reordered"
            return Verification(False, count, e.seq, f"entry {e.seq} found where entry "
                                f"{expected_seq} belongs: entries {what}")
        if e.prev_hash != prev_hash:
            return Verification(False, count, e.seq, f"entry {e.seq} does not link to the "
                                "entry before it: an entry was deleted, inserted or edited")
        if e.expected_hash() != e.hash:
            return Verification(False, count, e.seq, f"entry {e.seq} was changed after it was "
                                "written: its content does not match its hash")
        prev_hash, expected_seq = e.hash, expected_seq + 1
    return Verification(True, count)
