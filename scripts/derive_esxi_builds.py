#!/usr/bin/env python3
"""Derive ``src/hvpatch/data/esxi_builds.csv`` from the shared ESXi build tables.

Usage (from the repository root)::

    python scripts/derive_esxi_builds.py [SOURCE_DIR] [--pulled FILE] [--output FILE] [--check]

``SOURCE_DIR`` defaults to ``../shared/data/vmware-esxi-builds`` relative to the repository root;
``--pulled`` defaults to ``SOURCE_DIR/../pulled-patches/pulled_releases.csv``. With ``--check``
the script writes nothing and exits 1 if the output file differs from what it would write.

Inputs:

* ``derived/kb2143832-esxi-builds-extracted.csv``: the cell text of Broadcom KB 2143832
  ("Build numbers and versions of VMware ESXi/ESX"), one row per table row.
* ``gcoxmoz-vmware_puppetfact/esxi_build_numbers.json``: a 2018 JSON copy of the same KB, used only
  to cross-check build numbers and dates (differences are reported, nothing is taken from it).
* ``pulled_releases.csv``: the three ESXi 7.0 Update 3 / 3a / 3b builds that VMware withdrew and
  that the current KB no longer lists.

Output columns: ``build,version,name,update,release_date,available_as,withdrawn``, one row per
build number, sorted by build. See ``src/hvpatch/data/PROVENANCE.md`` for every rule applied.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "vmware-esxi-builds"
DEFAULT_OUTPUT = REPO_ROOT / "src" / "hvpatch" / "data" / "esxi_builds.csv"
KB_CSV = Path("derived") / "kb2143832-esxi-builds-extracted.csv"
GCOXMOZ_JSON = Path("gcoxmoz-vmware_puppetfact") / "esxi_build_numbers.json"
COLUMNS = ("build", "version", "name", "update", "release_date", "available_as", "withdrawn")

# Release dates of the withdrawn 7.0 U3 builds. The KB no longer lists them and the pulled-patches
# notes give no release day, so the dates come from a copy of KB 2143832 made before the
# withdrawal: the vCheck plugin "Get-ESXiVersion" (William Lam, Dario Doerflinger; "Pulled from
# https://kb.vmware.com/kb/2143832", changelog 1.3 "Updated released to September 2022"), which
# maps 18644231 -> 2021-10-05, 18825058 -> 2021-10-28, 18905247 -> 2021-11-12.
WITHDRAWN_RELEASE_DATES = {
    18644231: dt.date(2021, 10, 5),
    18825058: dt.date(2021, 10, 28),
    18905247: dt.date(2021, 11, 12),
}


@dataclass(frozen=True)
class Row:
    """One output row."""

    build: int
    version: str
    name: str
    update: str | None
    release_date: dt.date
    available_as: str
    withdrawn: bool

    def cells(self) -> list[str]:
        return [
            str(self.build),
            self.version,
            self.name,
            "" if self.update is None else self.update,
            self.release_date.isoformat(),
            self.available_as,
            "true" if self.withdrawn else "false",
        ]


def clean(text: str) -> str:
    """Unescape HTML entities, turn no-break spaces into spaces and collapse whitespace."""
    return " ".join(html.unescape(text).replace("\xa0", " ").split())


def parse_date(text: str) -> dt.date:
    """KB dates are ``YYYY/MM/DD``; one row (ESXi 6.0 Express Patch 7) uses ``MM/DD/YYYY``."""
    if m := re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", text):
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text):
        return dt.date(int(m[3]), int(m[1]), int(m[2]))
    raise ValueError(f"unrecognised date {text!r}")


def product_version(kb_version: str) -> str:
    """Three-part product version from the KB "Version" cell: 'ESXi 7.0.3 P04' -> '7.0.3'.

    6.x and older have no update digit in the product version (an ESXi 6.7 U3 host reports
    6.7.0), so 'ESXi 6.7 P08' -> '6.7.0'; 9.x cells carry four parts ('ESX 9.0.0.0100' -> '9.0.0').
    """
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", kb_version)
    if m is None:
        raise ValueError(f"no version number in {kb_version!r}")
    return f"{m[1]}.{m[2]}.{m[3] or 0}"


def nvd_update(name: str, version: str) -> str | None:
    """The NVD CPE ``update`` value for a KB release name, where the convention is known.

    Conventions as used in the NVD records under ../shared/data/nvd (``esxi:7.0:update_3c``,
    ``esxi:8.0:b``, ``esxi:6.5:650-201701001``, ``esxi:6.0:u2``, ``esxi:7.0:-`` for GA,
    ``esxi:5.0:1`` / ``esxi:4.1:2`` for old updates). ``None`` where NVD shows no convention.
    """
    major, minor = (int(p) for p in version.split(".")[:2])
    lowered = name.lower()
    if re.fullmatch(r"esxi? \d+\.\d+(?:\.0)? ga", lowered):  # GA: CPE "NA" (not applicable)
        return "-"
    if re.fullmatch(r"esx \d+\.\d+\.0\.0", lowered):  # 9.x minor release GA ("ESX 9.1.0.0")
        return "-"
    if m := re.search(r"esxi\s?(\d{3}-\d{9})$", lowered):  # 6.x / 5.5 rollup patch id
        return m[1]
    if major in (7, 8):
        if m := re.fullmatch(r"esxi \d+\.\d+ update (\d+[a-z]?)", lowered):
            return f"update_{m[1]}"
        if m := re.fullmatch(r"esxi \d+\.\d+([a-z])", lowered):  # 7.0b, 8.0a .. 8.0g
            return m[1]
        return None
    m = re.search(r"\b(?:update|u)\s?(\d+)$", lowered)
    if m is not None and (major, minor) == (6, 0):
        return f"u{m[1]}"
    if m is not None and major in (4, 5) and (major, minor) != (5, 5):
        return m[1]
    return None  # 9.x patches, 6.5/6.7/5.5 update names, 5.0/5.1/4.x "Patch N": no NVD evidence


def drop_reason(kb_version: str, name: str) -> str | None:
    """Why a KB row is left out, or None to keep it."""
    major = int(product_version(kb_version).split(".")[0])
    if major < 5 and not kb_version.startswith("ESXi") and not name.startswith("ESXi"):
        return "classic ESX 4.x (a different product, NVD vmware:esx)"
    return None


def kb_rows(path: Path) -> tuple[list[Row], list[str]]:
    """Rows derived from the extracted KB table, and a note for every row dropped."""
    rows: list[Row] = []
    notes: list[str] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            kb_version = clean(record["version"])
            name = clean(record["release_name"])
            if reason := drop_reason(kb_version, name):
                notes.append(f"dropped {name!r} ({clean(record['build_number'])}): {reason}")
                continue
            version = product_version(kb_version)
            check_update_digit(version, name)
            builds = [int(b) for b in clean(record["build_number"]).split(" / ")]
            for build in builds:
                rows.append(
                    Row(
                        build=build,
                        version=version,
                        name=name,
                        update=nvd_update(name, version),
                        release_date=parse_date(clean(record["release_date"])),
                        available_as=clean(record["available_as"]),
                        withdrawn=False,
                    )
                )
            if len(builds) > 1:
                notes.append(f"{name!r}: one row per build number {builds}")
    return rows, notes


def check_update_digit(version: str, name: str) -> None:
    """For 7.0/8.0 the update number in the name must equal the third version part."""
    m = re.fullmatch(r"ESXi [78]\.0 Update (\d+)[a-z]?", name)
    if m is not None and version.split(".")[2] != m[1]:
        raise ValueError(f"{name!r} does not match product version {version}")


def withdrawn_rows(path: Path) -> list[Row]:
    """The withdrawn ESXi builds listed in pulled_releases.csv."""
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            if record["product"] != "VMware ESXi":
                continue
            build = int(record["build_or_kb"])
            name = f"ESXi {clean(record['release'])}"
            m = re.fullmatch(r"ESXi (\d+)\.(\d+) Update (\d+)([a-z]?)", name)
            if m is None:
                raise ValueError(f"unexpected withdrawn release name {name!r}")
            rows.append(
                Row(
                    build=build,
                    version=f"{m[1]}.{m[2]}.{m[3]}",
                    name=name,
                    update=f"update_{m[3]}{m[4]}",
                    release_date=WITHDRAWN_RELEASE_DATES[build],
                    available_as="-",  # not stated in the sources
                    withdrawn=True,
                )
            )
    return rows


def cross_check(rows: list[Row], path: Path) -> list[str]:
    """Compare builds and dates with the 2018 gcoxmoz copy of the KB; report differences."""
    by_build = {row.build: row for row in rows}
    notes = []
    for entry in json.loads(path.read_text(encoding="utf-8")):
        numbers = {entry["build_number"], entry["installer_build_number"]} - {"N/A", "NA"}
        known = [by_build[int(n)] for n in numbers if n.isdigit() and int(n) in by_build]
        label = f"gcoxmoz {entry['osname']} {entry['full_version']}"
        if not known:
            if entry["osname"] != "ESX":
                notes.append(f"{label} ({'/'.join(sorted(numbers))}): not in the output")
            continue
        date = dt.date.fromisoformat(entry["release_date"])
        for row in known:
            if row.release_date != date:
                notes.append(f"{label} ({row.build}): date {date} here {row.release_date}")
    return notes


def render(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return buffer.getvalue()


def derive(source: Path, pulled: Path) -> tuple[list[Row], list[str]]:
    """All output rows sorted by build, and the notes to print."""
    rows, notes = kb_rows(source / KB_CSV)
    kb_builds = {row.build for row in rows}
    for row in withdrawn_rows(pulled):
        if row.build in kb_builds:
            raise ValueError(f"withdrawn build {row.build} is also in the KB table")
        rows.append(row)
    rows.sort(key=lambda row: row.build)
    duplicates = sorted({r.build for r in rows if sum(o.build == r.build for o in rows) > 1})
    if duplicates:
        raise ValueError(f"duplicate build numbers: {duplicates}")
    notes.extend(cross_check(rows, source / GCOXMOZ_JSON))
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--pulled", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    pulled = args.pulled or args.source.parent / "pulled-patches" / "pulled_releases.csv"
    rows, notes = derive(args.source, pulled)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    text = render(rows)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({len(rows)} builds)", file=sys.stderr)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {len(rows)} builds to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
