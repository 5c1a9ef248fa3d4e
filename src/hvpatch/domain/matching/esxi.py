"""VMware's own ``affected`` data for ESXi: fixed builds per update line, preferred over NVD.

VMware (as CNA) writes ranges like ``version 8.0, lessThan ESXi80U2sb-23305545`` and
``version 8.0, lessThan ESXi80U1d-23299997``: one entry per *update line* of a major version,
each naming the first fixed build of that line. A host is judged by the entry of its own update
line; a line newer than every listed one is judged against the newest fix, an older line against
the oldest. Lines the vendor does not list (often end-of-life ones) get no verdict from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hvpatch.domain.advisories import VendorAffected
from hvpatch.domain.cpe import Cpe, compare_dotted
from hvpatch.domain.versions import EsxiRelease, esxi_releases

_FIX_ID = re.compile(r"(?i)esxi(\d)(\d)(?:u(\d+))?[a-z]*-(\d{5,9})")
_LINE = re.compile(r"^\s*(\d+)\.(\d+)")
_UPDATE = re.compile(r"update_(\d+)")


@dataclass(frozen=True, slots=True)
class EsxiFix:
    """One vendor entry: the first fixed build of an update line."""

    line: str
    update: int
    build: int
    label: str


def esxi_fixes(affected: tuple[VendorAffected, ...]) -> list[EsxiFix]:
    """Every ESXi fixed-build entry in the vendor data (duplicates across CNA/ADP removed)."""
    out: dict[tuple[str, int, int], EsxiFix] = {}
    for block in affected:
        if "esxi" not in block.product.lower():
            continue
        for status, _version, less_than, _lte, _vtype in block.versions:
            if status != "affected" or not less_than:
                continue
            m = _FIX_ID.search(less_than)
            if not m:
                continue
            line = f"{m.group(1)}.{m.group(2)}"
            fix = EsxiFix(line, int(m.group(3) or 0), int(m.group(4)), less_than.strip())
            out.setdefault((fix.line, fix.update, fix.build), fix)
    return sorted(out.values(), key=lambda f: (f.line, f.update, f.build))


def release_update(release: EsxiRelease) -> int:
    """Update number of a release: ``update_3c`` -> 3, GA or patch-only -> 0."""
    m = _UPDATE.search(release.update or "")
    return int(m.group(1)) if m else 0


def esxi_verdict(fixes: list[EsxiFix], release: EsxiRelease) -> tuple[bool, EsxiFix, str] | None:
    """(affected?, the entry used, why) for a host at ``release``; None if its line is unlisted."""
    line = ".".join(release.version.split(".")[:2])
    same_line = [f for f in fixes if f.line == line]
    if not same_line:
        return None
    update = release_update(release)
    exact = [f for f in same_line if f.update == update]
    if exact:
        fix = min(exact, key=lambda f: f.build)
        why = f"update line {line} U{update} is fixed in {fix.label}"
    elif update > max(f.update for f in same_line):
        fix = max(same_line, key=lambda f: f.build)
        why = f"no entry for {line} U{update}; newest listed fix is {fix.label}"
    else:
        fix = min(same_line, key=lambda f: f.build)
        why = f"no entry for {line} U{update}; oldest listed fix is {fix.label}"
    affected = release.build < fix.build
    op = "<" if affected else ">="
    return affected, fix, f"build {release.build} {op} {fix.build}: {why}"


_PATCH_ID = re.compile(r"^(?:esxi)?(\d)(\d)(\d)-(\d{6})\d{3}")
_PLAIN = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


def bound_build(bound: str) -> int | None:
    """The ESXi build an NVD range bound stands for, or None when it is not recognisable.

    Bounds come as bulletin ids (``esxi670-201806401-bg``: the patch release of June 2018 on
    6.7), fix ids (``ESXi80U2sb-23305545``), bare builds, or versions (``6.7``: its GA build).
    """
    b = bound.strip().lower()
    m = _PATCH_ID.match(b)
    if m:
        line, month = f"{m.group(1)}.{m.group(2)}", m.group(4)
        prefix = f"{m.group(1)}{m.group(2)}{m.group(3)}-{month}"
        builds = [r.build for r in esxi_releases(line) if (r.update or "").startswith(prefix)]
        return min(builds) if builds else None
    m = _FIX_ID.search(b)
    if m:
        return int(m.group(4))
    if b.isdigit() and len(b) >= 5:
        return int(b)
    m = _PLAIN.match(b)
    if m:
        version = f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}"
        builds = [r.build for r in esxi_releases(f"{m.group(1)}.{m.group(2)}")
                  if r.version == version]
        return min(builds) if builds else None
    return None


def _bound_key(bound: str, host_line: tuple[int, int]) -> tuple[int, ...] | None:
    """(major, minor) for a line bound such as ``6.7``; (major, minor, build) otherwise."""
    b = bound.strip().lower()
    m = _PLAIN.match(b)
    if m and m.group(3) is None:
        return int(m.group(1)), int(m.group(2))
    build = bound_build(b)
    if build is None:
        return None
    line = _PATCH_ID.match(b) or _FIX_ID.search(b) or m
    major, minor = (int(line.group(1)), int(line.group(2))) if line else host_line
    return major, minor, build


def esxi_compare(target_versions: frozenset[str], host_line: tuple[int, int],
                 host_build: int) -> Callable[[str, str], int]:
    """A range comparator for one ESXi host: its CPE version means (its line, its build).

    Build numbers interleave across lines (a 6.5 patch can carry a higher number than a 6.7
    one), so bounds compare by line first and by build within the line. A bound that names a
    line only (``6.7``) covers the whole line: ``>= 6.7`` and ``<= 6.7`` include every 6.7
    build, ``< 6.7`` none. A bare build number is taken to be on the host's own line.
    """
    host = (*host_line, host_build)

    def key(text: str) -> tuple[int, ...] | None:
        return host if text in target_versions else _bound_key(text, host_line)

    def compare(a: str, b: str) -> int:
        ka, kb = key(a), key(b)
        if ka is None or kb is None:
            return compare_dotted(a, b)
        n = min(len(ka), len(kb))
        return (ka[:n] > kb[:n]) - (ka[:n] < kb[:n])

    return compare


_LEVEL = re.compile(r"^(?:update_?|u)0*(\d+)([a-z]?)$")


def listed_levels(criteria: Iterable[Cpe], line: str) -> set[tuple[int, str]]:
    """(update number, letter) of every ESXi update level the criteria enumerate on ``line``."""
    out: set[tuple[int, str]] = set()
    for c in criteria:
        if c.product != "esxi" or c.text("version") not in (line, f"{line}.0"):
            continue
        update = c.text("update")
        m = _LEVEL.match(update or "")
        if m:
            out.add((int(m.group(1)), m.group(2)))
    return out


def gap_between_levels(release: EsxiRelease, listed: set[tuple[int, str]]) -> str | None:
    """Why a release NVD does not list is affected anyway, or None.

    NVD enumerates affected update levels and leaves out releases it never indexed (VMware's
    withdrawn 7.0 U3/U3a/U3b, for instance). A release lying between two listed levels of the
    *same* update (U3a between U3 and U3c) is affected like its neighbours; beyond the last
    listed level, or on an update NVD does not list at all, nothing is concluded.
    """
    m = _UPDATE.search(release.update or "")
    if not m:
        return None
    n = int(m.group(1))
    letter = (release.update or "")[m.end():]
    letters = sorted(x for u, x in listed if u == n)
    below = [x for x in letters if x < letter]
    above = [x for x in letters if x > letter]
    if below and above:
        return (f"NVD lists update {n}{below[-1]} and {n}{above[0]} of this line as affected "
                f"but not {n}{letter}, which lies between them")
    return None


def _level(release: EsxiRelease) -> tuple[int, str] | None:
    """(update number, letter) of an ESXi 7/8-style release (``update_3c``; GA is (0, ""))."""
    if release.update == "-":
        return 0, ""
    m = re.fullmatch(r"update_(\d+)([a-z]?)", release.update or "")
    return (int(m.group(1)), m.group(2)) if m else None


def first_release_after_levels(release: EsxiRelease,
                               listed: set[tuple[int, str]]) -> EsxiRelease | None:
    """The first non-withdrawn release of the host's line newer than every level NVD lists.

    NVD enumerates the affected update levels of a line and gives no fixed version; the first
    release after the last listed level is where the fix shipped (VMware's advisories name it).
    None when the line's levels are not update-style or no such release is in the table.
    """
    if not listed:
        return None
    last = max(listed)
    line = ".".join(release.version.split(".")[:2])
    later = [r for r in esxi_releases(line)
             if not r.withdrawn and r.build > release.build
             and (lv := _level(r)) is not None and lv > last]
    return min(later, key=lambda r: r.build) if later else None
