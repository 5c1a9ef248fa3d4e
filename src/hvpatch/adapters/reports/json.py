"""Render a report as JSON: the report dict itself, the single source of the other formats."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["render_json"]


def render_json(report: Mapping[str, Any]) -> bytes:
    """The report as indented UTF-8 JSON with a final newline."""
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
