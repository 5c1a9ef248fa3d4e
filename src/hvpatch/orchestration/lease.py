"""Leases: exactly one engine drives a rollout at a time, on SQLite and PostgreSQL alike.

A lease is two columns of the rollout row (owner, expiry) changed only by conditional UPDATEs,
which both databases execute atomically: an engine takes the lease when it is free, expired or
already its own, and keeps it by renewing before it expires. An engine whose renewal finds the
lease gone stops starting new work. A lease held by a process of *this* machine that no longer
exists (killed with ``kill -9``) is taken over at once instead of waiting for its expiry.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import RolloutRow
from hvpatch.errors import HvpatchError

__all__ = ["Lease", "LeaseHeld", "new_owner"]


class LeaseHeld(HvpatchError):
    """Another engine drives this rollout."""


def new_owner() -> str:
    """An owner id: ``host:pid:random`` (the pid lets a restarted engine spot a dead holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local(owner: str) -> bool:
    parts = owner.split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Lease:
    """The lease of one rollout for one owner."""

    store: Store
    rollout_id: int
    owner: str
    seconds: float
    name: str = ""

    def _update(self, now: datetime, *conditions: Any) -> bool:
        with self.store.session() as s:
            result = cast(CursorResult[Any], s.execute(
                update(RolloutRow).where(RolloutRow.id == self.rollout_id, *conditions)
                .values(lease_owner=self.owner,
                        lease_expires=now + timedelta(seconds=self.seconds))))
            s.commit()
            return bool(result.rowcount)

    def acquire(self, now: datetime) -> None:
        """Take the lease, or raise :class:`LeaseHeld` naming the holder and its expiry."""
        if self._update(now, or_(RolloutRow.lease_owner == "", RolloutRow.lease_owner == self.owner,
                                 RolloutRow.lease_expires < now)):
            return
        with self.store.session() as s:
            row = s.get(RolloutRow, self.rollout_id)
            holder, until = (row.lease_owner, row.lease_expires) if row else ("", None)
        if holder and _dead_local(holder) and self._update(now, RolloutRow.lease_owner == holder):
            return
        what = f"rollout {self.name or self.rollout_id}"
        raise LeaseHeld(f"{what} is driven by {holder} until {until:%Y-%m-%d %H:%M:%S} UTC; "
                        "wait for it to finish or for its lease to expire"
                        if until else f"{what} is driven by {holder}")

    def renew(self, now: datetime) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another engine)."""
        return self._update(now, RolloutRow.lease_owner == self.owner)

    def release(self) -> None:
        """Give the lease up (only if still ours)."""
        with self.store.session() as s:
            s.execute(update(RolloutRow).where(RolloutRow.id == self.rollout_id,
                                               RolloutRow.lease_owner == self.owner)
                      .values(lease_owner="", lease_expires=None))
            s.commit()
