"""Shared plumbing of the online feed clients: retries, rate limiting and atomic files.

* :func:`fetch` sends one GET with a bounded number of attempts. It retries on 403, 429, 5xx and
  transport errors with exponential back-off and jitter (from an injectable ``random.Random``),
  honours ``Retry-After`` (seconds or an HTTP date), caps the body size, and raises
  :class:`~hvpatch.errors.FeedError` naming the URL and the last status when it gives up. Other
  4xx answers are not retried; their error carries the server's ``message`` header or body.
* :class:`SlidingWindowLimiter` allows at most N requests in any rolling window of T seconds.
* :func:`atomic_write_bytes` writes a file via a temporary file and a rename, so readers see the
  old file or the new one, never half of one.

All waiting and time go through the :class:`~hvpatch.ports.clock.Clock` port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from hvpatch import __version__
from hvpatch.errors import FeedError
from hvpatch.ports.clock import Clock

USER_AGENT = f"hvpatch/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=20.0)
_ERROR_BODY_BYTES = 2048


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a request.

    The n-th retry waits ``min(max_delay, base_delay * 2**(n-1))``, of which the upper half is
    random jitter, unless the server sent ``Retry-After``, which is then waited exactly. A
    ``Retry-After`` longer than ``max_retry_after`` makes the client give up instead of hanging.
    """

    max_attempts: int = 5
    base_delay: float = 3.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    retry_statuses: frozenset[int] = frozenset({403, 429})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def retryable(self, status: int) -> bool:
        """True for the statuses worth another attempt (the listed ones and every 5xx)."""
        return status in self.retry_statuses or 500 <= status <= 599

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry`` (1-based): exponential, half of it jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` requests in any rolling window of ``per_seconds`` seconds."""

    requests: int
    per_seconds: float


class SlidingWindowLimiter:
    """Blocks (on the clock) until one more request fits in the rolling window.

    ``margin`` seconds are added to the window on our side, because the server counts arrival
    times and ours are send times.
    """

    def __init__(self, limit: RateLimit, clock: Clock, *, margin: float = 0.5) -> None:
        if limit.requests < 1 or limit.per_seconds <= 0:
            raise ValueError(f"invalid rate limit {limit}")
        self.limit = limit
        self._clock = clock
        self._window = limit.per_seconds + margin
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be sent, and count it as sent now."""
        async with self._lock:
            while True:
                now = self._clock.now().timestamp()
                while self._sent and self._sent[0] <= now - self._window:
                    self._sent.popleft()
                if len(self._sent) < self.limit.requests:
                    self._sent.append(now)
                    return
                await self._clock.sleep(self._sent[0] + self._window - now)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """A successful (2xx) or not-modified (304) answer, body read in full."""

    url: str
    status: int
    headers: httpx.Headers
    content: bytes


def default_client() -> httpx.AsyncClient:
    """An HTTP client with hvpatch's user agent and generous timeouts (proxies from the env)."""
    return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT})


def retry_after_seconds(value: str | None, clock: Clock) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - clock.now()).total_seconds())


def _server_message(response: httpx.Response, body: bytes) -> str:
    """What the server said about an error: NVD's ``message`` header, else the body's start."""
    message: str | None = response.headers.get("message")
    if message:
        return message.strip()
    text = body.decode("utf-8", errors="replace").strip()
    return " ".join(text.split())[:200]


async def _read_capped(response: httpx.Response, max_bytes: int, raw: bool) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FeedError(f"{response.url}: answer of {declared} bytes exceeds the cap {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    stream = response.aiter_raw() if raw else response.aiter_bytes()
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise FeedError(f"{response.url}: answer exceeds the cap of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_error_body(response: httpx.Response) -> bytes:
    body = b""
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_BYTES:
                break
    return body[:_ERROR_BODY_BYTES]


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    clock: Clock,
    rng: random.Random,
    max_bytes: int,
    policy: RetryPolicy = DEFAULT_RETRY,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    raw: bool = False,
    accept_not_modified: bool = False,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
) -> HttpResult:
    """GET ``url`` with retries; the 2xx (or, if accepted, 304) answer with its body.

    ``raw`` keeps the body as sent (no ``Content-Encoding`` decoding), for files that are
    compressed themselves. ``before_attempt`` runs before every attempt (a rate limiter).
    Redirects are followed. Raises :class:`FeedError` when the answer is an error, too large,
    or still failing after ``policy.max_attempts`` attempts.
    """
    try:
        request = client.build_request("GET", url, params=params, headers=headers)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FeedError(f"{url}: invalid URL ({exc})") from exc
    where = str(request.url)
    last = "no answer"
    for attempt in range(1, policy.max_attempts + 1):
        if before_attempt is not None:
            await before_attempt()
        wait: float | None = None
        try:
            response = await client.send(request, stream=True, follow_redirects=True)
            try:
                status = response.status_code
                if 200 <= status <= 299:
                    body = await _read_capped(response, max_bytes, raw)
                    return HttpResult(str(response.url), status, response.headers, body)
                if status == 304 and accept_not_modified:
                    return HttpResult(str(response.url), status, response.headers, b"")
                message = _server_message(response, await _read_error_body(response))
                last = f"HTTP {status}" + (f" ({message})" if message else "")
                if not policy.retryable(status):
                    raise FeedError(f"{where}: {last}; not retried")
                wait = retry_after_seconds(response.headers.get("retry-after"), clock)
            finally:
                await response.aclose()
        except httpx.UnsupportedProtocol as exc:
            raise FeedError(f"{where}: {exc}") from exc
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt == policy.max_attempts:
                raise FeedError(f"{where}: gave up after {attempt} attempts; last: {last}") from exc
        except httpx.HTTPError as exc:  # redirect loops, undecodable content, ...
            raise FeedError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if attempt == policy.max_attempts:
            break
        if wait is not None and wait > policy.max_retry_after:
            raise FeedError(
                f"{where}: {last}; server asks to retry after {wait:.0f} s, "
                f"more than the limit of {policy.max_retry_after:.0f} s"
            )
        await clock.sleep(wait if wait is not None else policy.backoff(attempt, rng))
    raise FeedError(f"{where}: gave up after {policy.max_attempts} attempts; last: {last}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file in the same folder + rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise FeedError(f"cannot write {path}: {exc}") from exc
