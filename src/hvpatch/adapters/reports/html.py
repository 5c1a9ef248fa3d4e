"""Render a report as one self-contained HTML page: inline CSS, charts as embedded PNG images.

The page needs nothing but itself (no script, no stylesheet, no image file), so it can be mailed
to an auditor or attached to a ticket. The Jinja2 template ships in the package
(``templates/report.html.j2``); every value is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from hvpatch import __version__
from hvpatch.adapters.plots.charts import bar_chart_png
from hvpatch.adapters.reports.layout import layout
from hvpatch.adapters.reports.model import Chart

__all__ = ["chart_data_uri", "render_html"]

_env = Environment(loader=PackageLoader("hvpatch.adapters.reports", "templates"),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                   lstrip_blocks=True)


def chart_png(chart: Chart, *, width_in: float = 8.0) -> bytes:
    """The chart as PNG bytes."""
    return bar_chart_png(chart.title, chart.labels, chart.series, xlabel=chart.xlabel,
                         colours=chart.colours, horizontal=chart.horizontal, width_in=width_in)


def chart_data_uri(chart: Chart) -> str:
    """The chart as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(chart_png(chart)).decode("ascii")


def render_html(report: Mapping[str, Any]) -> bytes:
    """The report as a UTF-8 HTML page."""
    doc = layout(report)
    page = _env.get_template("report.html.j2").render(
        doc=doc, charts=[(c.title, chart_data_uri(c)) for c in doc.charts],
        tables=[(t, t.cells(), t.marks()) for t in doc.all_tables()], version=__version__)
    return page.encode("utf-8")
