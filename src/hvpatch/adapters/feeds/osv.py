"""OSV advisories of Linux distributions -> :class:`PackageFix` rows.

Reads one OSV JSON file (an object, or a list of objects) or a directory tree of them, walked in
sorted order (plain, ``.json.gz`` or ``.json.zip`` files, through
:func:`~hvpatch.adapters.feeds.reader.open_feed`). Each ``affected`` entry of a distribution
ecosystem gives one row per ``introduced``/``fixed`` pair of its ``ECOSYSTEM`` ranges:

* ``ecosystem`` ``AlmaLinux:9`` -> distro ``almalinux-9`` (``Rocky Linux:9`` -> ``rocky-9``,
  ``Red Hat:rhel_aus:8.4::appstream`` -> ``rhel-8``, ``Debian:12`` -> ``debian-12``,
  ``Ubuntu:22.04:LTS`` -> ``ubuntu-22.04``); the scheme is ``rpm`` or ``deb`` by family.
  Affected entries of other ecosystems (PyPI, npm, ...) are skipped: they name no distro package.
* ``introduced: "0"`` means "from the start" and becomes ``introduced=None``; a range that ends
  affected (``last_affected`` or no ``fixed``) gives a ``known_affected`` row without ``fixed``.
* Package names are kept as given, module streams included (AlmaLinux ``virt:rhel`` advisories
  list one range per module build, so a package may get two rows with different ``fixed``).
* CVE ids come from ``id``, ``aliases`` and ``related``, upper-cased, deduplicated and sorted.
* Withdrawn records (``withdrawn`` set) are skipped. Rows repeated within one record are dropped.

Malformed JSON or a record of the wrong shape raises :class:`FeedError` naming the file, the
record id and the field. The directory walk and JSON loading here are shared with the CSAF reader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from hvpatch.adapters.feeds.reader import (
    DEFAULT_LIMITS,
    FeedLimits,
    MiB,
    feed_name,
    open_feed,
    read_capped,
)
from hvpatch.domain.advisories import FixStatus, PackageFix
from hvpatch.errors import FeedError

SOURCE = "osv"
MAX_DOCUMENT_BYTES = 64 * MiB
JSON_SUFFIXES = (".json", ".json.gz", ".json.zip")

_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}", re.IGNORECASE)
_RELEASE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
#: OSV ecosystem name (before the first colon) -> (distro family, version scheme).
_ECOSYSTEMS: dict[str, tuple[str, str]] = {
    "almalinux": ("almalinux", "rpm"),
    "rocky linux": ("rocky", "rpm"),
    "red hat": ("rhel", "rpm"),
    "debian": ("debian", "deb"),
    "ubuntu": ("ubuntu", "deb"),
}
#: Families whose releases are named major.minor (Ubuntu); all others keep only the major.
_MINOR_RELEASE_FAMILIES = frozenset({"ubuntu"})
#: Release code names (Debian suites, Ubuntu series) -> distro.
RELEASE_CODENAMES: dict[str, str] = {
    "jessie": "debian-8",
    "stretch": "debian-9",
    "buster": "debian-10",
    "bullseye": "debian-11",
    "bookworm": "debian-12",
    "trixie": "debian-13",
    "forky": "debian-14",
    "xenial": "ubuntu-16.04",
    "bionic": "ubuntu-18.04",
    "focal": "ubuntu-20.04",
    "jammy": "ubuntu-22.04",
    "noble": "ubuntu-24.04",
    "oracular": "ubuntu-24.10",
    "plucky": "ubuntu-25.04",
    "questing": "ubuntu-25.10",
}
_FAMILY_ALIASES = {"redhat": "rhel", "alma": "almalinux", "rockylinux": "rocky", "el": "rhel"}
_ARCHES = frozenset(
    ("x86_64", "aarch64", "ppc64le", "s390x", "src", "noarch", "i686", "i386", "ppc64", "s390")
)
_VERSION_PART = re.compile(r"(?:[0-9]+:)?[0-9][0-9A-Za-z._+~^]*")
_RELEASE_PART = re.compile(r"[0-9A-Za-z._+~^]+")
RPM_FAMILIES = frozenset({"rhel", "rocky", "almalinux", "centos", "fedora", "ol", "opensuse"})
DEB_FAMILIES = frozenset({"debian", "ubuntu"})


# --- shared by the distribution feed readers -------------------------------------------------


def distro_id(family: str, release: str) -> str:
    """The inventory's distro name: ``rocky`` + ``9.4`` -> ``rocky-9``; Ubuntu keeps ``22.04``.

    Returns "" when ``release`` does not start with a number.
    """
    match = _RELEASE.match(release.strip())
    if not family or match is None:
        return ""
    parts = match.group(0).split(".")
    keep = 2 if family in _MINOR_RELEASE_FAMILIES else 1
    return f"{family}-{'.'.join(parts[:keep])}"


def scheme_of(family: str) -> str:
    """``rpm`` or ``deb`` for a distro family, "" when unknown."""
    if family in RPM_FAMILIES:
        return "rpm"
    return "deb" if family in DEB_FAMILIES else ""


def parse_package_url(purl: str) -> tuple[str, str, str, str | None, str] | None:
    """(distro, name, ``rpm``/``deb``, version, arch) of an rpm or deb purl; None for others.

    ``pkg:rpm/rocky/qemu-kvm@8.2.0-11.el9_4.6?arch=x86_64&epoch=17&distro=rocky-9.4`` ->
    (``rocky-9``, ``qemu-kvm``, ``rpm``, ``17:8.2.0-11.el9_4.6``, ``x86_64``). Without a
    ``distro`` qualifier an rpm's distro comes from its namespace and ``.elN`` release tag.
    """
    body, _, query = purl.partition("?")
    if not body.startswith(("pkg:rpm/", "pkg:deb/")):
        return None
    kind, _, rest = body[4:].partition("/")
    location, _, version = rest.partition("@")
    namespace, _, name = location.rpartition("/")
    quals = {k: v[0] for k, v in parse_qs(query.partition("#")[0]).items()}
    version = unquote(version)
    if kind == "rpm" and quals.get("epoch") and ":" not in version:
        version = f"{quals['epoch']}:{version}"
    distro = ""
    if quals.get("distro"):
        family, _, release = quals["distro"].lower().partition("-")
        distro = distro_id(_FAMILY_ALIASES.get(family, family), release)
        distro = distro or RELEASE_CODENAMES.get(family, "")
    if not distro and kind == "rpm" and (m := re.search(r"\.el(\d+)", version)):
        family = _FAMILY_ALIASES.get(namespace.lower(), namespace.lower())
        distro = distro_id(family, m.group(1)) if family in RPM_FAMILIES else ""
    return distro, unquote(name), kind, version or None, quals.get("arch", "")


def split_nevra(text: str) -> tuple[str, str, str] | None:
    """``qemu-kvm-17:8.2.0-11.el9_4.x86_64`` -> (``qemu-kvm``, ``17:8.2.0-11.el9_4``, arch).

    The arch suffix is optional; None when ``text`` is not name-[epoch:]version-release.
    """
    base, arch = text, ""
    head, dot, tail = text.rpartition(".")
    if dot and tail in _ARCHES:
        base, arch = head, tail
    parts = base.rsplit("-", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    name, version, release = parts
    if not _VERSION_PART.fullmatch(version) or not _RELEASE_PART.fullmatch(release):
        return None
    return name, f"{version}-{release}", arch


def sort_cves(cves: set[str]) -> tuple[str, ...]:
    """CVE ids in numeric order (``CVE-2023-5088`` before ``CVE-2023-42467``)."""

    def key(cve: str) -> tuple[int, int]:
        _, year, number = cve.split("-")
        return int(year), int(number)

    return tuple(sorted(cves, key=key))


def iter_json_paths(path: str | os.PathLike[str]) -> Iterator[Path]:
    """``path`` itself if it is a file; else every JSON file under it, in sorted order.

    Hidden entries are skipped and symbolic links to directories are not followed.
    """
    root = Path(path)
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise FeedError(f"{feed_name(path)}: no such file or directory")

    def fail(exc: OSError) -> None:
        raise FeedError(f"{feed_name(path)}: cannot list {exc.filename}: {exc.strerror}") from exc

    for folder, dirs, files in os.walk(root, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            if not file.startswith(".") and file.lower().endswith(JSON_SUFFIXES):
                yield Path(folder) / file


def load_json(
    path: str | os.PathLike[str], limits: FeedLimits, max_bytes: int = MAX_DOCUMENT_BYTES
) -> Any:
    """Read and parse one (possibly compressed) JSON document under a size cap."""
    name = feed_name(path)
    with open_feed(path, limits) as stream:
        data = read_capped(stream, name, min(max_bytes, limits.max_bytes))
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"{name}: invalid JSON at byte {exc.pos}: {exc.msg}") from exc


def parse_day(text: object, where: str) -> date | None:
    """The date of an ISO 8601 date or date-time string (``2024-04-30T00:00:00Z``)."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ValueError(f"{where}: expected a date string, got {type(text).__name__}")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text).date()
    except ValueError as exc:
        raise ValueError(f"{where}: invalid date {text[:40]!r}") from exc


