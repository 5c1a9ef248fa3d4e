"""Who is asking, and may they: API tokens, browser sessions with CSRF protection, roles.

:class:`Authenticate` (middleware) resolves the caller before anything reads the request body:
``Authorization: Bearer hvp_...`` (an API token), else the signed session cookie of a browser
login. A protected route (every ``/api/`` route not marked :func:`public`, and ``/metrics``)
answers 401 to an unknown caller. :func:`require` (a route dependency) then checks the role,
and for session callers the CSRF token on unsafe methods (header ``X-CSRF-Token`` or form field
``csrf_token``, compared in constant time) and the one-time password having been changed.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request, Security
from fastapi.security import HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hvpatch.adapters.store.db import Store
from hvpatch.api.errors import error_response
from hvpatch.api.limits import LoginThrottle
from hvpatch.errors import AuthenticationError, PermissionDeniedError, StoreError
from hvpatch.services.users import User, allows, authenticate, get_user, verify_token

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "PUBLIC", "Authenticate", "Principal", "check_csrf",
           "csrf_ok", "log_in", "open_session", "principal_of", "require"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "hvpatch_session"
#: (method, path) under /api/ open to everyone
PUBLIC = frozenset({("POST", "/api/v1/session"), ("GET", "/api/v1/openapi.json"),
                    ("HEAD", "/api/v1/openapi.json"), ("GET", "/api/v1/docs"),
                    ("HEAD", "/api/v1/docs")})

_bearer = HTTPBearer(auto_error=False, description="An API token: `hvp_...` "
                     "(`hvpatch users token NAME`).")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the user, and how they authenticated."""

    user: User
    via: Literal["token", "session"]
    csrf: str = ""

    @property
    def name(self) -> str:
        """The user name: the actor of everything they change."""
        return self.user.name


def protected(method: str, path: str) -> bool:
    """True when a request needs an authenticated caller."""
    if path == "/metrics":
        return True
    return path.startswith("/api/") and (method, path.rstrip("/") or "/") not in PUBLIC


class Authenticate:
    """Resolve the caller into ``scope["state"]["principal"]``; 401 on a protected route
    without valid credentials."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def _principal(self, scope: Scope) -> Principal | None:
        header = Headers(scope=scope).get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("expected the header Authorization: Bearer hvp_...")
            user = await run_in_threadpool(verify_token, self.store, token.strip())
            if user is None:
                raise AuthenticationError("the API token is unknown, revoked or expired")
            return Principal(user, "token")
        session = scope.get("session")
        if not isinstance(session, dict):
            return None
        uid = session.get("uid")
        if not isinstance(uid, int) or isinstance(uid, bool):
            return None
        user = await run_in_threadpool(get_user, self.store, uid)
        if user is None:  # disabled or deleted since the login
            session.clear()
            raise AuthenticationError("the session ended: log in again")
        return Principal(user, "session", str(session.get("csrf", "")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = protected(scope["method"], scope["path"])
        principal: Principal | None = None
        try:
            principal = await self._principal(scope)
        except AuthenticationError as exc:
            if needed:
                await error_response(401, "unauthenticated", str(exc))(scope, receive, send)
                return
        except (StoreError, SQLAlchemyError):
            await error_response(503, "store_unavailable", "the store cannot be used now; try "
                                 "again later")(scope, receive, send)
            return
        if needed and principal is None:
            await error_response(401, "unauthenticated", "authenticate: send Authorization: "
                                 "Bearer hvp_... or log in (POST /api/v1/session)"
                                 )(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def open_session(request: Request, user: User) -> str:
    """Start a browser session for ``user`` (a fresh one: nothing of an earlier session is
    kept); return its CSRF token."""
    request.session.clear()
    csrf = secrets.token_urlsafe(32)
    request.session.update({"uid": user.id, "csrf": csrf})
    return csrf


def log_in(request: Request, store: Store, name: str, password: str) -> tuple[User, str]:
    """Check a name and password under the server's login throttle (429 after too many
    failures) and start a session; the user and the session's CSRF token."""
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else ""
    throttle.check(client, name)
    user = authenticate(store, name, password)
    if user is None:
        throttle.failed(client, name)
        raise AuthenticationError("wrong user name or password")
    throttle.succeeded(client, name)
    return user, open_session(request, user)


def principal_of(request: Request) -> Principal | None:
    """The caller the middleware resolved (None when anonymous)."""
    principal = (request.scope.get("state") or {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def csrf_ok(sent: str | None, principal: Principal) -> bool:
    """True when ``sent`` is the session's CSRF token (compared in constant time)."""
    return bool(sent) and bool(principal.csrf) and hmac.compare_digest(
        str(sent).encode(), principal.csrf.encode())


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse (403) an unsafe request of a session without its CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith(("application/x-www-form-urlencoded",
                                                 "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not csrf_ok(sent, principal):
        raise PermissionDeniedError(f"missing or wrong CSRF token: send the {CSRF_HEADER} "
                                    "header (or the csrf_token form field) given at login")


def require(role: str, *, before_password_change: bool = False
            ) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must have ``role`` (or a higher one)."""

    async def check(request: Request, _token: Any = Security(_bearer)) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise AuthenticationError("authenticate: send Authorization: Bearer hvp_... or "
                                      "log in (POST /api/v1/session)")
        if principal.via == "session":
            if request.method not in SAFE_METHODS:
                await check_csrf(request, principal)
            if principal.user.must_change and not before_password_change:
                raise PermissionDeniedError("change the one-time password first: "
                                            "POST /api/v1/me/password")
        if not allows(principal.user.role, role):
            raise PermissionDeniedError(f"this needs the {role} role (or higher); "
                                        f"{principal.name} is {principal.user.role}")
        return principal

    check.__name__ = f"require_{role}"
    return check
