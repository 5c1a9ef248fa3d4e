"""Contract tests of the CISA KEV and FIRST EPSS readers, on real catalog and score files.

Fixtures in ``data/kev`` and ``data/epss`` are cut from ``../shared/data`` (see
``data/README.md``); the full files are read from ``../shared/data`` when it is present.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hvpatch.adapters.feeds.epss import iter_epss
from hvpatch.adapters.feeds.kev import KevCatalogMeta, catalog_meta, iter_kev
from hvpatch.domain.advisories import EpssScore
from hvpatch.errors import FeedError

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).parents[2].parent / "shared" / "data"
KEV_SAMPLE = DATA / "kev" / "known_exploited_vulnerabilities-sample.json"
EPSS_SAMPLE = DATA / "epss" / "epss_kev_nvd-sample.csv"
EPSS_SNAPSHOT = date(2026, 8, 22)  # score date stated in ../shared/data/epss/PROVENANCE.md


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data not present: ../shared/data/{relative}")
    return path


# --- KEV ---------------------------------------------------------------------------------------


def test_kev_entries_are_read_with_ransomware_as_bool() -> None:
    entries = {e.cve_id: e for e in iter_kev(KEV_SAMPLE)}
    assert list(entries) == ["CVE-2025-48384", "CVE-2024-37085", "CVE-2021-22005"]
    esxi = entries["CVE-2024-37085"]
    assert (esxi.vendor_project, esxi.product) == ("VMware", "ESXi")
    assert esxi.name == "VMware ESXi Authentication Bypass Vulnerability"
    assert esxi.date_added == date(2024, 7, 30)
    assert esxi.due_date == date(2024, 8, 20)
    assert esxi.known_ransomware is True
    assert entries["CVE-2025-48384"].known_ransomware is False
    assert entries["CVE-2025-48384"].notes.startswith("This vulnerability affects a common")


def test_kev_catalog_meta() -> None:
    assert catalog_meta(KEV_SAMPLE) == KevCatalogMeta(
        "2025.08.25", datetime(2025, 8, 25, 17, 4, 19, 979600, tzinfo=UTC), 3
    )


def _write_kev(tmp_path: Path, edit: Any) -> Path:
    catalog = json.loads(KEV_SAMPLE.read_bytes())
    edit(catalog)
    path = tmp_path / "kev.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["vulnerabilities"][1].pop("dueDate"), r"entry #1 \(CVE-2024-37085\).*dueDate"),
        (
            lambda c: c["vulnerabilities"][2].update(knownRansomwareCampaignUse="Maybe"),
            r"entry #2 \(CVE-2021-22005\).*Known or Unknown, got 'Maybe'",
        ),
        (
            lambda c: c["vulnerabilities"][0].update(cveID="CVE-25-1"),
            r"entry #0 \(CVE-25-1\).*not CVE-YYYY-NNNN",
        ),
        (
            lambda c: c["vulnerabilities"][0].update(dateAdded="25/08/2025"),
            r"entry #0 .*25/08/2025",
        ),
        (lambda c: c["vulnerabilities"][0].update(product=None), r"entry #0 .*'product'"),
        (lambda c: c["vulnerabilities"].append("CVE-2099-1"), "count 3 but holds 4"),
        (lambda c: c.update(count=1404), "count 1404 but holds 3"),
        (lambda c: c.pop("catalogVersion"), "missing 'catalogVersion'"),
        (lambda c: c.update(vulnerabilities={}), "must be a list"),
    ],
)
def test_kev_wrong_schema_is_refused(tmp_path: Path, edit: Any, message: str) -> None:
    path = _write_kev(tmp_path, edit)
    with pytest.raises(FeedError, match=message):
        list(iter_kev(path))


@pytest.mark.parametrize("content", [b"", b"[]", b'{"catalogVersion": ', b"\xff\xfe{}"])
def test_kev_invalid_or_truncated_json_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kev.json"
    path.write_bytes(content)
    with pytest.raises(FeedError, match=r"kev\.json"):
        list(iter_kev(path))


def test_kev_truncated_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kev.json"
    data = KEV_SAMPLE.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(FeedError, match="invalid JSON"):
        catalog_meta(path)


def test_full_kev_catalog() -> None:
    path = shared("cisa-kev/cisagov-kev-data_2025-08-25/known_exploited_vulnerabilities.json")
    meta = catalog_meta(path)
    entries = list(iter_kev(path))
    assert (meta.catalog_version, meta.count, len(entries)) == ("2025.08.25", 1404, 1404)
    assert sum(e.known_ransomware for e in entries) == 293
    ids = {e.cve_id for e in entries}
    assert {"CVE-2024-37085", "CVE-2021-22005", "CVE-2020-1040", "CVE-2008-3431"} <= ids
    assert len(ids) == len(entries)


# --- EPSS --------------------------------------------------------------------------------------


def test_column_mapped_csv_takes_the_date_from_the_caller() -> None:
    scores = list(iter_epss(EPSS_SAMPLE, EPSS_SNAPSHOT))
    assert scores[1] == EpssScore("CVE-2024-37085", 0.25952, 0.97822, EPSS_SNAPSHOT, "")
    assert [s.cve_id for s in scores] == ["CVE-2018-14634", "CVE-2024-37085", "CVE-2021-22005"]


def test_column_mapped_csv_without_a_date_has_none() -> None:
    assert {s.score_date for s in iter_epss(EPSS_SAMPLE)} == {None}


FIRST_DAILY = (
    "#model_version:v2025.03.14,score_date:2025-08-22T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2024-37085,0.25952,0.97822\n"
    "CVE-2021-22005,0.99999,0.99998\n"
)


@pytest.mark.parametrize("compress", [False, True])
def test_first_daily_file_carries_its_own_date_and_model(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("epss_scores-2025-08-22.csv" + (".gz" if compress else ""))
    data = FIRST_DAILY.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    scores = list(iter_epss(path, default_score_date=EPSS_SNAPSHOT))
    assert scores == [
        EpssScore("CVE-2024-37085", 0.25952, 0.97822, date(2025, 8, 22), "v2025.03.14"),
        EpssScore("CVE-2021-22005", 0.99999, 0.99998, date(2025, 8, 22), "v2025.03.14"),
    ]


def test_header_columns_are_found_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("Percentile,Note,CVE,Epss\n0.5,x,CVE-2024-37085,0.1\n", encoding="utf-8")
    assert list(iter_epss(path)) == [EpssScore("CVE-2024-37085", 0.1, 0.5, None, "")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("CVE-2024-37085,1.5,0.9\n", r"line 2: epss '1.5' is outside \[0, 1\]"),
        ("CVE-2024-37085,0.5,-0.1\n", r"line 2: percentile '-0.1' is outside"),
        ("CVE-2024-37085,nan,0.1\n", r"line 2: epss 'nan' is outside"),
        ("CVE-2024-37085,high,0.1\n", "line 2: could not convert"),
        ("CVE-2024-37085,0.1,0.2\nnot-a-cve,0.1,0.2\n", r"line 3: 'not-a-cve' is not a CVE id"),
        ("CVE-2024-37085,0.1\n", "line 2: 2 columns, fewer than the header's"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("cve,epss,percentile\n" + body, encoding="utf-8")
    with pytest.raises(FeedError, match=r"scores\.csv: " + message):
        list(iter_epss(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("cve,score\n", "no 'epss' column"),
        ("cve,epss,percentile,EPSS\n", "more than one 'epss' column"),
        ("", "empty file"),
        ("#model_version:v1,score_date:someday\ncve,epss,percentile\n", "bad score_date"),
    ],
)
def test_bad_headers_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FeedError, match=message):
        list(iter_epss(path))


def test_overlong_line_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_bytes(b"cve,epss,percentile\nCVE-2024-37085," + b"9" * (1 << 20) + b",0.1\n")
    with pytest.raises(FeedError, match="line 2 is longer than 65536 bytes"):
        list(iter_epss(path))


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_bytes(b"cve,epss,percentile\nCVE-2024-37085,0.1,0.2\n\xff\xfe\n")
    with pytest.raises(FeedError, match="line 3: not UTF-8"):
        list(iter_epss(path))


def test_full_column_mapped_epss_file() -> None:
    path = shared("epss/jgamblin-KEV_EPSS/epss_kev_nvd.csv")
    scores = list(iter_epss(path, EPSS_SNAPSHOT))
    assert len(scores) == 1556
    assert all(0 <= s.epss <= 1 and 0 <= s.percentile <= 1 for s in scores)
    assert {s.score_date for s in scores} == {EPSS_SNAPSHOT}
    by_id = {s.cve_id: s for s in scores}
    assert by_id["CVE-2021-22005"].epss == 0.99999
