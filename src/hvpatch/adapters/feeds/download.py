"""Downloaders of the CISA KEV catalog and the FIRST EPSS daily scores into the mirror folder.

Each download is a conditional GET: the ``ETag`` and ``Last-Modified`` of the stored copy are
kept next to it (``<file>.meta.json``) and sent back as ``If-None-Match``/``If-Modified-Since``;
a ``304 Not Modified`` leaves the file untouched. A new body is size-capped, validated (KEV: a
JSON object with a ``vulnerabilities`` list; EPSS: a gzip file that decompresses in full, within
a cap, to text starting with ``#model_version`` or ``cve,``) and only then written atomically, so a
bad download never replaces a good copy. Retries and back-off are those of the NVD client.

The EPSS default is FIRST's "current" file, served by Empirical Security for FIRST; it redirects
to the dated ``epss_scores-YYYY-MM-DD.csv.gz`` (redirects are followed).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from hvpatch.adapters.feeds._http import (
    DEFAULT_RETRY,
    RetryPolicy,
    atomic_write_bytes,
    default_client,
    fetch,
)
from hvpatch.errors import FeedError
from hvpatch.ports.clock import Clock

KEV_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
EPSS_URL = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
KEV_RELATIVE_PATH = Path("kev") / "known_exploited_vulnerabilities.json"
EPSS_RELATIVE_PATH = Path("epss") / "epss_scores-current.csv.gz"
MiB = 1024 * 1024
DEFAULT_MAX_KEV_BYTES = 64 * MiB
DEFAULT_MAX_EPSS_BYTES = 64 * MiB
DEFAULT_MAX_EPSS_UNCOMPRESSED_BYTES = 1024 * MiB
_EPSS_STARTS = (b"#model_version", b"cve,")


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """The outcome of one download: where the file is and whether it changed."""

    path: Path
    url: str
    changed: bool
    size: int
    sha256: str
    etag: str | None
    last_modified: str | None
    checked_at: datetime


def meta_path(path: Path) -> Path:
    """The file holding the validators (ETag, Last-Modified) of a downloaded file."""
    return path.with_name(path.name + ".meta.json")


def _load_meta(path: Path, url: str) -> dict[str, Any] | None:
    """The stored validators, if the file and its metadata exist and belong to ``url``."""
    try:
        meta = orjson.loads(meta_path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None  # no or unreadable metadata: download unconditionally
    if not isinstance(meta, dict) or meta.get("url") != url or not path.is_file():
        return None
    return meta


def _conditional_headers(meta: dict[str, Any] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if meta is None:
        return headers
    if isinstance(meta.get("etag"), str):
        headers["If-None-Match"] = meta["etag"]
    if isinstance(meta.get("last_modified"), str):
        headers["If-Modified-Since"] = meta["last_modified"]
    return headers


def check_kev(content: bytes, source: str) -> None:
    """Refuse anything but a JSON object with a ``vulnerabilities`` list."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"{source}: KEV catalog is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        raise FeedError(f"{source}: KEV catalog has no 'vulnerabilities' list")


def make_epss_check(max_uncompressed: int) -> Callable[[bytes, str], None]:
    """A validator of EPSS ``.csv.gz`` bodies that decompresses at most ``max_uncompressed``."""

    def check_epss(content: bytes, source: str) -> None:
        head = b""
        size = 0
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(content)) as gz:
                while chunk := gz.read(MiB):
                    if not head:
                        head = chunk[:64]
                    size += len(chunk)
                    if size > max_uncompressed:
                        limit = f"more than {max_uncompressed} bytes"
                        raise FeedError(f"{source}: EPSS file decompresses to {limit}")
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise FeedError(f"{source}: EPSS file is not a complete gzip file ({exc})") from exc
        if not head.lstrip(b"\xef\xbb\xbf").startswith(_EPSS_STARTS):
            raise FeedError(
                f"{source}: EPSS file starts with {head[:20]!r}, "
                "expected '#model_version' or 'cve,'"
            )

    return check_epss


