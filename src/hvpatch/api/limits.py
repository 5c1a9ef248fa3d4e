"""A request body size limit (413 before the application reads too much)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hvpatch.api.errors import error_response

__all__ = ["MAX_BODY", "BodyLimit"]

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
