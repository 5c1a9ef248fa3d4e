"""The server ``hvpatch serve`` runs: the REST API of :mod:`hvpatch.api` and the dashboard.

The dashboard shares everything with the API: the store, the session cookie and its CSRF token,
the roles, the job pool that drives rollouts in the background. Errors on the API's paths keep
the API's JSON bodies; on the dashboard's paths they become an HTML page with the same status
and message, and a browser that is not logged in is sent to the login page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from hvpatch.adapters.store.db import Store
from hvpatch.api import create_app
from hvpatch.api.errors import status_for
from hvpatch.api.limits import MAX_BODY
from hvpatch.errors import HvpatchError
from hvpatch.web.render import render
from hvpatch.web.views import LoginRequired, router

__all__ = ["create_server", "is_api"]

Handler = Callable[[Request, Exception], Awaitable[Response]]


def is_api(path: str) -> bool:
    """True for the paths whose errors are the API's JSON bodies."""
    return path.startswith("/api/") or path in ("/metrics", "/healthz")


def _status(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return exc.status_code, detail or "the request cannot be answered"
    if isinstance(exc, RequestValidationError):
        return 422, "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                              for e in exc.errors())
    status, _ = status_for(exc)
    if isinstance(exc, HvpatchError) and status < 500:
        return status, str(exc)
    return status, "internal error; the server log has the details"


def _either(api_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_api(request.url.path):
            return await api_handler(request, exc)
        status, message = _status(exc)
        if status >= 500:
            response = await api_handler(request, exc)   # logs it as the API does
            status = response.status_code
        return render(request, "error.html.j2", {"status": status, "message": message},
                      status=status)
    return handle


async def _login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(exc.url, status_code=303)


def create_server(store: Store, *, secure_cookies: bool = False, max_body: int = MAX_BODY,
                  workers: int = 4) -> FastAPI:
    """The API and the dashboard on ``store``."""
    app = create_app(store, secure_cookies=secure_cookies, max_body=max_body, workers=workers)
    app.include_router(router)
    handlers: dict[Any, Handler] = dict(app.exception_handlers)
    for key, handler in handlers.items():
        app.add_exception_handler(key, _either(handler))
    app.add_exception_handler(LoginRequired, _login)
    return app
