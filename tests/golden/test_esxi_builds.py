"""Golden tests of the bundled ESXi build table (``hvpatch/data/esxi_builds.csv``).

The table is derived from Broadcom KB 2143832 by ``scripts/derive_esxi_builds.py``; these tests
pin what a user relies on: every row is usable, release names resolve to the KB's builds, the
withdrawn 7.0 U3 builds are flagged, dates behave as the KB says, the update values mirror NVD's
CPEs, and the file is exactly what the script derives from ``../shared/data`` (when present).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import itertools
import re
import sys
from collections import defaultdict
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest

from hvpatch.domain.versions import EsxiBuild, EsxiRelease, esxi_release, esxi_releases
from hvpatch.domain.versions._esxi import release_name_key

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
COLUMNS = ["build", "version", "name", "update", "release_date", "available_as", "withdrawn"]


def bundled_rows() -> list[dict[str, str]]:
    text = (files("hvpatch") / "data" / "esxi_builds.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == COLUMNS
    return list(reader)


ROWS = bundled_rows()


def test_row_count() -> None:
    # 285 KB rows - 29 classic-ESX 4.x rows + 11 second build numbers of two-build rows
    # + 3 withdrawn 7.0 U3 builds.
    assert len(ROWS) == 270


def test_builds_are_unique_and_the_file_is_sorted_by_build() -> None:
    builds = [int(row["build"]) for row in ROWS]
    assert len(set(builds)) == len(builds)
    assert builds == sorted(builds)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row["build"])
def test_every_row_parses_and_round_trips(row: dict[str, str]) -> None:
    build = int(row["build"])
    parsed = EsxiBuild.parse(row["build"])
    assert parsed.build == build
    assert str(parsed) == f"{row['version']}-{build}"
    assert EsxiBuild.parse(str(parsed)) == parsed
    assert EsxiBuild.parse(f"VMware ESXi {row['version']} build-{build}") == parsed
    release = parsed.release
    assert release == EsxiRelease(
        build=build,
        version=row["version"],
        name=row["name"],
        update=row["update"] or None,
        release_date=dt.date.fromisoformat(row["release_date"]),
        available_as=row["available_as"],
        withdrawn=row["withdrawn"] == "true",
    )


@pytest.mark.parametrize("release", esxi_releases(), ids=lambda r: str(r.build))
def test_fields_are_well_formed(release: EsxiRelease) -> None:
    assert re.fullmatch(r"[4-9]\.[0-7]\.[0-3]", release.version)
    assert release.line == release.version.rsplit(".", 1)[0]
    assert release.name == " ".join(release.name.split())
    assert "&nbsp;" not in release.name and "\xa0" not in release.name
    assert re.fullmatch(r"ESXi?(/ESX)? ?\S.*", release.name)
    assert release.available_as in {"ISO", "Patch", "-"}
    assert dt.date(2011, 1, 1) <= release.release_date <= dt.date(2026, 12, 31)
    assert release.update is None or re.fullmatch(
        r"-|update_\d+[a-z]?|[a-g]|u\d|\d|\d{3}-\d{9}", release.update
    )


def test_only_7_0_ga_and_the_withdrawn_builds_lack_an_availability() -> None:
    unknown = {r.build for r in esxi_releases() if r.available_as == "-"}
    assert unknown == {15843807, 18644231, 18825058, 18905247}


def test_exactly_the_three_pulled_builds_are_withdrawn() -> None:
    withdrawn = [r for r in esxi_releases() if r.withdrawn]
    assert [(r.build, r.name) for r in withdrawn] == [
        (18644231, "ESXi 7.0 Update 3"),
        (18825058, "ESXi 7.0 Update 3a"),
        (18905247, "ESXi 7.0 Update 3b"),
    ]
    replacement = esxi_release(19193900)
    assert replacement is not None and not replacement.withdrawn


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("ESXi 8.0 Update 2b", 23305546),
        ("ESXi 8.0 Update 3", 24022510),
        ("ESXi 8.0 Update 3b", 24280767),
        ("ESXi 8.0 Update 3k", 25595708),
        ("ESXi 8.0 GA", 20513097),
        ("ESXi 8.0g", 25191479),
        ("ESXi 7.0 GA", 15843807),
        ("ESXi 7.0 Update 3c", 19193900),
        ("ESXi 7.0 Update 3w", 24784741),
        ("ESXi 7.0 Update 2e", 19290878),
        ("ESX 9.0 GA", 24755229),
        ("ESX 9.0.2.0", 25148076),
        ("ESX 9.1.0.0200", 25557999),
        ("ESXi 6.7 GA", 8169922),
        ("ESXi 6.7 U3", 14320388),
        ("ESXi670-202210001", 20497097),
        ("ESXi 6.5 GA", 4564106),
        ("ESXi650-202210001", 20502893),
        ("ESXi 6.0 GA", 2494585),
        ("ESXi 5.5 GA", 1331820),
        ("ESXi/ESX 4.1 Patch 11", 1682698),
    ],
)
def test_kb_release_names_resolve_to_their_builds(name: str, build: int) -> None:
    parsed = EsxiBuild.parse(name)
    assert parsed.build == build
    assert parsed.release is not None and parsed.release.name == name


def test_every_name_resolves_to_its_lowest_build_and_no_two_names_collide() -> None:
    builds_by_name: dict[str, list[int]] = defaultdict(list)
    for release in esxi_releases():
        builds_by_name[release.name].append(release.build)
    names_by_key: dict[str, set[str]] = defaultdict(set)
    for name, builds in builds_by_name.items():
        assert EsxiBuild.parse(name).build == min(builds)
        names_by_key[release_name_key(name)].add(name)
    assert {k: v for k, v in names_by_key.items() if len(v) > 1} == {}


def test_two_build_kb_rows_share_their_release() -> None:
    a, b = esxi_release(5146843), esxi_release(5146846)
    assert a is not None and b is not None
    assert (a.name, a.release_date, a.update) == (b.name, b.release_date, b.update)
    assert a.update == "650-201703001"


def test_release_dates_never_decrease_within_an_update_line() -> None:
    """Sorted by build, dates rise within each three-part version (7.0.3, 8.0.2, 6.7.0, ...)."""
    by_version: dict[str, list[EsxiRelease]] = defaultdict(list)
    for release in esxi_releases():
        by_version[release.version].append(release)
    for releases in by_version.values():
        for older, newer in itertools.pairwise(releases):
            assert older.release_date <= newer.release_date, (older, newer)


def test_release_date_inversions_within_a_major_line_are_the_known_ones() -> None:
    """Across update lines of one major line, a higher build can be older: only these three,
    all in 8.0 where patches for 8.0 GA / U1 / U2 shipped after the next update's build."""
    inversions = []
    for line in sorted({r.line for r in esxi_releases()}):
        for older, newer in itertools.pairwise(esxi_releases(line)):
            if newer.release_date < older.release_date:
                inversions.append((older.name, newer.name))
    assert inversions == [
        ("ESXi 8.0 Update 1d", "ESXi 8.0 Update 2b"),
        ("ESXi 8.0d", "ESXi 8.0 Update 3b"),
        ("ESXi 8.0e", "ESXi 8.0 Update 2d"),
    ]


