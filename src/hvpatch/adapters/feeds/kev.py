"""CISA Known Exploited Vulnerabilities (KEV) catalog -> :class:`KevEntry` values.

Reads the official JSON (``known_exploited_vulnerabilities.json``, plain, zip or gzip) and checks
it against the published schema's required fields: a catalog that lies about its ``count`` or
carries an entry without a CVE id, dates or required action is refused whole with
:class:`FeedError`, naming the file, the entry index and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from hvpatch.adapters.feeds.reader import (
    DEFAULT_LIMITS,
    FeedLimits,
    MiB,
    feed_name,
    open_feed,
    read_capped,
)
from hvpatch.domain.advisories import KevEntry
from hvpatch.errors import FeedError

MAX_CATALOG_BYTES = 256 * MiB
_CVE_ID = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}")
_REQUIRED = (
    "cveID",
    "vendorProject",
    "product",
    "vulnerabilityName",
    "dateAdded",
    "shortDescription",
    "requiredAction",
    "dueDate",
)
_RANSOMWARE = {"Known": True, "Unknown": False}


@dataclass(frozen=True, slots=True)
class KevCatalogMeta:
    """What identifies one release of the catalog."""

    catalog_version: str
    date_released: datetime
    count: int


def catalog_meta(
    path: str | os.PathLike[str], *, limits: FeedLimits = DEFAULT_LIMITS
) -> KevCatalogMeta:
    """The catalog's version, release time and entry count (checked against its entries)."""
    return _meta(_load(path, limits), feed_name(path))


def iter_kev(
    path: str | os.PathLike[str], *, limits: FeedLimits = DEFAULT_LIMITS
) -> Iterator[KevEntry]:
    """Yield every catalog entry, in file order, after validating the whole catalog."""
    name = feed_name(path)
    catalog = _load(path, limits)
    _meta(catalog, name)
    entries = [_entry(raw, name, index) for index, raw in enumerate(catalog["vulnerabilities"])]
    yield from entries


def _load(path: str | os.PathLike[str], limits: FeedLimits) -> dict[str, Any]:
    name = feed_name(path)
    with open_feed(path, limits) as stream:
        data = read_capped(stream, name, min(MAX_CATALOG_BYTES, limits.max_bytes))
    try:
        catalog = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"{name}: invalid JSON at byte {exc.pos}: {exc.msg}") from exc
    if not isinstance(catalog, dict):
        raise FeedError(f"{name}: not a KEV catalog (expected a JSON object)")
    return catalog


def _meta(catalog: dict[str, Any], name: str) -> KevCatalogMeta:
    for key in ("catalogVersion", "dateReleased", "count", "vulnerabilities"):
        if key not in catalog:
            raise FeedError(f"{name}: not a KEV catalog: missing {key!r}")
    entries, count = catalog["vulnerabilities"], catalog["count"]
    if not isinstance(entries, list):
        raise FeedError(f"{name}: 'vulnerabilities' must be a list")
    if not isinstance(count, int) or isinstance(count, bool) or count != len(entries):
        raise FeedError(
            f"{name}: catalog declares count {count!r} but holds {len(entries)} entries"
        )
    try:
        released = datetime.fromisoformat(_string(catalog, "dateReleased"))
    except ValueError as exc:
        raise FeedError(f"{name}: dateReleased: {exc}") from exc
    return KevCatalogMeta(_string(catalog, "catalogVersion"), released, count)


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _entry(raw: Any, name: str, index: int) -> KevEntry:
    cve_id = raw.get("cveID", "id unknown") if isinstance(raw, dict) else "id unknown"
    try:
        if not isinstance(raw, dict):
            raise ValueError("entry must be a JSON object")
        missing = [key for key in _REQUIRED if key not in raw]
        if missing:
            raise ValueError(f"missing required field(s) {', '.join(missing)}")
        cve_id = _string(raw, "cveID")
        if not _CVE_ID.fullmatch(cve_id):
            raise ValueError(f"cveID {cve_id!r} is not CVE-YYYY-NNNN")
        ransomware = raw.get("knownRansomwareCampaignUse", "Unknown")
        if ransomware not in _RANSOMWARE:
            raise ValueError(
                f"knownRansomwareCampaignUse must be Known or Unknown, got {ransomware!r}"
            )
        due = _string(raw, "dueDate")
        notes = raw.get("notes") or ""
        if not isinstance(notes, str):
            raise ValueError("'notes' must be a string")
        return KevEntry(
            cve_id=cve_id,
            vendor_project=_string(raw, "vendorProject"),
            product=_string(raw, "product"),
            name=_string(raw, "vulnerabilityName"),
            date_added=date.fromisoformat(_string(raw, "dateAdded")),
            due_date=date.fromisoformat(due) if due else None,
            required_action=_string(raw, "requiredAction"),
            known_ransomware=_RANSOMWARE[ransomware],
            notes=notes,
        )
    except ValueError as exc:
        raise FeedError(f"{name}: entry #{index} ({cve_id}): {exc}") from exc
