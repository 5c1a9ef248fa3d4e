"""Waves of one cluster on small hand-made clusters, each test naming the rule it exercises.

Sizes are in GiB and chosen so the expected answer can be worked out by hand in the test's
docstring; :func:`replay` re-runs every plan move by move and fails on any step that breaks a
host's capacity or an anti-affinity group.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from hvpatch.domain.fleet import (
    Cluster,
    Family,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    TenantName,
)
from hvpatch.domain.planning import capacity
from hvpatch.domain.planning.baseline import plan_cluster_baseline
from hvpatch.domain.planning.model import MoveKind, PinnedPolicy
from hvpatch.domain.planning.placement import PATCHED, WAITING, ClusterState
from hvpatch.domain.planning.timing import TimeModel, schedule_migrations
from hvpatch.domain.planning.waves import (
    ClusterJob,
    ClusterPlan,
    ClusterPolicy,
    InfeasiblePlan,
    fewest_moved_twice,
    plan_cluster,
    plan_clusters,
)
from hvpatch.domain.software import GenericSoftware, XenSoftware
from hvpatch.errors import InputError

GIB = 1024
SW = GenericSoftware("acme", "edgevisor", "2.4.1")
GENERIC_HOST_S = 30 + 600 + 300 + 120 + 30  # enter, install, reboot, checks, exit (generic)


def g(name: str, gib: int, vcpus: int = 2, **kw: object) -> Guest:
    return Guest(GuestName(name), TenantName("t1"), vcpus, gib * GIB, **kw)  # type: ignore[arg-type]


def h(name: str, *guests: Guest, gib: int = 100, cores: int = 64, group: str = "",
      coordinator: bool = False, xen: bool = False) -> Host:
    software = XenSoftware("4.17.3", "xcp-ng", "8.3") if xen else SW
    return Host(HostName(name), "s1", "c1", software, cores, gib * GIB, cpu_group=group,
                coordinator=coordinator, guests=guests)


def cluster(*hosts: Host, k: int = 0, mem_over: float = 1.0,
            family: Family = Family.GENERIC) -> Cluster:
    return Cluster("c1", "s1", family, memory_overcommit=mem_over, ha_reserve_hosts=k,
                   hosts=hosts)


def every(c: Cluster) -> dict[str, str]:
    return {x.name: "2.5.0" for x in c.hosts}


def even(n: int, per_host: int = 5, gib: int = 10) -> list[Host]:
    """``n`` hosts of 100 GiB, each with ``per_host`` guests of ``gib``."""
    return [h(f"h{i}", *(g(f"v{i}-{j}", gib) for j in range(per_host))) for i in range(1, n + 1)]


def replay(c: Cluster, plan: ClusterPlan) -> list[dict[str, str]]:
    """Apply the plan's moves in order; assert capacity and anti-affinity after each one, and
    that evacuations leave hosts of their wave for hosts outside it.

    Returns where every running guest is after each wave.
    """
    cap = {str(x.name): x.memory_mb * c.memory_overcommit for x in c.hosts}
    size = {str(gu.name): gu for x in c.hosts for gu in x.guests}
    where = {str(gu.name): str(x.name) for x in c.hosts for gu in x.guests if gu.running}
    stopped: set[str] = set()
    after = []

    def check(host: str) -> None:
        here = [n for n, at in where.items() if at == host]
        assert sum(size[n].memory_mb for n in here) <= cap[host], f"{host} over capacity"
        groups = [grp for n in here for grp in size[n].anti_affinity]
        assert len(groups) == len(set(groups)), f"anti-affinity broken on {host}"

    for wave in plan.waves:
        down = {s.host for s in wave.hosts}
        for move in wave.moves:
            if move.kind is MoveKind.EVACUATE:
                assert move.source in down and move.destination not in down
            if move.kind is MoveKind.SHUTDOWN:
                assert where.pop(move.guest) == move.source
                stopped.add(move.guest)
            elif move.kind is MoveKind.RESTART:
                stopped.remove(move.guest)
                where[move.guest] = move.destination
            else:
                assert where[move.guest] == move.source
                where[move.guest] = move.destination
            check(move.destination)
        after.append(dict(where))
    assert not stopped
    assert set(where) == {gu.name for x in c.hosts for gu in x.guests if gu.running}
    return after


def sizes(plan: ClusterPlan) -> list[int]:
    return [len(w.hosts) for w in plan.waves]


def test_capacity_decides_how_many_hosts_go_at_once() -> None:
    """6 hosts of 100 GiB with 50 GiB of guests each: 300 GiB fit on 3 hosts, so 3 go at once."""
    c = cluster(*even(6))
    plan = plan_cluster(c, every(c))
    replay(c, plan)
    assert sizes(plan) == [3, 3]
    capped = plan_cluster(c, every(c), ClusterPolicy(max_parallel_hosts=2))
    assert sizes(capped) == [2, 2, 2]
    assert capped.seconds > plan.seconds


def test_ha_reserve_keeps_the_largest_remaining_host_free() -> None:
    """N+1: the hosts left minus the largest must hold 300 GiB, so at most 2 of 6 go at once."""
    c = cluster(*even(6), k=1)
    plan = plan_cluster(c, every(c))
    assert max(sizes(plan)) == 2
    for wave in plan.waves:
        up = [x for x in c.hosts if x.name not in {s.host for s in wave.hosts}]
        caps = sorted((x.memory_mb for x in up), reverse=True)
        assert sum(caps) - caps[0] >= 300 * GIB
    assert plan_cluster(c, every(c), ClusterPolicy(ha_reserve_hosts=0)).waves == \
        plan_cluster(cluster(*even(6)), every(c)).waves


def test_infeasible_reserve_is_explained_with_the_host_that_would_fix_it() -> None:
    """3 x 100 GiB holding 180 GiB with N+1: one host down leaves 100 GiB usable, 80 short."""
    c = cluster(*even(3, per_host=6), k=1)
    with pytest.raises(InfeasiblePlan) as err:
        plan_cluster(c, every(c))
    [why] = err.value.infeasibilities
    assert why.constraint == "ha-reserve"
    assert "180 GiB" in why.reason and "100 GiB is left" in why.reason
    assert "one more host with at least 80 GiB of memory in cluster c1" in why.suggestion
    assert "ha_reserve_hosts=0" in why.suggestion


def test_a_guest_that_fits_nowhere_is_named_with_each_host_free_room() -> None:
    """Three hosts each 60 % full with one 60 GiB guest: every host has only 40 GiB free."""
    c = cluster(h("h1", g("a", 60)), h("h2", g("b", 60)), h("h3", g("c", 60)))
    with pytest.raises(InfeasiblePlan) as err:
        plan_cluster(c, every(c))
    [why] = err.value.infeasibilities
    assert why.guest == "a" and why.host == "h1" and why.constraint == "memory"
    assert "h2: 40 GiB free" in why.reason and "h3: 40 GiB free" in why.reason
    assert "at least 60 GiB" in why.suggestion


def test_a_host_that_replaces_another_in_a_wave_has_taken_none_of_its_guests() -> None:
    """Found by search: h3 is required in wave 1 but cannot go, and a host of its group takes its
    place; guests of the wave must not have been sent there before it joined."""
    sizes_gib = [[24, 24, 24], [4] * 6, [4, 4], [8], [4] * 5 + [24, 32], [4] * 5 + [24, 32]]
    c = cluster(*(h(f"h{i}", *(g(f"v{i}-{j}", s) for j, s in enumerate(guests)))
                  for i, guests in enumerate(sizes_gib, start=1)))
    replay(c, plan_cluster(c, every(c)))


def test_anti_affinity_members_never_share_a_host() -> None:
    """a and b (group web) start apart; when h1 empties, a must avoid b's host."""
    c = cluster(h("h1", g("a", 10, anti_affinity=("web",))),
                h("h2", g("b", 10, anti_affinity=("web",))), h("h3", g("c", 20)))
    plan = plan_cluster(c, every(c))
    replay(c, plan)
    first = next(m for m in plan.waves[0].moves if m.guest == "a")
    assert first.destination == "h3"