# --- OSV --------------------------------------------------------------------------------------


def iter_osv(
    path: str | os.PathLike[str], *, limits: FeedLimits = DEFAULT_LIMITS
) -> Iterator[PackageFix]:
    """Yield the package rows of every OSV record in a file or a directory tree."""
    for file in iter_json_paths(path):
        name = feed_name(file)
        document = load_json(file, limits)
        records = document if isinstance(document, list) else [document]
        for index, record in enumerate(records):
            yield from _record_rows(record, name, index)


def _record_rows(record: Any, name: str, index: int) -> list[PackageFix]:
    if not isinstance(record, dict):
        raise FeedError(f"{name}: record #{index}: expected a JSON object")
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        raise FeedError(f"{name}: record #{index}: 'id' must be a non-empty string")
    try:
        return _rows(record, rid)
    except (ValueError, TypeError) as exc:
        raise FeedError(f"{name}: {rid}: {exc}") from exc


def _rows(record: dict[str, Any], rid: str) -> list[PackageFix]:
    if record.get("withdrawn"):
        return []
    cves = sort_cves(_cve_ids(record, rid))
    published = parse_day(record.get("published"), "published")
    title = _text(record, "summary") or _text(record, "details").split("\n", 1)[0]
    url = _advisory_url(record.get("references"), rid)
    rows: dict[PackageFix, None] = {}
    for i, affected in enumerate(_list(record, "affected")):
        where = f"affected[{i}]"
        if not isinstance(affected, dict):
            raise ValueError(f"{where}: expected an object")
        package = affected.get("package")
        if not isinstance(package, dict):
            raise ValueError(f"{where}.package: expected an object")
        ecosystem, pkg_name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(pkg_name, str) or not pkg_name:
            raise ValueError(f"{where}.package: 'ecosystem' and 'name' must be strings")
        distro, scheme = _distro(ecosystem)
        for j, rng in enumerate(_list(affected, "ranges", where)):
            for status, introduced, fixed in _range_spans(rng, f"{where}.ranges[{j}]"):
                if not distro:
                    continue
                row = PackageFix(
                    source=SOURCE,
                    advisory_id=rid,
                    distro=distro,
                    package=pkg_name,
                    scheme=scheme,
                    cves=cves,
                    status=status,
                    fixed=fixed,
                    introduced=introduced,
                    published=published,
                    title=title,
                    url=url,
                )
                rows.setdefault(row)
    return list(rows)


