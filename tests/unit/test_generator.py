"""The fleet generator: deterministic, the requested size, every family, real parsable versions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from hvpatch.domain.fleet import Family, Fleet, PowerState
from hvpatch.domain.generator import demo_fleet, generate_fleet
from hvpatch.domain.generator.releases import catalog, withdrawn_esxi_builds
from hvpatch.domain.software import EsxiSoftware, HyperVSoftware, XenSoftware
from hvpatch.domain.versions import esxi_release, parse_version
from hvpatch.errors import InputError

RINGS = {"test", "dev", "staging", "prod"}


def digest(fleet: Fleet) -> str:
    return hashlib.sha256(repr(fleet).encode()).hexdigest()


def test_same_seed_gives_an_equal_fleet_and_another_seed_a_different_one() -> None:
    assert generate_fleet(150, 11) == generate_fleet(150, 11)
    assert generate_fleet(150, 11) != generate_fleet(150, 12)


def test_fleet_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    code = (
        "import hashlib; from hvpatch.domain.generator import generate_fleet; "
        "print(hashlib.sha256(repr(generate_fleet(120, 4)).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == digest(generate_fleet(120, 4))


@pytest.mark.parametrize("hosts", [0, 1, 2, 3, 4, 7, 31, 50, 333])
def test_exactly_the_requested_number_of_hosts(hosts: int) -> None:
    assert sum(1 for _ in generate_fleet(hosts, 3).hosts()) == hosts


def test_about_twenty_guests_per_host_by_default() -> None:
    fleet = generate_fleet(1000, 5)
    assert 18.0 <= sum(1 for _ in fleet.guests()) / 1000 <= 22.0


def test_guests_per_host_and_tenants_can_be_chosen() -> None:
    fleet = generate_fleet(300, 5, guests_per_host=50, tenants=7)
    assert 40 <= sum(1 for _ in fleet.guests()) / 300 <= 60
    assert [t.name for t in fleet.tenants] == [f"tenant-{i:03d}" for i in range(1, 8)]
    assert not list(generate_fleet(30, 5, guests_per_host=0).guests())


def test_default_tenants_are_a_quarter_of_the_hosts_but_at_least_three() -> None:
    assert len(generate_fleet(400, 1).tenants) == 100
    assert len(generate_fleet(5, 1).tenants) == 3


@pytest.mark.parametrize(
    "kwargs", [{"hosts": -1}, {"hosts": 5, "guests_per_host": -1.0}, {"hosts": 5, "tenants": 0}]
)
def test_impossible_arguments_are_refused(kwargs: dict[str, float]) -> None:
    hosts = int(kwargs.pop("hosts"))
    with pytest.raises(InputError):
        generate_fleet(hosts, 1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(6))
def test_every_family_is_present_from_fifty_hosts(seed: int) -> None:
    families = {h.family for h in generate_fleet(50, seed).hosts()}
    assert families == set(Family)


def test_vendor_mix_follows_the_documented_shares() -> None:
    counts = Counter(h.family for h in generate_fleet(5000, 2).hosts())
    assert 0.33 <= counts[Family.ESXI] / 5000 <= 0.47
    assert 0.10 <= counts[Family.HYPERV] / 5000 <= 0.20
    assert 0.01 <= counts[Family.GENERIC] / 5000 <= 0.06


def test_names_are_unique_and_follow_the_site_cluster_host_pattern() -> None:
    fleet = generate_fleet(800, 9)
    sites = [s.name for s in fleet.sites]
    hosts = [h.name for h in fleet.hosts()]
    guests = [g.name for _, g in fleet.guests()]
    assert len(set(sites)) == len(sites)
    assert len(set(hosts)) == len(hosts)
    assert len(set(guests)) == len(guests)
    for site in fleet.sites:
        ZoneInfo(site.timezone)
        assert len({c.name for c in site.clusters}) == len(site.clusters)
        for cluster in site.clusters:
            assert cluster.name.startswith(f"{site.name}-")
            for host in cluster.hosts:
                assert host.name.startswith(f"{cluster.name}-h")
                assert (host.site, host.cluster, host.ring) == (
                    site.name,
                    cluster.name,
                    cluster.ring,
                )


@pytest.mark.parametrize("seed", range(25))
def test_every_generated_version_parses_in_its_scheme(seed: int) -> None:
    for host in generate_fleet(120, seed).hosts():
        assert host.software.problems() == []
        for component in host.software.components():
            if component.scheme != "kb":
                parse_version(component.scheme, component.version)


def test_every_catalogued_version_parses() -> None:
    for lines in catalog().values():
        for line in lines:
            assert line.levels, line.name
            for software in line.levels:
                assert software.problems() == [], software


def test_esxi_builds_are_real_spread_over_lines_and_never_withdrawn_by_accident() -> None:
    fleet = generate_fleet(2000, 8)
    builds = [int(h.software.build) for h in fleet.hosts() if isinstance(h.software, EsxiSoftware)]
    releases = [esxi_release(b) for b in builds]
    assert all(r is not None for r in releases)
    lines = Counter(r.line for r in releases if r is not None)
    assert set(lines) == {"6.7", "7.0", "8.0"} and lines["8.0"] > lines["6.7"]
    assert len(set(builds)) >= 20
    withdrawn = [r for r in releases if r is not None and r.withdrawn]
    assert 1 <= len(withdrawn) <= 2 and all(r.line == "7.0" for r in withdrawn)


def test_small_fleets_have_no_withdrawn_builds() -> None:
    bad = set(withdrawn_esxi_builds())
    assert not [h for h in generate_fleet(150, 3).hosts() if h.software in bad]


def test_windows_hosts_carry_the_kb_of_their_build() -> None:
    hyperv = [
        h.software for h in generate_fleet(600, 4).hosts() if isinstance(h.software, HyperVSoftware)
    ]
    assert {s.build.rsplit(".", 1)[0] for s in hyperv} >= {"10.0.17763", "10.0.20348"}
    assert all(len(s.kbs) == 1 and s.kbs[0].startswith("KB5") for s in hyperv)


def test_rings_are_all_used_with_few_test_hosts_and_most_in_prod() -> None:
    fleet = generate_fleet(1000, 6)
    per_ring = Counter(h.ring for h in fleet.hosts())
    assert set(per_ring) == RINGS
    assert per_ring["test"] < per_ring["dev"] + per_ring["staging"] < per_ring["prod"]
    assert per_ring["prod"] > 500


def test_xapi_pools_have_their_first_host_as_coordinator_and_nobody_else_has_one() -> None:
    pools = 0
    for cluster in generate_fleet(600, 2).clusters():
        flags = [h.coordinator for h in cluster.hosts]
        software = cluster.hosts[0].software
        if isinstance(software, XenSoftware) and software.product != "xen":
            pools += 1
            assert flags[0] and not any(flags[1:])
        else:
            assert not any(flags)
    assert pools >= 3


def test_guest_mix_shows_stopped_pinned_and_grouped_guests_and_shared_hosts() -> None:
    fleet = generate_fleet(1000, 12)
    guests = [g for _, g in fleet.guests()]
    stopped = sum(g.power_state is PowerState.STOPPED for g in guests) / len(guests)
    pinned = [g for g in guests if not g.live_migratable]
    assert 0.03 <= stopped <= 0.07
    assert 0.03 <= len(pinned) / len(guests) <= 0.05
    assert all(g.migration_note for g in pinned)
    assert 0.015 <= sum(bool(g.anti_affinity) for g in guests) / len(guests) <= 0.05
    tenants_per_host = Counter(len(h.tenants) for h in fleet.hosts() if h.guests)
    several = sum(n for k, n in tenants_per_host.items() if k >= 2)
    assert several > 5 * tenants_per_host[1] > 0
    exposure = Counter(h.exposure.value for h in fleet.hosts())
    assert exposure["internal"] > exposure["isolated"] > exposure["internet"] > 0


def test_guests_fill_hosts_to_between_half_and_most_of_their_memory() -> None:
    for host in generate_fleet(500, 13).hosts():
        used = sum(g.memory_mb for g in host.guests) / host.memory_mb
        assert 0.5 <= used <= 0.85, host.name


def test_some_but_not_all_clusters_can_evacuate_a_host() -> None:
    can = []
    for cluster in generate_fleet(1000, 14).clusters():
        hosts = cluster.hosts
        biggest = max(h.memory_demand_mb for h in hosts)
        spare = sum(h.memory_mb - h.memory_demand_mb for h in hosts) - min(
            h.memory_mb - h.memory_demand_mb for h in hosts
        )
        can.append(spare >= biggest)
    assert 0 < sum(can) < len(can)


def test_demo_fleet_is_the_documented_size_and_covers_every_family_and_ring() -> None:
    fleet = demo_fleet()
    hosts = list(fleet.hosts())
    assert len(hosts) == 80
    assert 1300 <= sum(1 for _ in fleet.guests()) <= 1700
    assert len(fleet.tenants) == 20
    assert {h.family for h in hosts} == set(Family)
    assert {h.ring for h in hosts} == RINGS
    assert demo_fleet() == fleet
