"""What the dashboard computes itself: the burn-down, exposure by tenant, findings age and the
headline counts, checked against the store they read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from api_support import copy_store, populated_sqlite
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRow, GuestRow, HostRiskRow, HostRow
from hvpatch.domain.risk.policy import OUTCOMES
from hvpatch.services.dashboard import (
    burndown,
    exposure_by_tenant,
    exposure_now,
    findings_age,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return populated_sqlite(tmp_path_factory)


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Store:
    return copy_store(template, tmp_path)


def _close(store: Store, n: int, at: datetime) -> int:
    """All findings first seen at T0; ``n`` of them closed at ``at``; the total."""
    with store.session() as s:
        s.execute(update(FindingRow).values(first_seen=T0, closed_at=None, state="open"))
        ids = list(s.scalars(select(FindingRow.id).order_by(FindingRow.id).limit(n)))
        s.execute(update(FindingRow).where(FindingRow.id.in_(ids))
                  .values(closed_at=at, state="closed"))
        s.commit()
        return int(s.scalar(select(func.count()).select_from(FindingRow)) or 0)


def test_burndown_counts_open_findings_at_each_instant(store: Store) -> None:
    total = _close(store, 10, T0 + timedelta(days=5))
    now = T0 + timedelta(days=10)
    b = burndown(store, now=now, days=30, points=41)
    assert len(b.at) == len(b.open) == 41 and b.at[-1] == now
    assert b.at[0] < T0 and b.open[0] == 0   # starts just before the first finding
    for t, n in zip(b.at, b.open, strict=True):
        expected = 0 if t < T0 else total if t < T0 + timedelta(days=5) else total - 10
        assert n == expected, t
    assert (b.opened, b.closed) == (total, 10)
    store.close()


def test_burndown_runs_to_closures_recorded_on_the_simulated_clock(store: Store) -> None:
    now = T0 + timedelta(days=1)
    total = _close(store, 7, now + timedelta(hours=3))   # a rollout's accelerated clock
    b = burndown(store, now=now, days=30)
    assert b.at[-1] == now + timedelta(hours=3) and b.open[-1] == total - 7
    assert max(b.open) == total
    store.close()


def test_exposure_by_tenant_and_findings_age_add_up(store: Store) -> None:
    rows = exposure_by_tenant(store, top=1000)
    with store.session() as s:
        on_decided_hosts = s.scalar(select(func.count()).select_from(GuestRow).join(
            HostRiskRow, HostRiskRow.host_id == GuestRow.host_id)) or 0
        open_findings = s.scalar(select(func.count()).select_from(FindingRow)
                                 .where(FindingRow.state == "open")) or 0
        hosts = s.scalar(select(func.count()).select_from(HostRow)) or 0
    assert rows and sum(r["total"] for r in rows) == on_decided_hosts
    assert all(r["total"] == sum(r["guests"].values()) for r in rows)
    keys = [tuple(-r["guests"][o] for o in OUTCOMES) for r in rows]
    assert keys == sorted(keys)   # the most guests on Act hosts first, then Attend, ...
    assert len(exposure_by_tenant(store, top=3)) == min(3, len(rows))

    age = findings_age(store)
    assert sum(age["kev"]) + sum(age["other"]) + age["undated"] == open_findings > 0
    assert sum(age["kev"]) > 0   # the demo fleet runs ESXi builds with KEV-listed CVEs

    now = exposure_now(store)
    assert sum(now["hosts_by_outcome"].values()) == now["hosts"] == hosts
    assert now["open_findings"] == open_findings
    assert [r["name"] for r in now["in_flight"]] == []
    store.close()
