"""Output helpers shared by the commands: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# Piped or logged output (make demo, CI logs) has no terminal width; Rich would assume 80
# columns and truncate host names, so give such output room unless COLUMNS says otherwise.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


class Output(StrEnum):
    """How a command shows data."""

    TABLE = "table"
    JSON = "json"


OUTPUT_OPTION = typer.Option(
    Output.TABLE, "--output", "-o", help="table for people, json for scripts.",
    case_sensitive=False,
)


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (never through Rich, so nothing is wrapped)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]], *,
          right: tuple[str, ...] = ()) -> Table:
    """A Rich table with the house style."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t


def gib(mb: int | float) -> str:
    """Megabytes as GiB with one decimal."""
    return f"{mb / 1024:,.1f}"
