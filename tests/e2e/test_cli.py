"""The CLI as a user runs it: a real subprocess, exit codes, stdout/stderr, the store after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "inventory.yaml"


def hv(*args: str, db: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200"}
    if home is not None:
        env["XDG_DATA_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_import_list_show_roundtrip(db: str) -> None:
    r = hv("inventory", "import", str(EXAMPLE), db=db)
    assert r.returncode == 0, r.stderr
    assert "hosts" in r.stdout
    again = hv("inventory", "import", str(EXAMPLE), "-o", "json", db=db)
    assert json.loads(again.stdout)["touched"] is False
    listed = json.loads(hv("inventory", "list", "--family", "esxi", "-o", "json", db=db).stdout)
    assert [h["name"] for h in listed] == ["fra1-esx-01-h01", "fra1-esx-01-h02"]
    assert listed[0]["version"] == "ESXi 7.0 Update 3c (19193900)"
    shown = json.loads(hv("inventory", "show", "fra1-esx-01-h01", "-o", "json", db=db).stdout)
    assert {g["name"] for g in shown["guests"]} == {"acme-web-01", "globex-db-01"}
    table = hv("inventory", "show", "fra1-esx-01-h01", db=db)
    assert "local-disk" in table.stdout and "ESXi 7.0 Update 3c" in table.stdout


def test_bad_file_exits_2_lists_problems_and_changes_nothing(db: str, tmp_path: Path) -> None:
    assert hv("inventory", "import", str(EXAMPLE), db=db).returncode == 0
    before = hv("db", "status", "-o", "json", db=db).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace('build: "19193900"', 'build: "7.0 Update 99z"')
                   .replace("cores: 48", "cores: many"))
    r = hv("inventory", "import", str(bad), db=db)
    assert r.returncode == 2
    assert "nothing was imported" in r.stderr
    assert f"{bad}:" in r.stderr and "cores" in r.stderr
    assert hv("db", "status", "-o", "json", db=db).stdout == before


def test_unknown_host_is_bad_input(db: str) -> None:
    hv("inventory", "import", str(EXAMPLE), db=db)
    r = hv("inventory", "show", "nope", db=db)
    assert r.returncode == 2 and "no host named 'nope'" in r.stderr


def test_bad_database_url_is_bad_input(tmp_path: Path) -> None:
    r = hv("inventory", "list", db="mysql://x@y/z")
    assert r.returncode == 2 and "not supported" in r.stderr


def test_usage_error_exits_2(db: str) -> None:
    r = hv("inventory", "list", "--output", "xml", db=db)
    assert r.returncode == 2


@pytest.mark.parametrize("command", [
    [], ["inventory"], ["inventory", "import"], ["inventory", "list"], ["inventory", "show"],
    ["inventory", "summary"], ["sim", "generate"], ["db", "status"], ["demo"],
    ["feeds", "import"], ["feeds", "status"], ["feeds", "update"], ["findings", "list"],
    ["findings", "explain"], ["findings", "refresh"], ["assess"], ["risk", "explain"],
    ["exceptions", "add"], ["exceptions", "list"], ["exceptions", "approve"],
    ["exceptions", "expire"], ["policy", "show"], ["policy", "validate"], ["plan", "create"],
    ["plan", "show"], ["plan", "list"], ["plan", "diff"], ["plan", "export"], ["plan", "gantt"],
])
def test_every_command_has_help_with_an_example(command: list[str], db: str) -> None:
    r = hv(*command, "--help", db=db)
    assert r.returncode == 0
    if command and command[-1] not in ("inventory",):
        assert "Example" in r.stdout


def test_sim_generate_imports_and_writes(db: str, tmp_path: Path) -> None:
    r = hv("sim", "generate", "--hosts", "60", "--seed", "3", "-o", "json", db=db)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["added"]["hosts"] == 60 and data["guests"] > 300
    out = tmp_path / "fleet.json"
    w = hv("sim", "generate", "--hosts", "60", "--seed", "3", "--out", str(out), db=db)
    assert w.returncode == 0, w.stderr
    again = hv("inventory", "import", str(out), "-o", "json", db=db)
    assert json.loads(again.stdout)["touched"] is False  # same seed, same fleet


def test_demo_runs_on_a_fresh_store_and_tells_what_next(tmp_path: Path) -> None:
    env_db = f"sqlite:///{tmp_path / 'untouched.db'}"
    r = subprocess.run([sys.executable, "-m", "hvpatch", "demo"], capture_output=True,
                       text=True, timeout=300, check=False,
                       env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
                            "COLUMNS": "200", "HVPATCH_DATABASE_URL": ""})
    assert r.returncode == 0, r.stderr
    assert "What to try next" in r.stdout and "By hypervisor family" in r.stdout
    assert (tmp_path / "data" / "hvpatch" / "demo.db").exists()
    assert not Path(env_db.removeprefix("sqlite:///")).exists()
    j = subprocess.run([sys.executable, "-m", "hvpatch", "demo", "-o", "json"],
                       capture_output=True, text=True, timeout=300, check=False,
                       env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
                            "HVPATCH_DATABASE_URL": ""})
    totals = json.loads(j.stdout)["summary"]["totals"]
    assert 70 <= totals["hosts"] <= 90 and 1200 <= totals["guests"] <= 1800
    assert totals["tenants"] == 20
    rollout = json.loads(j.stdout)["rollout"]
    # the campaign ran on the simulator: the injected install failure was retried, the prod
    # gate was approved by a second person, findings were closed by verification
    assert rollout["state"] == "completed" and set(rollout["hosts"]) == {"done"}
    assert any(f["step"] == "apply" and "simulated fault" in f["error"]
               for f in rollout["failures"])
    assert rollout["approvals"] and rollout["approvals"][0]["approved_by"] != "demo"
    assert rollout["findings_closed"] > 0
    assert rollout["audit"]["ok"] and rollout["audit"]["entries"] > 0
    assert "5. Act" in r.stdout and "audit chain verified" in r.stdout
    assert "Open the dashboard: hvpatch --db" in r.stdout and "http://127.0.0.1:8000/" in r.stdout
