"""The application: versioned routes under ``/api/v1``, errors, auth, limits, background jobs.

Middleware, outermost first: the body size limit, the signed session cookie (key from the
store's settings), authentication (:mod:`hvpatch.api.auth`); then the routes, whose errors go
through the one mapping of :mod:`hvpatch.api.errors`. The job pool starts and stops with the
application (its lifespan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from hvpatch import __version__
from hvpatch.adapters.store.db import Store
from hvpatch.api import errors
from hvpatch.api.auth import SESSION_COOKIE, Authenticate
from hvpatch.api.background import Background
from hvpatch.api.limits import MAX_BODY, BodyLimit, LoginThrottle
from hvpatch.api.models import ErrorBody
from hvpatch.api.routes import access, act, inventory, judge, meta, ops
from hvpatch.services.settings import session_key

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"
SESSION_MAX_AGE = 8 * 3600
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "Malformed JSON"), (401, "Not authenticated"),
        (403, "Forbidden by role, CSRF or separation of duties"), (404, "Not found"),
        (409, "Conflict"), (413, "Request body too large"), (422, "Bad input"),
        (429, "Too many failed logins"),
        (503, "Store unavailable"))}
DESCRIPTION = """Vendor-neutral hypervisor security patch management.

Authenticate with `Authorization: Bearer hvp_...` (an API token: `hvpatch users token NAME`),
or log in with `POST /api/v1/session` (a session cookie; unsafe requests then need the
`X-CSRF-Token` header). Roles: viewer < operator < approver < admin. Lists page with
`limit` and `cursor` (follow `next`). Errors have the body
`{"error": {"type", "message", "problems": [{"location", "message"}]}}`. See docs/api.md."""


def create_app(store: Store, *, secure_cookies: bool = False, max_body: int = MAX_BODY,
               workers: int = 4) -> FastAPI:
    """The API on ``store``. ``secure_cookies`` sends the session cookie over HTTPS only."""
    jobs = Background(store, workers=workers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(jobs.start)
        try:
            yield
        finally:
            await run_in_threadpool(jobs.close)

    app = FastAPI(title="hvpatch", version=__version__, description=DESCRIPTION,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs",
                  redoc_url=None, lifespan=lifespan)
    app.state.store = store
    app.state.jobs = jobs
    app.state.login_throttle = LoginThrottle()
    errors.install(app)
    v1 = APIRouter(prefix=API_PREFIX, responses=_ERRORS)
    for area in (inventory, judge, act, ops, access):
        v1.include_router(area.router)
    app.include_router(v1)
    app.include_router(meta.router, responses=_ERRORS)
    app.add_middleware(Authenticate, store=store)
    app.add_middleware(SessionMiddleware, secret_key=session_key(store),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_MAX_AGE, same_site="lax",
                       https_only=secure_cookies)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
