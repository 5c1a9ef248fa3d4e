"""Small bar charts for reports and the dashboard, rendered headless to PNG bytes.

One labelled series (optionally a colour per bar), or several stacked series (e.g. CVEs by
severity per product line). Rendered with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["bar_chart_png", "line_chart_png"]

_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def bar_chart_png(title: str, labels: Sequence[str],
                  series: Sequence[tuple[str, Sequence[float]]], *, xlabel: str = "",
                  colours: Sequence[str] | None = None, horizontal: bool = False,
                  width_in: float = 8.0) -> bytes:
    """A bar chart as PNG bytes: ``series`` are ``(name, values)`` stacked in order.

    ``colours`` colour the series (or, with one series, each bar). Bars are labelled with their
    totals so the chart reads without the table.
    """
    rows = max(1, len(labels))
    height = max(2.6, 0.34 * rows + 1.4) if horizontal else 3.4
    fig, ax = plt.subplots(figsize=(width_in, height))
    positions = list(range(len(labels)))
    base = [0.0] * len(labels)
    per_bar = len(series) == 1 and colours is not None and len(colours) == len(labels)
    for i, (name, values) in enumerate(series):
        vals = [float(v) for v in values]
        colour: str | list[str]
        if per_bar and colours is not None:
            colour = list(colours)
        elif colours is not None and i < len(colours):
            colour = colours[i]
        else:
            colour = _COLOURS[i % len(_COLOURS)]
        if horizontal:
            ax.barh(positions, vals, left=base, color=colour, label=name or None)
        else:
            ax.bar(positions, vals, bottom=base, color=colour, label=name or None)
        base = [b + v for b, v in zip(base, vals, strict=True)]
    for p, total in zip(positions, base, strict=True):
        text = f"{total:g}"
        if horizontal:
            ax.text(total, p, f" {text}", va="center", fontsize=8)
        else:
            ax.text(p, total, text, ha="center", va="bottom", fontsize=8)
    if horizontal:
        ax.set_yticks(positions, list(labels), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.08)
    else:
        ax.set_xticks(positions, list(labels), fontsize=8, rotation=20 if len(labels) > 5 else 0)
        ax.set_ylabel(xlabel)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.12)
    if len(series) > 1:  # beside the plot, where it hides no bar
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, fontsize=11)
    return _png(fig)


def line_chart_png(title: str, at: Sequence[datetime], values: Sequence[float], *,
                   ylabel: str = "", width_in: float = 8.0) -> bytes:
    """A filled line over time as PNG bytes (e.g. open findings, a burn-down); the last value
    is labelled."""
    fig, ax = plt.subplots(figsize=(width_in, 3.2))
    xs = [float(x) for x in mdates.date2num(list(at))]  # type: ignore[no-untyped-call]
    ys = [float(v) for v in values]
    ax.plot(xs, ys, color=_COLOURS[0], linewidth=1.8, drawstyle="steps-post")
    ax.fill_between(xs, ys, step="post", color=_COLOURS[0], alpha=0.15)
    if xs:
        ax.annotate(f"{ys[-1]:g}", (xs[-1], ys[-1]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0, top=max(ys, default=0) * 1.15 + 1)
    ax.grid(alpha=0.3)
    ax.xaxis_date()
    locator = ax.xaxis.get_major_locator()
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_title(title, fontsize=11)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
