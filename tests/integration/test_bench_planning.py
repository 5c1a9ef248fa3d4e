"""The planning benchmark runs end to end at a small size and its numbers hang together.

``bench/bench_planning.py`` is how the planner's quality goals are measured (docs/benchmarks.md);
this keeps it working: on 300 generated hosts it plans both campaigns with the three planners and
every row must say what the full-size run says in kind -- the baseline migrates every guest twice,
no planner beats the floor, ring slack moves no more guests than cluster by cluster and leaves
the campaign as long as it was, and the baseline takes longer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture
def bench_planning(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import bench_planning  # the benchmarks live next to src/, not in the package

    return bench_planning


@pytest.mark.slow
def test_the_planning_benchmark_compares_three_planners_on_two_campaigns(
        bench_planning: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_planning.run(300, 1, 19)
    out = capsys.readouterr().out
    assert "the campaign for the real findings:" in out and "infeasible clusters" in out
    scenarios = ["every host", "every host, N+0 in maintenance", "real findings"]
    assert [r["scenario"] for r in rows] == [s for s in scenarios for _ in range(3)]
    for i in range(0, len(rows), 3):
        slack, alone, baseline = rows[i:i + 3]
        assert [r["planner"] for r in (slack, alone, baseline)] == [
            "waves, ring slack", "waves, cluster by cluster", "baseline"]
        assert slack["compared"] == alone["compared"] == baseline["compared"] > 0
        assert baseline["migrations_per_evacuated"] == 2.0
        for r in (slack, alone):
            assert r["floor"] <= r["migrations_per_evacuated"] + 1e-9
        assert slack["migrations_per_evacuated"] <= alone["migrations_per_evacuated"]
        assert slack["campaign_ratio"] == pytest.approx(alone["campaign_ratio"])
        assert 1.0 <= slack["campaign_ratio"] < baseline["campaign_ratio"]
        assert slack["planned"] >= baseline["planned"]