def _store(
    path: Path, content: bytes, meta: dict[str, Any], check: Callable[[bytes, str], None]
) -> None:
    check(content, str(meta["url"]))
    atomic_write_bytes(path, content)
    atomic_write_bytes(meta_path(path), orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")


async def _download(
    mirror: Path,
    relative: Path,
    *,
    url: str,
    clock: Clock,
    client: httpx.AsyncClient | None,
    retry: RetryPolicy,
    rng: random.Random | None,
    max_bytes: int,
    check: Callable[[bytes, str], None],
    raw: bool,
) -> DownloadResult:
    path = mirror / relative
    old = _load_meta(path, url)
    headers = _conditional_headers(old)
    if raw:
        headers["Accept-Encoding"] = "identity"
    own_client = client is None
    http = client or default_client()
    try:
        answer = await fetch(
            http,
            url,
            clock=clock,
            rng=rng or random.Random(),
            max_bytes=max_bytes,
            policy=retry,
            headers=headers,
            raw=raw,
            accept_not_modified=old is not None,
        )
    finally:
        if own_client:
            await http.aclose()
    checked_at = clock.now().astimezone(UTC)
    if answer.status == 304 and old is not None:
        old["checked_at"] = checked_at.isoformat()
        await asyncio.to_thread(
            atomic_write_bytes,
            meta_path(path),
            orjson.dumps(old, option=orjson.OPT_INDENT_2) + b"\n",
        )
        return DownloadResult(
            path=path,
            url=url,
            changed=False,
            size=int(old.get("size", path.stat().st_size)),
            sha256=str(old.get("sha256", "")),
            etag=old.get("etag"),
            last_modified=old.get("last_modified"),
            checked_at=checked_at,
        )
    meta: dict[str, Any] = {
        "url": url,
        "final_url": answer.url,
        "etag": answer.headers.get("etag"),
        "last_modified": answer.headers.get("last-modified"),
        "size": len(answer.content),
        "sha256": hashlib.sha256(answer.content).hexdigest(),
        "fetched_at": checked_at.isoformat(),
        "checked_at": checked_at.isoformat(),
    }
    await asyncio.to_thread(_store, path, answer.content, meta, check)
    return DownloadResult(
        path=path,
        url=url,
        changed=True,
        size=meta["size"],
        sha256=meta["sha256"],
        etag=meta["etag"],
        last_modified=meta["last_modified"],
        checked_at=checked_at,
    )


async def download_kev(
    mirror: Path,
    *,
    clock: Clock,
    client: httpx.AsyncClient | None = None,
    url: str = KEV_URL,
    retry: RetryPolicy = DEFAULT_RETRY,
    rng: random.Random | None = None,
    max_bytes: int = DEFAULT_MAX_KEV_BYTES,
) -> DownloadResult:
    """Fetch the CISA KEV catalog into ``<mirror>/kev/`` unless the stored copy is current."""
    return await _download(
        mirror,
        KEV_RELATIVE_PATH,
        url=url,
        clock=clock,
        client=client,
        retry=retry,
        rng=rng,
        max_bytes=max_bytes,
        check=check_kev,
        raw=False,
    )


async def download_epss(
    mirror: Path,
    *,
    clock: Clock,
    client: httpx.AsyncClient | None = None,
    url: str = EPSS_URL,
    retry: RetryPolicy = DEFAULT_RETRY,
    rng: random.Random | None = None,
    max_bytes: int = DEFAULT_MAX_EPSS_BYTES,
    max_uncompressed_bytes: int = DEFAULT_MAX_EPSS_UNCOMPRESSED_BYTES,
) -> DownloadResult:
    """Fetch FIRST's EPSS daily scores (``.csv.gz``, kept compressed) into ``<mirror>/epss/``."""
    return await _download(
        mirror,
        EPSS_RELATIVE_PATH,
        url=url,
        clock=clock,
        client=client,
        retry=retry,
        rng=rng,
        max_bytes=max_bytes,
        check=make_epss_check(max_uncompressed_bytes),
        raw=True,
    )