def test_guests_move_only_within_their_cpu_group() -> None:
    c = cluster(h("h1", g("a", 20), g("b", 20), group="old"), h("h2", group="old"),
                h("h3", group="new"), h("h4", group="new"))
    plan = plan_cluster(c, {"h1": "2.5.0"})
    assert {m.destination for m in plan.waves[0].moves} == {"h2"}


def test_cpu_group_without_room_is_infeasible_with_a_group_host_suggested() -> None:
    """Group old holds 120 GiB on 2 x 100 GiB: with h1 down, h2 alone is 20 GiB short."""
    c = cluster(h("h1", g("a", 30), g("b", 30), group="old"), h("h2", g("c", 60), group="old"),
                h("h3", group="new"), h("h4", group="new"))
    with pytest.raises(InfeasiblePlan) as err:
        plan_cluster(c, {"h1": "2.5.0"})
    why = err.value.infeasibilities[0]
    assert why.constraint == "cpu-group"
    assert "one more host of CPU group old with at least 20 GiB" in why.suggestion


def test_pool_coordinator_goes_first_and_alone() -> None:
    hosts = [h(f"h{i}", g(f"v{i}", 10), xen=True, coordinator=i == 3) for i in range(1, 5)]
    c = cluster(*hosts, family=Family.XEN)
    plan = plan_cluster(c, every(c))
    assert [s.host for s in plan.waves[0].hosts] == ["h3"]
    assert all("h3" not in {s.host for s in w.hosts} for w in plan.waves[1:])


