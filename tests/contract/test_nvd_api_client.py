"""Contract tests of the online NVD CVE API 2.0 client against a real local HTTP server.

The server (``replay_server.py``) listens on 127.0.0.1 only and replays the recorded pages in
``data/recorded`` (real NVD API 2.0 records re-enveloped as API pages; see the README there) or
answers like the API from those records. Time is a :class:`FakeClock`: every wait is recorded and
costs nothing, so the rate limiter and the back-off are asserted exactly.
"""

from __future__ import annotations

import asyncio
import json
import random
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from replay_server import (
    NVD_PATH,
    NvdEmulator,
    RecordedRequest,
    ReplayServer,
    Reply,
    pages_by_start_index,
)

from hvpatch.adapters.clock import FakeClock
from hvpatch.adapters.feeds._http import RetryPolicy
from hvpatch.adapters.feeds.nvd_api import (
    MAX_WINDOW,
    SyncProgress,
    SyncResult,
    page_path,
    plan_windows,
    state_path,
    sync_nvd,
)
from hvpatch.errors import FeedError, InputError

RECORDED = Path(__file__).parent / "data" / "recorded"
PAGES = [(RECORDED / f"nvd-cves-2.0-page-{i:02d}.json").read_bytes() for i in (0, 4, 8)]
RECORDS: list[dict[str, Any]] = [
    v["cve"] for page in PAGES for v in json.loads(page)["vulnerabilities"]
]
TIMESTAMP = "2026-11-29T12:00:00.000"
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as s:
        yield s


def local_client(clock: FakeClock, sent: list[datetime] | None = None) -> httpx.AsyncClient:
    """A client that refuses any host but 127.0.0.1 and notes the (fake) time of each send."""

    async def guard(request: httpx.Request) -> None:
        assert request.url.host == "127.0.0.1", f"test tried to reach {request.url}"
        if sent is not None:
            sent.append(clock.now())

    return httpx.AsyncClient(trust_env=False, timeout=10, event_hooks={"request": [guard]})


def sync(
    server: ReplayServer,
    mirror: Path,
    clock: FakeClock,
    *,
    api_key: str | None = None,
    sent: list[datetime] | None = None,
    **options: Any,
) -> SyncResult:
    async def go() -> SyncResult:
        async with local_client(clock, sent) as client:
            return await sync_nvd(
                mirror,
                api_key=api_key,
                clock=clock,
                client=client,
                base_url=server.url + NVD_PATH,
                rng=random.Random(7),
                **options,
            )

    return asyncio.run(go())


def start_indexes(requests: list[RecordedRequest]) -> list[int]:
    return [int(r.query["startIndex"]) for r in requests]


