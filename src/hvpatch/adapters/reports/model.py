"""The shape every rendered report takes: a title, facts, charts and tables.

A report dict (from :mod:`hvpatch.services.reports`) is laid out once into a :class:`Document`
(:mod:`hvpatch.adapters.reports.layout`); the HTML and PDF renderers draw documents and the CSV
renderer writes a document's main table. Cells keep their raw value (for CSV) and are shown
through their column's formatter (for people).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chart", "Column", "Document", "Table", "display", "lookup", "raw_cell"]

Formatter = Callable[[Any], str]


def lookup(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, where ``a.b`` reads ``row["a"]["b"]`` (None when any part is missing)."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def display(value: Any) -> str:
    """A value as a person reads it: ``-`` for nothing, yes/no, ISO times to the minute."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        if len(value) >= 16 and value[4:5] == "-" and value[10:11] == "T":
            return value[:16].replace("T", " ")  # an ISO timestamp (UTC)
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {display(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "; ".join(display(v) for v in value) or "-"
    return str(value)


def raw_cell(value: Any) -> str:
    """A value for a CSV cell: scalars as they are, lists of scalars joined, the rest JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return "; ".join(str(v) for v in value)
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: the row key it reads (dotted for nested), its header, how it is shown."""

    key: str
    header: str
    fmt: Formatter = display
    #: a wide text column (reasons, errors): the PDF gives it more room
    wide: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of plain dicts under a title; ``mark`` names the key whose value styles a row."""

    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Mapping[str, Any]]
    note: str = ""
    empty: str = "None."
    mark: str = ""

    def header(self) -> list[str]:
        """Column headers for people."""
        return [c.header for c in self.columns]

    def cells(self) -> list[list[str]]:
        """Every row as display strings."""
        return [[c.fmt(lookup(r, c.key)) for c in self.columns] for r in self.rows]

    def marks(self) -> list[str]:
        """Per row a CSS-safe marker (e.g. ``missed``), or ''."""
        if not self.mark:
            return ["" for _ in self.rows]
        return ["".join(ch if ch.isalnum() else "-" for ch in str(lookup(r, self.mark) or ""))
                for r in self.rows]

    def raw(self) -> tuple[list[str], list[list[str]]]:
        """The column keys and every row's raw values (for CSV)."""
        return ([c.key for c in self.columns],
                [[raw_cell(lookup(r, c.key)) for c in self.columns] for r in self.rows])


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart: labels and stacked ``(name, values)`` series."""

    title: str
    labels: Sequence[str]
    series: Sequence[tuple[str, Sequence[float]]]
    xlabel: str = ""
    colours: Sequence[str] | None = None
    horizontal: bool = False


@dataclass(frozen=True, slots=True)
class Document:
    """A laid-out report: title, where it came from, key facts, a verdict, charts, tables."""

    title: str
    meta: Sequence[tuple[str, str]]
    facts: Sequence[tuple[str, str]]
    main: Table
    tables: Sequence[Table] = ()
    charts: Sequence[Chart] = ()
    verdicts: Sequence[tuple[bool, str]] = field(default_factory=tuple)
    intro: str = ""

    def all_tables(self) -> list[Table]:
        """The main table first, then the others."""
        return [self.main, *self.tables]