def test_a_coordinator_that_cannot_be_emptied_is_the_one_explained() -> None:
    """h2 could go first on its own, but the coordinator h1 must, and its 60 GiB fit nowhere."""
    c = cluster(h("h1", g("a", 60), xen=True, coordinator=True), h("h2", g("b", 50), xen=True),
                h("h3", g("c", 50), xen=True), family=Family.XEN)
    with pytest.raises(InfeasiblePlan) as err:
        plan_cluster(c, every(c))
    [why] = err.value.infeasibilities
    assert (why.guest, why.host, why.constraint) == ("a", "h1", "memory")


def pinned_cluster(coordinator: bool = False) -> Cluster:
    p = g("p", 10, migration_block=MigrationBlock.LOCAL_DISK, migration_note="data on local NVMe")
    return cluster(h("h1", p, g("m", 10), coordinator=coordinator), h("h2", g("n", 10)),
                   h("h3", g("o", 10)))


def test_pinned_guest_with_shutdown_policy_stops_and_restarts_around_its_host() -> None:
    c = pinned_cluster()
    plan = plan_cluster(c, every(c), ClusterPolicy(pinned=PinnedPolicy.SHUTDOWN))
    replay(c, plan)
    wave = next(w for w in plan.waves if "h1" in {s.host for s in w.hosts})
    kinds = [(m.kind, m.guest) for m in wave.moves]
    assert kinds.index((MoveKind.SHUTDOWN, "p")) < kinds.index((MoveKind.RESTART, "p"))
    assert all(i < kinds.index((MoveKind.RESTART, "p"))
               for i, (k, _) in enumerate(kinds) if k is MoveKind.EVACUATE)
    assert "local-disk" in wave.moves[kinds.index((MoveKind.SHUTDOWN, "p"))].reason
    assert plan.shutdowns == 1
    assert not any(m.guest == "p" and m.kind is MoveKind.EVACUATE for w in plan.waves
                   for m in w.moves)


def test_pinned_guest_with_skip_policy_leaves_its_host_alone_and_says_why() -> None:
    c = pinned_cluster()
    plan = plan_cluster(c, every(c), ClusterPolicy(pinned=PinnedPolicy.SKIP_HOST))
    [skip] = plan.skipped
    assert skip.host == "h1" and "p (local-disk: data on local NVMe)" in skip.reason
    assert sorted(s.host for w in plan.waves for s in w.hosts) == ["h2", "h3"]


