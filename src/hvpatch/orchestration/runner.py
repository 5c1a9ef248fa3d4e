"""Start and drive rollouts: build the driver, clock and checks a rollout names, run the engine.

A rollout stores its driver as data (``{"name": "simulator", "speed": ..., "clock": ...,
"faults": ...}``), so ``rollout resume`` in a new process -- after a crash, a pause or an
approval -- rebuilds exactly the same driver, the same simulated timeline and the same fault
plan. Real platform drivers plug in here by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hvpatch.adapters.checks.builtin import builtin_checks
from hvpatch.adapters.checks.suites import suite_checks
from hvpatch.adapters.clock import AcceleratedClock, SystemClock
from hvpatch.adapters.connectors import DRIVERS as REMEDIATION
from hvpatch.adapters.connectors import remediation_driver
from hvpatch.adapters.drivers.faults import FaultPlan
from hvpatch.adapters.drivers.simulator import SimulatorDriver
from hvpatch.adapters.store.db import Store
from hvpatch.domain.rollout import RolloutPolicy, rollout_policy_from_dict
from hvpatch.errors import InputError, Problem
from hvpatch.orchestration.engine import RolloutEngine
from hvpatch.ports.clock import Clock
from hvpatch.ports.driver import HypervisorDriver
from hvpatch.services.connections import resolve_endpoint
from hvpatch.services.rollouts import create_rollout, get_rollout, rollout_name

__all__ = ["DRIVERS", "build_driver", "connection_spec", "drive", "simulator_spec",
           "start_rollout"]

DRIVERS = ("simulator", "connection")
Event = Callable[[str, Mapping[str, Any]], None]


def simulator_spec(*, speed: float = 3600.0, faults: FaultPlan | None = None,
                   start: datetime | None = None) -> dict[str, Any]:
    """The stored driver spec of a simulated rollout: time ``speed`` times faster than real."""
    if not speed > 0:
        raise InputError("bad speed", [Problem("--speed", "expected a number above 0")])
    clock = AcceleratedClock(speed, start or datetime.now(UTC))
    return {"name": "simulator", "speed": speed, "clock": clock.to_dict(),
            "faults": faults.to_dict() if faults else None}


def connection_spec(store: Store, connection: str) -> dict[str, Any]:
    """The stored driver spec of a rollout on a real platform: the connection's remediation
    driver (checked now: the connection exists and its kind has one), on the real clock. Only
    the connection's name is stored; its credential is resolved each time the engine starts."""
    endpoint = resolve_endpoint(store, connection)
    if endpoint.kind not in REMEDIATION:
        raise InputError("no remediation driver for this connection", [Problem(
            "--connection", f"{connection} is a {endpoint.kind} connection; rollouts run on "
            f"{', '.join(sorted(REMEDIATION))} connections")])
    return {"name": "connection", "connection": connection, "kind": endpoint.kind}


def build_driver(store: Store, spec: Mapping[str, Any]) -> tuple[HypervisorDriver, Clock]:
    """The driver and the campaign clock a stored spec describes."""
    name = spec.get("name")
    if name == "simulator":
        clock = AcceleratedClock.from_dict(spec["clock"])
        faults = FaultPlan.from_dict(spec["faults"]) if spec.get("faults") else None
        return SimulatorDriver(store, clock, faults=faults), clock
    if name == "connection":
        return remediation_driver(resolve_endpoint(store, str(spec["connection"]))), SystemClock()
    raise InputError("unknown driver", [Problem("driver", f"{name!r} is not one of "
                                                f"{', '.join(DRIVERS)}")])


def start_rollout(store: Store, plan: str, *, requester: str, policy: RolloutPolicy,
                  driver: Mapping[str, Any], name: str | None = None) -> str:
    """Create the rollout of ``plan`` (state pending); returns its name."""
    rid = create_rollout(store, plan, requester=requester, driver=dict(driver), policy=policy,
                         name=name)
    return rollout_name(store, rid)


async def drive(store: Store, name: str | None = None, *, on_event: Event | None = None,
                heartbeat_s: float = 1.0, owner: str | None = None) -> str:
    """Run the engine on rollout ``name`` (the newest when None) until it stops; its state."""
    row = get_rollout(store, name)
    policy = rollout_policy_from_dict(row.policy)
    driver, clock = build_driver(store, row.driver)
    checks = builtin_checks(policy.checks, tolerance=policy.performance_tolerance)
    engine = RolloutEngine(store, driver, clock=clock, wall=SystemClock(), checks=checks,
                           on_event=on_event, heartbeat_s=heartbeat_s, owner=owner,
                           ring_checks=lambda ring: suite_checks(policy.suites, ring))
    try:
        return await engine.run(row.id)
    finally:
        await driver.close()
