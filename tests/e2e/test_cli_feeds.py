"""``hvpatch feeds`` and ``hvpatch findings`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "inventory.yaml"


def hv(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('feeds') / 'cli.db'}"
    assert hv("inventory", "import", str(EXAMPLE), db=url).returncode == 0
    r = hv("feeds", "import", "--bundled", "-o", "json", db=url)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["matching"]["opened"] > 0
    return url


def test_status_reports_what_is_loaded(db: str) -> None:
    data = json.loads(hv("feeds", "status", "-o", "json", db=db).stdout)
    assert data["kev"] == 1404 and data["vulnerabilities"] > 1100
    assert set(data["imports"]) >= {"nvd", "kev", "epss", "osv", "csaf"}
    table = hv("feeds", "status", db=db).stdout
    assert "KEV entries       1404" in table


def test_findings_list_filters(db: str) -> None:
    rows = json.loads(hv("findings", "list", "--kev", "-o", "json", "--limit", "0",
                         db=db).stdout)
    assert rows and all(r["kev"] for r in rows)
    assert {r["cve"] for r in rows} >= {"CVE-2024-37085"}
    one = json.loads(hv("findings", "list", "--host", "fra1-esx-01-h01", "-o", "json",
                        db=db).stdout)
    assert one and {r["host"] for r in one} == {"fra1-esx-01-h01"}
    bad = hv("findings", "list", "--confidence", "sure", db=db)
    assert bad.returncode == 2 and "high, medium or low" in bad.stderr


def test_explain_prints_the_evidence_chain(db: str) -> None:
    r = hv("findings", "explain", "fra1-esx-01-h01", "CVE-2024-22252", db=db)
    assert r.returncode == 0, r.stderr
    assert "AFFECTED esxi" in r.stdout
    assert "ESXi70U3p-23307199" in r.stdout and "19193900 < 23307199" in r.stdout
    gone = hv("findings", "explain", "fra1-esx-01-h01", "CVE-1999-0001", db=db)
    assert gone.returncode == 2 and "no imported feed" in gone.stderr


def test_reimport_changes_nothing_and_refresh_is_incremental(db: str) -> None:
    r = json.loads(hv("feeds", "import", "--bundled", "-o", "json", db=db).stdout)
    assert r["totals"]["added"] == r["totals"]["changed"] == 0
    assert r["matching"]["scope"] == "incremental" and r["matching"]["opened"] == 0


def test_a_malformed_feed_file_exits_2_and_names_it(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "nvdcve-2.0-2024.json"
    bad.write_text('{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id"')
    before = hv("feeds", "status", "-o", "json", db=db).stdout
    r = hv("feeds", "import", str(bad), db=db)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "nothing was imported" in r.stderr
    assert hv("feeds", "status", "-o", "json", db=db).stdout == before


def test_feeds_import_needs_a_path(db: str) -> None:
    r = hv("feeds", "import", db=db)
    assert r.returncode == 2 and "--bundled" in r.stderr
