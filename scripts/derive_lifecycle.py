#!/usr/bin/env python3
"""Derive ``src/hvpatch/data/lifecycle.csv`` (hypervisor product lines and their support dates).

Usage (from the repository root)::

    python scripts/derive_lifecycle.py [--shared DIR] [--output FILE] [--pulled-output FILE]
                                       [--check]

``--shared`` defaults to ``../shared/data`` relative to the repository root. The script also copies
``pulled-patches/pulled_releases.csv`` byte for byte to ``src/hvpatch/data/pulled_releases.csv``.
With ``--check`` it writes nothing and exits 1 if either bundled file differs from what it would
write. Output is deterministic: same inputs, same bytes.

Inputs (all under the shared data directory):

* ``endoflife-date/products/{vmware-esxi,windows-server,proxmox-ve,nutanix-aos}.md``: YAML front
  matter with a ``releases:`` list (``releaseCycle``, ``releaseDate``, ``eol``, ``eoas``, ...).
* ``endoflife-date/release-data/proxmox-ve.json``: cross-check of the Proxmox VE dates.
* ``endoflife-date/release-data/linux-kernel.json``: kernel lines, used only if it has cycle
  end-of-life dates (the 2026-08-22 snapshot has none, so the kernel is skipped with a note).
* ``xen-releases/SUPPORT.md-per-stable-branch/SUPPORT-stable-X.Y.md``: the ``Initial-Release``,
  ``Supported-Until`` and ``Security-Support-Until`` block of each Xen stable branch.

Output columns: ``product,line,first_release,support_end,security_end,source``; dates ISO, an empty
end date means "no end announced". Rows are sorted by product, first release, line. The mapping of
each source field to ``support_end`` / ``security_end`` is explained per product in
``src/hvpatch/data/PROVENANCE.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DATA_DIR = REPO_ROOT / "src" / "hvpatch" / "data"
DEFAULT_OUTPUT = DATA_DIR / "lifecycle.csv"
DEFAULT_PULLED_OUTPUT = DATA_DIR / "pulled_releases.csv"
PULLED_SOURCE = Path("pulled-patches") / "pulled_releases.csv"
PRODUCTS = Path("endoflife-date") / "products"
RELEASE_DATA = Path("endoflife-date") / "release-data"
XEN_SUPPORT = Path("xen-releases") / "SUPPORT.md-per-stable-branch"
COLUMNS = ("product", "line", "first_release", "support_end", "security_end", "source")


@dataclass(frozen=True)
class Line:
    """One output row: a product line and its lifecycle dates."""

    product: str
    line: str
    first_release: dt.date
    support_end: dt.date | None
    security_end: dt.date | None
    source: str

    def cells(self) -> tuple[str, ...]:
        """The CSV cells, in :data:`COLUMNS` order."""
        def iso(value: dt.date | None) -> str:
            return "" if value is None else value.isoformat()

        return (self.product, self.line, self.first_release.isoformat(), iso(self.support_end),
                iso(self.security_end), self.source)


def as_date(value: Any, where: str) -> dt.date | None:
    """A YAML/JSON date field: a date, an ISO string, or ``false`` (no end announced) -> None.

    ``true`` ("ended, date unknown") cannot be written as a date and is rejected, as is anything
    else: the script fails rather than guess.
    """
    if value is False or value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return dt.date.fromisoformat(value)
    raise ValueError(f"{where}: expected a date or false, got {value!r}")


def front_matter_releases(path: Path) -> list[dict[str, Any]]:
    """The ``releases:`` list of an endoflife.date product page (YAML between ``---`` lines)."""
    text = path.read_text(encoding="utf-8")
    parts = text.split("\n---\n", 1)
    if not text.startswith("---\n") or len(parts) != 2:
        raise ValueError(f"{path}: no YAML front matter")
    meta = yaml.safe_load(parts[0].removeprefix("---\n"))
    releases = meta.get("releases") if isinstance(meta, dict) else None
    if not isinstance(releases, list) or not releases:
        raise ValueError(f"{path}: no releases list in the front matter")
    for release in releases:
        if not isinstance(release.get("releaseCycle"), str):
            # An unquoted 6.10 would load as the float 6.1: insist on strings.
            raise ValueError(f"{path}: releaseCycle is not a string: {release!r}")
    return releases


def endoflife_lines(
    shared: Path,
    page: str,
    product: str,
    ends: Callable[[dict[str, Any], str], tuple[dt.date | None, dt.date | None]],
) -> list[Line]:
    """Rows of one endoflife.date product page; ``ends`` maps a release to (support, security)."""
    rel = PRODUCTS / f"{page}.md"
    out = []
    for release in front_matter_releases(shared / rel):
        cycle = release["releaseCycle"]
        where = f"{rel} {cycle}"
        first = as_date(release.get("releaseDate"), f"{where} releaseDate")
        if first is None:
            raise ValueError(f"{where}: no releaseDate")
        support_end, security_end = ends(release, where)
        out.append(Line(product, cycle, first, support_end, security_end, rel.as_posix()))
    return out


def esxi_ends(release: dict[str, Any], where: str) -> tuple[dt.date | None, dt.date | None]:
    """ESXi: ``eol`` (end of General Support) ends both; ``technicalGuidance`` is not used.

    VMware/Broadcom stops patches, security patches included, at the end of General Support;
    Technical Guidance is self-help only.
    """
    end = as_date(release.get("eol"), f"{where} eol")
    return end, end


def windows_ends(release: dict[str, Any], where: str) -> tuple[dt.date | None, dt.date | None]:
    """Windows Server: ``eoas`` (mainstream end) -> support, ``eol`` (extended end) -> security.

    ``eoes`` (paid Extended Security Updates) is not used: a host without an ESU subscription
    receives no security updates after the extended end.
    """
    mainstream = as_date(release.get("eoas"), f"{where} eoas")
    return mainstream, as_date(release.get("eol"), f"{where} eol")


def proxmox_ends(release: dict[str, Any], where: str) -> tuple[dt.date | None, dt.date | None]:
    """Proxmox VE: ``eol`` ends both (updates, security included, stop at a major's EOL)."""
    end = as_date(release.get("eol"), f"{where} eol")
    return end, end


def nutanix_ends(release: dict[str, Any], where: str) -> tuple[dt.date | None, dt.date | None]:
    """Nutanix AOS: ``eoas`` (End of Maintenance) ends both; ``eol`` (End of Support Life) unused.

    After End of Maintenance a release gets Troubleshooting only, no new patch releases (security
    fixes included); fixes require an upgrade to a maintained release.
    """
    end = as_date(release.get("eoas"), f"{where} eoas")
    return end, end


def proxmox_cross_check(shared: Path, lines: list[Line]) -> list[str]:
    """Compare the Proxmox VE page with release-data/proxmox-ve.json; return the differences."""
    path = shared / RELEASE_DATA / "proxmox-ve.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    notes = []
    for line in lines:
        cycle = data["releases"].get(line.line, {})
        eol = as_date(cycle.get("eol", False), f"{path.name} {line.line} eol")
        if eol != line.support_end:
            notes.append(f"proxmox-ve {line.line}: eol {line.support_end} on the product page, "
                         f"{eol} in release-data")
        first = data["versions"].get(f"{line.line}.0", {}).get("date")
        if first is not None and dt.date.fromisoformat(first) != line.first_release:
            notes.append(f"proxmox-ve {line.line}: released {line.first_release} on the product "
                         f"page, {line.line}.0 dated {first} in release-data")
    return notes


def kernel_lines(shared: Path) -> tuple[list[Line], list[str]]:
    """Linux kernel lines, only for cycles that release-data gives an end-of-life date."""
    rel = RELEASE_DATA / "linux-kernel.json"
    data = json.loads((shared / rel).read_text(encoding="utf-8"))
    cycles = data.get("releases") or {}
    dated = {name: c for name, c in cycles.items() if isinstance(c.get("eol"), str)}
    if not dated:
        return [], [f"linux-kernel skipped: {rel.as_posix()} has no cycle end-of-life dates "
                    f"({len(cycles)} cycles in 'releases'; only per-version release dates)"]
    versions = data.get("versions") or {}
    out = []
    for name, cycle in dated.items():
        dates = [v["date"] for key, v in versions.items()
                 if key == name or key.startswith(f"{name}.")]
        if not dates:
            raise ValueError(f"{rel}: no release date for kernel line {name}")
        end = as_date(cycle["eol"], f"{rel} {name} eol")
        out.append(Line("linux-kernel", name, dt.date.fromisoformat(min(dates)), end, end,
                        rel.as_posix()))
    return out, []


_XEN_FIELD = re.compile(r"^\s+(Xen-Version|Initial-Release|Supported-Until|Security-Support-Until):"
                        r"\s*(\S+)\s*$", re.MULTILINE)


def xen_lines(shared: Path) -> list[Line]:
    """Xen stable branches from the release-support block of each branch's SUPPORT.md."""
    out = []
    for path in sorted((shared / XEN_SUPPORT).glob("SUPPORT-stable-*.md")):
        rel = (XEN_SUPPORT / path.name).as_posix()
        fields = dict(_XEN_FIELD.findall(path.read_text(encoding="utf-8")))
        branch = path.stem.removeprefix("SUPPORT-stable-")
        if fields.get("Xen-Version") != branch:
            raise ValueError(f"{rel}: Xen-Version {fields.get('Xen-Version')!r} != {branch}")
        missing = {"Initial-Release", "Supported-Until", "Security-Support-Until"} - fields.keys()
        if missing:
            raise ValueError(f"{rel}: missing {sorted(missing)}")
        out.append(Line(
            "xen", branch,
            dt.date.fromisoformat(fields["Initial-Release"]),
            dt.date.fromisoformat(fields["Supported-Until"]),
            dt.date.fromisoformat(fields["Security-Support-Until"]),
            rel,
        ))
    if not out:
        raise ValueError(f"no SUPPORT-stable-*.md files in {shared / XEN_SUPPORT}")
    return out


def derive(shared: Path) -> tuple[list[Line], list[str]]:
    """All rows, sorted, and notes about what was skipped or disagreed."""
    proxmox = endoflife_lines(shared, "proxmox-ve", "proxmox-ve", proxmox_ends)
    notes = proxmox_cross_check(shared, proxmox)
    kernel, kernel_notes = kernel_lines(shared)
    notes.extend(kernel_notes)
    rows = [
        *endoflife_lines(shared, "vmware-esxi", "esxi", esxi_ends),
        *endoflife_lines(shared, "windows-server", "windows-server", windows_ends),
        *proxmox,
        *endoflife_lines(shared, "nutanix-aos", "nutanix-aos", nutanix_ends),
        *xen_lines(shared),
        *kernel,
    ]
    keys = [(row.product, row.line) for row in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("a (product, line) pair occurs twice")
    for row in rows:
        if row.support_end and row.security_end and row.security_end < row.support_end:
            raise ValueError(f"{row.product} {row.line}: security support ends before support")
    rows.sort(key=lambda row: (row.product, row.first_release, row.line))
    return rows, notes


def render(rows: list[Line]) -> str:
    """The CSV text (LF line endings, header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return buffer.getvalue()


def _stale(path: Path, expected: bytes) -> bool:
    return not path.exists() or path.read_bytes() != expected


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the two bundled files; return the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--pulled-output", type=Path, default=DEFAULT_PULLED_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    rows, notes = derive(args.shared)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    outputs = {
        args.output: render(rows).encode("utf-8"),
        args.pulled_output: (args.shared / PULLED_SOURCE).read_bytes(),
    }
    if args.check:
        stale = [path for path, content in outputs.items() if _stale(path, content)]
        for path in stale:
            print(f"{path} is out of date; rerun without --check", file=sys.stderr)
        if not stale:
            print(f"up to date ({len(rows)} product lines, pulled releases copy)", file=sys.stderr)
        return 1 if stale else 0
    for path, content in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    print(f"wrote {len(rows)} product lines to {args.output} and copied {PULLED_SOURCE} to "
          f"{args.pulled_output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
