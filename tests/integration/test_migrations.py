"""The Alembic migrations build exactly the schema the models declare, on SQLite and
PostgreSQL: a model changed without its migration (or the reverse) fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import Base


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
