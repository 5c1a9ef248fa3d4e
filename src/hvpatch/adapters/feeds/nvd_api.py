"""A resumable mirror of the NVD CVE API 2.0, fetched page by page into files.

:func:`sync_nvd` pages through ``/rest/json/cves/2.0`` with ``startIndex``/``resultsPerPage``
and writes every page, exactly as received, to ``<mirror>/nvd/page-<window>-<startIndex>.json``.
With no earlier sync and no ``since`` it is a full sync (no date filter); otherwise it asks for
the records modified in ``[since, until]``, split into windows of at most 120 days (the API's
limit), with ``lastModStartDate``/``lastModEndDate`` in ISO-8601 with an offset.

NVD's published rate limits are kept with a sliding window (5 requests in any 30 s without an API
key, 50 with one); errors are retried by :func:`hvpatch.adapters.feeds._http.fetch`.

Nothing is lost, nothing half-done: a page is validated before it is written, each file is
written atomically, and ``<mirror>/nvd/sync-state.json`` records the run in progress (its
windows, the current one and the next ``startIndex``) and the ``lastModEndDate`` of the last
completed sync. A sync that stopped (error, kill) continues where it stopped on the next call
and never fetches a page it already wrote; a page written in the instant between the page file
and the state file being renamed is the one exception, fetched once more.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from hvpatch.adapters.feeds._http import (
    DEFAULT_RETRY,
    RateLimit,
    RetryPolicy,
    SlidingWindowLimiter,
    atomic_write_bytes,
    default_client,
    fetch,
)
from hvpatch.errors import FeedError, InputError
from hvpatch.ports.clock import Clock

NVD_API_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
MAX_RESULTS_PER_PAGE = 2000
MAX_WINDOW = timedelta(days=120)
RATE_WITHOUT_KEY = RateLimit(requests=5, per_seconds=30.0)
RATE_WITH_KEY = RateLimit(requests=50, per_seconds=30.0)
DEFAULT_MAX_PAGE_BYTES = 256 * 1024 * 1024
STATE_FORMAT = "hvpatch-nvd-sync-state"
_ENVELOPE_INTS = ("resultsPerPage", "startIndex", "totalResults")


@dataclass(frozen=True, slots=True)
class SyncWindow:
    """One query range of lastModified dates; ``start`` None is the full (unfiltered) listing."""

    start: datetime | None
    end: datetime

    @property
    def key(self) -> str:
        """The window's name in page file names: its UTC start, or ``full``."""
        return (
            "full" if self.start is None else self.start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        )

    def params(self) -> dict[str, str]:
        """The query parameters selecting this window (none for the full listing)."""
        if self.start is None:
            return {}
        return {
            "lastModStartDate": nvd_datetime(self.start),
            "lastModEndDate": nvd_datetime(self.end),
        }


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Reported after every page written."""

    window_index: int
    window_count: int
    window: SyncWindow
    start_index: int
    total_results: int
    pages_fetched: int
    records: int
    path: Path


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one call of :func:`sync_nvd` did (counts cover this call, not a resumed earlier one)."""

    pages_fetched: int
    records: int
    windows: tuple[SyncWindow, ...]
    resumed: bool
    files_written: tuple[Path, ...]
    full: bool
    last_mod_end: datetime


@dataclass(slots=True)
class _Run:
    """The sync in progress, as kept in the state file."""

    windows: list[SyncWindow]
    since: datetime | None
    until: datetime
    results_per_page: int
    window_index: int = 0
    next_start_index: int = 0


