"""Properties of cluster plans on small random clusters (2-8 hosts, 0-6 guests each).

Every plan, replayed move by move from the inventory, must (1) never put a host over its
effective memory or vCPU capacity, (2) never put two running guests of one anti-affinity group on
one host, (3) move guests only within their CPU group, to hosts that are up, (4) keep the N+k rule
while its hosts are in maintenance, with those hosts empty, and (5) end with every guest that ran
before running again. Inputs without a safe plan must give reasons, never a plan; plans must be
deterministic and never faster than their lower bound. The baseline planner obeys the same rules.
Random inventories start valid (no host over capacity, no anti-affinity group broken).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.domain.fleet import (
    Cluster,
    Family,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    PowerState,
    TenantName,
)
from hvpatch.domain.planning.baseline import plan_cluster_baseline
from hvpatch.domain.planning.model import MoveKind, PinnedPolicy
from hvpatch.domain.planning.waves import (
    ClusterJob,
    ClusterPlan,
    ClusterPolicy,
    InfeasiblePlan,
    fewest_moved_twice,
    plan_cluster,
    plan_clusters,
)
from hvpatch.domain.software import GenericSoftware

SW = GenericSoftware("acme", "edgevisor", "2.4.1")
FAST = settings(max_examples=150, deadline=None)
Case = tuple[Cluster, dict[str, str], ClusterPolicy, frozenset[str]]


@st.composite
def cases(draw: Callable[..., Any]) -> Case:
    """A valid small cluster, the hosts to patch, a policy and the hosts already patched."""
    n = draw(st.integers(2, 8))
    mem_over = draw(st.sampled_from([1.0, 1.5]))
    cpu_over = draw(st.sampled_from([1.0, 4.0]))
    groups = draw(st.booleans())
    coordinator = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    hosts = []
    count = 0
    for i in range(n):
        memory = draw(st.sampled_from([16, 32, 64])) * 1024
        cores = draw(st.sampled_from([4, 8, 16]))
        used_mem = used_cpu = 0
        members: set[str] = set()
        guests = []
        for _ in range(draw(st.integers(0, 6))):
            count += 1
            mem = draw(st.sampled_from([1, 2, 4, 8])) * 1024
            vcpus = draw(st.integers(1, 4))
            aa = draw(st.sampled_from([(), (), ("x",), ("y",)]))
            power = draw(st.sampled_from([PowerState.RUNNING] * 4 + [PowerState.STOPPED]))
            block = draw(st.sampled_from([None] * 6 + [MigrationBlock.LOCAL_DISK]))
            if power is PowerState.RUNNING:
                if used_mem + mem > memory * mem_over or used_cpu + vcpus > cores * cpu_over \
                        or members & set(aa):
                    continue
                used_mem, used_cpu = used_mem + mem, used_cpu + vcpus
                members |= set(aa)
            guests.append(Guest(GuestName(f"g{count}"), TenantName("t"), vcpus, mem,
                                power_state=power, anti_affinity=aa, migration_block=block))
        group = draw(st.sampled_from(["a", "b"])) if groups else ""
        hosts.append(Host(HostName(f"h{i + 1}"), "s", "c", SW, cores, memory, cpu_group=group,
                          coordinator=coordinator == i, guests=tuple(guests)))
    c = Cluster("c", "s", Family.GENERIC, memory_overcommit=mem_over, cpu_overcommit=cpu_over,
                ha_reserve_hosts=draw(st.integers(0, 2)), hosts=tuple(hosts))
    chosen = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    targets = {str(x.name): "2.5" for x, pick in zip(hosts, chosen, strict=True) if pick}
    patched = frozenset(str(x.name) for x in hosts
                        if x.name not in targets and draw(st.booleans()))
    policy = ClusterPolicy(
        max_parallel_hosts=draw(st.sampled_from([None, 1, 2, 3])),
        migrations_per_host=draw(st.integers(1, 3)),
        migrations_per_cluster=draw(st.integers(1, 6)),
        pinned=draw(st.sampled_from(list(PinnedPolicy))),
        migrate_back=draw(st.booleans()),
        ha_reserve_hosts=draw(st.sampled_from([None, None, 0, 1])),
        spare_waves=draw(st.integers(0, 2)),
        deadline_seconds=draw(st.sampled_from([None, None, 3600.0, 36000.0])))
    return c, targets, policy, patched


def replay(c: Cluster, targets: dict[str, str], policy: ClusterPolicy, plan: ClusterPlan) -> None:
    """Apply every move in order and assert the rules of the module doc after each one."""
    hosts = {str(x.name): x for x in c.hosts}
    guests = {str(g.name): g for x in c.hosts for g in x.guests}
    where = {str(g.name): str(x.name) for x in c.hosts for g in x.guests if g.running}
    before = set(where)
    reserve = c.ha_reserve_hosts if policy.ha_reserve_hosts is None else policy.ha_reserve_hosts
    stopped: dict[str, str] = {}
    seen: set[str] = set()

    def load(host: str) -> tuple[int, int]:
        here = [guests[n] for n, at in where.items() if at == host]
        return sum(g.memory_mb for g in here), sum(g.vcpus for g in here)

    def check_destination(host: str) -> None:
        mem, cpu = load(host)
        assert mem <= hosts[host].memory_mb * c.memory_overcommit + 1e-6
        assert cpu <= hosts[host].cores * c.cpu_overcommit + 1e-6
        groups = [a for n, at in where.items() if at == host for a in guests[n].anti_affinity]
        assert len(groups) == len(set(groups)), f"anti-affinity broken on {host}"

    def check_maintenance(down: set[str]) -> None:
        assert all(at not in down for at in where.values()), "a host in maintenance runs guests"
        up = [x for x in c.hosts if x.name not in down]
        running = [guests[n] for n in where]
        for need, caps in ((sum(g.memory_mb for g in running),
                            [x.memory_mb * c.memory_overcommit for x in up]),
                           (sum(g.vcpus for g in running),
                            [x.cores * c.cpu_overcommit for x in up])):
            assert need <= sum(sorted(caps, reverse=True)[reserve:]) + 1e-6, "HA reserve broken"

    for wave in plan.waves:
        down = {s.host for s in wave.hosts}
        assert down <= set(targets) and not down & seen
        seen |= down
        returned = False
        for move in wave.moves:
            if move.kind in (MoveKind.RESTART, MoveKind.MIGRATE_BACK) and not returned:
                check_maintenance(down)
                returned = True
            if move.kind is MoveKind.SHUTDOWN:
                assert not returned and move.source in down
                assert where.pop(move.guest) == move.source
                assert not guests[move.guest].live_migratable
                stopped[move.guest] = move.source
                continue
            if move.kind is MoveKind.RESTART:
                assert stopped.pop(move.guest) == move.destination
            else:
                assert where[move.guest] == move.source
                assert move.destination not in (down if move.kind is MoveKind.EVACUATE else ())
                assert guests[move.guest].live_migratable
                if move.kind is MoveKind.EVACUATE:
                    assert not returned and move.source in down
                    group = hosts[move.source].cpu_group
                    assert not group or hosts[move.destination].cpu_group == group
                else:
                    assert returned and move.destination in down
            where[move.guest] = move.destination
            check_destination(move.destination)
        if not returned:
            check_maintenance(down)
    assert not stopped
    assert set(where) == before, "a guest that ran before does not run after"
    skipped = {s.host for s in plan.skipped}
    assert seen | skipped == set(targets) and not seen & skipped


@FAST
@given(cases())
def test_plans_keep_every_rule_or_explain_why_they_cannot(case: Case) -> None:
    c, targets, policy, patched = case
    try:
        plan = plan_cluster(c, targets, policy, patched=patched)
    except InfeasiblePlan as err:
        assert err.infeasibilities
        assert all(i.reason and i.cluster == "c" for i in err.infeasibilities)
        return
    replay(c, targets, policy, plan)
    assert plan.lower_bound_seconds <= plan.seconds + 1e-6
    assert plan.evacuated_guests <= plan.migrations
    if not policy.migrate_back:
        floor = fewest_moved_twice(c, targets, policy.pinned, patched)
        assert plan.migrations - plan.evacuated_guests >= floor


@FAST
@given(cases())
def test_plans_are_deterministic(case: Case) -> None:
    c, targets, policy, patched = case

    def outcome() -> object:
        try:
            return plan_cluster(c, targets, policy, patched=patched)
        except InfeasiblePlan as err:
            return err.infeasibilities

    assert outcome() == outcome()


@FAST
@given(cases())
def test_baseline_plans_keep_the_same_rules(case: Case) -> None:
    c, targets, policy, patched = case
    try:
        plan = plan_cluster_baseline(c, targets, policy, patched=patched)
    except InfeasiblePlan as err:
        assert err.infeasibilities and all(i.reason for i in err.infeasibilities)
        return
    replay(c, targets, policy, plan)
    assert all(len(w.hosts) == 1 for w in plan.waves)
    assert plan.lower_bound_seconds <= plan.seconds + 1e-6


@FAST
@given(st.lists(cases(), min_size=2, max_size=4))
def test_clusters_planned_together_keep_every_rule_and_the_ring_no_longer(cases_: list[Case],
                                                                          ) -> None:
    policy = ClusterPolicy(pinned=PinnedPolicy.SHUTDOWN)
    jobs = [ClusterJob(c, targets, patched) for c, targets, _, patched in cases_]
    together = plan_clusters(jobs, policy)
    alone = plan_clusters(jobs, policy, slack=False)
    ring, before = [0.0], [0.0]
    for job, mine, single in zip(jobs, together, alone, strict=True):
        if isinstance(mine, ClusterPlan):
            replay(job.cluster, dict(job.targets), policy, mine)
        if isinstance(single, ClusterPlan):  # a cluster with a plan keeps one
            assert isinstance(mine, ClusterPlan)
            ring.append(mine.seconds)
            before.append(single.seconds)
    assert max(ring) <= max(before) + 1e-6
