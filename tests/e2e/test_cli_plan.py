"""``hvpatch plan`` as a user runs it, on the demo's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def hv(*args: str, db: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "carol"}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    home = tmp_path_factory.mktemp("plan")
    db = f"sqlite:///{home / 'demo.db'}"
    r = hv("--db", db, "demo", "-o", "json", db=db, home=home)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["plan"]["hosts"] > 0, data["plan_error"]
    assert Path(data["gantt"]).exists()
    return db, home


def test_show_export_gantt_and_list(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, home = demo
    shown = hv("plan", "show", "demo-emergency", "--moves", "all", db=db, home=home)
    assert shown.returncode == 0, shown.stderr
    assert "ring prod" in shown.stdout and "evacuate" in shown.stdout
    exported = tmp_path / "plan.json"
    assert hv("plan", "export", "demo-emergency", "--out", str(exported), db=db,
              home=home).returncode == 0
    data = json.loads(exported.read_text())
    moves = [m for r in data["rings"] for w in r["waves"] for m in w["moves"]]
    assert moves and all(m["source"] != m["destination"] for m in moves)
    png = tmp_path / "g.png"
    assert hv("plan", "gantt", "demo-emergency", "--out", str(png), db=db,
              home=home).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = json.loads(hv("plan", "list", "-o", "json", db=db, home=home).stdout)
    assert listed[0]["name"] == "demo-emergency" and listed[0]["requester"] == "demo"


def test_create_diff_and_errors(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, home = demo
    policy = tmp_path / "p.yaml"
    # the demo rolled its campaign out: what is left are the hosts it skipped for their pinned
    # guests, which this plan stops (with consent) and restarts
    policy.write_text("ha_reserve_hosts: 0\nmigrate_back: true\npinned_guests: shutdown\n")
    r = hv("plan", "create", "--name", "with-back", "--include", "patch-now", "--policy",
           str(policy), "-o", "json", db=db, home=home)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert created["summary"]["migrations_per_evacuated_guest"] >= 1.9  # everything goes back
    d = json.loads(hv("plan", "diff", "demo-emergency", "with-back", "-o", "json", db=db,
                      home=home).stdout)
    assert d["hours"]["to"] >= d["hours"]["from"]
    taken = hv("plan", "create", "--name", "with-back", db=db, home=home)
    assert taken.returncode == 2 and "taken" in taken.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("pinned_guests: maybe\n")
    r = hv("plan", "create", "--policy", str(bad), db=db, home=home)
    assert r.returncode == 2 and "pinned_guests" in r.stderr
    assert hv("plan", "show", "nope", db=db, home=home).returncode == 2
    assert hv("plan", "gantt", "demo-emergency", "--out", str(tmp_path / "g.gif"), db=db,
              home=home).returncode == 2


def test_infeasible_plan_exits_5_with_reasons(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, home = demo
    strict = tmp_path / "strict.yaml"
    strict.write_text("pinned_guests: fail\n")
    r = hv("plan", "create", "--name", "strict", "--include", "patch-now", "--policy",
           str(strict), db=db, home=home)
    assert r.returncode == 5
    assert "cannot live-migrate" in r.stderr or "no safe plan" in r.stderr