def nvd_datetime(value: datetime) -> str:
    """A datetime as the NVD API wants it: ISO-8601, milliseconds, explicit offset (UTC)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def plan_windows(
    since: datetime, until: datetime, max_window: timedelta = MAX_WINDOW
) -> list[SyncWindow]:
    """Split ``[since, until]`` into consecutive windows of at most ``max_window``.

    Neighbouring windows share their boundary instant, so a record modified exactly then is
    fetched twice rather than never.
    """
    windows: list[SyncWindow] = []
    start = since
    while start < until:
        end = min(start + max_window, until)
        windows.append(SyncWindow(start, end))
        start = end
    return windows


def page_path(mirror: Path, window: SyncWindow, start_index: int) -> Path:
    """Where the page of ``window`` starting at ``start_index`` is stored."""
    return mirror / "nvd" / f"page-{window.key}-{start_index:06d}.json"


def state_path(mirror: Path) -> Path:
    """The sync state file of a mirror."""
    return mirror / "nvd" / "sync-state.json"


# --- state file ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else nvd_datetime(value)


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"datetime without offset: {value}")
    return parsed.astimezone(UTC)


def _load_state(path: Path) -> tuple[datetime | None, _Run | None]:
    """(lastModEndDate of the last completed sync, the run in progress)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise FeedError(f"cannot read {path}: {exc}") from exc
    try:
        doc = orjson.loads(raw)
        if doc.get("format") != STATE_FORMAT:
            raise ValueError("not an hvpatch NVD sync state")
        last_end = _parse_dt(doc.get("last_completed_lastModEndDate"))
        run_doc = doc.get("run")
        if run_doc is None:
            return last_end, None
        windows = [
            SyncWindow(_parse_dt(w["start"]), _require(_parse_dt(w["end"])))
            for w in run_doc["windows"]
        ]
        run = _Run(
            windows=windows,
            window_index=int(run_doc["current_window"]),
            next_start_index=int(run_doc["next_start_index"]),
            results_per_page=int(run_doc["results_per_page"]),
            since=_parse_dt(run_doc["since"]),
            until=_require(_parse_dt(run_doc["until"])),
        )
        if not 0 <= run.window_index <= len(windows) or run.next_start_index < 0:
            raise ValueError("window or startIndex out of range")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FeedError(f"{path}: unreadable sync state ({exc}); delete it to sync afresh") from exc
    return last_end, run


