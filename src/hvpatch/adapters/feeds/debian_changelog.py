"""Debian package changelogs -> :class:`PackageFix` rows: which version fixed which CVE.

A binary package ships its changelog (``/usr/share/doc/<pkg>/changelog.Debian.gz``); its entries
(``xen (4.17.7-0+deb12u1) bookworm-security; urgency=medium`` ... `` -- maintainer  date``) say
which CVEs and XSAs each version fixed, including backports that upstream version ranges miss.
Each entry whose text names CVE ids or XSA numbers gives one row: status fixed, ``fixed`` and
``advisory_id`` = the entry's version, ``published`` = the trailer's date, ``title`` = source,
version, distributions and the XSA numbers (``xen 4.17.7-0+deb12u1 (bookworm-security):
XSA-477, ...``). Rules, all found in the real Xen and QEMU changelogs:

* ``distro`` comes from the version (``+deb12u1``/``~deb12u1``/``~bpo12+1`` -> ``debian-12``,
  Ubuntu ``ubuntu0.22.04.1``/``~22.04.1`` -> ``ubuntu-22.04`` for known releases), else from
  the distribution (``bookworm-security`` -> ``debian-12``, ``jammy`` -> ``ubuntu-22.04``), else
  the ``distro`` argument (``unstable``, ``experimental``; ``debian`` alone means the newest
  named release).
* An ``unstable`` entry rebuilt later for the same distro as ``<version>~deb12u1`` (or
  backported as ``<version>~bpo12+1``) is fixed there at the rebuild
  (``4.17.3+10-g091466ba55-1`` -> ``...-1~deb12u1``), which sorts *before* the unstable
  version: otherwise a patched host would look unpatched.
* Text under a "Note that the following XSA are not listed" bullet, and list items saying an XSA
  "only applies to", "has patches for" the kernel or "does not apply", names advisories that
  were *not* fixed; their ids are ignored. XSA numbers count where a line starts with them.
* A line such as "CVE-2023-3019 fixed by 7.2+dfsg-7+deb12u4" credits the entry it names.
* Each CVE (and XSA) is credited to the oldest entry naming it for its distro: later mentions
  ("already fixed", "patch removed, included upstream") are not fixes.

Malformed input (text outside an entry, an entry without trailer, a bad header or version)
raises :class:`FeedError` naming the file and line. Dates that do not parse give
``published=None``; bytes that are not UTF-8 are replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime

from hvpatch.adapters.feeds.osv import RELEASE_CODENAMES, sort_cves
from hvpatch.adapters.feeds.reader import (
    DEFAULT_LIMITS,
    FeedLimits,
    MiB,
    feed_name,
    open_feed,
    read_capped,
)
from hvpatch.domain.advisories import FixStatus, PackageFix
from hvpatch.domain.versions import DebianVersion
from hvpatch.errors import FeedError, InputError

SOURCE = "debian-changelog"
MAX_CHANGELOG_BYTES = 64 * MiB
_UBUNTU_RELEASES = frozenset(d for d in RELEASE_CODENAMES.values() if d.startswith("ubuntu-"))

_HEADER = re.compile(
    r"(?P<source>[A-Za-z0-9][A-Za-z0-9.+-]*) \((?P<version>[^()\s]+)\)"
    r"(?P<dists>(?: +[A-Za-z0-9./+-]+)+) *;(?P<options>.*)"
)
_TRAILER = re.compile(r" -- (?P<who>.*?)(?:  |\t)\s*(?P<date>\S.*?)\s*")
_STOP = re.compile(r"(?:Old Changelog:|Local variables:|# ?Local variables:)", re.I)
_CVE = re.compile(r"\bCVE-[0-9]{4}-[0-9]{4,19}\b", re.I)
_XSA = re.compile(r"\bXSA-([0-9]{1,5})\b")
_XSA_LINE = re.compile(r"(?:-\s*)?XSA-[0-9]")
_NOT_LISTED = re.compile(r"\bnot listed\b|\b(?:does|do) not (?:apply|affect)\b", re.I)
_NOT_FIXED_ITEM = re.compile(
    r"\bonly applies to\b|\bha(?:s|ve) patches for\b|\b(?:does|do) not (?:apply|affect)\b"
    r"|\bwhich is not (?:included|shipped)\b|\bnot shipped by this package\b",
    re.I,
)
_FIXED_BY = re.compile(r"\bfixed (?:by|in) (?:version )?([0-9][^\s,;()]*[0-9A-Za-z+~])", re.I)
_DEBIAN_SUFFIX = re.compile(r"[+~]deb([0-9]+)(?:u[0-9]+)?|~bpo([0-9]+)")
_REBUILD = re.compile(r"~(?:deb[0-9]+u[0-9]+|bpo[0-9]+\+[0-9]+)$")
_UBUNTU_SUFFIX = re.compile(r"ubuntu[0-9.]*?\.([0-9]{2}\.[0-9]{2})|~([0-9]{2}\.[0-9]{2})(?:\.|$)")


@dataclass(slots=True)
class _Entry:
    """One changelog stanza as read, plus what the analysis credits to it."""

    source: str
    version: str
    dists: str
    line: int
    body: list[str] = field(default_factory=list)
    published: date | None = None
    closed: bool = False
    distro: str = ""
    cves: set[str] = field(default_factory=set)
    xsas: set[int] = field(default_factory=set)


def iter_debian_changelog(
    path: str | os.PathLike[str],
    package: str,
    distro: str,
    *,
    limits: FeedLimits = DEFAULT_LIMITS,
) -> Iterator[PackageFix]:
    """Yield one fixed row per changelog entry that fixes CVEs or XSAs, newest entry first.

    ``package`` is the binary package name the rows are for (the inventory's name, e.g.
    ``xen-utils-common``); ``distro`` (``debian-12``) is used for entries whose version and
    distribution do not say it. A ``distro`` without a release (``debian``) stands for the
    release that the newest entry naming one gives: the release the package was built for.
    """
    if not package or not isinstance(package, str):
        raise InputError("iter_debian_changelog: 'package' must be a non-empty package name")
    name = feed_name(path)
    with open_feed(path, limits) as stream:
        data = read_capped(stream, name, min(MAX_CHANGELOG_BYTES, limits.max_bytes))
    entries = _parse(data.decode("utf-8", errors="replace"), name)
    named = [_distro_of(e.version, e.dists) for e in entries]
    if not re.search(r"-[0-9]", distro):  # "debian": the release the package itself is from
        distro = next((d for d in named if d), distro)
    for entry, found in zip(entries, named, strict=True):
        entry.distro = found or distro
    rebuilds = _rebuilds(entries)
    versions = {e.version: e for e in entries}
    versions.update({e.version.split(":", 1)[1]: e for e in entries if ":" in e.version})
    for entry in entries:
        _credit(entry, versions)
    credited: set[tuple[str, str]] = set()
    rows: list[PackageFix] = []
    for entry in reversed(entries):  # oldest first: the first mention is the fix
        cves = {c for c in entry.cves if (entry.distro, c) not in credited}
        xsas = {x for x in entry.xsas if (entry.distro, f"XSA-{x}") not in credited}
        credited.update((entry.distro, c) for c in cves)
        credited.update((entry.distro, f"XSA-{x}") for x in xsas)
        if cves or xsas:
            rows.append(_row(entry, package, cves, xsas, rebuilds.get(entry.version)))
    yield from reversed(rows)


def _parse(text: str, name: str) -> list[_Entry]:
    entries: list[_Entry] = []
    current: _Entry | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        open_entry = current is not None and not current.closed
        if not line:
            if open_entry and current is not None:
                current.body.append("")
            continue
        if not open_entry and _STOP.match(line):
            break
        if line.startswith("#") and not open_entry:
            continue
        if line[0] not in " \t":
            if open_entry and current is not None:
                raise FeedError(
                    f"{name}: line {number}: new entry before the trailer line "
                    f"(' -- maintainer  date') of the entry at line {current.line}"
                )
            current = _header(line, name, number)
            entries.append(current)
        elif line.startswith(" -- "):
            if current is None or current.closed:
                raise FeedError(f"{name}: line {number}: trailer line outside an entry")
            match = _TRAILER.fullmatch(line[:512])  # bounded: the pattern backtracks
            current.closed = True
            current.published = _day(match.group("date")) if match else None
        elif current is None or current.closed:
            raise FeedError(f"{name}: line {number}: text outside an entry: {line.strip()[:60]!r}")
        else:
            current.body.append(line)
    if current is not None and not current.closed:
        raise FeedError(
            f"{name}: the entry at line {current.line} ({current.source} {current.version}) "
            "has no trailer line (' -- maintainer  date'); the file may be truncated"
        )
    if not entries:
        raise FeedError(f"{name}: no changelog entries found")
    return entries


def _header(line: str, name: str, number: int) -> _Entry:
    match = _HEADER.fullmatch(line)
    if match is None:
        raise FeedError(
            f"{name}: line {number}: expected an entry header "
            f"'package (version) distribution; urgency=...', got {line[:80]!r}"
        )
    version = match.group("version")
    try:
        DebianVersion.parse(version)
    except InputError as exc:
        raise FeedError(f"{name}: line {number}: bad version {version!r}: {exc}") from exc
    return _Entry(match.group("source"), version, " ".join(match.group("dists").split()), number)


def _day(text: str) -> date | None:
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _distro_of(version: str, dists: str) -> str:
    """The release a version or distribution names (``+deb12u1``, ``bookworm``), else ""."""
    if "ubuntu" not in version.lower():
        if match := _DEBIAN_SUFFIX.search(version):
            return f"debian-{match.group(1) or match.group(2)}"
    elif match := _UBUNTU_SUFFIX.search(version):
        release = f"ubuntu-{match.group(1) or match.group(2)}"
        if release in _UBUNTU_RELEASES:
            return release
    for dist in dists.split():
        if codename := RELEASE_CODENAMES.get(dist.split("-")[0].lower()):
            return codename
    return ""


def _rebuilds(entries: list[_Entry]) -> dict[str, _Entry]:
    """Unstable version -> its oldest rebuild for a release, which sorts before it.

    ``<version>~deb12u1`` (a stable rebuild) and ``<version>~bpo12+1`` (a backport) are both
    lower than ``<version>`` in dpkg order.
    """
    by_version = {e.version: e for e in entries}
    out: dict[str, _Entry] = {}
    for entry in reversed(entries):
        match = _REBUILD.search(entry.version)
        base = by_version.get(entry.version[: match.start()]) if match else None
        if (
            base is not None
            and base.distro == entry.distro
            and not _distro_of(base.version, base.dists)
        ):
            out.setdefault(base.version, entry)
    return out


def _credit(entry: _Entry, versions: dict[str, _Entry]) -> None:
    """Add the CVEs and XSAs that ``entry``'s text names as fixed to the entries they credit."""
    for item in _items(entry.body):
        if _NOT_LISTED.search(item[0]):
            continue
        for sub in _sub_items(item):
            if _NOT_FIXED_ITEM.search(" ".join(sub)):
                continue
            for line in sub:
                target = entry
                if (match := _FIXED_BY.search(line)) and match.group(1) in versions:
                    target = versions[match.group(1)]
                target.cves.update(c.upper() for c in _CVE.findall(line))
                if _XSA_LINE.match(line.strip()):
                    target.xsas.update(int(x) for x in _XSA.findall(line))


