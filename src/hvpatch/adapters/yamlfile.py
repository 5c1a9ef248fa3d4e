"""Read a small YAML (or JSON) configuration file with clear errors: file, line, problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hvpatch.errors import InputError, Problem


def load_yaml(path: Path) -> Any:
    """The parsed document; :class:`InputError` naming the file and line when it is not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}", [Problem(str(path), exc.strerror or str(exc))]) \
            from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text", [Problem(str(path), str(exc))]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"{path} is not valid YAML",
                         [Problem(where, str(getattr(exc, "problem", exc)))]) from exc
