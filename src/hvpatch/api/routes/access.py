"""Access: browser sessions (log in and out), the caller, users, API tokens, secrets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from hvpatch.api.auth import log_in
from hvpatch.api.bodies import LoginIn, PasswordIn, SecretIn, TokenIn, UserIn
from hvpatch.api.deps import Admin, Anyone, PathId, PathName, StoreDep
from hvpatch.api.models import (
    MeOut,
    SecretOut,
    SessionOut,
    TokenCreated,
    TokenOut,
    UserCreated,
    UserOut,
)
from hvpatch.api.pages import Page, Paging, slice_page
from hvpatch.services.secrets import delete_secret, list_secrets, put_secret
from hvpatch.services.users import (
    add_user,
    create_token,
    disable_user,
    list_tokens,
    list_users,
    revoke_token,
    set_password,
)

router = APIRouter(tags=["access"])


@router.post("/session", response_model=SessionOut)
def login(body: LoginIn, request: Request, store: StoreDep) -> dict[str, Any]:
    """Log in with a name and password: sets the session cookie; returns the CSRF token that
    every unsafe request of the session must carry (header X-CSRF-Token). After 5 failures
    for one user (30 in all) from one address within 10 minutes, logins from there answer 429
    until the oldest failure is 10 minutes old."""
    user, csrf = log_in(request, store, body.name, body.password)
    return {"user": user.name, "role": user.role, "must_change": user.must_change,
            "csrf_token": csrf}


@router.get("/session", response_model=SessionOut)
def session(who: Anyone) -> dict[str, Any]:
    """The current session (and its CSRF token); an empty token for API-token callers."""
    return {"user": who.name, "role": who.user.role, "must_change": who.user.must_change,
            "csrf_token": who.csrf}


@router.delete("/session", status_code=204, response_class=Response)
def logout(_who: Anyone, request: Request) -> Response:
    """Log out: the session cookie is cleared."""
    request.session.clear()
    return Response(status_code=204)


@router.get("/me", response_model=MeOut)
def me(who: Anyone) -> dict[str, Any]:
    """Who the caller is, with which role."""
    return {"user": who.name, "role": who.user.role, "via": who.via,
            "must_change": who.user.must_change}


@router.post("/me/password", status_code=204, response_class=Response)
def change_password(body: PasswordIn, who: Anyone, store: StoreDep) -> Response:
    """Change one's own password (the current one is required); lifts the must-change
    restriction of a one-time password."""
    set_password(store, who.name, body.password, actor=who.name, current=body.current)
    return Response(status_code=204)


@router.get("/users", response_model=Page[UserOut])
def users(_who: Admin, store: StoreDep, paging: Paging) -> Page[Any]:
    """Every user (never a password)."""
    return slice_page(list_users(store), paging, lambda r: r["name"], str)


@router.post("/users", status_code=201, response_model=UserCreated)
def add(body: UserIn, who: Admin, store: StoreDep) -> dict[str, Any]:
    """Create a user; without a password one is generated and shown this once."""
    user, password = add_user(store, body.name, body.role, actor=who.name,
                              password=body.password)
    return {"user": user, "password": password}


@router.post("/users/{name}/disable", response_model=UserOut)
def disable(name: PathName, who: Admin, store: StoreDep) -> dict[str, Any]:
    """Disable a user: their sessions and tokens stop working at once."""
    return disable_user(store, name, actor=who.name)


@router.get("/users/{name}/tokens", response_model=list[TokenOut])
def tokens(name: PathName, _who: Admin, store: StoreDep) -> list[dict[str, Any]]:
    """A user's API tokens (never their value)."""
    return list_tokens(store, name)


@router.post("/users/{name}/tokens", status_code=201, response_model=TokenCreated)
def new_token(name: PathName, who: Admin, store: StoreDep, body: TokenIn | None = None
              ) -> dict[str, Any]:
    """Create an API token for a user; the token is shown this once."""
    opts = body or TokenIn()
    clear, record = create_token(store, name, actor=who.name, name=opts.name,
                                 expires_days=opts.expires_days)
    return {"token": clear, "record": record}


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke(token_id: PathId, who: Admin, store: StoreDep) -> dict[str, Any]:
    """Revoke an API token: it stops working at once."""
    return revoke_token(store, token_id, actor=who.name)


@router.get("/secrets", response_model=Page[SecretOut])
def secrets_(_who: Admin, store: StoreDep, paging: Paging) -> Page[Any]:
    """Stored secrets: names, kinds and dates (never a value)."""
    return slice_page(list_secrets(store), paging, lambda r: r["name"], str)


@router.put("/secrets/{name}", response_model=SecretOut)
def put(name: PathName, body: SecretIn, who: Admin, store: StoreDep) -> dict[str, Any]:
    """Store or replace a secret (encrypted at rest); the value is never returned."""
    return put_secret(store, name, body.value, kind=body.kind, actor=who.name)


@router.delete("/secrets/{name}", status_code=204, response_class=Response)
def delete(name: PathName, who: Admin, store: StoreDep) -> Response:
    """Delete a secret."""
    delete_secret(store, name, actor=who.name)
    return Response(status_code=204)