# --- against the shared source data (skipped when ../shared/data is not available) ---------

needs_shared = pytest.mark.skipif(
    not (SHARED / "vmware-esxi-builds").is_dir(), reason="../shared/data is not available"
)


def _derive_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "derive_esxi_builds", REPO / "scripts" / "derive_esxi_builds.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_bundled_table_is_exactly_what_the_script_derives() -> None:
    script = _derive_script()
    source = SHARED / "vmware-esxi-builds"
    rows, _notes = script.derive(source, SHARED / "pulled-patches" / "pulled_releases.csv")
    bundled = (files("hvpatch") / "data" / "esxi_builds.csv").read_text(encoding="utf-8")
    assert script.render(rows) == bundled


@needs_shared
def test_every_kb_build_is_in_the_table_unless_classic_esx() -> None:
    kb = SHARED / "vmware-esxi-builds" / "derived" / "kb2143832-esxi-builds-extracted.csv"
    with kb.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 285
    for record in records:
        classic_esx = record["version"].startswith("ESX 4.")
        for build in record["build_number"].split(" / "):
            release = esxi_release(int(build))
            if classic_esx:
                continue  # some classic ESX builds equal an ESXi build of the same patch
            assert release is not None, record
            assert release.name == " ".join(record["release_name"].split())


@needs_shared
def test_nvd_update_values_for_7_0_and_8_0_are_all_in_the_table() -> None:
    """Every update value NVD uses in esxi:7.0:* / esxi:8.0:* CPEs names a release here."""
    pattern = re.compile(r"cpe:2\.3:o:vmware:esxi:([78]\.0):([^:\"]+)")
    seen: set[tuple[str, str]] = set()
    for path in (SHARED / "nvd").rglob("*.json"):
        seen.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    assert ("7.0", "update_3c") in seen  # the data is really there
    ours = {(r.line, r.update) for r in esxi_releases() if r.update}
    missing = {pair for pair in seen if pair[1] not in {"*", "beta"}} - ours
    assert missing == set()