def state(mirror: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(state_path(mirror).read_text())
    return doc


def nvd_files(mirror: Path) -> list[str]:
    return sorted(p.name for p in (mirror / "nvd").iterdir())


# --- paging and windows ------------------------------------------------------------------------


def test_full_sync_pages_through_three_pages_and_stores_them_verbatim(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    clock = FakeClock(START)
    seen: list[SyncProgress] = []

    result = sync(server, tmp_path, clock, results_per_page=4, progress=seen.append)

    assert start_indexes(server.requests) == [0, 4, 8]
    assert all(r.query["resultsPerPage"] == "4" for r in server.requests)
    assert not any("lastModStartDate" in r.query for r in server.requests)  # full sync
    assert (result.pages_fetched, result.records, result.full, result.resumed) == (
        3,
        12,
        True,
        False,
    )
    window = result.windows[0]
    for i, page in zip((0, 4, 8), PAGES, strict=True):
        assert page_path(tmp_path, window, i).read_bytes() == page
    assert result.files_written == tuple(page_path(tmp_path, window, i) for i in (0, 4, 8))
    assert page_path(tmp_path, window, 4).name == "page-full-000004.json"
    assert [(p.start_index, p.total_results, p.records) for p in seen] == [
        (0, 12, 4),
        (4, 12, 8),
        (8, 12, 12),
    ]
    assert state(tmp_path)["run"] is None
    assert state(tmp_path)["last_completed_lastModEndDate"] == "2026-12-01T08:00:00.000+00:00"
    assert nvd_files(tmp_path) == [
        "page-full-000000.json",
        "page-full-000004.json",
        "page-full-000008.json",
        "sync-state.json",
    ]  # no temporary files left behind


def test_300_days_are_fetched_in_three_windows_of_at_most_120_days(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, NvdEmulator(RECORDS, TIMESTAMP))
    since = datetime(2025, 6, 1, tzinfo=UTC)
    until = since + timedelta(days=300)

    windows = plan_windows(since, until)
    assert [(w.start, w.end) for w in windows] == [
        (since, since + timedelta(days=120)),
        (since + timedelta(days=120), since + timedelta(days=240)),
        (since + timedelta(days=240), until),
    ]
    assert all(w.start is not None and w.end - w.start <= MAX_WINDOW for w in windows)

    result = sync(server, tmp_path, FakeClock(START), since=since, until=until)

    sent = [(r.query["lastModStartDate"], r.query["lastModEndDate"]) for r in server.requests]
    assert sent == [
        ("2025-06-01T00:00:00.000+00:00", "2025-09-29T00:00:00.000+00:00"),
        ("2025-09-29T00:00:00.000+00:00", "2026-01-27T00:00:00.000+00:00"),
        ("2026-01-27T00:00:00.000+00:00", "2026-03-28T00:00:00.000+00:00"),
    ]
    assert all(r.query["resultsPerPage"] == "2000" for r in server.requests)
    assert result.windows == tuple(windows) and not result.full
    # only the second window holds records modified then (2025-10-21 and 2025-10-28)
    second = json.loads(page_path(tmp_path, windows[1], 0).read_bytes())
    assert sorted(v["cve"]["id"] for v in second["vulnerabilities"]) == [
        "CVE-2020-1040",
        "CVE-2021-22005",
        "CVE-2023-20867",
        "CVE-2024-37085",
    ]
    assert result.records == 4 and result.pages_fetched == 3
    assert page_path(tmp_path, windows[1], 0).name == "page-20250929T000000Z-000000.json"


def test_next_sync_starts_where_the_last_one_ended(server: ReplayServer, tmp_path: Path) -> None:
    server.route(NVD_PATH, NvdEmulator(RECORDS, TIMESTAMP))
    clock = FakeClock(START)
    first = sync(server, tmp_path, clock)  # no earlier sync: full
    assert first.full and first.records == 12

    server.clear_requests()
    clock.advance(6 * 3600)
    second = sync(server, tmp_path, clock)

    assert not second.full
    (request,) = server.requests
    assert request.query["lastModStartDate"] == "2026-12-01T08:00:00.000+00:00"
    assert request.query["lastModEndDate"] == "2026-12-01T14:00:00.000+00:00"
    assert second.last_mod_end == clock.now()


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with pytest.raises(InputError, match="timezone-aware"):
        asyncio.run(sync_nvd(tmp_path, api_key=None, clock=clock, since=datetime(2025, 1, 1)))
    with pytest.raises(InputError, match="after until"):
        asyncio.run(
            sync_nvd(tmp_path, api_key=None, clock=clock, since=START, until=START - timedelta(1))
        )


# --- rate limits and the API key ---------------------------------------------------------------


def most_in_any_window(times: list[datetime], seconds: float) -> int:
    ts = sorted(t.timestamp() for t in times)
    return max(bisect_left(ts, t + seconds) - i for i, t in enumerate(ts))


@pytest.mark.parametrize(("api_key", "limit"), [(None, 5), ("0123-test-key", 50)])
def test_rate_limit_is_never_exceeded_in_any_30_s_window(
    server: ReplayServer, tmp_path: Path, api_key: str | None, limit: int
) -> None:
    server.route(NVD_PATH, NvdEmulator(RECORDS * 10, TIMESTAMP))  # 120 records, 1 per page
    clock = FakeClock(START)
    sent: list[datetime] = []

    result = sync(server, tmp_path, clock, api_key=api_key, sent=sent, results_per_page=1)

    assert result.pages_fetched == len(sent) == 120
    assert most_in_any_window(sent, 30.0) == limit  # the limit is used, never exceeded
    assert clock.sleeps, "the limiter must have waited"
    assert sent[limit - 1] == sent[0]  # a full burst first: no needless waiting
    assert (sent[limit] - sent[0]).total_seconds() >= 30.0
    assert (sent[-1] - sent[0]).total_seconds() >= (120 // limit - 1) * 30.0


@pytest.mark.parametrize("api_key", [None, "0123-test-key"])
def test_api_key_header_is_sent_only_when_given(
    server: ReplayServer, tmp_path: Path, api_key: str | None
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    sync(server, tmp_path, FakeClock(START), api_key=api_key, results_per_page=4)
    assert [r.headers.get("apikey") for r in server.requests] == [api_key] * 3
    assert all("apiKey" not in r.query for r in server.requests)


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "waited"),
    [
        (429, "7", 7.0),
        (503, format_datetime(START + timedelta(seconds=12), usegmt=True), 12.0),
        (403, "30", 30.0),
    ],
)
def test_throttling_is_retried_honouring_retry_after(
    server: ReplayServer, tmp_path: Path, status: int, retry_after: str, waited: float
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    throttled = Reply(status, headers={"Retry-After": retry_after})
    server.fail(NVD_PATH, throttled, times=1, query={"startIndex": "4"})
    clock = FakeClock(START)

    result = sync(server, tmp_path, clock, results_per_page=4)

    assert start_indexes(server.requests) == [0, 4, 4, 8]
    assert clock.sleeps == [waited]
    assert result.pages_fetched == 3 and result.records == 12


def test_a_dropped_connection_is_retried(server: ReplayServer, tmp_path: Path) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    server.fail(NVD_PATH, Reply(drop=True), times=1, query={"startIndex": "4"})
    clock = FakeClock(START)

    result = sync(server, tmp_path, clock, results_per_page=4)

    assert start_indexes(server.requests) == [0, 4, 4, 8]
    assert result.records == 12 and len(clock.sleeps) == 1


def test_gives_up_after_the_last_503_naming_url_and_status(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    server.fail(NVD_PATH, Reply(503, b"Service Unavailable"), times=None)
    policy = RetryPolicy(max_attempts=4, base_delay=2.0, max_delay=10.0)
    clock = FakeClock(START)

    with pytest.raises(FeedError) as caught:
        sync(server, tmp_path, clock, results_per_page=4, retry=policy)

    message = str(caught.value)
    assert f"{server.url}{NVD_PATH}?" in message and "startIndex=0" in message
    assert "HTTP 503" in message and "4 attempts" in message
    assert len(server.requests) == 4
    # exponential back-off with jitter in the upper half: [1, 2], [2, 4], [4, 8]
    assert len(clock.sleeps) == 3
    for n, slept in enumerate(clock.sleeps):
        assert 2.0 * 2**n / 2 <= slept <= 2.0 * 2**n
    # the jitter comes from the injected seeded generator: the same seed waits the same
    again = FakeClock(START)
    with pytest.raises(FeedError):
        sync(server, tmp_path / "again", again, results_per_page=4, retry=policy)
    assert again.sleeps == clock.sleeps
    assert nvd_files(tmp_path) == ["sync-state.json"]


def test_404_is_not_retried_and_reports_the_nvd_message(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    nvd_says = "Invalid parameter: lastModStartDate and lastModEndDate are required together"
    server.fail(NVD_PATH, Reply(404, headers={"message": nvd_says}), times=None)
    clock = FakeClock(START)

    with pytest.raises(FeedError, match="HTTP 404") as caught:
        sync(server, tmp_path, clock)

    assert nvd_says in str(caught.value)
    assert len(server.requests) == 1 and clock.sleeps == []


# --- resuming and validation ---------------------------------------------------------------------


def test_a_failed_sync_resumes_with_only_the_missing_pages(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    server.fail(NVD_PATH, Reply(503), times=None, query={"startIndex": "8"})
    clock = FakeClock(START)
    policy = RetryPolicy(max_attempts=2, base_delay=1.0)

    with pytest.raises(FeedError, match="HTTP 503"):
        sync(server, tmp_path, clock, results_per_page=4, retry=policy)
    assert nvd_files(tmp_path) == [
        "page-full-000000.json",
        "page-full-000004.json",
        "sync-state.json",
    ]
    run = state(tmp_path)["run"]
    assert (run["current_window"], run["next_start_index"]) == (0, 8)
    assert state(tmp_path)["last_completed_lastModEndDate"] is None

    server.clear_faults()
    server.clear_requests()
    clock.advance(3600)
    result = sync(server, tmp_path, clock)  # results_per_page of the stored run is kept

    assert start_indexes(server.requests) == [8]
    assert server.requests[0].query["resultsPerPage"] == "4"
    assert result.resumed and result.pages_fetched == 1 and result.records == 4
    assert result.files_written == (page_path(tmp_path, result.windows[0], 8),)
    # the run's end is the time it started, not the time it was resumed
    assert state(tmp_path)["last_completed_lastModEndDate"] == "2026-12-01T08:00:00.000+00:00"
    assert state(tmp_path)["run"] is None


def test_resume_does_not_query_completed_windows_again(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, NvdEmulator(RECORDS, TIMESTAMP))
    since = datetime(2025, 6, 1, tzinfo=UTC)
    until = since + timedelta(days=300)
    second_window = {"lastModStartDate": "2025-09-29T00:00:00.000+00:00"}
    server.fail(NVD_PATH, Reply(400, headers={"message": "boom"}), times=1, query=second_window)
    clock = FakeClock(START)

    with pytest.raises(FeedError, match="boom"):
        sync(server, tmp_path, clock, since=since, until=until)
    server.clear_requests()
    result = sync(server, tmp_path, clock)  # no bounds given: continue the stored run

    assert [r.query["lastModStartDate"][:10] for r in server.requests] == [
        "2025-09-29",
        "2026-01-27",
    ]
    assert result.resumed and result.pages_fetched == 2 and result.records == 4


def test_a_different_range_abandons_the_unfinished_run(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(NVD_PATH, NvdEmulator(RECORDS, TIMESTAMP))
    server.fail(NVD_PATH, Reply(400), times=1)
    clock = FakeClock(START)
    with pytest.raises(FeedError):
        sync(server, tmp_path, clock)

    since = datetime(2025, 10, 1, tzinfo=UTC)
    result = sync(server, tmp_path, clock, since=since, until=since + timedelta(days=30))

    assert not result.resumed and not result.full and result.records == 4


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"resultsPerPage": 4, "startIndex": 0, "totalResults": 12}',
        b'{"resultsPerPage": 4, "startIndex": 0, "totalResults": 12, "vulnerabilities": {}}',
        b'{"resultsPerPage": 1, "startIndex": 0, "totalResults": 12, "vulnerabilities": [{}]}',
        b'{"resultsPerPage": 0, "startIndex": 0, "totalResults": 12, "vulnerabilities": []}',
        b'{"resultsPerPage": 0, "startIndex": 4, "totalResults": 12, "vulnerabilities": []}',
        b"[]",
    ],
)
def test_a_malformed_page_fails_and_writes_nothing(
    server: ReplayServer, tmp_path: Path, body: bytes
) -> None:
    server.route(NVD_PATH, Reply(200, body, {"Content-Type": "application/json"}))
    with pytest.raises(FeedError, match=r"127\.0\.0\.1"):
        sync(server, tmp_path, FakeClock(START), results_per_page=4)
    assert len(server.requests) == 1  # a bad page is not retried
    assert nvd_files(tmp_path) == ["sync-state.json"]
    assert state(tmp_path)["run"]["next_start_index"] == 0


def test_a_page_over_the_size_cap_is_refused(server: ReplayServer, tmp_path: Path) -> None:
    server.route(NVD_PATH, pages_by_start_index(PAGES))
    with pytest.raises(FeedError, match="cap"):
        sync(server, tmp_path, FakeClock(START), results_per_page=4, max_page_bytes=10_000)
    assert nvd_files(tmp_path) == ["sync-state.json"]


def test_a_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    state_path(tmp_path).parent.mkdir(parents=True)
    state_path(tmp_path).write_text("{not json")
    with pytest.raises(FeedError, match="delete it"):
        asyncio.run(sync_nvd(tmp_path, api_key=None, clock=FakeClock(START)))
