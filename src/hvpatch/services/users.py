"""Users, roles, passwords and API tokens: who may use the API, and for what.

Roles are ordered ``viewer < operator < approver < admin``; a role may do everything the roles
below it may (``docs/api.md`` has the table):

- **viewer** reads everything (inventory, findings, decisions, plans, rollouts, audit, jobs);
- **operator** also changes things: imports feeds, runs assessments, requests exceptions, creates
  plans, starts, pauses, resumes and aborts rollouts, opens and closes incidents;
- **approver** also approves exceptions and rollout gates (never their own: separation of
  duties) and expires exceptions;
- **admin** also manages users, API tokens and secrets.

Passwords are kept as argon2id hashes; checking one takes the same time whether the user exists
or not. An API token (``hvp_<random>``) is shown once when created; only its SHA-256 is kept,
with a short prefix to recognise it in lists. Every change writes an audit entry with its actor;
no password or token ever goes into the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import ApiTokenRow, UserRow
from hvpatch.errors import InputError, NotFoundError, Problem
from hvpatch.services.audit import record

__all__ = ["ROLES", "TOKEN_PREFIX", "User", "add_user", "allows", "authenticate",
           "bootstrap_admin", "create_token", "disable_user", "get_user", "list_tokens",
           "list_users", "revoke_token", "set_password", "verify_token"]

ROLES = ("viewer", "operator", "approver", "admin")
TOKEN_PREFIX = "hvp_"
BOOTSTRAP_ADMIN = "admin"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN = re.compile(r"^hvp_[A-Za-z0-9_-]{20,100}$")
#: how stale ``last_used`` may get before a request writes it again
_TOUCH_EVERY = timedelta(seconds=60)

_hasher = PasswordHasher()
_dummy_hash: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user as the API sees it."""

    id: int
    name: str
    role: str
    must_change: bool = False


def allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (roles are ordered, see the docstring)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_name(name: str, problems: list[Problem], where: str = "NAME") -> None:
    if not _NAME.match(name):
        problems.append(Problem(where, f"{name[:80]!r} is not a user name (1-64 letters, digits, "
                                "'.', '_', '@' or '-', starting with a letter or digit)"))


def _check_password(password: str, problems: list[Problem]) -> None:
    if len(password) < MIN_PASSWORD:
        problems.append(Problem("password", f"at least {MIN_PASSWORD} characters"))
    elif len(password) > MAX_PASSWORD:
        problems.append(Problem("password", f"at most {MAX_PASSWORD} characters"))


def _user_dict(r: UserRow) -> dict[str, Any]:
    return {"name": r.name, "role": r.role, "created": r.created, "disabled": r.disabled,
            "must_change": r.must_change}


def _get(s: Any, name: str) -> UserRow:
    row: UserRow | None = s.scalar(select(UserRow).where(UserRow.name == name))
    if row is None:
        raise NotFoundError(f"no user named {name!r} (see hvpatch users list)")
    return row


def generate_password() -> str:
    """A random password for a person to change at first login."""
    return secrets.token_urlsafe(15)


def add_user(store: Store, name: str, role: str, *, actor: str, password: str | None = None,
             ) -> tuple[dict[str, Any], str | None]:
    """Create a user; returns the user and the generated password (None when one was given).

    A generated password must be changed at the first login (``must_change``)."""
    problems: list[Problem] = []
    _check_name(name, problems)
    if role not in ROLES:
        problems.append(Problem("role", f"{role!r} is not one of {', '.join(ROLES)}"))
    generated = None
    if password is None:
        password = generated = generate_password()
    else:
        _check_password(password, problems)
    if problems:
        raise InputError("the user was not created", problems)
    digest = _hasher.hash(password)
    try:
        with store.session() as s:
            if s.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise InputError("the user was not created",
                                 [Problem("NAME", f"a user named {name!r} exists")])
            row = UserRow(name=name, role=role, password_hash=digest, created=_now(),
                          disabled=False, must_change=generated is not None)
            s.add(row)
            s.flush()
            record(s, actor=actor, action="user.add", subject=f"user:{name}",
                   details={"role": role, "generated_password": generated is not None})
            s.commit()
    except IntegrityError as exc:  # created at the same moment by someone else
        raise InputError("the user was not created",
                         [Problem("NAME", f"a user named {name!r} exists")]) from exc
    return _user_dict(row), generated


def bootstrap_admin(store: Store) -> str | None:
    """On first run (no user at all) create ``admin`` with a one-time password and return it;
    None when users exist. The password must be changed at the first login."""
    with store.session() as s:
        if s.scalar(select(func.count()).select_from(UserRow)):
            return None
    try:
        _, password = add_user(store, BOOTSTRAP_ADMIN, "admin", actor="hvpatch (first run)")
    except InputError:  # another server process bootstrapped at the same moment
        return None
    return password


def list_users(store: Store) -> list[dict[str, Any]]:
    """Every user (never a password hash), by name."""
    with store.session() as s:
        return [_user_dict(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]


def get_user(store: Store, user_id: int) -> User | None:
    """The enabled user with id ``user_id`` (a session's user), or None."""
    with store.session() as s:
        row = s.get(UserRow, user_id)
        if row is None or row.disabled:
            return None
        return User(row.id, row.name, row.role, row.must_change)


def disable_user(store: Store, name: str, *, actor: str) -> dict[str, Any]:
    """Disable a user: their sessions and tokens stop working at once. The last enabled admin
    cannot be disabled."""
    with store.session() as s:
        row = _get(s, name)
        if row.role == "admin" and not row.disabled:
            admins = s.scalar(select(func.count()).select_from(UserRow).where(
                UserRow.role == "admin", UserRow.disabled.is_(False))) or 0
            if admins <= 1:
                raise InputError("the user was not disabled", [Problem(
                    "NAME", f"{name} is the last enabled admin; add another admin first")])
        row.disabled = True
        record(s, actor=actor, action="user.disable", subject=f"user:{name}", details={})
        s.commit()
        return _user_dict(row)


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def authenticate(store: Store, name: str, password: str) -> User | None:
    """The user whose name and password these are, or None. As slow for an unknown or disabled
    user as for a wrong password (a hash is always checked)."""
    if len(password) > MAX_PASSWORD or len(name) > 128:
        return None
    with store.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.name == name))
    if row is None or row.disabled:
        _verify(_dummy(), password)
        return None
    if not _verify(row.password_hash, password):
        return None
    return User(row.id, row.name, row.role, row.must_change)