def test_skipped_coordinator_skips_its_whole_pool() -> None:
    c = pinned_cluster(coordinator=True)
    plan = plan_cluster(c, every(c), ClusterPolicy(pinned=PinnedPolicy.SKIP_HOST))
    assert not plan.waves
    assert [s.host for s in plan.skipped] == ["h1", "h2", "h3"]
    assert "pool coordinator h1 is skipped" in plan.skipped[1].reason


def test_pinned_guest_with_fail_policy_names_the_guest_and_its_block() -> None:
    c = pinned_cluster()
    with pytest.raises(InfeasiblePlan) as err:
        plan_cluster(c, every(c))
    [why] = err.value.infeasibilities
    assert (why.guest, why.host, why.constraint) == ("p", "h1", "migration-block")
    assert "local-disk" in why.reason and "shutdown" in why.suggestion
    assert "p (local-disk" in str(err.value)


def test_guests_prefer_hosts_already_patched_and_untouched_hosts_stay_put() -> None:
    c = cluster(h("h1", g("a", 10), g("b", 10)), h("h2", g("c", 10)), h("h3"), h("h4"))
    plan = plan_cluster(c, {"h1": "2.5.0", "h2": "2.5.0"}, patched=frozenset({"h4"}))
    assert {m.destination for m in plan.waves[0].moves} == {"h4"}
    assert sorted(s.host for w in plan.waves for s in w.hosts) == ["h1", "h2"]
    assert plan.migrations == plan.evacuated_guests == 3


def test_migrate_back_returns_every_guest_and_checks_each_step() -> None:
    c = cluster(*even(4, per_host=3))
    plan = plan_cluster(c, every(c), ClusterPolicy(migrate_back=True))
    positions = replay(c, plan)
    start = {str(gu.name): str(x.name) for x in c.hosts for gu in x.guests}
    assert all(p == start for p in positions)
    assert plan.migrations == 2 * plan.evacuated_guests == 24


def test_migrate_back_leaves_a_guest_where_it_is_when_its_host_is_over_full() -> None:
    """h1 starts over capacity (110 GiB on 100): after its patch only 100 GiB may come back."""
    c = cluster(h("h1", g("a", 60), g("b", 50)), h("h2"), h("h3"))
    plan = plan_cluster(c, {"h1": "2.5.0"}, ClusterPolicy(migrate_back=True))
    back = [m.guest for m in plan.waves[0].moves if m.kind is MoveKind.MIGRATE_BACK]
    assert back == ["a"]
    assert plan.notes == ("b stays on h2: it no longer fits on h1",) or \
        plan.notes == ("b stays on h3: it no longer fits on h1",)


def test_concurrency_limits_set_the_evacuation_time() -> None:
    """4 guests of 10 GiB: 10.24 s + 5 s each; 1 at a time 4 rounds, 2 at a time 2 rounds."""
    one = 10 * GIB / 1000 + 5
    c = cluster(h("h1", *(g(f"v{i}", 10) for i in range(4))), h("h2"), h("h3"), h("h4"))
    for per_host, per_cluster, rounds in ((1, 8, 4), (2, 8, 2), (4, 8, 1), (4, 1, 4)):
        policy = ClusterPolicy(migrations_per_host=per_host, migrations_per_cluster=per_cluster)
        plan = plan_cluster(c, {"h1": "2.5.0"}, policy)
        assert plan.seconds == pytest.approx(GENERIC_HOST_S + rounds * one)
        assert plan.waves[0].hosts[0].seconds["evacuate"] == pytest.approx(rounds * one)
        assert plan.lower_bound_seconds == pytest.approx(plan.seconds)


def test_plans_are_deterministic_and_never_faster_than_their_lower_bound() -> None:
    c = cluster(*even(8, per_host=4, gib=12), k=1)
    first, second = plan_cluster(c, every(c)), plan_cluster(c, every(c))
    assert first == second
    assert first.lower_bound_seconds <= first.seconds


def test_baseline_goes_one_host_at_a_time_first_fit_and_migrates_everything_back() -> None:
    c = cluster(*even(4, per_host=3))
    plan = plan_cluster_baseline(c, every(c))
    replay(c, plan)
    assert sizes(plan) == [1, 1, 1, 1]
    assert {m.destination for m in plan.waves[0].moves if m.kind is MoveKind.EVACUATE} == {"h2"}
    assert plan.migrations == 2 * plan.evacuated_guests
    assert plan.seconds > plan_cluster(c, every(c)).seconds


