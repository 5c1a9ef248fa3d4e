"""Implementations of the :class:`~hvpatch.ports.clock.Clock` port.

:class:`SystemClock` is the real time and ``asyncio.sleep``. :class:`FakeClock` is for tests and
rehearsals: sleeping advances its time instantly and is recorded, so a test can assert both the
waits and what happened at which (fake) instant. :class:`AcceleratedClock` runs simulated time
a fixed factor faster than the wall clock (the simulator's rehearsals and demos).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hvpatch.errors import InputError, Problem

__all__ = ["AcceleratedClock", "FakeClock", "SystemClock"]


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


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"AcceleratedClock needs a timezone-aware {name}")
    return value.astimezone(UTC)


class AcceleratedClock:
    """Simulated time running ``factor`` times faster than the wall clock.

    ``now() = origin_sim + (wall() - origin_wall) * factor`` and ``sleep(s)`` waits ``s / factor``
    wall seconds, so an hour-long simulated rollout takes a minute at ``factor=60``. The clock is
    a pure function of its three parameters and the wall time: processes that build it from the
    same :meth:`to_dict` (an engine killed with ``kill -9`` and its successor) share one
    continuous simulated timeline. ``wall`` is injectable for tests (default: the UTC time now).
    """

    def __init__(self, factor: float, origin_sim: datetime, origin_wall: datetime | None = None,
                 wall: Callable[[], datetime] | None = None) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int | float) \
                or not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"AcceleratedClock needs a factor greater than 0, got {factor!r}")
        self.factor = float(factor)
        self._wall: Callable[[], datetime] = wall or (lambda: datetime.now(UTC))
        self.origin_sim = _aware(origin_sim, "origin_sim")
        self.origin_wall = _aware(origin_wall if origin_wall is not None else self._wall(),
                                  "origin_wall")

    def now(self) -> datetime:
        """The simulated current time (UTC)."""
        wall = _aware(self._wall(), "wall time")
        return self.origin_sim + (wall - self.origin_wall) * self.factor

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time, i.e. ``seconds / factor`` of wall time."""
        await asyncio.sleep(_check_seconds(seconds) / self.factor)

    def to_dict(self) -> dict[str, Any]:
        """Plain data from which :meth:`from_dict` rebuilds the same timeline."""
        return {"factor": self.factor, "origin_sim": self.origin_sim.isoformat(),
                "origin_wall": self.origin_wall.isoformat()}

    @classmethod
    def from_dict(cls, data: Any, wall: Callable[[], datetime] | None = None) -> AcceleratedClock:
        """The clock :meth:`to_dict` described; :class:`InputError` naming every bad field."""
        if not isinstance(data, dict):
            raise InputError("not an accelerated clock",
                             [Problem("clock", "expected a mapping with factor, origin_sim, "
                                      "origin_wall")])
        problems: list[Problem] = []
        factor: Any = data.get("factor")
        if isinstance(factor, bool) or not isinstance(factor, int | float) \
                or not math.isfinite(factor) or factor <= 0:
            problems.append(Problem("clock.factor", f"expected a number greater than 0, "
                                    f"got {factor!r}"))
        times: dict[str, datetime] = {}
        for key in ("origin_sim", "origin_wall"):
            raw = data.get(key)
            try:
                value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
            except ValueError:
                value = None
            if value is None or value.tzinfo is None:
                problems.append(Problem(f"clock.{key}", f"expected an ISO 8601 time with a "
                                        f"time zone, got {raw!r}"))
            else:
                times[key] = value
        for key in sorted(set(data) - {"factor", "origin_sim", "origin_wall"}, key=str):
            problems.append(Problem(f"clock.{key}", "unknown field"))
        if problems:
            raise InputError("not an accelerated clock", problems)
        return cls(float(factor), times["origin_sim"], times["origin_wall"], wall)
