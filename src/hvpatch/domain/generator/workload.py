"""Tenants and guests of a generated fleet: who runs what where, and what pins it there.

Guests are drawn per host in batches (one ``rng.choices`` call per attribute) from precomputed
cumulative tables, which keeps 200,000 guests to about a second. Each host is filled until its
guests take its fill share (50-85 %) of host memory; the per-fleet size scale makes that come out
at the requested guests per host on average.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import accumulate
from math import log

from hvpatch.domain.fleet import (
    Guest,
    GuestName,
    PowerState,
    Tenant,
    TenantName,
)
from hvpatch.domain.generator.tables import (
    ANTI_AFFINITY_SHARE,
    CRITICALITY,
    DATA_CLASS,
    FILL_RANGE,
    GUEST_ROLES,
    GUEST_SHAPES,
    HA_ROLES,
    PIN_REASONS,
    PINNED_SHARE,
    SINGLE_TENANT_CLUSTER_SHARE,
    STOPPED_SHARE,
    SUSPENDED_SHARE,
    TENANT_UNITS,
    Weighted,
)
from hvpatch.domain.generator.topology import ClusterDraft

_MAX_RESIDENTS = 8
_FILL_ROUNDS = 4
NICE_VCPUS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
NICE_MEMORY_MB = tuple(int(g * 1024) for g in (
    0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024))
# First-fit filling skips guests that no longer fit, which favours small ones: the table mean is
# this much larger than the mean placed guest (measured on 10,000-host fleets).
FIRST_FIT_BIAS = 1.29


def make_tenants(count: int) -> tuple[Tenant, ...]:
    """``tenant-001`` ... with an illustrative business unit as description."""
    width = max(3, len(str(count)))
    return tuple(
        Tenant(TenantName(f"tenant-{i:0{width}d}"),
               TENANT_UNITS[(i - 1) % len(TENANT_UNITS)]
               + ("" if i <= len(TENANT_UNITS) else f" {(i - 1) // len(TENANT_UNITS) + 1}"))
        for i in range(1, count + 1)
    )


def size_table(mean_mb: float) -> Weighted[tuple[int, int]]:
    """Guest shapes (vCPUs, MiB) scaled so that the mean guest has ``mean_mb`` of memory.

    Memory is multiplied by one factor and vCPUs by its square root (enterprise VMs carry more
    memory per vCPU than the cloud VMs of the traces), then both are snapped to the sizes people
    configure (2, 4, 8 vCPUs; 8, 12, 16 GiB ...), so shapes keep their mix. Snapping makes the
    mean a step function of the factor, so the table mixes the two factors either side of the
    step (found by bisection) in the proportion that hits ``mean_mb`` exactly.
    """
    low, high = 1e-4, 1e4
    for _ in range(80):
        mid = (low * high) ** 0.5
        if _mean([(float(m), w) for (_, m), w in _scaled(mid)]) < mean_mb:
            low = mid
        else:
            high = mid
    below, above = _scaled(low), _scaled(high)
    mean_below = _mean([(float(m), w) for (_, m), w in below])
    mean_above = _mean([(float(m), w) for (_, m), w in above])
    share = 1.0 if mean_above <= mean_below else \
        min(1.0, max(0.0, (mean_mb - mean_below) / (mean_above - mean_below)))
    return Weighted.of([(shape, w * (1 - share)) for shape, w in below]
                       + [(shape, w * share) for shape, w in above])


def _scaled(scale: float) -> list[tuple[tuple[int, int], float]]:
    return [((_snap(v * scale**0.5, NICE_VCPUS), _snap(m * 1024 * scale, NICE_MEMORY_MB)), w)
            for v, m, w in GUEST_SHAPES]


def _snap(value: float, nice: tuple[int, ...]) -> int:
    """The nice value nearest to ``value`` on a log scale."""
    return min(nice, key=lambda n: abs(log(n / value)))


def mean_guest_mb(clusters: list[ClusterDraft], guests_per_host: float) -> float:
    """Mean guest memory that fills these hosts' budgets with ``guests_per_host`` on average."""
    hosts = [h for c in clusters for h in c.hosts]
    if not hosts or guests_per_host <= 0:
        return 0.0
    budget = sum(h.memory_mb * h.fill for h in hosts)
    return budget / (len(hosts) * guests_per_host) * FIRST_FIT_BIAS


def _pairs(table: Weighted[tuple[int, int]]) -> list[tuple[tuple[int, int], float]]:
    weights = [b - a for a, b in zip((0.0, *table.cum), table.cum, strict=False)]
    return list(zip(table.items, weights, strict=True))


def _mean(pairs: list[tuple[float, float]]) -> float:
    return sum(v * w for v, w in pairs) / sum(w for _, w in pairs)


