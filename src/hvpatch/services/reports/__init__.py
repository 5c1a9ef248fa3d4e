"""Reports: compliance, campaign, exceptions and maturity, as plain data, rendered on demand.

Each ``*_report`` function returns a plain, JSON-able dict built only from stored data, through
the other services and queries of what they stored: that dict is the single source of truth,
and every format (HTML, PDF, CSV, JSON; :mod:`hvpatch.adapters.reports`) is drawn from it. The
CLI (``hvpatch report``) and the API use the same functions. See ``docs/reports.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from hvpatch.adapters.reports import EXTENSIONS, FORMATS, render
from hvpatch.errors import InputError, Problem
from hvpatch.services.reports._common import KEV_STATUSES, kev_status
from hvpatch.services.reports.campaign import campaign_report
from hvpatch.services.reports.compliance import compliance_report
from hvpatch.services.reports.exceptions_report import exceptions_report
from hvpatch.services.reports.maturity import maturity_report

__all__ = ["FORMATS", "KEV_STATUSES", "KINDS", "campaign_report", "compliance_report",
           "default_path", "exceptions_report", "kev_status", "maturity_report",
           "render_report", "write_report"]

#: report kind -> the function that builds it (each takes the store and keyword options)
KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "compliance": compliance_report,
    "campaign": campaign_report,
    "exceptions": exceptions_report,
    "maturity": maturity_report,
}


def render_report(report: dict[str, Any], fmt: str) -> bytes:
    """``report`` in format ``fmt`` (html, pdf, csv or json)."""
    if fmt not in FORMATS:
        raise InputError("unknown report format", [Problem(
            "--format", f"{fmt!r} is not one of {', '.join(FORMATS)}")])
    return render(report, fmt)


def default_path(kind: str, fmt: str, day: date, directory: Path | None = None) -> Path:
    """``hvpatch-<kind>-<date>.<ext>`` in ``directory`` (the current directory by default)."""
    return (directory or Path.cwd()) / f"hvpatch-{kind}-{day.isoformat()}.{EXTENSIONS[fmt]}"


def write_report(report: dict[str, Any], fmt: str, path: Path) -> Path:
    """Render ``report`` and write it to ``path`` (parents created); return the path."""
    data = render_report(report, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise InputError("cannot write the report", [Problem(
            "--out", f"{path}: {exc.strerror or exc}")]) from exc
    return path
