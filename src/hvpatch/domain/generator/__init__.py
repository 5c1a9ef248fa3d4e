"""Realistic simulated multi-vendor fleets, for the demo, the simulator, tests and benchmarks.

``generate_fleet(hosts, seed)`` is pure and deterministic: the same arguments give an equal fleet
on every run and platform (one ``random.Random(seed)``, no clock, no set iteration). What it
produces, and where each distribution comes from (details in :mod:`.tables` and :mod:`.releases`):

* sites named like ``fra1`` with real IANA time zones; clusters of 3-32 hosts of one family named
  ``fra1-esx-01``, hosts ``fra1-esx-01-h03``; vendor mix ESXi 40 %, Hyper-V 15 %, KVM 15 %,
  Proxmox 10 %, Xen/XCP-ng 10 %, AHV 7 %, generic edge 3 % (at least 3 hosts per present family;
  all seven from 28 hosts up); a fleet of fewer than 3 hosts is one cluster of that size;
* every cluster in a ring (test, dev, staging, prod: few small test clusters, most in prod, all
  four once there are 4 clusters); XCP-ng/XenServer pools have a coordinator (their first
  host); hosts carry a CPU group per cluster, a few clusters mix two hardware generations;
* host shapes from the Alibaba 2023 and Google 2011 host mixes; guest shapes from the Azure 2017
  flavour shares and the Bitbrains enterprise VM sizes, scaled so that guests take 50-85 % of
  their host's memory at the requested guests per host (20 by default);
* tenants ``tenant-001``... (hosts/4 by default, at least 3) with Zipf-like sizes, most clusters
  shared by 2-8 tenants and a few dedicated; criticality and data classification by ring; ~5 %
  of guests stopped; ~3 % of guests in anti-affinity pairs/triples; ~4 % not live-migratable,
  with a reason and a note; management exposure mostly internal, some isolated, a few internet;
* real versions over old and current releases for every family, including one or two withdrawn
  ESXi 7.0 U3 builds in fleets with 200+ ESXi hosts.
"""

from __future__ import annotations

import random

from hvpatch.domain.fleet import (
    DEFAULT_RINGS,
    Cluster,
    Fleet,
    Guest,
    Host,
    HostName,
    Site,
)
from hvpatch.domain.generator.tables import DEFAULT_GUESTS_PER_HOST
from hvpatch.domain.generator.topology import ClusterDraft, plan_topology
from hvpatch.domain.generator.workload import (
    GuestFactory,
    add_anti_affinity,
    cluster_residents,
    make_tenants,
    mean_guest_mb,
    resident_weights,
)
from hvpatch.errors import InputError, Problem

__all__ = ["demo_fleet", "generate_fleet"]

_HA_RESERVE_TWO_FROM = 16  # clusters this large keep two hosts' worth of failover capacity


def generate_fleet(hosts: int, seed: int, *, guests_per_host: float | None = None,
                   tenants: int | None = None) -> Fleet:
    """A fleet of exactly ``hosts`` hosts, the same for the same arguments.

    ``guests_per_host`` is the average number of guests (default 20; 0 gives empty hosts);
    ``tenants`` the number of tenants (default ``max(3, round(hosts / 4))``).
    """
    problems = []
    if hosts < 0:
        problems.append(Problem("hosts", f"must be 0 or more, got {hosts}"))
    if guests_per_host is not None and not 0 <= guests_per_host <= 1000:
        problems.append(Problem("guests_per_host", f"must be 0..1000, got {guests_per_host}"))
    if tenants is not None and tenants < 1:
        problems.append(Problem("tenants", f"must be 1 or more, got {tenants}"))
    if problems:
        raise InputError("cannot generate a fleet", problems)
    rng = random.Random(seed)
    per_host = DEFAULT_GUESTS_PER_HOST if guests_per_host is None else guests_per_host
    tenant_list = make_tenants(tenants if tenants is not None else max(3, round(hosts / 4)))
    clusters = plan_topology(hosts, rng)
    residents = cluster_residents(clusters, tenant_list, rng)
    factory = GuestFactory(mean_guest_mb(clusters, per_host), int(hosts * per_host * 1.5), rng)
    aa_counter = [0]
    frozen: dict[str, list[Cluster]] = {}
    for cluster, living in zip(clusters, residents, strict=True):
        cum = resident_weights(living)
        guests = [factory.fill_host(cluster.site, h.memory_mb, h.fill, cluster.ring, living, cum)
                  for h in cluster.hosts]
        add_anti_affinity(guests, aa_counter, rng)
        frozen.setdefault(cluster.site, []).append(_freeze(cluster, guests))
    zones = {c.site: c.tz for c in clusters}
    return Fleet(
        rings=DEFAULT_RINGS,
        tenants=tenant_list,
        sites=tuple(Site(name, zones[name], tuple(sorted(frozen[name], key=lambda c: c.name)))
                    for name in sorted(frozen)),
    )


def demo_fleet(seed: int = 7) -> Fleet:
    """The demo estate: 80 hosts, about 1,500 guests, 20 tenants, all families and rings."""
    return generate_fleet(80, seed, guests_per_host=18.75, tenants=20)


def _freeze(cluster: ClusterDraft, guests: list[list[Guest]]) -> Cluster:
    hosts = tuple(
        Host(HostName(h.name), cluster.site, cluster.name, h.software, h.cores, h.memory_mb,
             h.exposure, cluster.ring, h.cpu_group, h.coordinator,
             tuple(hg))
        for h, hg in zip(cluster.hosts, guests, strict=True)
    )
    return Cluster(cluster.name, cluster.site, cluster.family, cluster.ring,
                   ha_reserve_hosts=2 if cluster.size >= _HA_RESERVE_TWO_FROM else 1,
                   hosts=hosts)