def test_time_model_per_family_and_its_validation() -> None:
    tm = TimeModel()
    assert tm.host_seconds("esxi") == 30 + 900 + 600 + 120 + 30
    assert tm.host_seconds("hyperv") == 30 + 1800 + 420 + 120 + 30
    assert tm.host_seconds("no-such-family") == GENERIC_HOST_S
    assert tm.host_seconds("kvm", restarts=True) == 30 + 300 + 180 + 120 + 30 + 60
    assert TimeModel(install_s={"esxi": 100.0}).host_seconds("esxi") == 30 + 100 + 600 + 150
    assert tm.migration_seconds(2000) == pytest.approx(7.0)
    with pytest.raises(InputError):
        TimeModel(migration_mib_per_s=0)
    with pytest.raises(InputError):
        ClusterPolicy(migrations_per_host=0)


def test_schedule_respects_both_limits() -> None:
    # two sources to one destination: the destination takes 2 at once, so 4 x 10 s -> 20 s
    assert schedule_migrations([(0, 2, 10.0)] * 2 + [(1, 2, 10.0)] * 2, 2, 8).seconds == 20.0
    # the cluster limit of 1 serialises everything
    assert schedule_migrations([(0, 2, 10.0), (1, 3, 10.0)], 2, 1).seconds == 20.0


def test_fewest_waves_counts_hosts_that_cannot_share_a_wave() -> None:
    assert capacity.fewest_waves([60, 60, 60], 100) == 3
    assert capacity.fewest_waves([30, 30, 30, 30], 100) == 2
    assert capacity.headroom([100, 50, 80], 1) == 130


# --- fewest guests moving twice ----------------------------------------------------------------


def test_the_smallest_guests_take_the_room_on_patched_hosts_so_fewest_move_twice() -> None:
    """h1 is patched with 30 GiB free; h2 must go while h3 still waits. h2's 30 GiB guest or its
    three 10 GiB guests fit on h1, not both: the three small ones go there, so one guest (not
    three) lands on h3 and will move again."""
    c = cluster(h("h1", g("old", 70)), h("h2", g("big", 30), *(g(f"s{i}", 10) for i in range(3))),
                h("h3"))
    state = ClusterState(c, (PATCHED, WAITING, WAITING), TimeModel().migration_seconds)
    moves, stuck = state.evacuate(1, [False, True, False], WAITING, [0.0] * 3)
    assert stuck is None
    assert sorted((vm.name, state.names[d]) for vm, _, d in moves) == [
        ("big", "h3"), ("s0", "h1"), ("s1", "h1"), ("s2", "h1")]


def test_guests_that_all_fit_on_patched_hosts_go_there_largest_first() -> None:
    """No guest needs a waiting host: the plain largest-first order is kept (migrate-back and
    packing rely on it)."""
    c = cluster(h("h1"), h("h2", g("a", 60), g("b", 30)), h("h3"))
    state = ClusterState(c, (PATCHED, WAITING, WAITING), TimeModel().migration_seconds)
    moves, stuck = state.evacuate(1, [False, True, False], WAITING, [0.0] * 3)
    assert stuck is None and [(vm.name, state.names[d]) for vm, _, d in moves] == [
        ("a", "h1"), ("b", "h1")]


