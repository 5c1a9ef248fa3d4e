"""Properties every generated fleet has, whatever the seed and size (1..200 hosts).

Cluster rule (documented in hvpatch.domain.generator.topology): every cluster has 3..32 hosts,
except in a fleet of fewer than 3 hosts, which is one cluster holding all of them.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.domain.fleet import Fleet
from hvpatch.domain.generator import generate_fleet

seeds = st.integers(min_value=0, max_value=2**63 - 1)
sizes = st.integers(min_value=1, max_value=200)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(seeds, sizes)
def test_guest_memory_never_exceeds_host_memory(seed: int, hosts: int) -> None:
    for host in generate_fleet(hosts, seed).hosts():
        assert sum(g.memory_mb for g in host.guests) <= host.memory_mb


@FAST
@given(seeds, sizes)
def test_clusters_have_3_to_32_hosts_unless_the_fleet_is_tinier(seed: int, hosts: int) -> None:
    fleet = generate_fleet(hosts, seed)
    clusters = list(fleet.clusters())
    if hosts < 3:
        assert [len(c.hosts) for c in clusters] == [hosts]
    else:
        assert all(3 <= len(c.hosts) <= 32 for c in clusters)
    assert sum(len(c.hosts) for c in clusters) == hosts


@FAST
@given(seeds, sizes)
def test_anti_affinity_groups_are_one_tenant_on_distinct_hosts_of_one_cluster(
    seed: int, hosts: int
) -> None:
    members: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for host, guest in generate_fleet(hosts, seed).guests():
        for group in guest.anti_affinity:
            members[group].append((host.cluster, host.name, guest.tenant))
    for group, where in members.items():
        assert 2 <= len(where) <= 3, group
        assert len({c for c, _, _ in where}) == 1, group
        assert len({h for _, h, _ in where}) == len(where), group
        assert len({t for _, _, t in where}) == 1, group


@FAST
@given(seeds, st.integers(min_value=40, max_value=200))
def test_non_migratable_share_is_a_few_percent(seed: int, hosts: int) -> None:
    guests = [g for _, g in generate_fleet(hosts, seed).guests()]
    pinned = sum(not g.live_migratable for g in guests)
    assert 0.01 <= pinned / len(guests) <= 0.08
    assert all(g.migration_note for g in guests if not g.live_migratable)


@FAST
@given(seeds, sizes, st.integers(min_value=1, max_value=60))
def test_every_tenant_referenced_exists(seed: int, hosts: int, tenants: int) -> None:
    fleet = generate_fleet(hosts, seed, tenants=tenants)
    declared = {t.name for t in fleet.tenants}
    assert len(declared) == tenants
    assert {g.tenant for _, g in fleet.guests()} <= declared


@FAST
@given(seeds, sizes)
def test_every_ring_used_is_declared_and_hosts_follow_their_cluster(seed: int, hosts: int) -> None:
    fleet: Fleet = generate_fleet(hosts, seed)
    rings = fleet.ring_order()
    for cluster in fleet.clusters():
        assert cluster.ring in rings
        assert all(h.ring == cluster.ring and h.family is cluster.family for h in cluster.hosts)
    if sum(1 for _ in fleet.clusters()) >= 4:
        assert {c.ring for c in fleet.clusters()} == set(rings)
