"""Shared set-up of the API tests: a real HTTP server (uvicorn in a thread on a free loopback
port) on a store, a user and an API token per role, an httpx client, and row counts of every
table (to show that a refused request changed nothing)."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import Base
from hvpatch.api import create_app
from hvpatch.domain.generator import demo_fleet
from hvpatch.services import users
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet
from hvpatch.services.risk import assess_risk

#: one TLS context for every client (building one per client costs ~0.1 s; the tests speak
#: plain HTTP on loopback anyway)
_TLS = ssl.create_default_context()
#: one user per role, named after it
ROLE_USERS = {"viewer": "vera", "operator": "oscar", "approver": "april", "admin": "ada"}
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cheap argon2 parameters (the production ones take ~0.1 s a hash by design), and a secret
    key file of the test's own."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
    monkeypatch.setattr(users, "_dummy_hash", None)
    monkeypatch.delenv("HVPATCH_SECRET_KEY", raising=False)
    monkeypatch.setenv("HVPATCH_SECRET_KEY_FILE", str(tmp_path / "secret.key"))


@dataclass
class Api:
    """A running server on ``store`` and a token per role."""

    base: str
    store: Store
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, *, token: str | None = None,
               headers: dict[str, str] | None = None) -> httpx.Client:
        """A client authenticated as the user of ``role`` or with ``token`` (else anonymous)."""
        token = token or (self.tokens[role] if role else None)
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers={**auth, **(headers or {})},
                            timeout=30, verify=_TLS)

    def counts(self) -> dict[str, int]:
        """Rows in every table."""
        with self.store.session() as s:
            return {t.name: s.scalar(select(func.count()).select_from(t)) or 0
                    for t in Base.metadata.sorted_tables}


@contextmanager
def serve(store: Store, factory: Callable[[Store], FastAPI] = create_app
          ) -> Iterator[tuple[str, FastAPI]]:
    """Run the API (or what ``factory`` builds, e.g. the dashboard's server) on ``store`` in a
    background thread; yields its base URL and the app."""
    app = factory(store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def add_role_users(store: Store) -> dict[str, str]:
    """A user per role (password :data:`PASSWORD`) and an API token each: role -> token."""
    tokens = {}
    for role, name in ROLE_USERS.items():
        users.add_user(store, name, role, actor="test", password=PASSWORD)
        tokens[role], _ = users.create_token(store, name, actor="test", name="test")
    return tokens


@contextmanager
def running(store: Store, factory: Callable[[Store], FastAPI] = create_app) -> Iterator[Api]:
    """The API (or ``factory``'s app) on ``store`` with a user and token per role."""
    tokens = add_role_users(store)
    with serve(store, factory) as (base, app):
        yield Api(base, store, app, tokens)


def populate(store: Store) -> None:
    """The demo fleet, the bundled advisories, findings and decisions."""
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    assess_risk(store)


def populated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file with :func:`populate` done (for a session fixture; tests copy it)."""
    path = tmp_path_factory.mktemp("populated") / "hvpatch.db"
    store = Store(f"sqlite:///{path}")
    populate(store)
    store.close()
    return path


def copy_store(template: Path, tmp_path: Path) -> Store:
    """A store on a copy of ``template``."""
    target = tmp_path / "copy.db"
    shutil.copyfile(template, target)
    return Store(f"sqlite:///{target}")


def wait_job(client: httpx.Client, job_id: int, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def assert_error(response: httpx.Response, status: int, kind: str | None = None
                 ) -> dict[str, Any]:
    """``response`` is an error of ``status`` with the consistent body; returns its error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message", "problems"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert all(set(p) == {"location", "message"} for p in error["problems"])
    if kind is not None:
        assert error["type"] == kind, error
    return error
