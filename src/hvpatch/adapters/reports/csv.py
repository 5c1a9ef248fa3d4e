"""Render a report's main table as CSV: one header row of field names, one row per record.

The compliance report's main table is its KEV findings, the campaign report's its hosts, the
exceptions report's its exceptions, the maturity report's its product lines. Cells hold the raw
values (ISO dates, numbers, ``true``/``false``); lists of values are joined with ``; `` and
nested records written as JSON, so a spreadsheet or a script reads them as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from hvpatch.adapters.reports.layout import layout

__all__ = ["render_csv"]


def render_csv(report: Mapping[str, Any]) -> bytes:
    """The main table of the report as UTF-8 CSV (RFC 4180 quoting, CRLF line ends)."""
    keys, rows = layout(report).main.raw()
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(keys)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")