def _require(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError("missing datetime")
    return value


def _save_state(path: Path, last_end: datetime | None, run: _Run | None) -> None:
    doc: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": 1,
        "last_completed_lastModEndDate": _iso(last_end),
        "run": None,
    }
    if run is not None:
        windows = [{"start": _iso(w.start), "end": _iso(w.end)} for w in run.windows]
        doc["run"] = {
            "since": _iso(run.since),
            "until": _iso(run.until),
            "results_per_page": run.results_per_page,
            "windows": windows,
            "current_window": run.window_index,
            "current_window_range": (
                windows[run.window_index] if run.window_index < len(windows) else None
            ),
            "next_start_index": run.next_start_index,
        }
    atomic_write_bytes(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


# --- one page -----------------------------------------------------------------------------------


def _check_page(content: bytes, url: str, start_index: int) -> tuple[int, int]:
    """Minimal validation of an API page; (totalResults, records on this page)."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"{url}: answer is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise FeedError(f"{url}: answer is not a JSON object")
    for key in _ENVELOPE_INTS:
        if not isinstance(doc.get(key), int) or isinstance(doc.get(key), bool) or doc[key] < 0:
            raise FeedError(f"{url}: envelope field {key!r} missing or not a count")
    vulns = doc.get("vulnerabilities")
    if not isinstance(vulns, list):
        raise FeedError(f"{url}: no 'vulnerabilities' list in the answer")
    for i, item in enumerate(vulns):
        if not isinstance(item, dict) or not isinstance(item.get("cve"), dict):
            raise FeedError(f"{url}: vulnerabilities[{i}] has no 'cve' object")
    if doc["startIndex"] != start_index:
        raise FeedError(f"{url}: asked for startIndex {start_index}, got {doc['startIndex']}")
    total: int = doc["totalResults"]
    if not vulns and start_index < total:
        raise FeedError(f"{url}: empty page at startIndex {start_index} of {total} results")
    return total, len(vulns)


def _validate_and_store(content: bytes, url: str, start_index: int, path: Path) -> tuple[int, int]:
    counts = _check_page(content, url, start_index)
    atomic_write_bytes(path, content)
    return counts


# --- the sync -----------------------------------------------------------------------------------


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InputError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return None if value is None else value.astimezone(UTC)


def _new_run(
    since: datetime | None,
    until: datetime | None,
    last_end: datetime | None,
    clock: Clock,
    per_page: int,
) -> _Run:
    start = since if since is not None else last_end
    if start is None:
        if until is not None:
            raise InputError(
                "'until' needs 'since' or an earlier sync; a full sync has no end date"
            )
        now = clock.now().astimezone(UTC)
        return _Run([SyncWindow(None, now)], since=None, until=now, results_per_page=per_page)
    end = until if until is not None else clock.now().astimezone(UTC)
    if start > end:
        raise InputError(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    return _Run(plan_windows(start, end), since=start, until=end, results_per_page=per_page)


def _resumable(run: _Run, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or since == run.since) and (until is None or until == run.until)


async def sync_nvd(
    mirror: Path,
    *,
    api_key: str | None,
    clock: Clock,
    since: datetime | None = None,
    until: datetime | None = None,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[SyncProgress], None] | None = None,
    base_url: str = NVD_API_URL,
    results_per_page: int = MAX_RESULTS_PER_PAGE,
    retry: RetryPolicy = DEFAULT_RETRY,
    rng: random.Random | None = None,
    rate_limit: RateLimit | None = None,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> SyncResult:
    """Bring the NVD mirror under ``mirror/nvd`` up to date; resume an unfinished run first.

    ``since``/``until`` (timezone-aware) choose the lastModified range; without ``since`` the
    range starts at the end of the last completed sync, or, with none, a full sync is made.
    An unfinished run is resumed when the given bounds (if any) equal its own; otherwise it is
    abandoned (its pages stay) and a new run starts. The client, when given, is not closed.
    Raises :class:`FeedError` on fetch, validation or write failures (the state then points at
    the page that failed) and :class:`InputError` on bad arguments.
    """
    since, until = _aware("since", since), _aware("until", until)
    if not 1 <= results_per_page <= MAX_RESULTS_PER_PAGE:
        raise InputError(
            f"results_per_page must be 1..{MAX_RESULTS_PER_PAGE}, got {results_per_page}"
        )
    state_file = state_path(mirror)
    last_end, run = _load_state(state_file)
    resumed = run is not None and _resumable(run, since, until)
    if run is None or not resumed:
        run = _new_run(since, until, last_end, clock, results_per_page)
        _save_state(state_file, last_end, run)

    limiter = SlidingWindowLimiter(
        rate_limit or (RATE_WITH_KEY if api_key else RATE_WITHOUT_KEY), clock
    )
    headers = {"apiKey": api_key} if api_key else {}
    rng = rng or random.Random()
    own_client = client is None
    http = client or default_client()
    written: list[Path] = []
    records = 0
    try:
        while run.window_index < len(run.windows):
            window_index, start_index = run.window_index, run.next_start_index
            window = run.windows[window_index]
            params = {
                **window.params(),
                "resultsPerPage": str(run.results_per_page),
                "startIndex": str(start_index),
            }
            answer = await fetch(
                http, base_url, clock=clock, rng=rng, max_bytes=max_page_bytes, policy=retry,
                params=params, headers=headers, before_attempt=limiter.acquire,
            )  # fmt: skip
            path = page_path(mirror, window, start_index)
            total, count = await asyncio.to_thread(
                _validate_and_store, answer.content, answer.url, start_index, path
            )
            written.append(path)
            records += count
            run.next_start_index = start_index + count
            if run.next_start_index >= total:  # window complete
                run.window_index, run.next_start_index = window_index + 1, 0
            _save_state(state_file, last_end, run)
            if progress is not None:
                progress(SyncProgress(
                    window_index, len(run.windows), window, start_index, total,
                    len(written), records, path,
                ))  # fmt: skip
        _save_state(state_file, run.until, None)
    finally:
        if own_client:
            await http.aclose()
    return SyncResult(
        pages_fetched=len(written),
        records=records,
        windows=tuple(run.windows),
        resumed=resumed,
        files_written=tuple(written),
        full=run.since is None,
        last_mod_end=run.until,
    )
