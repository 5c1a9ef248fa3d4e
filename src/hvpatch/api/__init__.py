"""The REST API (FastAPI): ``create_app(store)``; see ``docs/api.md``."""

from __future__ import annotations

from hvpatch.api.app import create_app

__all__ = ["create_app"]
