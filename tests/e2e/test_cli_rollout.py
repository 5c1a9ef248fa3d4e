"""``hvpatch rollout`` as a user runs it: start with a fault plan, read the status as JSON,
approve (not as the requester), resume to the end.

``start`` and ``resume`` run as real subprocesses (exit codes, stdout); ``status`` and
``approve`` run in-process through Typer's runner, which saves an interpreter start each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hvpatch.adapters.store.db import Store
from hvpatch.cli.main import app
from hvpatch.errors import InputError
from hvpatch.services.audit import verify_store
from rollout_support import FAST_RINGS, make_plan

FIRST = "zrh1-ahv-01-h01"  # the first host of make_plan(hosts=16, seed=2), in ring test


def hv(*args: str, db: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "alice"}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_start_with_faults_status_approve_resume(sqlite_url: str, tmp_path: Path) -> None:
    store = Store(sqlite_url)
    make_plan(store, hosts=16, seed=2, policy={"rings": {
        **FAST_RINGS, "prod": {"soak_hours": 0.0, "approval": True}}})
    store.close()
    faults = tmp_path / "faults.yaml"
    faults.write_text(f"seed: 1\nfaults:\n  - kind: install-fails\n    hosts: [{FIRST}]\n"
                      "    times: 1\n    delay_s: 5\n")

    started = hv("rollout", "start", "p1", "--name", "r1", "--faults", str(faults),
                 "--speed", "1000000", "--output", "json", db=sqlite_url, home=tmp_path)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["state"] == "awaiting-approval"

    runner = CliRunner(env={"HVPATCH_ACTOR": "alice", "COLUMNS": "200"})
    shown = runner.invoke(app, ["--db", sqlite_url, "rollout", "status", "r1", "--output",
                                "json"])
    assert shown.exit_code == 0, shown.output
    st = json.loads(shown.stdout)
    assert st["state"] == "awaiting-approval" and st["requester"] == "alice"
    assert st["hosts"] == {"done": 7, "pending": 5}
    staging = next(r for r in st["rings"] if r["ring"] == "staging")
    assert staging["exit_gate"]["state"] == "awaiting-approval"
    first = next(h for r in st["rings"] for w in r["waves"] for h in w["hosts"]
                 if h["host"] == FIRST)
    assert (first["state"], first["attempts"]) == ("done", 1)  # the failed install was retried
    assert [(f["host"], f["step"]) for f in st["recent_failures"]] == [(FIRST, "apply")]
    assert "simulated fault" in st["recent_failures"][0]["error"]

    refused = runner.invoke(app, ["--db", sqlite_url, "rollout", "approve", "r1"])  # alice
    assert isinstance(refused.exception, InputError)  # exit code 2 in the real command
    assert "separation of duties" in str(refused.exception)
    assert "an approval must come from someone else" in str(refused.exception)

    approved = runner.invoke(app, ["--db", sqlite_url, "rollout", "approve", "r1", "--actor",
                                   "bob", "--output", "json"])
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["approved_by"] == "bob"

    resumed = hv("rollout", "resume", "r1", "--output", "json", db=sqlite_url, home=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    st = json.loads(resumed.stdout)
    assert st["state"] == "completed" and st["hosts"] == {"done": 12}
    assert verify_store(Store(sqlite_url)).ok
