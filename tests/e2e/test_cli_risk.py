"""``hvpatch assess``, ``risk explain``, ``exceptions`` and ``policy`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


def hv(*args: str, db: str, actor: str = "bob") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200", "HVPATCH_ACTOR": actor}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('risk') / 'cli.db'}"
    assert hv("inventory", "import", str(EXAMPLES / "inventory.yaml"), db=url).returncode == 0
    assert hv("feeds", "import", "--bundled", db=url).returncode == 0
    return url


def test_assess_ranks_hosts_and_rolls_up(db: str) -> None:
    r = hv("assess", "-o", "json", db=db)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["summary"]["hosts"] == len(data["ranked"]) > 0
    first = data["ranked"][0]
    assert first["outcome"] in ("Act", "Attend") and first["deadline"]
    table = hv("assess", "--by", "tenant", db=db)
    assert table.returncode == 0 and "per tenant" in table.stdout
    assert hv("assess", "--by", "planet", db=db).returncode == 2


def test_risk_explain_lists_factors(db: str) -> None:
    hv("assess", db=db)
    r = hv("risk", "explain", "fra1-esx-01-h01", "CVE-2024-37085", db=db)
    assert r.returncode == 0, r.stderr
    assert "kev" in r.stdout and "impact_class" in r.stdout and "SSVC" in r.stdout
    assert "CISA KEV due date" in r.stdout
    missing = hv("risk", "explain", "no-such-host", db=db)
    assert missing.returncode == 2


def test_exception_workflow_with_separation_of_duties(db: str) -> None:
    expires = (date.today() + timedelta(days=20)).isoformat()
    add = hv("exceptions", "add", "fra1-esx-01-h01", "*", "--reason", "waiting for 8.0",
             "--control", "management network isolated", "--expires", expires, "-o", "json",
             db=db, actor="bob")
    assert add.returncode == 0, add.stderr
    exc_id = str(json.loads(add.stdout)["id"])
    own = hv("exceptions", "approve", exc_id, db=db, actor="bob")
    assert own.returncode == 2 and "separation of duties" in own.stderr
    ok = hv("exceptions", "approve", exc_id, db=db, actor="alice")
    assert ok.returncode == 0, ok.stderr
    hv("assess", db=db)
    why = json.loads(hv("risk", "explain", "fra1-esx-01-h01", "-o", "json", db=db).stdout)
    assert why["decision"] == "defer" and why["defer_until"] == expires
    listed = json.loads(hv("exceptions", "list", "-o", "json", db=db).stdout)
    assert listed[-1]["approved_by"] == "alice" and listed[-1]["requested_by"] == "bob"
    assert hv("exceptions", "expire", exc_id, db=db).returncode == 0
    hv("assess", db=db)
    back = json.loads(hv("risk", "explain", "fra1-esx-01-h01", "-o", "json", db=db).stdout)
    assert back["decision"] != "defer"


def test_bad_exception_input_exits_2(db: str) -> None:
    r = hv("exceptions", "add", "fra1-esx-01-h01", "CVE-XYZ", "--reason", "r", "--control", "c",
           "--expires", "2020-01-01", db=db)
    assert r.returncode == 2 and "CVE" in r.stderr and "--expires" in r.stderr


def test_policy_show_and_validate(tmp_path: Path, db: str) -> None:
    shown = json.loads(hv("policy", "show", "-o", "json", db=db).stdout)
    assert shown["sla_days"] == {"Act": 3, "Attend": 14, "Track*": 30, "Track": 90}
    assert hv("policy", "validate", str(EXAMPLES / "policy.yaml"), db=db).returncode == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("sla_days:\n  Act: 0\n  Soon: 3\n")
    r = hv("policy", "validate", str(bad), db=db)
    assert r.returncode == 2
    assert "sla_days.Act" in r.stderr and "sla_days.Soon" in r.stderr
    broken = tmp_path / "b.yaml"
    broken.write_text("sla_days: [1, 2\n")
    r = hv("policy", "validate", str(broken), db=db)
    assert r.returncode == 2 and f"{broken}:" in r.stderr