def _distro(ecosystem: str) -> tuple[str, str]:
    """``AlmaLinux:9`` -> (``almalinux-9``, ``rpm``); ("", "") for non-distro ecosystems."""
    head, _, rest = ecosystem.partition(":")
    known = _ECOSYSTEMS.get(head.strip().lower())
    if known is None:
        return "", ""
    family, scheme = known
    # The release is the first numeric field: "9", "22.04:LTS", "Pro:22.04:LTS", "rhel_aus:8.4".
    for field in re.split(r"[:_]", rest):
        if _RELEASE.match(field.strip()):
            return distro_id(family, field), scheme
    return "", ""


def _range_spans(rng: Any, where: str) -> Iterator[tuple[FixStatus, str | None, str | None]]:
    """(status, introduced, fixed) for each span of an ``ECOSYSTEM`` range, in event order."""
    if not isinstance(rng, dict):
        raise ValueError(f"{where}: expected an object")
    if rng.get("type") != "ECOSYSTEM":
        return  # SEMVER and GIT ranges do not speak in distro package versions
    open_span = False
    introduced: str | None = None
    for k, event in enumerate(_list(rng, "events", where)):
        if not isinstance(event, dict) or len(event) != 1:
            raise ValueError(f"{where}.events[{k}]: expected an object with one key")
        ((kind, value),) = event.items()
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}.events[{k}].{kind}: expected a non-empty string")
        if kind == "introduced":
            open_span, introduced = True, None if value == "0" else value
        elif kind == "fixed" and open_span:
            open_span = False
            yield FixStatus.FIXED, introduced, value
        elif kind == "last_affected" and open_span:
            open_span = False
            yield FixStatus.KNOWN_AFFECTED, introduced, None
        elif kind not in ("fixed", "last_affected", "limit"):
            raise ValueError(f"{where}.events[{k}]: unknown event {kind!r}")
    if open_span:
        yield FixStatus.KNOWN_AFFECTED, introduced, None


def _cve_ids(record: dict[str, Any], rid: str) -> set[str]:
    found = {rid.upper()} if _CVE.fullmatch(rid) else set()
    for key in ("aliases", "related"):
        for k, alias in enumerate(_list(record, key)):
            if not isinstance(alias, str):
                raise ValueError(f"{key}[{k}]: expected a string")
            if _CVE.fullmatch(alias):
                found.add(alias.upper())
    return found


def _advisory_url(references: Any, rid: str) -> str:
    """The ``ADVISORY`` reference naming the record (``ALSA-2024-2135``), else the first one."""
    if not isinstance(references, list):
        return ""
    urls = [
        r["url"]
        for r in references
        if isinstance(r, dict) and r.get("type") == "ADVISORY" and isinstance(r.get("url"), str)
    ]
    slug = rid.replace(":", "-")
    return next((u for u in urls if rid in u or slug in u), urls[0] if urls else "")


def _list(obj: dict[str, Any], key: str, where: str = "") -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where + '.' if where else ''}{key}: expected a list")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value.strip()
