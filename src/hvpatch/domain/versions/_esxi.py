"""VMware ESXi builds and the bundled release table (Broadcom KB 2143832 plus withdrawn builds).

An ESXi host reports a build number (``vmware -v``: ``VMware ESXi 7.0.3 build-19193900``); the
build number alone orders ESXi releases, across update lines too (7.0 U2e, 19290878, is newer
code than 7.0 U3c, 19193900, though a lower update). :class:`EsxiBuild` is that number;
:class:`EsxiRelease` is what the KB says about it. The table is read once, lazily, from
``hvpatch/data/esxi_builds.csv`` (see ``hvpatch/data/PROVENANCE.md`` for how it was derived).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib.resources import files
from typing import ClassVar, final

from hvpatch.domain.versions._base import Version, clean_text, rejection, require_str

_KIND = "an ESXi build"
_EXPECTED = (
    "a build number like 19193900, '7.0.3-19193900' or a release name like 'ESXi 7.0 Update 3c'"
)
_MAX_BUILD = 9_999_999_999

# Accepted spellings, all matched on the lower-cased text.
_BARE = re.compile(r"(?:build-)?(?P<build>\d{1,10})")
_VERSION_BUILD = re.compile(  # 7.0.3-19193900, VMware ESXi 7.0.3 build-19193900
    r"(?:vmware\s+)?(?:esxi?\s+)?(?P<version>\d+\.\d+\.\d+)(?:-|\s+build-)(?P<build>\d{1,10})"
)
_FULL_VERSION = re.compile(  # 8.0.2-0.30.23305546 (7.x/8.x), 9.0.1.0101.24957456 (9.x)
    r"(?P<version>\d+\.\d+\.\d+)(?:-\d+\.\d+|[.-]\d{1,4})\.(?P<build>\d{5,10})"
)
_IMAGE_PROFILE = re.compile(  # ESXi-8.0U2b-23305546-standard, ESXi-7.0.0-15843807-no-tools
    r"esxi-(?P<line>\d+\.\d+)(?:\.\d+|u\d+[a-z]*|[a-z]+)?-(?P<build>\d{6,10})-(?:standard|no-tools)"
)
_BULLETIN = re.compile(  # ESXi70U3p-23307199, ESXi80U2sb-23305545 (CVE "affected" fix ids)
    r"esxi(?P<major>\d)(?P<minor>\d)(?:u\d+[a-z]*|[a-z]+)?-(?P<build>\d{6,10})"
)
_NAME_LIKE = re.compile(r"(?:vmware\s+)?(?:esxi?\s*)?\d+\.\d+|esxi?\d{3}-\d+")


@dataclass(frozen=True, slots=True)
class EsxiRelease:
    """One ESXi build as listed in VMware/Broadcom KB 2143832 (or known to be withdrawn)."""

    build: int
    #: Three-part product version the host reports: "7.0.3", "6.7.0", "9.0.1".
    version: str
    #: KB release name as printed: "ESXi 7.0 Update 3c", "ESXi650-202210001", "ESX 9.0.1.0".
    name: str
    #: NVD CPE update value: "update_3c", "b", "650-202210001", "u2", "1"; "-" for a GA
    #: release (NVD's "not applicable", as in esxi:7.0:-); None where NVD shows no convention.
    update: str | None
    release_date: dt.date
    #: "ISO", "Patch", or "-" where the source does not say.
    available_as: str
    #: True for builds VMware pulled from download (7.0 U3, U3a, U3b).
    withdrawn: bool

    @property
    def line(self) -> str:
        """The major.minor release line, e.g. "7.0"."""
        major, minor, _ = self.version.split(".")
        return f"{major}.{minor}"


def release_name_key(name: str) -> str:
    """Normalise a release name for lookup: 'ESXi 7.0 Update 3c', '7.0 U3c', '7.0U3c' -> '7.0u3c'.

    Drops a leading VMware/ESXi/ESX, spells Update as u, removes spaces and a trailing GA, and
    trailing .0 parts of a bare version ('ESX 9.1.0.0' -> '9.1', 'ESX 9.0 GA' -> '9.0').
    """
    text = " ".join(name.replace("&nbsp;", " ").replace("\xa0", " ").split()).lower()
    text = re.sub(r"^(?:vmware\s+)?(?:vsphere\s+)?(?:esxi/esx|esxi|esx)\s*", "", text)
    text = re.sub(r"update\s*", "u", text).replace(" ", "")
    text = re.sub(r"(?<=\w)ga$", "", text)
    if re.fullmatch(r"\d+(?:\.\d+)+", text):
        parts = text.split(".")
        while len(parts) > 2 and int(parts[-1]) == 0:
            parts.pop()
        text = ".".join(parts)
    return text


@dataclass(frozen=True, slots=True)
class _EsxiTable:
    by_build: dict[int, EsxiRelease]
    #: release_name_key(name) -> lowest build with that name (some KB rows list two builds).
    by_name: dict[str, int]
    ordered: tuple[EsxiRelease, ...]


def _release_from_row(row: dict[str, str]) -> EsxiRelease:
    if row["withdrawn"] not in ("true", "false"):
        raise ValueError(f"bad withdrawn flag in bundled ESXi table: {row}")
    return EsxiRelease(
        build=int(row["build"]),
        version=row["version"],
        name=row["name"],
        update=row["update"] or None,
        release_date=dt.date.fromisoformat(row["release_date"]),
        available_as=row["available_as"],
        withdrawn=row["withdrawn"] == "true",
    )


@cache
def _table() -> _EsxiTable:
    """Load the bundled table once (the only I/O in the domain: reading package data)."""
    text = (files("hvpatch") / "data" / "esxi_builds.csv").read_text(encoding="utf-8")
    releases = [_release_from_row(row) for row in csv.DictReader(io.StringIO(text))]
    by_build = {release.build: release for release in releases}
    if len(by_build) != len(releases):
        raise ValueError("bundled ESXi table lists a build number twice")
    by_name: dict[str, int] = {}
    for release in sorted(releases, key=lambda r: r.build):
        by_name.setdefault(release_name_key(release.name), release.build)
    ordered = tuple(sorted(releases, key=lambda r: r.build))
    return _EsxiTable(by_build=by_build, by_name=by_name, ordered=ordered)


def esxi_release(build: int) -> EsxiRelease | None:
    """The release with exactly this build number, or None if the table does not list it."""
    return _table().by_build.get(build)


def esxi_release_at_or_before(build: int) -> EsxiRelease | None:
    """The release a build belongs to: currently the exact match only, else None.

    Which release an unlisted build "belongs to" is not knowable from the number alone: build
    numbers interleave across update lines (7.0 U2e 19290878 > 7.0 U3c 19193900), and hot
    patches or security-only builds (8.0 U2sb 23305545) carry numbers near, not equal to,
    their release. Rather than guess, this returns a release only for a listed build.
    """
    return esxi_release(build)


def esxi_releases(line: str | None = None) -> tuple[EsxiRelease, ...]:
    """All releases sorted by build, or those of one line such as "7.0" or "8.0"."""
    ordered = _table().ordered
    if line is None:
        return ordered
    return tuple(release for release in ordered if release.line == line)


@final
@dataclass(frozen=True, slots=True, eq=False)
class EsxiBuild(Version):
    """An ESXi build number, ordered numerically. Unlisted builds are valid, just without release.

    ``str()`` gives ``"7.0.3-19193900"`` for a listed build and the bare number otherwise.
    """

    scheme: ClassVar[str] = "esxi"

    build: int
    _key: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        build = self.build
        if isinstance(build, bool) or not isinstance(build, int) or not 0 < build <= _MAX_BUILD:
            raise rejection(_KIND, build, _EXPECTED, f"build must be 1..{_MAX_BUILD}")
        object.__setattr__(self, "_key", build)

    @classmethod
    def parse(cls, text: str) -> EsxiBuild:
        """Parse a build number, version-build string or release name (cached per string).

        Accepted: ``19193900``, ``build-19193900``, ``7.0.3-19193900``,
        ``VMware ESXi 7.0.3 build-19193900``, ``8.0.2-0.30.23305546``,
        ``9.0.1.0101.24957456``, ``ESXi-8.0U2b-23305546-standard``, ``ESXi80U2sb-23305545``, and
        release names from the table (``ESXi 7.0 Update 3c``, ``7.0 U3c``, ``7.0U3c``,
        ``ESXi670-202210001``). A version or line given with a listed build must match it.
        """
        return _parse(require_str(_KIND, text, _EXPECTED))

    @property
    def release(self) -> EsxiRelease | None:
        """What the bundled KB table says about this build, or None if it is not listed."""
        return esxi_release(self.build)

    def __str__(self) -> str:
        release = self.release
        return str(self.build) if release is None else f"{release.version}-{self.build}"

    def coarse_key(self) -> int:
        """The build number itself."""
        return self.build


def _checked(text: str, build: int, version: str | None = None, line: str | None = None) -> int:
    """``build``, after checking a version or line written next to it against the table."""
    if not 0 < build <= _MAX_BUILD:
        raise rejection(_KIND, text, _EXPECTED, f"build must be 1..{_MAX_BUILD}")
    release = esxi_release(build)
    if release is not None and version is not None and version != release.version:
        reason = f"build {build} is {release.name} ({release.version}), not {version}"
        raise rejection(_KIND, text, _EXPECTED, reason)
    if release is not None and line is not None and line != release.line:
        reason = f"build {build} is {release.name} (line {release.line}), not {line}"
        raise rejection(_KIND, text, _EXPECTED, reason)
    return build


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> EsxiBuild:
    clean = clean_text(_KIND, text, _EXPECTED)
    lowered = clean.lower()
    if m := _BARE.fullmatch(lowered):
        return EsxiBuild(_checked(text, int(m["build"])))
    if m := _VERSION_BUILD.fullmatch(lowered) or _FULL_VERSION.fullmatch(lowered):
        return EsxiBuild(_checked(text, int(m["build"]), version=m["version"]))
    if m := _IMAGE_PROFILE.fullmatch(lowered):
        return EsxiBuild(_checked(text, int(m["build"]), line=m["line"]))
    if m := _BULLETIN.fullmatch(lowered):
        return EsxiBuild(_checked(text, int(m["build"]), line=f"{m['major']}.{m['minor']}"))
    build = _table().by_name.get(release_name_key(clean))
    if build is not None:
        return EsxiBuild(build)
    if _NAME_LIKE.match(lowered):
        reason = "no release of that name in the bundled KB 2143832 table"
        raise rejection(_KIND, text, _EXPECTED, reason)
    raise rejection(_KIND, text, _EXPECTED)
