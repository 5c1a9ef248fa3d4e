"""``hvpatch feeds update`` end to end against a local HTTP server replaying real records."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from replay_server import NvdEmulator, ReplayServer, conditional_file

from hvpatch.services.bundled import bundled_feeds_dir

ROOT = Path(__file__).parents[2]
API = bundled_feeds_dir() / "nvd" / "api"
KEV = (Path(__file__).parents[1] / "contract" / "data" / "kev"
       / "known_exploited_vulnerabilities-sample.json").read_bytes()
EPSS = gzip.compress(b"#model_version:v2025.03.14,score_date:2025-08-22T00:00:00+0000\n"
                     b"cve,epss,percentile\nCVE-2024-37085,0.25952,0.97822\n", mtime=0)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    records = [json.loads(p.read_text()) for p in sorted(API.glob("*.json"))]
    with ReplayServer() as s:
        s.route("/nvd", NvdEmulator(records, "2026-11-29T00:00:00.000"))
        s.route("/kev.json", conditional_file(KEV, etag='"k1"', content_type="application/json"))
        s.route("/epss.csv.gz", conditional_file(EPSS, etag='"e1"'))
        yield s


def run(server: ReplayServer, db: str, mirror: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200", "NO_PROXY": "*"}
    return subprocess.run(
        [sys.executable, "-m", "hvpatch", "feeds", "update", "--mirror", str(mirror),
         "--nvd-url", server.url + "/nvd", "--kev-url", server.url + "/kev.json",
         "--epss-url", server.url + "/epss.csv.gz", "-o", "json"],
        capture_output=True, text=True, env=env, timeout=300, check=False)


def test_update_fetches_imports_and_then_only_asks_for_changes(server: ReplayServer,
                                                                tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'u.db'}"
    first = run(server, db, tmp_path / "mirror")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["fetched"]["nvd"]["records"] == 12 and data["fetched"]["nvd"]["full"] is True
    assert data["imported"]["totals"]["added"] >= 12 + 1
    assert (tmp_path / "mirror" / "nvd" / "sync-state.json").exists()
    server.clear_requests()
    second = run(server, db, tmp_path / "mirror")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["fetched"]["nvd"]["full"] is False  # incremental by lastModStartDate
    nvd_queries = [r.query for r in server.requests if r.path == "/nvd"]
    assert nvd_queries and all("lastModStartDate" in q for q in nvd_queries)
    assert again["fetched"]["kev"]["changed"] is False  # answered 304 Not Modified
    assert again["imported"]["totals"]["added"] == 0
