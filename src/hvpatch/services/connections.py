"""Connections to real platforms: add, list, remove, test, and sync their inventory into the store.

A connection stores *where* a platform is and a *reference* to its credential, never the
credential: ``secret:NAME`` (the encrypted secrets store, :mod:`hvpatch.services.secrets`),
``env:VAR`` (an environment variable of the process that syncs), ``file:PATH`` (a file that
only its owner may read: mode 0600 or stricter), or empty. :func:`resolve_endpoint` turns the
reference into the :class:`~hvpatch.ports.connector.Endpoint` a connector takes; the clear
credential lives only in that value (whose ``repr`` hides it) and never reaches an error
message, a log line or the audit log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import stat
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from hvpatch.adapters.connectors import KINDS, inventory_source
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import ConnectionRow, SecretRow
from hvpatch.domain.fleet import Fleet
from hvpatch.errors import (
    DriverError,
    HvpatchError,
    InputError,
    NotFoundError,
    Problem,
    TemporaryStepError,
)
from hvpatch.ports.connector import Endpoint
from hvpatch.services.audit import record
from hvpatch.services.inventory import ImportSummary, import_fleet
from hvpatch.services.secrets import get_secret

__all__ = [
    "add_connection",
    "check_connection",
    "fleet_sha256",
    "get_connection",
    "list_connections",
    "remove_connection",
    "resolve_endpoint",
    "sync",
]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LIBVIRT_SCHEMES = ("qemu", "test")
#: kind -> URL schemes it accepts
_SCHEMES: dict[str, tuple[str, ...]] = {"vsphere": ("https",), "proxmox": ("https",),
                                        "hyperv": ("https", "http"), "xapi": ("https", "http"),
                                        "kvm-ssh": ("ssh",)}
_EXAMPLES = {"vsphere": "https://vc1.example/sdk", "proxmox": "https://pve1.example:8006",
             "hyperv": "https://hv1.example:5986/wsman", "xapi": "https://xcp1.example",
             "libvirt": "qemu+ssh://root@kvm1/system", "kvm-ssh": "ssh://root@kvm1"}


def _url_problem(kind: str, url: str) -> str | None:
    parts = [u.strip() for u in url.split(",")]
    if not url.strip() or not all(parts):
        return f"expected e.g. {_EXAMPLES.get(kind, 'https://HOST')}"
    for u in parts:
        try:
            split = urlsplit(u)
        except ValueError:
            return f"{u!r} is not a URL"
        if kind == "libvirt":
            if split.scheme.split("+")[0] not in LIBVIRT_SCHEMES:
                return (f"{u!r}: a libvirt URI starts with qemu:// or qemu+ssh:// (or test:// "
                        f"for libvirt's test driver), e.g. {_EXAMPLES['libvirt']}")
        elif split.scheme not in _SCHEMES.get(kind, ("https",)) or not split.hostname:
            return f"{u!r}: expected e.g. {_EXAMPLES.get(kind, 'https://HOST')}"
    if kind not in ("libvirt", "hyperv", "kvm-ssh") and len(parts) > 1:
        return f"one URL per {kind} connection"
    return None


def _file_problem(path: str) -> str | None:
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return f"{path}: no such file"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"chmod 600 it")
    return None


def _credential_problem(store: Store, ref: str) -> str | None:
    if not ref:
        return None
    scheme, _, value = ref.partition(":")
    if scheme == "secret":
        with store.session() as s:
            if s.scalar(select(SecretRow.id).where(SecretRow.name == value)) is None:
                return f"no secret named {value!r} in the secrets store"
        return None
    if scheme == "env":
        return None if _ENV.match(value) else f"{value!r} is not an environment variable name"
    if scheme == "file":
        return _file_problem(value) if value else "file:PATH needs a path"
    return "expected secret:NAME, env:VAR or file:PATH"


def _row_dict(r: ConnectionRow) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "url": r.url, "username": r.username,
            "credential": r.credential, "verify_tls": r.verify_tls, "ca_file": r.ca_file,
            "options": dict(r.options or {}), "created": r.created, "last_sync": r.last_sync,
            "last_status": r.last_status}


def add_connection(store: Store, name: str, *, kind: str, url: str, actor: str,
                   username: str = "", credential: str = "", verify_tls: bool = True,
                   ca_file: str = "", options: Mapping[str, str] | None = None
                   ) -> dict[str, Any]:
    """Validate and store a connection (every problem is reported; nothing is stored then)."""
    problems: list[Problem] = []
    opts = dict(options or {})
    if not _NAME.match(name):
        problems.append(Problem("name", "1-128 letters, digits or . _ -, starting with a letter "
                                "or digit"))
    if kind not in KINDS:
        kinds = ", ".join(KINDS)
        problems.append(Problem("kind", f"{kind!r}: expected one of {kinds}"))
    else:
        url_problem = _url_problem(kind, url)
        if url_problem:
            problems.append(Problem("url", url_problem))
    credential_problem = _credential_problem(store, credential)
    if credential_problem:
        problems.append(Problem("credential", credential_problem))
    if ca_file and not Path(ca_file).is_file():
        problems.append(Problem("ca_file", f"{ca_file}: no such file"))
    for key, value in opts.items():
        if not _OPTION.match(key) or not isinstance(value, str):
            problems.append(Problem(f"options.{key}", "keys are lower-case words (a-z, 0-9, _) "
                                    "with text values"))
    with store.session() as s:
        if _NAME.match(name) and s.scalar(select(ConnectionRow.id)
                                          .where(ConnectionRow.name == name)) is not None:
            problems.append(Problem("name", f"a connection named {name!r} exists; remove it "
                                    "first"))
        if problems:
            raise InputError("the connection was not added", problems)
        row = ConnectionRow(name=name, kind=kind, url=url, username=username,
                            credential=credential, verify_tls=verify_tls, ca_file=ca_file,
                            options=opts, created=datetime.now(UTC), last_status="never synced")
        s.add(row)
        s.flush()
        record(s, actor=actor, action="connection.add", subject=f"connection:{name}",
               details={"kind": kind, "url": url, "username": username,
                        "credential": credential, "verify_tls": verify_tls})
        s.commit()
        out = _row_dict(row)
    if not verify_tls:
        log.warning("connection %s: TLS certificate verification is OFF", name)
    return out


def _row(store: Store, name: str) -> ConnectionRow:
    with store.session() as s:
        row = s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))
        if row is None:
            known = list(s.scalars(select(ConnectionRow.name).order_by(ConnectionRow.name)))
            hint = f" (known: {', '.join(known)})" if known else ""
            raise NotFoundError(f"no connection named {name!r}{hint}")
        s.expunge(row)
        return row


def get_connection(store: Store, name: str) -> dict[str, Any]:
    """One connection (with its credential reference, never the credential)."""
    return _row_dict(_row(store, name))


def list_connections(store: Store) -> list[dict[str, Any]]:
    """Every connection, by name."""
    with store.session() as s:
        return [_row_dict(r) for r in s.scalars(select(ConnectionRow)
                                                .order_by(ConnectionRow.name))]


def remove_connection(store: Store, name: str, *, actor: str) -> None:
    """Forget a connection (the inventory it synced stays)."""
    with store.session() as s:
        row = s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))
        if row is None:
            raise NotFoundError(f"no connection named {name!r}")
        s.delete(row)
        record(s, actor=actor, action="connection.remove", subject=f"connection:{name}",
               details={"kind": row.kind, "url": row.url})
        s.commit()


def _resolve_credential(store: Store, ref: str) -> str:
    scheme, _, value = ref.partition(":")
    if not ref:
        return ""
    if scheme == "secret":
        return get_secret(store, value)
    if scheme == "env":
        if value not in os.environ:
            raise InputError("the connection's credential cannot be read", [Problem(
                "credential", f"environment variable {value} is not set")])
        return os.environ[value]
    if scheme == "file":
        problem = _file_problem(value)
        if problem:
            raise InputError("the connection's credential cannot be read",
                             [Problem("credential", problem)])
        return Path(value).read_text(encoding="utf-8").rstrip("\r\n")
    raise InputError("the connection's credential cannot be read", [Problem(
        "credential", "expected secret:NAME, env:VAR or file:PATH")])


def resolve_endpoint(store: Store, name: str) -> Endpoint:
    """The connection as an :class:`Endpoint`, its credential resolved."""
    row = _row(store, name)
    if not row.verify_tls:
        log.warning("connection %s: TLS certificate verification is OFF", name)
    return Endpoint(kind=row.kind, name=row.name, url=row.url, username=row.username,
                    password=_resolve_credential(store, row.credential),
                    verify_tls=row.verify_tls, ca_file=row.ca_file,
                    options={str(k): str(v) for k, v in (row.options or {}).items()})


def fleet_sha256(fleet: Fleet) -> str:
    """SHA-256 of a canonical JSON form of ``fleet`` (same fleet, same digest)."""
    doc = {"fleet": asdict(fleet), "families": [h.software.family for h in fleet.hosts()]}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: attempts of a read that failed on the network (a refused or dropped connection, a
#: timeout), and the wait before the first retry (doubling); other failures (login refused,
#: a missing privilege, an untrusted certificate, a bad answer) are not retried
READ_ATTEMPTS = 3
READ_BACKOFF_S = 2.0


def transient(exc: BaseException) -> bool:
    """Whether a connector failure is worth retrying: marked temporary by the connector, or
    caused by the network (not by TLS verification, which will fail again)."""
    if isinstance(exc, TemporaryStepError):
        return True
    cause, seen = exc.__cause__ or exc.__context__, 0
    while cause is not None and seen < 12:
        if isinstance(cause, ssl.SSLError):
            return False
        if isinstance(cause, (ConnectionError, TimeoutError, socket.timeout)):
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False


def _read(store: Store, name: str) -> tuple[Endpoint, Fleet]:
    endpoint = resolve_endpoint(store, name)
    for attempt in range(1, READ_ATTEMPTS + 1):
        source = inventory_source(endpoint)
        try:
            return endpoint, source.read()
        except DriverError as exc:
            if attempt == READ_ATTEMPTS or not transient(exc):
                raise
            wait = READ_BACKOFF_S * 2 ** (attempt - 1)
            log.warning("reading connection %s failed (%s); attempt %d of %d in %g s", name,
                        str(exc).splitlines()[0], attempt + 1, READ_ATTEMPTS, wait)
            time.sleep(wait)
        finally:
            source.close()
    raise AssertionError("unreachable")


def _counts(fleet: Fleet) -> dict[str, int]:
    return {"sites": len(fleet.sites), "clusters": len(list(fleet.clusters())),
            "hosts": len(list(fleet.hosts())), "guests": len(list(fleet.guests())),
            "tenants": len(fleet.tenants)}


def check_connection(store: Store, name: str) -> dict[str, Any]:
    """Log in and read the inventory; return what was found. Changes nothing."""
    endpoint, fleet = _read(store, name)
    return {"name": name, "kind": endpoint.kind, "verify_tls": endpoint.verify_tls,
            "counts": _counts(fleet), "hosts": [h.name for h in fleet.hosts()],
            "versions": sorted({h.software.label for h in fleet.hosts()})}


def _status(store: Store, name: str, status: str, *, actor: str, ok: bool,
            details: Mapping[str, Any]) -> None:
    with store.session() as s:
        row = s.scalar(select(ConnectionRow).where(ConnectionRow.name == name))
        if row is None:
            return
        if ok:
            row.last_sync = datetime.now(UTC)
        row.last_status = status[:2000]
        record(s, actor=actor, action="connection.sync" if ok else "connection.sync_failed",
               subject=f"connection:{name}", details=dict(details))
        s.commit()


def sync(store: Store, name: str, *, actor: str, dry_run: bool = False
         ) -> tuple[ImportSummary, dict[str, Any]]:
    """Read the connection's inventory and merge it into the store (one transaction)."""
    row = _row(store, name)
    try:
        endpoint, fleet = _read(store, name)
    except HvpatchError as exc:
        if not dry_run:
            first = str(exc.args[0] if exc.args else exc).splitlines()[0]
            _status(store, name, f"failed: {first}", actor=actor, ok=False,
                    details={"error": type(exc).__name__, "message": first})
        raise
    digest = fleet_sha256(fleet)
    summary = import_fleet(store, fleet, source=f"{row.kind}:{name}", sha256=digest,
                           dry_run=dry_run)
    counts = _counts(fleet)
    info = {"name": name, "kind": row.kind, "sha256": digest, "dry_run": dry_run,
            "verify_tls": endpoint.verify_tls, "counts": counts}
    if not dry_run:
        _status(store, name, f"ok: {counts['hosts']} hosts, {counts['guests']} guests",
                actor=actor, ok=True, details={"sha256": digest, "counts": counts,
                                               "touched": summary.touched})
    return summary, info
