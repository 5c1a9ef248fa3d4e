"""A Gantt chart of a campaign plan: one bar per wave, grouped by ring and cluster, soak shown.

Rendered headless (matplotlib's Agg backend) to PNG or SVG, for the CLI and the dashboard.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hvpatch.domain.planning.model import CampaignPlan

_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


def render_gantt(plan: CampaignPlan, path: Path, *, max_rows: int = 60) -> Path:
    """Write the chart to ``path`` (.png or .svg); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gantt_bytes(plan, fmt=path.suffix.lstrip(".").lower() or "png",
                                 max_rows=max_rows))
    return path


def gantt_bytes(plan: CampaignPlan, *, fmt: str = "png", max_rows: int = 60) -> bytes:
    """The chart as ``fmt`` (png or svg) bytes."""
    rows: list[tuple[str, float, float, str, int]] = []
    ring_start = 0.0
    for i, ring in enumerate(plan.rings):
        for w in ring.waves:
            label = f"{ring.ring} · {w.cluster} · wave {w.index} ({len(w.hosts)} hosts)"
            rows.append((label, ring_start + w.start_offset, w.seconds, "wave", i))
        soak = ring.gate.soak_hours * 3600
        if soak:
            rows.append((f"{ring.ring} · soak", ring_start + ring.seconds - soak, soak, "soak", i))
        ring_start += ring.seconds
    shown = rows[:max_rows]
    height = max(2.5, 0.32 * len(shown) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    for y, (_label, start, dur, kind, ring_i) in enumerate(shown):
        colour = _COLOURS[ring_i % len(_COLOURS)]
        ax.barh(y, dur / 3600, left=start / 3600, color=colour,
                alpha=0.35 if kind == "soak" else 0.9, hatch="//" if kind == "soak" else None,
                edgecolor=colour)
    ax.set_yticks(range(len(shown)), [r[0] for r in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("hours from the campaign start")
    more = f" (first {max_rows} of {len(rows)} rows)" if len(rows) > max_rows else ""
    ax.set_title(f"Campaign {plan.name}: {plan.seconds / 3600:.1f} h expected{more}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()


def timeline_bytes(title: str, rows: Sequence[tuple[str, float, float, int, bool]], *,
                   max_rows: int = 60) -> bytes:
    """What actually ran, as PNG bytes: ``rows`` are ``(label, start_s, seconds, group,
    failed)``; one colour per group (ring), failed rows outlined in red."""
    shown = list(rows[:max_rows])
    height = max(2.5, 0.32 * len(shown) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    for y, (_label, start, dur, group, failed) in enumerate(shown):
        colour = _COLOURS[group % len(_COLOURS)]
        ax.barh(y, max(dur, 1.0) / 3600, left=start / 3600, color=colour, alpha=0.9,
                edgecolor="#c0392b" if failed else colour, linewidth=2 if failed else 1)
    ax.set_yticks(range(len(shown)), [r[0] for r in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("hours from the rollout's first step")
    more = f" (first {max_rows} of {len(rows)} rows)" if len(rows) > max_rows else ""
    ax.set_title(title + more)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
