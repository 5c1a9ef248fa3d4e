"""Advisory ingest and findings on SQLite and PostgreSQL, with the real bundled snapshot."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRow, VulnerabilityRow
from hvpatch.domain.software import EsxiSoftware
from hvpatch.errors import FeedFileError, InputError
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import feed_status, import_feeds
from hvpatch.services.findings import explain, list_findings, refresh_findings
from hvpatch.services.inventory import import_fleet

EXAMPLE = Path(__file__).parents[2] / "examples" / "inventory.yaml"
API = bundled_feeds_dir() / "nvd" / "api"


def _fleet(store: Store, fleet=None) -> None:
    parsed = read_inventory(EXAMPLE)
    import_fleet(store, fleet or parsed.fleet, source="t", sha256="")


def _counts(store: Store) -> dict:
    data = feed_status(store)
    data.pop("imports")
    return data


def test_bundled_import_is_idempotent(store: Store) -> None:
    first = import_feeds(store, [bundled_feeds_dir()])
    kinds = {f.kind for f in first.files}
    assert kinds == {"nvd", "kev", "epss", "osv", "csaf", "xsa", "debian-changelog"}
    status = _counts(store)
    assert status["kev"] == 1404 and status["epss"] == 1556 and status["vulnerabilities"] > 1100
    assert status["epss_score_date"].isoformat() == "2026-08-22"
    again = import_feeds(store, [bundled_feeds_dir()])
    assert again.totals()["added"] == 0 and again.totals()["changed"] == 0
    assert _counts(store) == status


def test_a_bad_file_among_good_ones_changes_nothing(store: Store, tmp_path: Path) -> None:
    import_feeds(store, [API / "CVE-2024-22252.json"])
    before = _counts(store)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(API / "CVE-2024-37085.json", mirror / "a.json")  # good, would be added
    broken = json.loads((API / "CVE-2024-21407.json").read_text())
    text = json.dumps(broken)
    (mirror / "b.json").write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(FeedFileError) as info:
        import_feeds(store, [mirror])
    assert "b.json" in str(info.value) and "nothing was imported" in str(info.value)
    assert isinstance(info.value, InputError)
    assert _counts(store) == before


def test_missing_path_is_bad_input(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FeedFileError, match="no such file"):
        import_feeds(store, [tmp_path / "nope"])


def test_findings_follow_vendor_fixed_builds(store: Store) -> None:
    _fleet(store)
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    rows = {(r["host"], r["component"]) for r in list_findings(store, cve="CVE-2024-22252")}
    # ESXi 7.0 U3c (19193900) < ESXi70U3p-23307199: affected; 8.0 U2b (23305546) is fixed
    assert ("fra1-esx-01-h01", "esxi") in rows
    assert ("fra1-esx-01-h02", "esxi") not in rows
    why = explain(store, "fra1-esx-01-h02", "CVE-2024-22252")
    verdict = why["verdicts"][0]
    assert verdict["affected"] is False and verdict["source"] == "vendor"
    assert "23305546 >= 23305545" in verdict["evidence"][0]["comparison"]


def test_backported_distro_fix_decides_for_packages(store: Store) -> None:
    _fleet(store)
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    kvm = [r for r in list_findings(store, host="ams2-kvm-01-h01")
           if r["component"] == "qemu-kvm"]
    assert kvm and all(r["source"] == "distro" for r in kvm)
    # rocky-9 host judged by AlmaLinux/Red Hat data for the same RHEL release: medium at most
    assert {r["confidence"] for r in kvm} <= {"high", "medium"}


def test_patching_a_host_closes_its_findings(store: Store) -> None:
    _fleet(store)
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    open_before = list_findings(store, host="fra1-esx-01-h01")
    assert open_before
    fleet = read_inventory(EXAMPLE).fleet
    site = fleet.sites[0]
    cluster = site.clusters[0]
    patched = dataclasses.replace(cluster.hosts[0], software=EsxiSoftware("25067014"))
    fleet = dataclasses.replace(fleet, sites=(dataclasses.replace(site, clusters=(
        dataclasses.replace(cluster, hosts=(patched, *cluster.hosts[1:])),
        *site.clusters[1:])), *fleet.sites[1:]))
    _fleet(store, fleet)
    result = refresh_findings(store)
    assert result.scope == "full"  # the inventory changed
    closed = list_findings(store, host="fra1-esx-01-h01", state="closed")
    closed_cves = {r["cve"] for r in closed}
    assert "CVE-2024-22252" in closed_cves
    assert all(r["closed_at"] is not None for r in closed)


def test_incremental_refresh_touches_only_changed_records(store: Store, tmp_path: Path) -> None:
    _fleet(store)
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    nothing = refresh_findings(store)
    assert nothing.scope == "incremental" and nothing.cves_considered == 0
    assert nothing.opened == nothing.closed == 0
    record = json.loads((API / "CVE-2024-22252.json").read_text())
    record["lastModified"] = "2026-11-01T00:00:00.000"
    record["affected"] = []  # vendor data withdrawn: NVD's update levels decide alone
    (tmp_path / "CVE-2024-22252.json").write_text(json.dumps(record))
    later = datetime.now(UTC) + timedelta(seconds=1)
    import_feeds(store, [tmp_path / "CVE-2024-22252.json"], now=later)
    delta = refresh_findings(store, now=later + timedelta(seconds=1))
    assert delta.scope == "incremental" and delta.cves_considered == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(VulnerabilityRow).where(
            VulnerabilityRow.changed_at == later)) == 1


def test_a_gzipped_feed_is_read(store: Store, tmp_path: Path) -> None:
    raw = (API / "CVE-2024-37085.json").read_bytes()
    with gzip.open(tmp_path / "one.json.gz", "wb") as f:
        f.write(raw)
    report = import_feeds(store, [tmp_path / "one.json.gz"])
    assert report.totals()["added"] == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(FindingRow)) == 0
