"""Secrets (hypervisor credentials for connectors), encrypted at rest with Fernet.

The key comes from ``HVPATCH_SECRET_KEY`` (a Fernet key: 32 url-safe base64-encoded bytes), or
from a key file -- ``HVPATCH_SECRET_KEY_FILE``, by default ``secret.key`` in the user data
directory -- created with mode 0600 on first use; a key file others may read is refused. The
store holds only ciphertext. A secret's value is never returned by a list, never logged, and
never audited: audit entries name the secret and its kind only.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import SecretRow
from hvpatch.errors import InputError, NotFoundError, Problem, StoreError
from hvpatch.services.audit import record

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "delete_secret", "get_secret", "key_file",
           "list_secrets", "put_secret"]

KEY_ENV = "HVPATCH_SECRET_KEY"
KEY_FILE_ENV = "HVPATCH_SECRET_KEY_FILE"
KINDS = ("password", "token", "ssh-key", "certificate", "other")
MAX_VALUE = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def key_file() -> Path:
    """Where the key file is (``HVPATCH_SECRET_KEY_FILE`` or the user data directory)."""
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return Path(explicit)
    return Path(platformdirs.user_data_dir("hvpatch")) / "secret.key"


def _file_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StoreError(f"the secret key file {path} may be read by others "
                             f"(mode {stat.S_IMODE(mode):o}); chmod 600 it") from None
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _file_key(path)
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def _fernet() -> Fernet:
    key = os.environ.get(KEY_ENV, "").strip().encode() or _file_key(key_file())
    try:
        return Fernet(key)
    except ValueError as exc:
        raise StoreError(f"the secret key (from {KEY_ENV} or {key_file()}) is not a Fernet key: "
                         "32 url-safe base64-encoded bytes") from exc


def _check(name: str, problems: list[Problem]) -> None:
    if not _NAME.match(name):
        problems.append(Problem("name", "1-128 letters, digits or . _ : / @ -, starting with a "
                                "letter or digit"))


def put_secret(store: Store, name: str, value: str, *, kind: str, actor: str) -> dict[str, Any]:
    """Store (or replace) a secret; returns its record without the value."""
    problems: list[Problem] = []
    _check(name, problems)
    if kind not in KINDS:
        problems.append(Problem("kind", f"one of {', '.join(KINDS)}"))
    if not value or len(value) > MAX_VALUE:
        problems.append(Problem("value", f"1 to {MAX_VALUE} characters"))
    if problems:
        raise InputError("the secret was not stored", problems)
    ciphertext = _fernet().encrypt(value.encode("utf-8")).decode("ascii")
    now = datetime.now(UTC)
    with store.session() as s:
        row = s.scalar(select(SecretRow).where(SecretRow.name == name))
        action = "secret.replace" if row is not None else "secret.add"
        if row is None:
            row = SecretRow(name=name, kind=kind, ciphertext=ciphertext, created=now, updated=now)
            s.add(row)
        else:
            row.kind, row.ciphertext, row.updated = kind, ciphertext, now
        s.flush()
        record(s, actor=actor, action=action, subject=f"secret:{name}", details={"kind": kind})
        s.commit()
        return _dict(row)


def _dict(r: SecretRow) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "created": r.created, "updated": r.updated}


def get_secret(store: Store, name: str) -> str:
    """The clear value of a secret (for connectors; the API never returns it)."""
    with store.session() as s:
        row = s.scalar(select(SecretRow).where(SecretRow.name == name))
    if row is None:
        raise NotFoundError(f"no secret named {name!r}")
    try:
        return _fernet().decrypt(row.ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise StoreError(f"secret {name!r} cannot be decrypted with this key (was "
                         f"{KEY_ENV} or the key file changed?)") from exc


def list_secrets(store: Store) -> list[dict[str, Any]]:
    """Every secret's name, kind and dates (never a value), by name."""
    with store.session() as s:
        return [_dict(r) for r in s.scalars(select(SecretRow).order_by(SecretRow.name))]


def delete_secret(store: Store, name: str, *, actor: str) -> None:
    """Delete a secret."""
    with store.session() as s:
        row = s.scalar(select(SecretRow).where(SecretRow.name == name))
        if row is None:
            raise NotFoundError(f"no secret named {name!r}")
        s.delete(row)
        record(s, actor=actor, action="secret.delete", subject=f"secret:{name}",
               details={"kind": row.kind})
        s.commit()
