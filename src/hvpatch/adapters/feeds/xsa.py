"""Xen Security Advisory (XSA) lists -> :class:`XenAdvisory` values.

Two shapes are read, told apart by the file name (``.yml``/``.yaml`` or ``.json``) or, failing
that, by the first character of the content:

* the Qubes OS website's ``_data/sec-xsa.yml``: a YAML list of ``{xsa: <number>, date:
  <YYYY-MM-DD>, affected: yes|no, [qsb: ...], [unused: yes]}``. It carries no CVE ids or titles,
  so ``cves=()`` and ``title=""``; ``affected`` is Qubes' own verdict and is not kept. Entries
  marked ``unused`` are numbers that were allocated but never published, and are skipped.
* the Xen Project's ``xsa.json`` (https://xenbits.xen.org/xsa/xsa.json): objects with ``xsa``
  (number or numeric string), ``title``, ``cve`` (list of CVE ids) and ``public_time``, either as
  a bare list, as ``{"xsas": [...]}``, or as the published ``[{"xsas": [...]}]``.

Advisories come out in file order. A number given twice, a missing or non-numeric ``xsa``, a bad
date or a non-CVE string in ``cve`` raises :class:`FeedError` naming the file and the entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import orjson
import yaml

from hvpatch.adapters.feeds.reader import (
    DEFAULT_LIMITS,
    FeedLimits,
    MiB,
    feed_name,
    open_feed,
    read_capped,
)
from hvpatch.domain.advisories import XenAdvisory
from hvpatch.errors import FeedError

MAX_LIST_BYTES = 16 * MiB
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # never constructs objects


def iter_xsa(
    path: str | os.PathLike[str], *, limits: FeedLimits = DEFAULT_LIMITS
) -> Iterator[XenAdvisory]:
    """Yield every advisory of a Qubes ``sec-xsa.yml`` or a Xen Project ``xsa.json`` file."""
    name = feed_name(path)
    with open_feed(path, limits) as stream:
        data = read_capped(stream, name, min(MAX_LIST_BYTES, limits.max_bytes))
    entries = _entries(_load(data, name), name)
    seen: dict[int, int] = {}
    advisories: list[XenAdvisory] = []
    for index, entry in enumerate(entries):
        try:
            advisory = _advisory(entry)
        except (ValueError, TypeError) as exc:
            raise FeedError(f"{name}: entry #{index}: {exc}") from exc
        if advisory is None:
            continue
        if advisory.number in seen:
            raise FeedError(
                f"{name}: entry #{index}: XSA-{advisory.number} already given "
                f"by entry #{seen[advisory.number]}"
            )
        seen[advisory.number] = index
        advisories.append(advisory)
    yield from advisories


def _load(data: bytes, name: str) -> Any:
    lower = name.lower()
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    as_json = lower.endswith((".json", ".json.gz", ".json.zip")) or (
        not lower.endswith((".yml", ".yaml", ".yml.gz", ".yaml.gz")) and stripped[:1] in b"[{"
    )
    if as_json:
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"{name}: invalid JSON at byte {exc.pos}: {exc.msg}") from exc
    try:
        return yaml.load(data, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise FeedError(f"{name}: invalid YAML{where}: {problem}") from exc


def _entries(document: Any, name: str) -> list[Any]:
    """The advisory objects of either shape."""
    if isinstance(document, dict) and isinstance(document.get("xsas"), list):
        return list(document["xsas"])
    if not isinstance(document, list):
        raise FeedError(f"{name}: expected a list of XSA entries")
    if document and all(isinstance(d, dict) and "xsas" in d for d in document):
        out: list[Any] = []
        for wrapper in document:
            if not isinstance(wrapper["xsas"], list):
                raise FeedError(f"{name}: 'xsas' must be a list")
            out.extend(wrapper["xsas"])
        return out
    return document


def _advisory(entry: Any) -> XenAdvisory | None:
    if not isinstance(entry, dict):
        raise ValueError("expected a mapping")
    if entry.get("unused") is True:
        return None
    number = _number(entry.get("xsa"))
    where = f"XSA-{number}"
    if "public_time" in entry or "cve" in entry or "title" in entry:
        title = entry.get("title") or ""
        if not isinstance(title, str):
            raise ValueError(f"{where}: 'title' must be a string")
        return XenAdvisory(
            number, _cves(entry.get("cve"), where), _day(entry.get("public_time"), where), title
        )
    return XenAdvisory(number, (), _day(entry.get("date"), where))


def _number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"'xsa' must be a number, got {value!r}")
    if isinstance(value, str) and value.strip().upper().removeprefix("XSA-").isdigit():
        value = int(value.strip().upper().removeprefix("XSA-"))
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"'xsa' must be a positive number, got {value!r}")
    return value


def _cves(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'cve' must be a list of CVE ids")
    out: list[str] = []
    for cve in value:
        if not isinstance(cve, str) or not _CVE.fullmatch(cve.strip().upper()):
            raise ValueError(f"{where}: {cve!r} is not a CVE id")
        if cve.strip().upper() not in out:
            out.append(cve.strip().upper())
    return tuple(out)


def _day(value: Any, where: str) -> date | None:
    """A YAML date, or the date part of ``2025-11-12`` / ``2025-11-12 12:00`` / ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DAY.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ValueError(f"{where}: invalid date {value!r}")