def set_password(store: Store, name: str, password: str, *, actor: str,
                 current: str | None = None) -> None:
    """Set ``name``'s password (checking ``current`` when given); clears ``must_change``."""
    problems: list[Problem] = []
    _check_password(password, problems)
    if problems:
        raise InputError("the password was not changed", problems)
    with store.session() as s:
        row = _get(s, name)
        if current is not None and not _verify(row.password_hash, current):
            raise InputError("the password was not changed",
                             [Problem("current", "the current password is wrong")])
        if _verify(row.password_hash, password):
            raise InputError("the password was not changed",
                             [Problem("password", "choose a password different from the "
                                      "current one")])
        row.password_hash, row.must_change = _hasher.hash(password), False
        record(s, actor=actor, action="user.password", subject=f"user:{name}", details={})
        s.commit()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_dict(r: ApiTokenRow, user: str) -> dict[str, Any]:
    return {"id": r.id, "user": user, "name": r.name, "prefix": r.prefix, "created": r.created,
            "last_used": r.last_used, "expires": r.expires, "revoked": r.revoked}


def create_token(store: Store, user: str, *, actor: str, name: str = "api",
                 expires_days: int | None = None) -> tuple[str, dict[str, Any]]:
    """A new API token for ``user``: (the clear token, shown once; its record)."""
    problems: list[Problem] = []
    if not name.strip() or len(name) > 128:
        problems.append(Problem("name", "1-128 characters"))
    if expires_days is not None and not 1 <= expires_days <= 3650:
        problems.append(Problem("expires_days", "between 1 and 3650 days"))
    if problems:
        raise InputError("the token was not created", problems)
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    with store.session() as s:
        owner = _get(s, user)
        if owner.disabled:
            raise InputError("the token was not created",
                             [Problem("user", f"{user} is disabled")])
        row = ApiTokenRow(user_id=owner.id, name=name.strip(), token_hash=_digest(clear),
                          prefix=clear[:12], created=now, last_used=None,
                          expires=now + timedelta(days=expires_days) if expires_days else None,
                          revoked=False)
        s.add(row)
        s.flush()
        record(s, actor=actor, action="token.create", subject=f"user:{user}",
               details={"token": row.id, "name": row.name, "prefix": row.prefix,
                        "expires": row.expires.isoformat() if row.expires else None})
        s.commit()
        return clear, _token_dict(row, user)


def verify_token(store: Store, token: str) -> User | None:
    """The enabled user an API token belongs to, or None (unknown, revoked, expired, or its
    user disabled). Lookup is by the token's SHA-256, never by the token itself."""
    if not _TOKEN.match(token):
        return None
    now = _now()
    with store.session() as s:
        found = s.execute(select(ApiTokenRow, UserRow).join(UserRow, UserRow.id ==
                                                            ApiTokenRow.user_id)
                          .where(ApiTokenRow.token_hash == _digest(token))).first()
        if found is None:
            return None
        tok, user = found
        if tok.revoked or user.disabled or (tok.expires is not None and tok.expires <= now):
            return None
        found_user = User(user.id, user.name, user.role, False)
        if tok.last_used is None or now - tok.last_used > _TOUCH_EVERY:
            _touch(s, tok.id, now)
        return found_user


def _touch(s: Session, token_id: int, now: datetime) -> None:
    """Record when a token was last used -- unless the store is busy with a long write (an
    import holding SQLite's write lock): a request never waits for this bookkeeping."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    try:
        if sqlite:
            s.execute(text("PRAGMA busy_timeout = 50"))
        s.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used=now))
        s.commit()
    except OperationalError:
        s.rollback()
    finally:
        if sqlite:
            s.execute(text("PRAGMA busy_timeout = 30000"))
            s.rollback()


def list_tokens(store: Store, user: str | None = None) -> list[dict[str, Any]]:
    """Tokens (never their value or hash), oldest first; only ``user``'s when given."""
    with store.session() as s:
        q = select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        if user is not None:
            _get(s, user)
            q = q.where(UserRow.name == user)
        return [_token_dict(t, n) for t, n in s.execute(q.order_by(ApiTokenRow.id))]


def revoke_token(store: Store, token_id: int, *, actor: str) -> dict[str, Any]:
    """Revoke a token: it stops working at once."""
    with store.session() as s:
        found = s.execute(select(ApiTokenRow, UserRow.name).join(
            UserRow, UserRow.id == ApiTokenRow.user_id).where(ApiTokenRow.id == token_id)).first()
        if found is None:
            raise NotFoundError(f"no API token with id {token_id}")
        tok, user = found
        if not tok.revoked:
            tok.revoked = True
            record(s, actor=actor, action="token.revoke", subject=f"user:{user}",
                   details={"token": tok.id, "name": tok.name, "prefix": tok.prefix})
            s.commit()
        return _token_dict(tok, user)
