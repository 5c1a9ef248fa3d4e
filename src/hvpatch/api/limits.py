"""Limits: the request body size (413 before the application reads too much), and failed
logins per client and user (429, against password guessing)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hvpatch.api.errors import error_response
from hvpatch.errors import TooManyAttemptsError

__all__ = ["MAX_BODY", "BodyLimit", "LoginThrottle"]

#: the largest request body the API accepts (1 MiB)
MAX_BODY = 1024 * 1024


class BodyTooLarge(HTTPException):
    """The body grew past the limit while it was read (no or a lying Content-Length)."""


class BodyLimit:
    """Refuse bodies over ``max_bytes``: at once when Content-Length says so, otherwise as soon
    as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(413, f"the request body is larger than {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            ok = declared.isdigit()
            response = error_response(
                413 if ok else 400, "too_large" if ok else "bad_request",
                self._too_large().detail if ok else "Content-Length is not a number")
            await response(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except BodyTooLarge as exc:
            if started:
                raise
            await error_response(413, "too_large", str(exc.detail))(scope, receive, send)


#: keys kept before a failed login sweeps out the expired ones
_SWEEP_AT = 10_000


class LoginThrottle:
    """Failed logins counted per (client address, user name) and per client address in a
    sliding window; past the limit, logins from there are refused (429) until the oldest
    failure leaves the window. A success clears the (client, user) count. Kept in the server
    process's memory: a restart forgets it (a proxy's rate limit is the second line).
    """

    def __init__(self, *, per_user: int = 5, per_client: int = 30, window_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_user = per_user
        self.per_client = per_client
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def check(self, client: str, user: str) -> None:
        """Raise :class:`TooManyAttemptsError` when logins from ``client`` as ``user`` are
        held back."""
        now = self._clock()
        with self._lock:
            for key, limit in (((client, user.casefold()), self.per_user),
                               ((client, ""), self.per_client)):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(1, int(times[0] + self.window_s - now + 0.999))
                    raise TooManyAttemptsError(
                        f"too many failed logins from this address: try again in {wait} s",
                        retry_after=wait)

    def failed(self, client: str, user: str) -> None:
        """Count a failed login (and, now and then, forget keys whose failures all left the
        window, so names tried once do not pile up in memory)."""
        now = self._clock()
        with self._lock:
            for key in ((client, user.casefold()), (client, "")):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > _SWEEP_AT:
                for key in [k for k, t in self._failures.items() if t[-1] <= now - self.window_s]:
                    del self._failures[key]

    def succeeded(self, client: str, user: str) -> None:
        """Forget the failures of ``client`` as ``user``."""
        with self._lock:
            self._failures.pop((client, user.casefold()), None)
