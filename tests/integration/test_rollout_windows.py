"""Maintenance windows at execution: a plan made with windows keeps them, and the engine starts
each wave inside the next window that fits it, waiting on the campaign clock (pause and abort
still heard), or pauses with the reason when none fits.

The engine runs here on a :class:`FakeClock` (time moves only when something sleeps), so every
start is exactly where the engine put it; on the accelerated clock the engine's own real time
would also count, multiplied by the speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.checks.builtin import builtin_checks
from hvpatch.adapters.clock import FakeClock, SystemClock
from hvpatch.adapters.drivers.simulator import SimulatorDriver
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import PlanRow, RolloutStepRow
from hvpatch.adapters.store.plan_codec import plan_from_dict, plan_to_dict
from hvpatch.domain.planning.windows import fits
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.engine import RolloutEngine
from hvpatch.orchestration.runner import simulator_spec, start_rollout
from hvpatch.services.rollouts import get_rollout, request_control, rollout_status
from rollout_support import FAST_RINGS, make_plan

#: Saturdays 02:00-10:00 UTC, and a blackout on the first Saturday after the test's start
WINDOWS: dict[str, Any] = {
    "windows": [{"timezone": "UTC", "weekly": {"days": ["sat"], "start": "02:00", "hours": 8}}],
    "blackout": [{"from": "2026-12-12", "to": "2026-12-12", "reason": "freeze"}],
    "rings": {**FAST_RINGS, "prod": {"soak_hours": 0.0, "approval": False}},
}
START = datetime(2026, 12, 11, 22, 0, tzinfo=UTC)   # a Friday night
FIRST_ALLOWED = datetime(2026, 12, 19, 2, 0, tzinfo=UTC)   # the 12th is blacked out


class PacedClock(FakeClock):
    """A fake clock whose every sleep also takes ``pace`` real seconds, so the engine's
    heartbeat (which reads pause requests) gets its turn during a long wait."""

    def __init__(self, start: datetime, pace: float) -> None:
        super().__init__(start)
        self.pace = pace

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(self.pace)


def _start(store: Store, policy: RolloutPolicy = RolloutPolicy()) -> str:
    return start_rollout(store, "p1", requester="alice", policy=policy,
                         driver=simulator_spec(speed=1.0, start=START))


def _drive(store: Store, name: str, clock: FakeClock,
           on_event: Callable[[str, Mapping[str, Any]], None] | None = None) -> str:
    row = get_rollout(store, name)
    engine = RolloutEngine(store, SimulatorDriver(store, clock), clock=clock, wall=SystemClock(),
                           checks=builtin_checks(RolloutPolicy().checks, tolerance=0.25),
                           on_event=on_event, heartbeat_s=0.02)
    return asyncio.run(engine.run(row.id))


def _first_steps(store: Store) -> dict[str, datetime]:
    """Each host's first step start (campaign time)."""
    with store.session() as s:
        return {h: t for h, t in s.execute(
            select(RolloutStepRow.host, func.min(RolloutStepRow.started))
            .where(RolloutStepRow.host != "").group_by(RolloutStepRow.host))}


def test_waves_start_inside_the_windows_the_plan_keeps(store: Store) -> None:
    plan = make_plan(store, hosts=12, seed=2, policy=WINDOWS)
    assert plan.windows and plan.blackouts
    with store.session() as s:
        stored = plan_from_dict(s.scalar(select(PlanRow.data)))
    assert stored.windows == plan.windows and stored.blackouts == plan.blackouts
    assert plan_to_dict(stored) == plan_to_dict(plan)
    events: list[tuple[str, dict[str, Any]]] = []
    name = _start(store)
    state = _drive(store, name, FakeClock(START), lambda k, d: events.append((k, dict(d))))
    assert state == "completed", rollout_status(store, name)["reason"]
    waits = [d for k, d in events if k == "window"]
    assert waits and min(d["start"] for d in waits) == FIRST_ALLOWED.isoformat()
    starts = _first_steps(store)
    waves = {h.host: w for w in plan.waves() for h in w.hosts}
    assert set(starts) == set(waves)
    for host, at in starts.items():
        w = waves[host]
        assert at >= FIRST_ALLOWED and at.weekday() == 5 and 2 <= at.hour < 10, (host, at)
        assert fits(plan.windows, at, w.seconds, cluster=w.cluster, tenants=w.tenants,
                    blackouts=plan.blackouts), (host, at)


def test_without_waiting_for_windows_the_first_wave_starts_at_once(store: Store) -> None:
    make_plan(store, hosts=12, seed=2, policy=WINDOWS)
    name = _start(store, RolloutPolicy(wait_for_windows=False))
    assert _drive(store, name, FakeClock(START)) == "completed"
    assert min(_first_steps(store).values()) == START


def test_a_pause_is_heard_while_a_wave_waits_for_its_window(store: Store) -> None:
    make_plan(store, hosts=12, seed=2, policy=WINDOWS)
    name = _start(store)
    asked: list[str] = []

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "window" and not asked:
            asked.append(request_control(store, name, "pause", actor="bob")["name"])

    # a week of waiting in steps of a campaign minute, each taking 0.2 ms: about 2 s
    clock = PacedClock(START, pace=0.0002)
    assert _drive(store, name, clock, on_event) == "paused" and asked
    assert clock.now() < FIRST_ALLOWED and _first_steps(store) == {}   # nothing touched
    assert _drive(store, name, FakeClock(clock.now())) == "completed"
    assert min(_first_steps(store).values()) >= FIRST_ALLOWED


def test_no_window_long_enough_pauses_with_the_reason(store: Store) -> None:
    short = {**WINDOWS, "windows": [{"timezone": "UTC",
                                     "weekly": {"days": ["sat"], "start": "02:00",
                                                "hours": 0.01}}]}
    plan = make_plan(store, hosts=12, seed=2, policy=short)
    assert not all(r.fits_windows for r in plan.rings)
    name = _start(store)
    assert _drive(store, name, FakeClock(START)) == "paused"
    assert "longer than the longest maintenance window" in rollout_status(store, name)["reason"]
    assert _first_steps(store) == {}
