"""Campaign plans through the services, stored on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.adapters.store.db import Store
from hvpatch.domain.generator import demo_fleet
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.model import MoveKind
from hvpatch.errors import InputError, NotFoundError, PlanError
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.plans import create_plan, diff_plans, gantt, get_plan, list_plans, summary
from hvpatch.services.risk import assess_risk

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).parents[2] / "examples"
N_PLUS_0 = plan_policy_from_dict({"ha_reserve_hosts": 0, "pinned_guests": "skip-host"})


@pytest.fixture
def decided(store: Store) -> Store:
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    import_feeds(store, [bundled_feeds_dir()], now=NOW)
    refresh_findings(store, now=NOW)
    assess_risk(store, now=NOW)
    return store


def _simulate(store: Store, plan) -> None:
    """Replay every move in order; no host ever holds more than its memory capacity."""
    fleet = load_fleet(store)
    cap = {}
    used = {}
    where = {}
    for c in fleet.clusters():
        for h in c.hosts:
            cap[h.name] = h.memory_mb * c.memory_overcommit
            used[h.name] = h.memory_demand_mb
            for g in h.guests:
                where[g.name] = h.name
    for m in plan.moves():
        if m.kind in (MoveKind.EVACUATE, MoveKind.MIGRATE_BACK):
            assert where[m.guest] == m.source
            used[m.source] -= m.memory_mb
            used[m.destination] += m.memory_mb
            where[m.guest] = m.destination
            assert used[m.destination] <= cap[m.destination] + 1e-6, m


def test_emergency_plan_for_patch_now_hosts(decided: Store, tmp_path: Path) -> None:
    plan_id, plan = create_plan(decided, requester="alice", name="urgent",
                                include=("patch-now",), policy=N_PLUS_0, now=NOW)
    assert plan.emergency and plan.requester == "alice"
    s = summary(plan)
    assert s["hosts"] > 0 and s["waves"] > 0 and s["moves"] > 0
    assert s["migrations_per_evacuated_guest"] <= 1.05
    # every targeted ESXi host goes to a release that is not withdrawn
    assert all("withdrawn" not in t for t in plan.targets.values())
    _simulate(decided, plan)
    meta, again = get_plan(decided, "urgent")
    assert meta["id"] == plan_id and meta["requester"] == "alice"
    assert again == plan  # stored and read back unchanged
    assert [r["name"] for r in list_plans(decided)] == ["urgent"]
    png = gantt(again, tmp_path / "urgent.png")
    assert png.stat().st_size > 1000


def test_default_policy_explains_what_does_not_fit(store: Store) -> None:
    # the example inventory's fra1-esx-01 has two hosts and asks for an N+1 reserve: with one
    # host in maintenance the other must hold every guest *and* a spare host's worth
    import_fleet(store, read_inventory(EXAMPLES / "inventory.yaml").fleet, source="t",
                 sha256="")
    import_feeds(store, [bundled_feeds_dir()], now=NOW)
    refresh_findings(store, now=NOW)
    assess_risk(store, now=NOW)
    fail = plan_policy_from_dict({"pinned_guests": "fail"})
    with pytest.raises(PlanError) as info:
        create_plan(store, requester="alice", name="strict", policy=fail, now=NOW)
    text = str(info.value)
    # a guest on host-local disk cannot leave fra1-esx-01-h01: named, with its reason
    assert "globex-db-01" in text and "local-disk" in text
    assert list_plans(store) == []  # nothing stored


def test_plan_for_one_cve_and_diff(decided: Store) -> None:
    _a, a = create_plan(decided, requester="bob", name="a", include=("patch-now",),
                        policy=N_PLUS_0, now=NOW)
    _b, b = create_plan(decided, requester="bob", name="b", cves=["CVE-2024-22252"],
                        policy=N_PLUS_0, now=NOW)
    d = diff_plans(a, b)
    assert set(d) >= {"added_hosts", "removed_hosts", "target_changes", "hours"}
    same = diff_plans(a, a)
    assert not same["added_hosts"] and not same["removed_hosts"] and not same["target_changes"]


def test_bad_requests_are_refused(decided: Store) -> None:
    with pytest.raises(InputError, match="nothing to plan"):
        create_plan(decided, requester="bob", cves=["CVE-1999-0001"], now=NOW)
    create_plan(decided, requester="bob", name="x", include=("patch-now",), policy=N_PLUS_0,
                now=NOW)
    with pytest.raises(InputError, match="taken"):
        create_plan(decided, requester="bob", name="x", include=("patch-now",),
                    policy=N_PLUS_0, now=NOW)
    with pytest.raises(InputError, match="--include"):
        create_plan(decided, requester="bob", include=("yolo",), now=NOW)
    with pytest.raises(NotFoundError):
        get_plan(decided, "nope")
