"""FIRST EPSS scores from CSV -> :class:`EpssScore` values, streamed line by line.

Two layouts are read:

* FIRST's daily file (``epss_scores-YYYY-MM-DD.csv[.gz]``): a first line
  ``#model_version:v2025.03.14,score_date:2025-08-22T00:00:00+0000``, then the header
  ``cve,epss,percentile``;
* column-mapped CSVs that carry EPSS beside other data (``CVE,CVSS3,EPSS,EPSS Percentile,...``):
  the CVE, EPSS and percentile columns are found by name, case-insensitively; others are ignored.

The score date comes from the file's own ``#`` line; failing that from ``default_score_date``
(e.g. read from the data's provenance); failing that it is None. Lines are read under a length
cap, so a file without newlines cannot exhaust memory. A bad row raises :class:`FeedError` naming
the file and line.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import BinaryIO

from hvpatch.adapters.feeds.reader import DEFAULT_LIMITS, FeedLimits, feed_name, open_feed
from hvpatch.domain.advisories import EpssScore
from hvpatch.errors import FeedError

DEFAULT_MAX_LINE_BYTES = 64 * 1024
_CVE_ID = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}")
_COLUMNS = {
    "cve": ("cve", "cve id", "cveid"),
    "epss": ("epss", "epss score"),
    "percentile": ("percentile", "epss percentile"),
}


class _Lines:
    """The file's lines as text, each under a byte cap, counting them for error messages."""

    def __init__(self, stream: BinaryIO, name: str, max_line_bytes: int) -> None:
        self.number = 0
        self._stream = stream
        self._name = name
        self._max = max_line_bytes

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self._stream.readline(self._max + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > self._max and not raw.endswith(b"\n"):
                raise FeedError(
                    f"{self._name}: line {self.number} is longer than {self._max} bytes"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FeedError(f"{self._name}: line {self.number}: not UTF-8: {exc}") from exc
            yield text.removeprefix("\ufeff") if self.number == 1 else text


def iter_epss(
    path: str | os.PathLike[str],
    default_score_date: date | None = None,
    *,
    limits: FeedLimits = DEFAULT_LIMITS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[EpssScore]:
    """Yield one score per data row, in file order (plain, zip or gzip CSV)."""
    name = feed_name(path)
    with open_feed(path, limits) as stream:
        lines = _Lines(stream, name, max_line_bytes)
        text = iter(lines)
        first = next(text, None)
        if first is None:
            raise FeedError(f"{name}: empty file")
        model_version, score_date = "", default_score_date
        if first.startswith("#"):
            model_version, file_date = _parse_comment(first, name)
            score_date = file_date or default_score_date
            first = next(text, None)
            if first is None:
                raise FeedError(f"{name}: no header line after the # line")
        rows = csv.reader(_chain(first, text))
        try:
            header = next(rows)
            columns = _find_columns(header, name, lines.number)
            for row in rows:
                if not row or not any(cell.strip() for cell in row):
                    continue
                yield _score(row, columns, name, lines.number, score_date, model_version)
        except csv.Error as exc:
            raise FeedError(f"{name}: line {lines.number}: bad CSV: {exc}") from exc


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _parse_comment(line: str, name: str) -> tuple[str, date | None]:
    """Read ``#model_version:...,score_date:...`` (either part may be missing)."""
    fields: dict[str, str] = {}
    for part in line.lstrip("#").strip().split(","):
        key, sep, value = part.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    score_date = None
    if fields.get("score_date"):
        try:
            score_date = datetime.fromisoformat(fields["score_date"]).date()
        except ValueError as exc:
            raise FeedError(f"{name}: line 1: bad score_date: {exc}") from exc
    return fields.get("model_version", ""), score_date


def _normalise(column: str) -> str:
    return " ".join(column.strip().lower().replace("_", " ").replace("-", " ").split())


def _find_columns(header: list[str], name: str, line: int) -> dict[str, int]:
    names = [_normalise(c) for c in header]
    found: dict[str, int] = {}
    for role, aliases in _COLUMNS.items():
        hits = [i for i, n in enumerate(names) if n in aliases]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise FeedError(
                f"{name}: line {line}: {what} {role!r} column in header {header!r} "
                f"(accepted names: {', '.join(aliases)})"
            )
        found[role] = hits[0]
    return found


def _probability(text: str, role: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{role} {text!r} is outside [0, 1]")
    return value


def _score(
    row: list[str],
    columns: dict[str, int],
    name: str,
    line: int,
    score_date: date | None,
    model_version: str,
) -> EpssScore:
    try:
        cve_id = row[columns["cve"]].strip()
        if not _CVE_ID.fullmatch(cve_id):
            raise ValueError(f"{cve_id!r} is not a CVE id")
        return EpssScore(
            cve_id=cve_id,
            epss=_probability(row[columns["epss"]].strip(), "epss"),
            percentile=_probability(row[columns["percentile"]].strip(), "percentile"),
            score_date=score_date,
            model_version=model_version,
        )
    except IndexError as exc:
        raise FeedError(
            f"{name}: line {line}: {len(row)} columns, fewer than the header's"
        ) from exc
    except ValueError as exc:
        raise FeedError(f"{name}: line {line}: {exc}") from exc
