"""AcceleratedClock: simulated time runs a fixed factor faster than the wall clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hvpatch.adapters.clock import AcceleratedClock
from hvpatch.errors import InputError
from hvpatch.ports.clock import Clock

SIM = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WALL = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


class Wall:
    """An injectable wall clock the test moves by hand."""

    def __init__(self, start: datetime = WALL) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def test_now_runs_factor_times_faster() -> None:
    wall = Wall()
    clock = AcceleratedClock(60, SIM, wall=wall)
    assert isinstance(clock, Clock)
    assert clock.now() == SIM  # origin_wall defaults to the wall time at construction
    wall.advance(1.5)
    assert clock.now() == SIM + timedelta(seconds=90)
    wall.advance(60)
    assert clock.now() == SIM + timedelta(seconds=3690)
    assert clock.now().tzinfo is not None


def test_explicit_origin_wall() -> None:
    wall = Wall(WALL + timedelta(seconds=10))
    clock = AcceleratedClock(2.5, SIM, origin_wall=WALL, wall=wall)
    assert clock.now() == SIM + timedelta(seconds=25)


def test_round_trip_shares_one_timeline() -> None:
    wall = Wall()
    first = AcceleratedClock(100, SIM, wall=wall)
    stored = first.to_dict()
    wall.advance(30)  # the first engine is killed; a new one starts 30 wall seconds later
    second = AcceleratedClock.from_dict(stored, wall=wall)
    assert second.now() == first.now() == SIM + timedelta(seconds=3000)
    assert second.to_dict() == stored
    assert second.factor == 100.0


def test_non_utc_origins_are_normalised() -> None:
    cet = datetime(2026, 3, 1, 9, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    wall = Wall()
    clock = AcceleratedClock(1, cet, wall=wall)
    assert clock.now() == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("factor", [0, -1, float("nan"), float("inf"), True])
def test_factor_must_be_positive(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        AcceleratedClock(factor, SIM)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="origin_sim"):
        AcceleratedClock(10, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="origin_wall"):
        AcceleratedClock(10, SIM, origin_wall=datetime(2026, 1, 1))
    clock = AcceleratedClock(10, SIM, origin_wall=WALL, wall=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="wall time"):
        clock.now()


def test_from_dict_names_every_bad_field() -> None:
    with pytest.raises(InputError) as err:
        AcceleratedClock.from_dict({"factor": -2, "origin_sim": "yesterday",
                                    "origin_wall": "2026-01-01T00:00:00", "extra": 1})
    where = {p.location for p in err.value.problems}
    assert where == {"clock.factor", "clock.origin_sim", "clock.origin_wall", "clock.extra"}
    with pytest.raises(InputError):
        AcceleratedClock.from_dict(["not", "a", "mapping"])


def test_sleep_waits_a_fraction_of_wall_time() -> None:
    clock = AcceleratedClock(1000, SIM)

    async def go() -> float:
        t0 = time.perf_counter()
        await clock.sleep(100)  # 100 simulated seconds: 0.1 wall seconds
        return time.perf_counter() - t0

    elapsed = asyncio.run(go())
    assert 0.09 <= elapsed < 1.0
    with pytest.raises(ValueError):
        asyncio.run(clock.sleep(-1))


def test_real_wall_clock_advances_simulated_time() -> None:
    clock = AcceleratedClock(1000, SIM)
    asyncio.run(clock.sleep(50))
    assert clock.now() - SIM >= timedelta(seconds=45)