def _items(body: list[str]) -> list[list[str]]:
    """Top-level items: lines from one ``*`` (or ``[ name ]``) to the next."""
    items: list[list[str]] = [[]]
    for line in body:
        if line.lstrip().startswith(("*", "[")) and items[-1]:
            items.append([])
        if line:
            items[-1].append(line)
    return [item for item in items if item]


def _sub_items(item: list[str]) -> list[list[str]]:
    """An item's ``-`` sub-items (its first lines before any ``-`` form one too)."""
    subs: list[list[str]] = [[]]
    for line in item:
        if line.lstrip().startswith("- ") and subs[-1]:
            subs.append([])
        subs[-1].append(line)
    return subs


def _row(
    entry: _Entry, package: str, cves: set[str], xsas: set[int], rebuild: _Entry | None
) -> PackageFix:
    title = f"{entry.source} {entry.version} ({entry.dists})"
    if xsas:
        title += ": " + ", ".join(f"XSA-{x}" for x in sorted(xsas))
    fixed, published = entry.version, entry.published
    if rebuild is not None:
        fixed, published = rebuild.version, rebuild.published or entry.published
        title += f"; in {rebuild.distro} by rebuild {rebuild.version} ({rebuild.dists})"
    return PackageFix(
        source=SOURCE,
        advisory_id=entry.version,
        distro=entry.distro,
        package=package,
        scheme="deb",
        cves=sort_cves(cves),
        status=FixStatus.FIXED,
        fixed=fixed,
        published=published,
        title=title,
    )
