"""Per-invocation state shared by the commands: which store to use, opened on first need."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from hvpatch.adapters.store.db import Store


@dataclass
class AppState:
    """The global options, and the store once a command asks for it."""

    db_url: str | None = None
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        """The opened, migrated store."""
        if self._store is None:
            self._store = Store(self.db_url)
        return self._store

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None


def state(ctx: typer.Context) -> AppState:
    """The :class:`AppState` of this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):
        obj = AppState()
        ctx.find_root().obj = obj
    return obj