def test_fewest_moved_twice_is_the_first_hosts_guests_per_cpu_group_that_all_waits() -> None:
    three = [h("h1", g("a", 5), g("b", 5)), h("h2", g("c", 5)), h("h3", *(g(f"d{i}", 5)
                                                                       for i in range(3)))]
    c = cluster(*three)
    assert fewest_moved_twice(c, every(c)) == 1  # h2 first: its one guest moves twice
    assert fewest_moved_twice(c, {"h1": "2.5.0", "h3": "2.5.0"}) == 0  # h2 takes them for good
    assert fewest_moved_twice(c, {"h1": "2.5.0", "h3": "2.5.0"}, patched=frozenset({"h2"})) == 0
    pool = cluster(replace(three[2], coordinator=True), *three[:2])
    assert fewest_moved_twice(pool, every(pool)) == 3  # the coordinator goes first
    mixed = cluster(*(replace(x, cpu_group="intel") for x in three),
                    h("a1", g("e", 5), group="amd"), h("a2", g("f", 5), g("g", 5), group="amd"))
    assert fewest_moved_twice(mixed, every(mixed)) == 1 + 1
    pinned = cluster(h("h1", g("a", 5), g("p", 5, migration_block=MigrationBlock.LOCAL_DISK)),
                     *three[1:])
    assert fewest_moved_twice(pinned, every(pinned)) == 1  # h1 has one guest that can move
    assert fewest_moved_twice(pinned, every(pinned), PinnedPolicy.SKIP_HOST) == 0  # h1 stays


def test_plans_never_beat_the_fewest_moved_twice_and_reach_it_when_there_is_time() -> None:
    c = cluster(*even(6, per_host=5, gib=10))
    floor = fewest_moved_twice(c, every(c))
    fast = plan_cluster(c, every(c))
    slow = plan_cluster(c, every(c), ClusterPolicy(spare_waves=3))
    assert fast.migrations - fast.evacuated_guests > floor == 5
    assert slow.migrations - slow.evacuated_guests == floor


# --- clusters planned together (a ring) ----------------------------------------------------------


def named(name: str, hosts: list[Host]) -> Cluster:
    return Cluster(name, "s1", Family.GENERIC, ha_reserve_hosts=0,
                   hosts=tuple(replace(x, cluster=name) for x in hosts))


def test_clusters_off_the_critical_path_spend_their_slack_on_fewer_double_moves() -> None:
    """big: 8 hosts at 70 % take 4 waves of 2. small: 4 hosts at 50 % could go in 2 waves of 2,
    moving the first wave's 10 guests twice; with the ring's 4 waves of time it goes one host
    first and the rest clean, so only 5 guests move twice, and the ring takes no longer."""
    big = named("big", even(8, per_host=7, gib=10))
    small = named("small", even(4, per_host=5, gib=10))
    bad = named("bad", [h("x1", g("huge", 90)), h("x2", g("other", 20))])  # nowhere to go
    jobs = [ClusterJob(c, every(c)) for c in (small, big, bad)]
    alone = plan_clusters(jobs, slack=False)
    together = plan_clusters(jobs)
    assert isinstance(together[2], InfeasiblePlan) and isinstance(alone[2], InfeasiblePlan)
    assert str(together[2]) == str(alone[2]) and "cluster bad" in str(together[2])
    (s0, b0), (s1, b1) = alone[:2], together[:2]
    assert isinstance(s0, ClusterPlan) and isinstance(s1, ClusterPlan)
    assert isinstance(b0, ClusterPlan) and isinstance(b1, ClusterPlan)
    assert s0 == plan_cluster(small, every(small)) and b0 == plan_cluster(big, every(big))
    assert b1 == b0  # the critical cluster is planned as asked
    assert (s0.migrations, s0.evacuated_guests, sizes(s0)) == (30, 20, [2, 2])
    assert s1.migrations - s1.evacuated_guests == 5 == fewest_moved_twice(small, every(small))
    assert s1.seconds <= b1.seconds  # the ring is as long as before
    replay(small, s1)


def test_a_deadline_allows_more_waves_only_as_far_as_it_reaches() -> None:
    c = named("small", even(4, per_host=5, gib=10))
    quick = plan_cluster(c, every(c))
    roomy = plan_cluster(c, every(c), ClusterPolicy(deadline_seconds=10 * quick.seconds))
    tight = plan_cluster(c, every(c), ClusterPolicy(deadline_seconds=quick.seconds))
    assert len(roomy.waves) > len(quick.waves) and roomy.migrations < quick.migrations
    assert tight == quick
    with pytest.raises(InputError, match="deadline_seconds"):
        ClusterPolicy(deadline_seconds=0)
