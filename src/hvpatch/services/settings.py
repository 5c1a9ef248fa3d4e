"""Server settings kept in the store: the session signing key, generated on first run."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AppSettingRow

__all__ = ["session_key"]

SESSION_KEY = "session_key"


def session_key(store: Store) -> str:
    """The key that signs browser session cookies; created (random) the first time it is
    asked for, so every server process of one store signs and checks with the same key."""
    with store.session() as s:
        row = s.get(AppSettingRow, SESSION_KEY)
        if row is not None:
            return row.value
        s.add(AppSettingRow(key=SESSION_KEY, value=secrets.token_urlsafe(48)))
        try:
            s.commit()
        except IntegrityError:  # another server process created it at the same moment
            s.rollback()
    with store.session() as s:
        return s.get_one(AppSettingRow, SESSION_KEY).value
