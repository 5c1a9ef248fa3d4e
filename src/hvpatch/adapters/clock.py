"""Implementations of the :class:`~hvpatch.ports.clock.Clock` port.

:class:`SystemClock` is the real time and ``asyncio.sleep``. :class:`FakeClock` is for tests and
rehearsals: sleeping advances its time instantly and is recorded, so a test can assert both the
waits and what happened at which (fake) instant.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock", "SystemClock"]


def _check_seconds(seconds: float) -> float:
    if seconds != seconds or seconds < 0:  # NaN or negative
        raise ValueError(f"cannot sleep {seconds!r} seconds")
    return float(seconds)


class SystemClock:
    """The machine's clock (UTC) and ``asyncio.sleep``."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        await asyncio.sleep(_check_seconds(seconds))


class FakeClock:
    """A clock that only moves when told to or when slept on; every sleep is recorded.

    ``sleep`` advances the time by the requested amount at once (yielding to the event loop
    once, so other tasks still interleave) and appends the amount to :attr:`sleeps`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The fake current time (UTC)."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward without recording a sleep."""
        self._now += timedelta(seconds=_check_seconds(seconds))

    async def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the time by it, instantly."""
        seconds = _check_seconds(seconds)
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    @property
    def slept(self) -> float:
        """Total seconds slept so far."""
        return sum(self.sleeps)
