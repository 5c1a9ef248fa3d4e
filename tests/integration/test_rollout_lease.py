"""Two engines started at once on the same rollout: exactly one drives it, the other is refused
with :class:`LeaseHeld` (``hvpatch rollout resume`` exits 3 naming the holder) and changes
nothing. Each test then pauses the engine that drives (a resume carries on, as the crash and
fault tests show) and checks that it cleaned up and let go of the lease."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hvpatch.adapters.drivers.simulator import SimulatorDriver
from hvpatch.adapters.store.db import Store
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.lease import LeaseHeld
from hvpatch.orchestration.runner import build_driver, drive, simulator_spec, start_rollout
from hvpatch.services.audit import list_entries, verify_store
from hvpatch.services.rollouts import get_rollout, request_control, rollout_status
from rollout_support import make_plan


def simulator(store: Store, name: str) -> SimulatorDriver:
    """The rollout's simulator, rebuilt from its stored spec as ``rollout resume`` does."""
    driver, _ = build_driver(store, get_rollout(store, name).driver)
    assert isinstance(driver, SimulatorDriver)
    return driver


def test_two_engines_in_one_process_one_drives_the_other_is_refused(store: Store) -> None:
    make_plan(store, hosts=16, seed=2)
    name = start_rollout(store, "p1", requester="alice", policy=RolloutPolicy(retry_backoff_s=1),
                         driver=simulator_spec(speed=1e6))
    steps: list[str] = []

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "step" and not steps:  # the other engine was refused by now: stop early
            steps.append(data["step"])
            request_control(store, name, "pause", actor="bob")

    async def both() -> list[str | BaseException]:
        return list(await asyncio.gather(drive(store, name, on_event=on_event, heartbeat_s=0.1),
                                         drive(store, name, on_event=on_event, heartbeat_s=0.1),
                                         return_exceptions=True))

    results = asyncio.run(both())
    refused = [r for r in results if isinstance(r, LeaseHeld)]
    assert len(refused) == 1 and results.count("paused") == 1, results
    assert f"rollout {name} is driven by " in str(refused[0])
    st = rollout_status(store, name)
    assert st["state"] == "paused" and st["lease"]["owner"] == ""
    assert set(st["hosts"]) <= {"done", "pending"}
    hosts = simulator(store, name).snapshot()["hosts"]
    assert all(h["applies"] <= 1 and not h["maintenance"] for h in hosts.values())
    assert len(list_entries(store, action="rollout.running")) == 1  # one engine ever drove it
    assert verify_store(store).ok


def _hv(*args: str, db: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "alice"}
    return subprocess.Popen([sys.executable, "-m", "hvpatch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_two_resume_commands_at_once_exactly_one_drives(store: Store, store_url: str,
                                                        tmp_path: Path) -> None:
    make_plan(store, hosts=16, seed=2)
    # slow enough simulated time that the first engine is still at work when the second starts
    name = start_rollout(store, "p1", requester="alice", policy=RolloutPolicy(retry_backoff_s=1),
                         driver=simulator_spec(speed=300))
    procs = [_hv("rollout", "resume", name, db=store_url, home=tmp_path) for _ in range(2)]
    deadline = time.monotonic() + 120
    while all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "neither engine stopped"
        time.sleep(0.1)
    loser = next(p for p in procs if p.returncode is not None)
    winner = next(p for p in procs if p is not loser)
    _, err = loser.communicate()
    assert loser.returncode == 3, err  # LeaseHeld: try again later (cli/errors.py)
    assert "error:" in err and "is driven by" in err and "wait for it to finish" in err
    st = rollout_status(store, name)
    assert st["state"] == "running" and st["lease"]["owner"]

    request_control(store, name, "pause", actor="bob")  # the engine that drives it stops
    _, err = winner.communicate(timeout=120)
    assert winner.returncode == 0, err
    st = rollout_status(store, name)
    assert st["state"] == "paused" and st["lease"]["owner"] == ""
    assert set(st["hosts"]) <= {"done", "pending"}
    driver = simulator(store, name)
    snap = driver.snapshot()
    assert not any(h["maintenance"] for h in snap["hosts"].values())
    assert all(h["applies"] <= 1 for h in snap["hosts"].values())
    assert [e["actor"] for e in list_entries(store, action="rollout.running")] == ["engine"]
    assert verify_store(store).ok
