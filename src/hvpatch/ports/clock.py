"""The clock port: where hvpatch gets the time and how it waits.

Everything that reads the time or sleeps (rate limiters, retry back-off, rollout leases) takes a
:class:`Clock`, so tests run instantly on a fake clock and can assert exactly how long the code
would have waited. Implementations live in :mod:`hvpatch.adapters.clock`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of the current time and of asynchronous waiting."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (>= 0) without blocking the event loop."""
        ...
