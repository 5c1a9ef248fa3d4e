"""Crash-resume: a simulated rollout of about 100 hosts, its engine killed with SIGKILL at
dozens of random points and resumed each time, ends exactly as an uninterrupted one would.

The engines are real processes (forked by ``engine_forker.py`` so that each starts in
milliseconds) killed with ``kill -9`` while they work; the last resume is the real command,
``hvpatch rollout resume``. Each kill lands after a seeded random number of step starts plus a
seeded random delay, so the kill points spread over the whole campaign whatever the machine's
speed. Afterwards a user must find: every planned host patched exactly once to its target, no
guest lost or left stopped, no host in maintenance, every rollout host done, the cluster
settings as before, the inventory showing where each guest really runs, and an intact audit
trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.drivers.simulator import SimulatorDriver
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import GuestRow, HostRow, RolloutRow
from hvpatch.domain.rollout import HOST_STEPS, RolloutPolicy
from hvpatch.orchestration.runner import build_driver, simulator_spec, start_rollout
from hvpatch.services.audit import list_entries, verify_store
from hvpatch.services.rollouts import get_rollout, rollout_status
from rollout_support import make_plan

pytestmark = pytest.mark.slow

FORKER = Path(__file__).with_name("engine_forker.py")
KILLS = 32
SEED = 20261129


def simulator(store: Store, name: str) -> SimulatorDriver:
    """The rollout's simulator, rebuilt from its stored spec as ``rollout resume`` does."""
    driver, _ = build_driver(store, get_rollout(store, name).driver)
    assert isinstance(driver, SimulatorDriver)
    return driver


class Forker:
    """The ``engine_forker.py`` process and the lines it (and its children) print."""

    def __init__(self, url: str, name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FORKER), url, name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next() == "ready"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("<eof>")

    def next(self, timeout: float = 300.0) -> str:
        line = self.lines.get(timeout=timeout)
        assert line != "<eof>", "the forker died"
        return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def hv(*args: str, db: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "alice"}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=600, check=False)


def test_kill_9_at_random_points_then_resume_patches_every_host_once(
        store: Store, store_url: str, tmp_path: Path) -> None:
    # each statement costs several times more on PostgreSQL: there a smaller fleet (20 hosts in
    # three rings) keeps the test within its time budget, with as many kills
    fleet = 100 if store_url.startswith("sqlite") else 24
    plan = make_plan(store, hosts=fleet, seed=3)
    planned = {s.host: dict(s.components) for w in plan.waves() for s in w.hosts}
    ring_of = {s.host: r.ring for r in plan.rings for w in r.waves for s in w.hosts}
    assert len(planned) >= 0.8 * fleet and len(plan.rings) >= 3
    name = start_rollout(store, "p1", requester="alice", policy=RolloutPolicy(retry_backoff_s=1),
                         driver=simulator_spec(speed=1e6))
    driver = simulator(store, name)
    before = driver.snapshot()
    running_before = {g for g, v in before["guests"].items() if v["running"]}
    clusters = sorted({w.cluster for w in plan.waves()})
    settings_before = {c: asyncio.run(driver.cluster_settings(c)) for c in clusters}

    rng = random.Random(SEED)
    steps = len(planned) * len(HOST_STEPS)
    mean = steps / (KILLS + 8)  # step starts between kills: the kills cover most of the run
    kills: list[str] = []        # the host each kill interrupted ("-": a ring-level step)
    forker = Forker(store_url, name)
    pid = 0
    try:
        for _ in range(KILLS):
            forker.send("run")
            pid = int(forker.next().removeprefix("pid "))
            wanted, started, last, ended = rng.randint(1, int(2 * mean)), 0, "", ""
            while started < wanted:
                line = forker.next()
                if line.startswith("step "):
                    started += 1
                    last = line.split()[1]
                else:
                    ended = line
                    break
            if not ended:
                threading.Event().wait(rng.uniform(0.0, 0.05))
                os.kill(pid, signal.SIGKILL)
            forker.send(f"reap {pid}")
            while not (line := forker.next()).startswith(f"exit {pid} "):
                if line.startswith("step "):
                    last = line.split()[1]
                else:
                    ended = line
            pid, status = 0, int(line.split()[2])
            if os.WIFSIGNALED(status):
                assert os.WTERMSIG(status) == signal.SIGKILL
                kills.append(last)
            else:
                assert ended.startswith("done"), ended
            if ended == "done completed":
                break
    finally:
        if pid:  # the test failed while an engine ran: leave none behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        forker.close()
    assert len(kills) >= 30, f"only {len(kills)} engines were killed while working"
    rings_hit = Counter(ring_of.get(h, "-") for h in kills)
    assert len(set(rings_hit) - {"-"}) >= 3, rings_hit  # the kills spread over the campaign

    # the final resume, as a user runs it, carries the rollout to its end
    done = hv("rollout", "resume", name, "--output", "json", db=store_url, home=tmp_path)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "completed", status["reason"]
    assert status["hosts"] == {"done": len(planned)}
    assert rollout_status(store, name)["lease"]["owner"] == ""

    after = driver.snapshot()
    for host, target in planned.items():
        h = after["hosts"][host]
        assert h["applies"] == 1, f"{host} was patched {h['applies']} times"
        assert {c: h["components"].get(c) for c in target} == target, host
        assert h["rollbacks"] == 0 and not h["maintenance"] and h["up"], (host, h)
        assert not h["pending"], host
    for host, h in after["hosts"].items():
        if host not in planned:
            assert h == {**before["hosts"][host], "ready_at": h["ready_at"]}, host
    assert set(after["guests"]) == set(before["guests"])  # no guest lost
    stopped = sorted(g for g in running_before if not after["guests"][g]["running"])
    assert stopped == [], f"guests left stopped: {stopped}"
    assert {c: asyncio.run(driver.cluster_settings(c)) for c in clusters} == settings_before

    # the inventory says where each guest runs now
    with store.session() as s:
        placed = dict(s.execute(select(GuestRow.name, HostRow.name)
                                .join(HostRow, HostRow.id == GuestRow.host_id)).all())
        assert s.scalar(select(RolloutRow.state).where(RolloutRow.name == name)) == "completed"
    misplaced = {g: (placed.get(g), v["host"]) for g, v in after["guests"].items()
                 if placed.get(g) != v["host"]}
    assert misplaced == {}, f"inventory differs from the platform: {misplaced}"

    # the audit trail: each step of each host finished once, each host done once
    entries = list_entries(store, limit=1_000_000)
    finished = Counter(e["subject"] for e in entries if e["action"] == "step.finished"
                       and e["subject"].split(":")[0] in planned)
    assert set(finished.values()) == {1}, [k for k, n in finished.items() if n > 1]
    assert set(finished) == {f"{h}:{step}" for h in planned for step in HOST_STEPS}
    done_entries = Counter(e["subject"] for e in entries if e["action"] == "host.done")
    assert done_entries == dict.fromkeys(planned, 1)
    verdict = verify_store(store)
    assert verdict.ok, verdict.reason

