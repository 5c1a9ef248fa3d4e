"""The shape of a generated fleet: how many hosts per family, clusters, sites, rings and hosts.

Works on private drafts (plain mutable records) that :mod:`hvpatch.domain.generator` freezes into
the domain values at the end; nothing here is visible outside the generator.

Cluster sizes are 3 to 32 hosts. The one exception is a fleet of fewer than 3 hosts, which gets a
single cluster holding all of them (a cluster of 1 or 2 is still a cluster to the planner).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hvpatch.domain.fleet import Exposure, Family
from hvpatch.domain.generator.releases import ReleaseLine, catalog, withdrawn_esxi_builds
from hvpatch.domain.generator.tables import (
    CITIES,
    CLUSTER_EXPOSURE,
    CLUSTER_SIZES,
    CPU_GROUPS,
    EDGE_EXPOSURE,
    EDGE_SHAPES,
    FAMILY_MIX,
    FILL_JITTER,
    FILL_RANGE,
    HOST_INTERNET_LEAK,
    HOST_SHAPES,
    MIXED_CLUSTER_SHARE,
    RING_SHARES,
    Weighted,
)
from hvpatch.domain.software import Software, XenSoftware

MIN_CLUSTER = 3
MAX_CLUSTER = 32
_CODES = {Family.ESXI: "esx", Family.HYPERV: "hv", Family.KVM: "kvm", Family.PROXMOX: "pve",
          Family.AHV: "ahv", Family.GENERIC: "edge"}
_XEN_CODES = {"xcp-ng": "xcp", "xenserver": "xs", "citrix-hypervisor": "xs", "xen": "xen"}
_DRIFT_OLDER = 0.08  # hosts a patch level behind their cluster (a rollout that stopped)
_DRIFT_ANY = 0.02  # hosts on any level of their line (rebuilt from an old image)
_LARGE_ESXI = 200  # ESXi hosts from which a fleet carries one or two withdrawn 7.0 U3 builds


@dataclass(slots=True)
class HostDraft:
    """A host before it is frozen: placement, shape and software."""

    name: str
    cores: int
    memory_mb: int
    cpu_group: str
    exposure: Exposure
    software: Software
    coordinator: bool
    fill: float


@dataclass(slots=True)
class ClusterDraft:
    """A cluster before it is frozen."""

    family: Family
    size: int
    site: str = ""
    tz: str = "UTC"
    name: str = ""
    ring: str = "prod"
    hosts: list[HostDraft] = field(default_factory=list)


def family_counts(hosts: int, rng: random.Random) -> list[tuple[Family, int]]:
    """Hosts per family: the vendor mix, at least 3 hosts per present family.

    Small fleets show fewer families (one per 4 hosts, so 28 hosts or more show all seven);
    which ones is drawn by the mix, so ESXi is the likeliest.
    """
    mix = Weighted.of(FAMILY_MIX)
    if hosts < MIN_CLUSTER:
        return [(mix.pick(rng), hosts)] if hosts else []
    k = min(len(FAMILY_MIX), max(1, hosts // 4))
    chosen: list[tuple[Family, float]] = []
    pool = list(FAMILY_MIX)
    while len(chosen) < k:
        i = rng.choices(range(len(pool)), weights=[w for _, w in pool])[0]
        chosen.append(pool.pop(i))
    chosen.sort(key=lambda fw: [f for f, _ in FAMILY_MIX].index(fw[0]))
    spare = hosts - MIN_CLUSTER * k
    weights = [w * rng.uniform(0.85, 1.15) for _, w in chosen]
    total = sum(weights)
    exact = [spare * w / total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(k), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: spare - sum(counts)]:
        counts[i] += 1
    return [(f, MIN_CLUSTER + c) for (f, _), c in zip(chosen, counts, strict=True)]


def split_clusters(family: Family, hosts: int, rng: random.Random) -> list[int]:
    """Cluster sizes for ``hosts`` hosts of one family, each 3..32 (fewer only if hosts < 3)."""
    if hosts < MIN_CLUSTER:
        return [hosts] if hosts else []
    sizes = CLUSTER_SIZES[family]
    out: list[int] = []
    left = hosts
    while left:
        size = sizes.pick(rng)
        if left - size < MIN_CLUSTER:  # never leave a remainder too small for a cluster
            size = left if left <= MAX_CLUSTER else left - MIN_CLUSTER
        out.append(size)
        left -= size
    return out


def plan_sites(hosts: int, clusters: int, rng: random.Random) -> list[tuple[str, str]]:
    """Sites as (name, IANA time zone): about sqrt(hosts)/3 of them, named like ``fra1``."""
    n = max(1, min(clusters, round(hosts**0.5 / 3), 3 * len(CITIES)))
    cities = list(CITIES)
    rng.shuffle(cities)
    out = []
    for i in range(n):
        code, tz = cities[i % len(cities)]
        out.append((f"{code}{(i // len(cities)) * 3 + rng.randint(1, 3)}", tz))
    return out


def _ring_plan(k: int) -> list[str]:
    """Rings for ``k`` clusters of one family, smallest cluster first."""
    if k <= 3:
        return [["prod"], ["dev", "prod"], ["test", "staging", "prod"]][k - 1] if k else []
    quotas = {name: max(1, round(share * k)) for name, share in RING_SHARES if name != "prod"}
    plan = [name for name, _ in RING_SHARES if name != "prod" for _ in range(quotas[name])]
    return plan + ["prod"] * (k - len(plan))


def assign_rings(clusters: list[ClusterDraft], rng: random.Random) -> None:
    """Few, small test clusters; most (and the largest) clusters in prod; all rings if >= 4."""
    for family, _ in FAMILY_MIX:
        mine = [c for c in clusters if c.family is family]
        mine.sort(key=lambda c: (c.size, rng.random()))
        for cluster, ring in zip(mine, _ring_plan(len(mine)), strict=True):
            cluster.ring = ring
    if len(clusters) < len(RING_SHARES):
        return
    for ring, _ in RING_SHARES:
        if any(c.ring == ring for c in clusters):
            continue
        counts = {r: sum(c.ring == r for c in clusters) for r, _ in RING_SHARES}
        donor = max(counts, key=lambda r: (counts[r], r == "prod"))
        smallest = min((c for c in clusters if c.ring == donor), key=lambda c: c.size)
        smallest.ring = ring


def place_clusters(clusters: list[ClusterDraft], sites: list[tuple[str, str]],
                   rng: random.Random) -> None:
    """Put every site to use, then spread the rest with a few big sites and many small ones."""
    order = list(range(len(clusters)))
    rng.shuffle(order)
    site_weights = Weighted.of([(i, 1 / (i + 1) ** 0.7) for i in range(len(sites))])
    numbers: dict[tuple[str, str], int] = {}
    for pos, ci in enumerate(order):
        cluster = clusters[ci]
        site = sites[pos] if pos < len(sites) else sites[site_weights.pick(rng)]
        cluster.site, cluster.tz = site
    for cluster in clusters:  # number in a stable order so names do not depend on placement
        line = _cluster_line(cluster)
        code = _XEN_CODES.get(line, "xen") if cluster.family is Family.XEN else \
            _CODES[cluster.family]
        key = (cluster.site, code)
        numbers[key] = numbers.get(key, 0) + 1
        cluster.name = f"{cluster.site}-{code}-{numbers[key]:02d}"


def _cluster_line(cluster: ClusterDraft) -> str:
    """Xen product of the cluster's first host ('' for other families or empty clusters)."""
    if cluster.family is Family.XEN and cluster.hosts:
        software = cluster.hosts[0].software
        if isinstance(software, XenSoftware):
            return software.product
    return ""