def cluster_residents(clusters: list[ClusterDraft], tenants: tuple[Tenant, ...],
                      rng: random.Random) -> list[list[str]]:
    """Tenants living in each cluster, most popular first; every tenant lives somewhere.

    Tenant popularity is Zipf-like (a few large tenants, a long tail); most clusters hold 2-8
    tenants, a few are dedicated to one.
    """
    names = [str(t.name) for t in tenants]
    popularity = Weighted.of([(i, 1 / (i + 1) ** 0.8) for i in range(len(names))])
    residents: list[list[str]] = []
    shared: list[int] = []
    for ci, _cluster in enumerate(clusters):
        if rng.random() < SINGLE_TENANT_CLUSTER_SHARE:
            residents.append([names[popularity.pick(rng)]])
            continue
        k = rng.randint(2, _MAX_RESIDENTS)
        picked = dict.fromkeys(names[i] for i in popularity.picks(rng, k))
        residents.append(list(picked))
        shared.append(ci)
    placed = {n for r in residents for n in r}
    homes = shared or list(range(len(clusters)))
    for name in names:  # in name order, so the outcome does not depend on set order
        if name not in placed and homes:
            residents[homes[rng.randrange(len(homes))]].append(name)
    return residents


class GuestFactory:
    """Draws the guests of one host after another, with fleet-unique names."""

    def __init__(self, mean_mb: float, expected: int, rng: random.Random) -> None:
        self._rng = rng
        self._sizes = size_table(mean_mb) if mean_mb > 0 else None
        self._mean_mb = (_mean([(float(m), w) for (_, m), w in _pairs(self._sizes)])
                         if self._sizes else 1.0)
        self._smallest = min(self._sizes.items, key=lambda s: s[1]) if self._sizes else (1, 0)
        self._min_mb = self._smallest[1]
        self._width = max(4, len(str(expected)))
        self._counter = 0

    def fill_host(self, site: str, memory_mb: int, fill: float, ring: str,
                  residents: list[str], resident_cum: list[float]) -> list[Guest]:
        """Guests until they take ``fill`` of the host's memory (never more)."""
        if self._sizes is None:
            return []
        rng = self._rng
        budget = int(memory_mb * fill)
        chosen: list[tuple[int, int]] = []
        for _round in range(_FILL_ROUNDS):  # first fit; a few more draws if big ones were skipped
            if budget < self._min_mb:
                break
            for vcpus, mem in self._sizes.picks(rng, int(budget / self._mean_mb * 1.3) + 4):
                if mem <= budget:
                    chosen.append((vcpus, mem))
                    budget -= mem
                    if budget < self._min_mb:
                        break
        used = int(memory_mb * fill) - budget
        while used < memory_mb * FILL_RANGE[0] and used + self._min_mb <= memory_mb * FILL_RANGE[1]:
            chosen.append(self._smallest)  # top up to the floor of the fill range
            used += self._min_mb
        k = len(chosen)
        tenants = rng.choices(residents, cum_weights=resident_cum, k=k)
        roles = GUEST_ROLES.picks(rng, k)
        crit = CRITICALITY[ring].picks(rng, k)
        data = DATA_CLASS[ring].picks(rng, k)
        stopped = STOPPED_SHARE[ring]
        out = []
        for i, (vcpus, mem) in enumerate(chosen):
            self._counter += 1
            roll = rng.random()
            power = (PowerState.STOPPED if roll < stopped else PowerState.SUSPENDED
                     if roll < stopped + SUSPENDED_SHARE else PowerState.RUNNING)
            block, note = None, ""
            if rng.random() < PINNED_SHARE:
                block, notes = PIN_REASONS.pick(rng)
                note = rng.choice(notes)
            out.append(Guest(GuestName(f"{site}-{roles[i]}-{self._counter:0{self._width}d}"),
                             TenantName(tenants[i]), vcpus, mem, crit[i], data[i], power, (),
                             block, note))
        return out


def resident_weights(residents: list[str]) -> list[float]:
    """Cumulative weights: the first resident of a cluster is the largest (1, 1/2, 1/3, ...)."""
    return list(accumulate(1 / (j + 1) for j in range(len(residents))))


def add_anti_affinity(hosts: list[list[Guest]], counter: list[int],
                      rng: random.Random) -> None:
    """Pairs and triples of one tenant's guests, kept on distinct hosts of one cluster.

    A member is an existing guest of each chosen host that is not yet in a group; it is
    replaced (in ``hosts``) by a copy with the group, the first member's tenant and powered on
    (HA pairs are not left off). ``counter`` numbers groups fleet-wide so names are unique.
    """
    total = sum(len(g) for g in hosts)
    with_guests = [i for i, g in enumerate(hosts) if g]
    if len(with_guests) < 2:
        return
    for _ in range(round(total * ANTI_AFFINITY_SHARE / 2.4)):
        size = 3 if len(with_guests) >= 3 and rng.random() < 0.4 else 2
        members: list[tuple[int, int]] = []
        for hi in rng.sample(with_guests, size):
            for _attempt in range(4):
                gi = rng.randrange(len(hosts[hi]))
                if not hosts[hi][gi].anti_affinity:
                    members.append((hi, gi))
                    break
        if len(members) < 2:
            continue
        counter[0] += 1
        group = (f"{rng.choice(HA_ROLES)}-ha-{counter[0]:04d}",)
        tenant = hosts[members[0][0]][members[0][1]].tenant
        for hi, gi in members:
            hosts[hi][gi] = replace(hosts[hi][gi], tenant=tenant, anti_affinity=group,
                                    power_state=PowerState.RUNNING)
