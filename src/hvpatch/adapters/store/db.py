"""Opening the store: resolve the database URL, create the engine, bring the schema up to date.

SQLite is the embedded default (a file in the user's data directory); PostgreSQL is the
production store and runs the same code. ``--db URL`` beats ``HVPATCH_DATABASE_URL`` beats the
default. :class:`BulkWrite` is the fast path for large imports on either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hvpatch.errors import InputError, Problem, StoreError

ENV_VAR = "HVPATCH_DATABASE_URL"
MIGRATIONS = Path(__file__).parent / "migrations"


def default_url() -> str:
    """SQLite file in the user's data directory (e.g. ``~/.local/share/hvpatch/hvpatch.db``)."""
    path = Path(platformdirs.user_data_dir("hvpatch")) / "hvpatch.db"
    return f"sqlite:///{path}"


def resolve_url(explicit: str | None = None) -> str:
    """The database URL to use, normalised to the drivers hvpatch ships with."""
    url = explicit or os.environ.get(ENV_VAR) or default_url()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(
            "bad database URL",
            [Problem("--db", f"{url!r} is not a URL (expected sqlite:///PATH or "
                     "postgresql://user@host:port/db)")],
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise InputError(
            "unsupported database",
            [Problem("--db", f"driver {parsed.drivername!r} is not supported "
                     "(expected sqlite or postgresql)")],
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings hvpatch relies on (FKs on in SQLite)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def schema_revision(engine: Engine) -> tuple[str | None, str]:
    """(current revision of the database, head revision of this hvpatch)."""
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head or ""


def upgrade(engine: Engine) -> None:
    """Apply every pending migration."""
    command.upgrade(_alembic_config(engine), "head")


class Store:
    """An opened, migrated store: the engine and a session factory."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = resolve_url(url)
        self.engine = create_store_engine(self.url)
        try:
            if migrate:
                current, head = schema_revision(self.engine)
                if current != head:
                    upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the store at {self.safe_url}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate the store at {self.safe_url}: {exc}") from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def session(self) -> Session:
        """A new session; use as a context manager and commit explicitly."""
        return self.sessions()

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def analyze(self, *models: Any) -> None:
        """Refresh PostgreSQL's planner statistics of these tables after a bulk write.

        Without them, right after a large import, the planner expects a handful of rows and
        picks plans that read whole tables (a findings page of a 10,000-host store took 62 ms
        instead of 4; ``docs/benchmarks.md``); autovacuum would catch up later, or never where
        it is off. A no-op on SQLite, whose planner works without statistics here.
        """
        if self.dialect != "postgresql" or not models:
            return
        names = ", ".join(f'"{m.__tablename__}"' for m in models)
        with self.engine.begin() as conn:
            conn.execute(text(f"ANALYZE {names}"))


class BulkWrite:
    """Bulk writes of plain tuples straight into the driver (no per-row SQLAlchemy work).

    An INSERT of ``columns`` (``COPY`` on PostgreSQL, ``executemany`` elsewhere), or with
    ``key`` an UPDATE of ``columns`` where ``key`` equals the tuple's last value. Values go
    through the column types' own bind processors, so what is stored is exactly what an ORM
    write would store; columns in ``verbatim`` take values as they are (a JSON column given
    text already serialised, which SQLite stores and PostgreSQL parses as it is).
    """

    def __init__(self, conn: Connection, model: Any, columns: tuple[str, ...], *,
                 verbatim: tuple[str, ...] = (), key: str | None = None) -> None:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        name = model.__tablename__
        self.copy: str | None = None
        if key is None:
            self.sql = (f"INSERT INTO {name} ({', '.join(columns)}) "
                        f"VALUES ({', '.join([mark] * len(columns))})")
            if conn.dialect.name == "postgresql":
                self.copy = f"COPY {name} ({', '.join(columns)}) FROM STDIN"
        else:
            self.sql = (f"UPDATE {name} SET {', '.join(f'{c} = {mark}' for c in columns)} "
                        f"WHERE {key} = {mark}")
        self.conn = conn
        types = [model.__table__.c[c].type.dialect_impl(conn.dialect) for c in columns]
        self.procs = [(i, proc) for i, (c, t) in enumerate(zip(columns, types, strict=True))
                      if c not in verbatim and (proc := t.bind_processor(conn.dialect))]

    def __call__(self, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows``: tuples in ``columns`` order (then the key value, for an UPDATE)."""
        if self.procs:
            converted = []
            for row in rows:
                values = list(row)
                for i, proc in self.procs:
                    values[i] = proc(values[i])
                converted.append(tuple(values))
            rows = converted
        if self.copy is None:
            self.conn.exec_driver_sql(self.sql, rows)
            return
        driver: Any = self.conn.connection.dbapi_connection
        with driver.cursor() as cur, cur.copy(self.copy) as copy:
            for row in rows:
                copy.write_row(row)