def build_hosts(cluster: ClusterDraft, rng: random.Random) -> None:
    """Shape, CPU group, exposure, software and fill for each host of a cluster."""
    edge = cluster.family is Family.GENERIC
    shapes = EDGE_SHAPES if edge else HOST_SHAPES
    primary = shapes.pick(rng)
    second = shapes.pick(rng) if cluster.size >= 4 and rng.random() < MIXED_CLUSTER_SHARE \
        else primary
    n_second = rng.randint(1, max(1, cluster.size // 3)) if second != primary else 0
    group = {primary: rng.choice(CPU_GROUPS[primary[0]])}
    group.setdefault(second, rng.choice(CPU_GROUPS[second[0]]))
    exposure = (EDGE_EXPOSURE if edge else CLUSTER_EXPOSURE).pick(rng)
    lines = catalog()[cluster.family]
    line = lines[rng.choices(range(len(lines)), weights=[x.share for x in lines])[0]]
    level = line.pick_level(rng)
    fill = rng.uniform(FILL_RANGE[0] + FILL_JITTER, FILL_RANGE[1] - FILL_JITTER)
    pool = isinstance(line.levels[0], XenSoftware) and line.levels[0].product != "xen"
    for i in range(cluster.size):
        cores, mem_gb = second if i >= cluster.size - n_second else primary
        host_exposure = exposure
        if exposure is Exposure.INTERNAL and rng.random() < HOST_INTERNET_LEAK:
            host_exposure = Exposure.INTERNET
        cluster.hosts.append(HostDraft(
            name="", cores=cores, memory_mb=mem_gb * 1024, cpu_group=group[(cores, mem_gb)],
            exposure=host_exposure, software=_host_level(line, level, rng),
            coordinator=pool and i == 0,  # XAPI pools (XCP-ng, XenServer) have a coordinator
            fill=min(FILL_RANGE[1], max(FILL_RANGE[0], fill + rng.uniform(-1, 1) * FILL_JITTER)),
        ))


def _host_level(line: ReleaseLine, level: int, rng: random.Random) -> Software:
    """The cluster's level, or for a few hosts the one before it (or any level of the line)."""
    roll = rng.random()
    if roll < _DRIFT_ANY:
        level = rng.randrange(len(line.levels))
    elif roll < _DRIFT_ANY + _DRIFT_OLDER:
        level = level - 1 if level > 0 else min(level + 1, len(line.levels) - 1)
    return line.levels[level]


def name_hosts(cluster: ClusterDraft) -> None:
    """``<cluster>-hNN``, once the cluster has its name."""
    width = max(2, len(str(len(cluster.hosts))))
    for i, host in enumerate(cluster.hosts, start=1):
        host.name = f"{cluster.name}-h{i:0{width}d}"


def plant_withdrawn_esxi(clusters: list[ClusterDraft], rng: random.Random) -> None:
    """Large fleets keep one or two hosts on a withdrawn ESXi 7.0 U3 build, as real ones do."""
    esxi = [h for c in clusters if c.family is Family.ESXI for h in c.hosts]
    withdrawn = withdrawn_esxi_builds()
    if len(esxi) < _LARGE_ESXI or not withdrawn:
        return
    line_70 = {sw for line in catalog()[Family.ESXI] if line.name == "7.0" for sw in line.levels}
    on_70 = [h for h in esxi if h.software in line_70]
    pool = on_70 if len(on_70) >= 2 else esxi
    for host in rng.sample(pool, rng.randint(1, 2)):
        host.software = rng.choice(withdrawn)


def plan_topology(hosts: int, rng: random.Random) -> list[ClusterDraft]:
    """Families, clusters, sites, rings, hosts and software; guests come later."""
    clusters = [ClusterDraft(family, size) for family, count in family_counts(hosts, rng)
                for size in split_clusters(family, count, rng)]
    for cluster in clusters:
        build_hosts(cluster, rng)
    place_clusters(clusters, plan_sites(hosts, len(clusters), rng), rng)
    assign_rings(clusters, rng)
    for cluster in clusters:
        name_hosts(cluster)
    plant_withdrawn_esxi(clusters, rng)
    return clusters
