"""Contract tests of the KEV and EPSS downloaders against a real local HTTP server (127.0.0.1).

The KEV body is the real catalog cut in ``data/kev`` (see ``data/README.md``). The EPSS body is
made here in FIRST's documented daily layout (``#model_version:...,score_date:...`` then
``cve,epss,percentile``); its rows carry the scores of the real sample in ``data/epss``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from replay_server import ReplayServer, Reply, conditional_file

from hvpatch.adapters.clock import FakeClock
from hvpatch.adapters.feeds._http import RetryPolicy
from hvpatch.adapters.feeds.download import (
    DownloadResult,
    download_epss,
    download_kev,
    meta_path,
)
from hvpatch.errors import FeedError

DATA = Path(__file__).parent / "data"
KEV_BODY = (DATA / "kev" / "known_exploited_vulnerabilities-sample.json").read_bytes()
KEV_ROUTE = "/sites/default/files/feeds/known_exploited_vulnerabilities.json"
EPSS_CURRENT = "/epss_scores-current.csv.gz"
EPSS_DATED = "/epss_scores-2025-08-22.csv.gz"
EPSS_CSV = (
    b"#model_version:v2025.03.14,score_date:2025-08-22T00:00:00+0000\n"
    b"cve,epss,percentile\n"
    b"CVE-2018-14634,0.14689,0.96398\n"
    b"CVE-2024-37085,0.25952,0.97822\n"
)
EPSS_GZ = gzip.compress(EPSS_CSV, mtime=0)
LAST_MODIFIED = "Mon, 25 Aug 2025 17:04:19 GMT"


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as s:
        yield s


def get(
    which: str, server: ReplayServer, mirror: Path, clock: FakeClock, **options: Any
) -> DownloadResult:
    async def guard(request: httpx.Request) -> None:
        assert request.url.host == "127.0.0.1", f"test tried to reach {request.url}"

    async def go() -> DownloadResult:
        async with httpx.AsyncClient(
            trust_env=False, timeout=10, event_hooks={"request": [guard]}
        ) as client:
            if which == "kev":
                return await download_kev(
                    mirror,
                    clock=clock,
                    client=client,
                    url=server.url + KEV_ROUTE,
                    rng=random.Random(3),
                    **options,
                )
            return await download_epss(
                mirror,
                clock=clock,
                client=client,
                url=server.url + EPSS_CURRENT,
                rng=random.Random(3),
                **options,
            )

    return asyncio.run(go())


def fingerprint(path: Path) -> tuple[int, int, bytes]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, path.read_bytes()


# --- KEV ------------------------------------------------------------------------------------------


def test_kev_is_stored_and_a_304_leaves_the_file_alone(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(
        KEV_ROUTE,
        conditional_file(KEV_BODY, etag='"kev-2025.08.25"', content_type="application/json"),
    )
    clock = FakeClock()

    first = get("kev", server, tmp_path, clock)

    assert first.changed and first.path == tmp_path / "kev" / "known_exploited_vulnerabilities.json"
    assert first.path.read_bytes() == KEV_BODY and first.size == len(KEV_BODY)
    assert first.etag == '"kev-2025.08.25"'
    assert "if-none-match" not in server.requests[0].headers
    before = fingerprint(first.path)

    clock.advance(86400)
    second = get("kev", server, tmp_path, clock)

    assert server.requests[1].headers["if-none-match"] == '"kev-2025.08.25"'
    assert not second.changed and second.sha256 == first.sha256
    assert fingerprint(first.path) == before  # not rewritten
    meta = json.loads(meta_path(first.path).read_text())
    assert meta["checked_at"] == second.checked_at.isoformat() != meta["fetched_at"]
    assert sorted(p.name for p in first.path.parent.iterdir()) == [
        "known_exploited_vulnerabilities.json",
        "known_exploited_vulnerabilities.json.meta.json",
    ]


def test_kev_last_modified_is_sent_back_and_a_new_catalog_replaces_the_old(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(KEV_ROUTE, conditional_file(KEV_BODY, last_modified=LAST_MODIFIED))
    clock = FakeClock()
    get("kev", server, tmp_path, clock)
    assert not get("kev", server, tmp_path, clock).changed
    assert server.requests[1].headers["if-modified-since"] == LAST_MODIFIED

    newer = json.loads(KEV_BODY)
    newer["vulnerabilities"] = newer["vulnerabilities"][:1]
    newer["count"] = 1
    body = json.dumps(newer).encode()
    server.route(KEV_ROUTE, conditional_file(body, last_modified="Tue, 26 Aug 2025 17:00:00 GMT"))

    third = get("kev", server, tmp_path, clock)

    assert third.changed and third.path.read_bytes() == body
    assert third.last_modified == "Tue, 26 Aug 2025 17:00:00 GMT"


@pytest.mark.parametrize(
    "body", [b"<html>Access Denied</html>", b'{"title": "catalog", "count": 0}', b"[]"]
)
def test_a_bad_kev_catalog_never_replaces_the_good_copy(
    server: ReplayServer, tmp_path: Path, body: bytes
) -> None:
    server.route(KEV_ROUTE, conditional_file(KEV_BODY, etag='"v1"'))
    clock = FakeClock()
    good = get("kev", server, tmp_path, clock)
    before, meta_before = fingerprint(good.path), meta_path(good.path).read_bytes()

    server.route(KEV_ROUTE, conditional_file(body, etag='"v2"'))
    with pytest.raises(FeedError, match="KEV catalog"):
        get("kev", server, tmp_path, clock)

    assert fingerprint(good.path) == before
    assert meta_path(good.path).read_bytes() == meta_before
    assert len(list(good.path.parent.iterdir())) == 2  # no temporary files left


def test_kev_over_the_size_cap_is_refused(server: ReplayServer, tmp_path: Path) -> None:
    server.route(KEV_ROUTE, conditional_file(KEV_BODY))
    with pytest.raises(FeedError, match="cap"):
        get("kev", server, tmp_path, FakeClock(), max_bytes=1000)
    assert not (tmp_path / "kev").exists()


def test_kev_503_is_retried_then_stored(server: ReplayServer, tmp_path: Path) -> None:
    server.route(KEV_ROUTE, conditional_file(KEV_BODY))
    server.fail(KEV_ROUTE, Reply(503, headers={"Retry-After": "20"}), times=2)
    clock = FakeClock()

    result = get("kev", server, tmp_path, clock)

    assert result.changed and len(server.requests) == 3 and clock.sleeps == [20.0, 20.0]


def test_kev_gives_up_after_the_last_attempt(server: ReplayServer, tmp_path: Path) -> None:
    server.fail(KEV_ROUTE, Reply(502), times=None)
    clock = FakeClock()
    with pytest.raises(FeedError, match="HTTP 502") as caught:
        get("kev", server, tmp_path, clock, retry=RetryPolicy(max_attempts=3, base_delay=1.0))
    assert KEV_ROUTE in str(caught.value) and "3 attempts" in str(caught.value)
    assert len(server.requests) == 3 and len(clock.sleeps) == 2


def test_kev_404_is_not_retried(server: ReplayServer, tmp_path: Path) -> None:
    server.fail(KEV_ROUTE, Reply(404, b"Not Found"), times=None)
    with pytest.raises(FeedError, match="HTTP 404 \\(Not Found\\); not retried"):
        get("kev", server, tmp_path, FakeClock())
    assert len(server.requests) == 1


# --- EPSS -----------------------------------------------------------------------------------------


def test_epss_follows_the_redirect_keeps_the_gzip_and_honours_the_etag(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(EPSS_CURRENT, Reply(302, headers={"Location": EPSS_DATED}))
    server.route(
        EPSS_DATED, conditional_file(EPSS_GZ, etag='"epss-0822"', content_type="application/gzip")
    )
    clock = FakeClock()

    first = get("epss", server, tmp_path, clock)

    assert first.changed and first.path == tmp_path / "epss" / "epss_scores-current.csv.gz"
    assert first.path.read_bytes() == EPSS_GZ  # kept compressed, byte for byte
    assert [r.path for r in server.requests] == [EPSS_CURRENT, EPSS_DATED]
    assert server.requests[0].headers["accept-encoding"] == "identity"
    meta = json.loads(meta_path(first.path).read_text())
    assert meta["url"].endswith(EPSS_CURRENT) and meta["final_url"].endswith(EPSS_DATED)
    before = fingerprint(first.path)

    second = get("epss", server, tmp_path, clock)

    assert not second.changed and fingerprint(first.path) == before
    assert server.requests[-1].path == EPSS_DATED
    assert server.requests[-1].headers["if-none-match"] == '"epss-0822"'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (EPSS_CSV, "not a complete gzip file"),
        (EPSS_GZ[:-12], "not a complete gzip file"),
        (gzip.compress(b"<html>maintenance</html>\n", mtime=0), "expected '#model_version'"),
    ],
    ids=["not-gzip", "truncated-gzip", "not-epss-csv"],
)
def test_a_bad_epss_file_is_refused_and_nothing_written(
    server: ReplayServer, tmp_path: Path, body: bytes, message: str
) -> None:
    server.route(EPSS_CURRENT, conditional_file(body))
    with pytest.raises(FeedError, match=message):
        get("epss", server, tmp_path, FakeClock())
    assert not (tmp_path / "epss").exists() or not any((tmp_path / "epss").iterdir())


def test_epss_plain_csv_header_is_accepted(server: ReplayServer, tmp_path: Path) -> None:
    body = gzip.compress(EPSS_CSV.split(b"\n", 1)[1], mtime=0)  # starts with "cve,"
    server.route(EPSS_CURRENT, conditional_file(body))
    assert get("epss", server, tmp_path, FakeClock()).path.read_bytes() == body


def test_epss_decompression_is_capped(server: ReplayServer, tmp_path: Path) -> None:
    bomb = gzip.compress(EPSS_CSV + b"0" * (4 * 1024 * 1024), mtime=0)
    server.route(EPSS_CURRENT, conditional_file(bomb))
    with pytest.raises(FeedError, match="decompresses to more than"):
        get("epss", server, tmp_path, FakeClock(), max_uncompressed_bytes=1024 * 1024)


def test_stored_validators_of_another_url_are_not_sent(
    server: ReplayServer, tmp_path: Path
) -> None:
    server.route(EPSS_CURRENT, conditional_file(EPSS_GZ, etag='"a"'))
    get("epss", server, tmp_path, FakeClock())
    meta = meta_path(tmp_path / "epss" / "epss_scores-current.csv.gz")
    doc = json.loads(meta.read_text())
    doc["url"] = "https://mirror.invalid/epss.csv.gz"
    meta.write_text(json.dumps(doc))

    assert get("epss", server, tmp_path, FakeClock()).changed
    assert "if-none-match" not in server.requests[-1].headers
