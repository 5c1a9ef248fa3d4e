"""VMware's own ``affected`` data for ESXi: fixed builds per update line, preferred over NVD.

VMware (as CNA) writes ranges like ``version 8.0, lessThan ESXi80U2sb-23305545`` and
``version 8.0, lessThan ESXi80U1d-23299997``: one entry per *update line* of a major version,
each naming the first fixed build of that line. A host is judged by the entry of its own update
line; a line newer than every listed one is judged against the newest fix, an older line against
the oldest. Lines the vendor does not list (often end-of-life ones) get no verdict from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hvpatch.domain.advisories import VendorAffected
from hvpatch.domain.cpe import compare_dotted
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


def esxi_compare(target_version: str, host_build: int) -> Callable[[str, str], int]:
    """A range comparator for one ESXi host: its CPE version means its build number."""

    def key(text: str) -> int | None:
        return host_build if text == target_version else bound_build(text)

    def compare(a: str, b: str) -> int:
        ka, kb = key(a), key(b)
        if ka is None or kb is None:
            return compare_dotted(a, b)
        return (ka > kb) - (ka < kb)

    return compare
