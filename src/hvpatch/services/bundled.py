"""Where the bundled advisory snapshot lives inside the installed package."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def bundled_feeds_dir() -> Path:
    """The directory of the bundled snapshot (see ``hvpatch/data/PROVENANCE.md``)."""
    with as_file(files("hvpatch") / "data" / "feeds") as path:
        return Path(path)
