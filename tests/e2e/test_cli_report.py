"""``hvpatch report`` as a user runs it, on the demo's store (the demo writes a report too)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hvpatch.cli.main import app


def hv(*args: str, db: str, home: Path, cwd: Path | None = None,
       ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, object]]:
    home = tmp_path_factory.mktemp("report")
    db = f"sqlite:///{home / 'demo.db'}"
    r = hv("--db", db, "demo", "-o", "json", db=db, home=home)
    assert r.returncode == 0, r.stderr
    return db, home, json.loads(r.stdout)


def test_demo_writes_the_compliance_report(demo: tuple[str, Path, dict[str, object]]) -> None:
    _db, home, data = demo
    path = Path(str(data["report"]))
    assert path.parent == home / "hvpatch" and path.suffix == ".html"
    page = path.read_text()
    assert "KEV findings against CISA due dates" in page and "demo-rollout" in page
    assert 'src="data:image/png;base64,' in page and "demo-approver" in page


def test_each_report_in_one_format(demo: tuple[str, Path, dict[str, object]],
                                   tmp_path: Path) -> None:
    db, home, _data = demo
    out = tmp_path / "kev.csv"
    r = hv("report", "compliance", "--format", "csv", "--out", str(out), db=db, home=home)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "audit chain verified" in r.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and {"status", "host", "cve", "due"} <= set(rows[0])
    assert {x["status"] for x in rows} <= {"met", "missed", "pending", "no due date"}
    assert any(x["closed_by"] == "demo-rollout" for x in rows)
    pdf = tmp_path / "c.pdf"
    r = hv("report", "campaign", "--rollout", "demo-rollout", "-f", "pdf", "--out", str(pdf),
           db=db, home=home)
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    r = hv("report", "exceptions", "-f", "json", db=db, home=home)  # no --out: stdout
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "exceptions"
    r = hv("report", "maturity", db=db, home=home, cwd=tmp_path)  # html, default name
    assert r.returncode == 0, r.stderr
    day = datetime.now(UTC).date().isoformat()
    page = (tmp_path / f"hvpatch-maturity-{day}.html").read_text()
    assert "Product lines" in page and "esxi 7.0" in page


def test_bad_input_exits_2(demo: tuple[str, Path, dict[str, object]], tmp_path: Path) -> None:
    db, home, _data = demo
    r = hv("report", "compliance", "--format", "xml", db=db, home=home, cwd=tmp_path)
    assert r.returncode == 2
    assert "--format" in r.stderr and "'xml'" in r.stderr and "html" in r.stderr
    r = hv("report", "campaign", "--rollout", "nope", db=db, home=home, cwd=tmp_path)
    assert r.returncode == 2
    assert "no rollout named 'nope'" in r.stderr and "demo-rollout" in r.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("command", [["report"], ["report", "compliance"],
                                     ["report", "campaign"], ["report", "exceptions"],
                                     ["report", "maturity"]])
def test_help_has_an_example(command: list[str]) -> None:
    r = CliRunner().invoke(app, [*command, "--help"])
    assert r.exit_code == 0
    if len(command) > 1:
        assert "Example: hvpatch report" in r.stdout and "--format" in r.stdout
