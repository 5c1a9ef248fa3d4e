"""Shared fixtures: a fresh store on SQLite and, when reachable, on the real PostgreSQL.

PostgreSQL tests use the database ``test`` on 127.0.0.1:5432 (override with
``HVPATCH_TEST_PG_URL``), each pytest worker in its own schema, emptied before every test. Without
the server they skip with the reason; under ``CI=true`` a missing server fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from hvpatch.adapters.store.db import Store

PG_URL = os.environ.get("HVPATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_reason() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except OperationalError as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {str(exc.orig).strip()[:120]}"
    return None


_PG_UNAVAILABLE = _pg_reason()


def _schema(worker: str) -> str:
    # the process id keeps two test runs on one server (two checkouts, CI and a developer)
    # out of each other's way
    return f"hvpatch_{worker}_{os.getpid()}"


def pg_schema_url(worker: str) -> str:
    """A URL whose connections use the worker's own schema."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{_schema(worker)}"


def _reset_pg_schema(worker: str) -> str:
    schema = _schema(worker)
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return pg_schema_url(worker)


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_schema_at_exit() -> Iterator[None]:
    """Leave the shared test database as it was found."""
    yield
    if _PG_UNAVAILABLE:
        return
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        for worker in ("main", *(f"gw{i}" for i in range(64))):
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{_schema(worker)}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_url(worker_id: str) -> str:
    """URL of an empty PostgreSQL schema for this test (skips or fails without the server)."""
    if _PG_UNAVAILABLE:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {_PG_UNAVAILABLE}")
        pytest.skip(_PG_UNAVAILABLE)
    return _reset_pg_schema(worker_id)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file."""
    return f"sqlite:///{tmp_path / 'hvpatch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hvpatch.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An opened, migrated, empty store on each backend."""
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def worker_id(request: pytest.FixtureRequest) -> str:
    """The xdist worker name (``gw0``...), or ``main`` without xdist."""
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))
