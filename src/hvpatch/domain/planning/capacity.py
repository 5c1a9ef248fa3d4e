"""Capacity rules of a cluster during maintenance, and how much more capacity would be enough.

**Effective capacity.** A host offers ``memory_mb * memory_overcommit`` of memory and
``cores * cpu_overcommit`` vCPUs (the cluster's policy). A host never holds more running guests
than that, at any moment of a plan.

**HA reserve (N+k).** While some hosts are in maintenance, let ``R`` be the hosts that are not.
For memory and for vCPUs separately, the running guests of the cluster must fit in ``R`` *with
the capacity of the k largest hosts of R held back*::

    sum(running demand) <= sum(capacity of R) - sum(capacity of the k largest hosts of R)

i.e. the free capacity of ``R`` is at least that of its ``k`` largest hosts, so any ``k`` of them
can still fail while the wave is in progress. ``k`` is the cluster's ``ha_reserve_hosts``
(overridable per plan). This is the aggregate rule of vSphere's percentage-based admission control
with *host failures to tolerate* = k; like it, it does not prove that every guest of a failed host
finds a slot (fragmentation), it keeps the capacity to do so. Guests that are stopped (or shut
down for the wave) do not count.

**Most hosts at once.** The rule depends only on *which* hosts are in maintenance, not on where
guests run, so :func:`max_parallel` is exact for the aggregate: removing the smallest hosts is the
best case (the sum of all but the k largest of the hosts that stay is largest when the largest
stay), so no wave of more hosts can keep the reserve. :func:`wave_capacity` and
:func:`fewest_waves` bound how much capacity one wave can take out, and so how many waves are
needed at least.

**Necessary conditions** (:func:`necessary_conditions`): what every plan needs and a cluster may
lack, each reported with the hardware (or the smaller reserve) that would make it feasible.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hvpatch.domain.planning.model import Infeasibility

if TYPE_CHECKING:  # the working state is only read here; placement imports this module
    from hvpatch.domain.planning.placement import ClusterState, Vm

MEMORY = "memory"
CPU = "cpu"
_MAX_SUGGESTED_HOSTS = 64


def headroom(capacities: Sequence[float], reserve: int) -> float:
    """Capacity left for guests: the sum of ``capacities`` minus the ``reserve`` largest."""
    if reserve <= 0:
        return sum(capacities)
    if reserve >= len(capacities):
        return 0.0
    if reserve == 1:
        return sum(capacities) - max(capacities)
    return sum(sorted(capacities)[:-reserve])


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One resource that does not keep the reserve: demand, what is left, what is held back."""

    resource: str
    demand: float
    headroom: float
    reserved: float

    @property
    def deficit(self) -> float:
        """How much demand is over the headroom."""
        return self.demand - self.headroom


def shortfalls(demand: tuple[float, float], memory: Sequence[float], cpu: Sequence[float],
               reserve: int) -> list[Shortfall]:
    """The resources (memory, cpu) whose ``demand`` breaks the HA rule on these capacities."""
    out = []
    for resource, need, caps in ((MEMORY, demand[0], memory), (CPU, demand[1], cpu)):
        room = headroom(caps, reserve)
        if need > room + 1e-9:
            out.append(Shortfall(resource, need, room, math.fsum(caps) - room))
    return out


def keeps_reserve(demand: tuple[float, float], memory: Sequence[float], cpu: Sequence[float],
                  reserve: int) -> bool:
    """True when ``demand`` (memory, vCPUs) keeps the HA rule on these capacities."""
    return (demand[0] <= headroom(memory, reserve) + 1e-9
            and demand[1] <= headroom(cpu, reserve) + 1e-9)


def max_parallel(demand: tuple[float, float], staying: tuple[Sequence[float], Sequence[float]],
                 removable: tuple[Sequence[float], Sequence[float]], reserve: int,
                 relief: tuple[Sequence[float], Sequence[float]] | None = None) -> int:
    """Most hosts of ``removable`` that can be in maintenance at once under the HA rule.

    ``staying`` are the capacities (memory, cpu) of hosts that never go into maintenance,
    ``removable`` those of the hosts that do; ``relief`` what each removable host takes off the
    demand while it is down (its pinned guests, stopped). An upper bound for any placement, and
    exact for the aggregate rule without relief: ``m`` hosts pass only if removing the ``m``
    smallest with the ``m`` largest reliefs passes, and if the ``m`` smallest *net* sizes
    (capacity minus relief) fit in :func:`wave_capacity`.
    """
    freed = relief or ([0.0] * len(removable[0]), [0.0] * len(removable[1]))
    best = len(removable[0])
    for r in (0, 1):
        keep = list(staying[r])
        ordered = sorted(removable[r])
        largest_relief = sorted(freed[r], reverse=True)
        nets = sorted(c - f for c, f in zip(removable[r], freed[r], strict=True))
        everyone = sorted([*keep, *removable[r]], reverse=True)
        total = sum(everyone)
        low, high = 0, min(best, len(ordered))  # the rule holds for `low` hosts; find the most
        while low < high:
            mid = (low + high + 1) // 2
            need = demand[r] - sum(largest_relief[:mid])
            room = total - sum(everyone[mid:mid + max(0, reserve)]) - demand[r]
            if need <= headroom(keep + ordered[mid:], reserve) + 1e-9 \
                    and sum(nets[:mid]) <= room + 1e-9:
                low = mid
            else:
                high = mid - 1
        best = low
    return best


def fewest_waves(sizes: Sequence[float], room: float) -> int:
    """Fewest waves that can take out hosts of these net ``sizes`` if one wave takes <= ``room``.

    The L2 bound of Martello and Toth for bin packing: for each threshold ``a`` <= room/2, hosts
    larger than ``room - a`` each need a wave of their own, hosts in (room/2, room - a] too (two
    never share one), and hosts in [a, room/2] fill what those leave and then whole waves.
    """
    items = sorted((max(0.0, x) for x in sizes), reverse=True)
    if not items:
        return 0
    if room <= 1e-9:
        return len(items)
    half = room / 2
    best = math.ceil(sum(items) / room - 1e-9)
    for a in sorted({0.0, *(x for x in items if x <= half)}):
        j1 = j2 = 0
        j2_sum = j3 = 0.0
        for x in items:
            if x > room - a:
                j1 += 1
            elif x > half:
                j2 += 1
                j2_sum += x
            elif x >= a:
                j3 += x
        spare = j2 * room - j2_sum
        best = max(best, j1 + j2 + max(0, math.ceil((j3 - spare) / room - 1e-9)))
    return min(best, len(items))


def one_host_enough(capacities: Sequence[float], reserve: int, demand: float) -> float | None:
    """Smallest capacity of one added host that makes ``demand`` keep the reserve, or None.

    An added host of capacity ``S`` raises the headroom by ``S`` while it is not among the ``k``
    largest; once it is, by the k-th largest capacity at most. So one host is enough exactly when
    the deficit is no more than that k-th largest capacity (or when there is no reserve).
    """
    deficit = demand - headroom(capacities, reserve)
    if deficit <= 0:
        return 0.0
    if reserve <= 0:
        return deficit
    if reserve > len(capacities):
        return None
    kth = heapq.nlargest(reserve, capacities)[-1]
    return deficit if deficit <= kth + 1e-9 else None


def hosts_like_enough(capacities: Sequence[float], reserve: int, demand: float,
                      unit: float) -> int | None:
    """How many added hosts of capacity ``unit`` make ``demand`` keep the reserve (None: > 64)."""
    caps = list(capacities)
    for added in range(_MAX_SUGGESTED_HOSTS + 1):
        if demand <= headroom(caps, reserve) + 1e-9:
            return added
        caps.append(unit)
    return None


def largest_reserve(demand: tuple[float, float], memory: Sequence[float], cpu: Sequence[float],
                    below: int) -> int | None:
    """The largest reserve smaller than ``below`` that these capacities keep, or None."""
    for reserve in range(below - 1, -1, -1):
        if keeps_reserve(demand, memory, cpu, reserve):
            return reserve
    return None


def gib(memory_mb: float) -> int:
    """MiB rounded up to whole GiB, for suggestions people read."""
    return max(0, math.ceil(memory_mb / 1024 - 1e-9))


def count(n: float, noun: str) -> str:
    """``1 core``, ``2 cores``: a whole number with its noun."""
    whole = int(n)
    return f"{whole} {noun}" if whole == 1 else f"{whole} {noun}s"


def describe_shortfall(short: Shortfall, reserve: int) -> str:
    """One sentence: demand, what is left, what the reserve holds back."""
    if short.resource == MEMORY:
        return (f"running guests need {gib(short.demand)} GiB of memory but only "
                f"{gib(short.headroom)} GiB is left with {gib(short.reserved)} GiB held back "
                f"for the N+{reserve} reserve")
    return (f"running guests need {count(math.ceil(short.demand), 'vCPU')} but only "
            f"{math.floor(short.headroom)} are left with {math.floor(short.reserved)} held back "
            f"for the N+{reserve} reserve")


@dataclass(frozen=True, slots=True)
class Extra:
    """Hardware that would make a shortfall go away: ``count`` hosts of this size."""

    count: int
    memory_mb: float
    cores: float

    def text(self, cluster: str, cpu_group: str = "") -> str:
        """E.g. ``one more host with at least 256 GiB and 32 cores in cluster X``."""
        group = f" of CPU group {cpu_group}" if cpu_group else ""
        parts = [f"{gib(self.memory_mb)} GiB of memory" if self.memory_mb > 1e-9 else "",
                 count(math.ceil(self.cores - 1e-9), "core") if self.cores > 1e-9 else ""]
        size = " and ".join(p for p in parts if p) or "the same size as the others"
        if self.count == 1:
            return f"one more host{group} with at least {size} in cluster {cluster}"
        return f"{self.count} more hosts{group} with {size} each in cluster {cluster}"


def extra_for_reserve(demand: tuple[float, float], memory: Sequence[float], cpu: Sequence[float],
                      reserve: int, overcommit: tuple[float, float],
                      largest: tuple[float, float]) -> Extra | None:
    """Physical hardware to add so that ``demand`` keeps the reserve on these capacities.

    One host when one is enough (its size computed exactly), else the number of hosts like the
    largest existing one (``largest``: its memory MiB and cores); capacities are effective, the
    answer is physical (divided by the overcommit ratios).
    """
    mem_one = one_host_enough(memory, reserve, demand[0])
    cpu_one = one_host_enough(cpu, reserve, demand[1])
    if mem_one is not None and cpu_one is not None:
        return Extra(1, mem_one / overcommit[0], cpu_one / overcommit[1])
    unit_mem, unit_cpu = largest[0] * overcommit[0], largest[1] * overcommit[1]
    n_mem = hosts_like_enough(memory, reserve, demand[0], unit_mem)
    n_cpu = hosts_like_enough(cpu, reserve, demand[1], unit_cpu)
    if n_mem is None or n_cpu is None or unit_mem <= 0 or unit_cpu <= 0:
        return None
    return Extra(max(1, n_mem, n_cpu), largest[0], largest[1])


def wave_capacity(capacities: Sequence[float], reserve: int, most: int, demand: float) -> float:
    """Most capacity that any one wave of at most ``most`` hosts can take out of service.

    A wave ``M`` keeps the rule only if ``sum(M) <= sum(all) - topk(R) - demand``; ``R`` lacks at
    most ``most`` hosts, so its j-th largest capacity is at least the ``(j + most)``-th largest of
    all, which bounds ``topk(R)`` from below and this from above.
    """
    ordered = sorted(capacities, reverse=True)
    held = math.fsum(ordered[most:most + max(0, reserve)])
    return math.fsum(ordered) - held - demand


def necessary_conditions(state: ClusterState, to_patch: Sequence[int],
                         stop: Mapping[int, Sequence[Vm]], reserve: int) -> list[Infeasibility]:
    """What every plan needs and this cluster lacks, each with what would fix it.

    Every host to patch must be able to go into maintenance alone under the HA rule; each of its
    guests must fit on some other host of its CPU group, and the group must hold its guests
    without that host; an anti-affinity group needs a host per member while one host is down.
    """
    return (_reserve_conditions(state, to_patch, stop, reserve)
            + _group_conditions(state, to_patch, stop)
            + _anti_affinity_conditions(state, to_patch))


def _reserve_conditions(state: ClusterState, to_patch: Sequence[int],
                        stop: Mapping[int, Sequence[Vm]], reserve: int) -> list[Infeasibility]:
    cluster = state.cluster
    total = (math.fsum(state.load_mem), math.fsum(state.load_cpu))
    fails = []
    for h in to_patch:
        gone = stop.get(h, ())
        demand = (total[0] - sum(v.memory_mb for v in gone), total[1] - sum(v.vcpus for v in gone))
        mem = [c for i, c in enumerate(state.cap_mem) if i != h]
        cpu = [c for i, c in enumerate(state.cap_cpu) if i != h]
        shorts = shortfalls(demand, mem, cpu, reserve)
        if shorts:
            score = sum(s.deficit / max(s.demand, 1.0) for s in shorts)
            fails.append((score, state.names[h], h, shorts, demand, mem, cpu))
    if not fails:
        return []
    every = len(fails) == len(to_patch)
    if every:
        fails = [min(fails)]
    largest = max(cluster.hosts, key=lambda x: (x.memory_mb, x.cores))
    out = []
    for _, name, _h, shorts, demand, mem, cpu in fails:
        plain = reserve > 0 and keeps_reserve(demand, mem, cpu, 0)
        what = "; ".join(describe_shortfall(s, reserve) for s in shorts)
        head = (f"no host of cluster {cluster.name} can go into maintenance: even with {name} "
                "down, " if every else f"{name} cannot go into maintenance: ")
        extra = extra_for_reserve(
            demand, mem, cpu, reserve, (cluster.memory_overcommit, cluster.cpu_overcommit),
            (largest.memory_mb, largest.cores))
        fix = extra.text(cluster.name) if extra else f"more hosts in cluster {cluster.name}"
        lower = largest_reserve(demand, mem, cpu, reserve) if reserve else None
        if lower is not None:
            fix += (f", or an HA reserve of {lower} host(s) during the maintenance "
                    f"(policy ha_reserve_hosts={lower})")
        out.append(Infeasibility(cluster.name, head + what, host=name,
                                 constraint="ha-reserve" if plain else "capacity",
                                 suggestion=fix))
    return out


def _group_conditions(state: ClusterState, to_patch: Sequence[int],
                      stop: Mapping[int, Sequence[Vm]]) -> list[Infeasibility]:
    cluster = state.cluster
    over = (cluster.memory_overcommit, cluster.cpu_overcommit)
    out: list[Infeasibility] = []
    groups_done: set[str] = set()
    for h in to_patch:
        movers = [v for v in state.residents[h].values() if v.migratable]
        if not movers:
            continue
        name, group, others = state.names[h], state.group[h], state.allowed[h]
        of_group = f" of CPU group {group}" if group else ""
        if not others:
            need = Extra(1, sum(v.memory_mb for v in movers) / over[0],
                         sum(v.vcpus for v in movers) / over[1])
            out.append(Infeasibility(
                cluster.name, f"{name} is the only host{of_group}: its guests can move nowhere",
                host=name, constraint="cpu-group", suggestion=need.text(cluster.name, group)))
            continue
        top_mem = max(state.cap_mem[d] for d in others)
        top_cpu = max(state.cap_cpu[d] for d in others)
        for vm in sorted(movers, key=lambda v: v.name):
            if vm.memory_mb > top_mem + 1e-9 or vm.vcpus > top_cpu + 1e-9:
                need = Extra(1, vm.memory_mb / over[0], vm.vcpus / over[1])
                out.append(Infeasibility(
                    cluster.name, f"guest {vm.name} ({gib(vm.memory_mb)} GiB, "
                    f"{count(vm.vcpus, 'vCPU')}) on {name} is larger than any other "
                    f"host{of_group} can hold ({gib(top_mem)} GiB, {count(top_cpu, 'vCPU')})",
                    guest=vm.name, host=name,
                    constraint="memory" if vm.memory_mb > top_mem + 1e-9 else "cpu",
                    suggestion=need.text(cluster.name, group)))
        if group and group not in groups_done:
            gone = stop.get(h, ())
            members = [h, *others]
            deficit = (sum(state.load_mem[i] for i in members) - sum(v.memory_mb for v in gone)
                       - sum(state.cap_mem[i] for i in others),
                       sum(state.load_cpu[i] for i in members) - sum(v.vcpus for v in gone)
                       - sum(state.cap_cpu[i] for i in others))
            if deficit[0] > 1e-9 or deficit[1] > 1e-9:
                groups_done.add(group)
                need = Extra(1, max(0.0, deficit[0]) / over[0], max(0.0, deficit[1]) / over[1])
                out.append(Infeasibility(
                    cluster.name, f"CPU group {group} cannot hold its running guests while {name} "
                    "is in maintenance", host=name, constraint="cpu-group",
                    suggestion=need.text(cluster.name, group)))
    return out


def _anti_affinity_conditions(state: ClusterState, to_patch: Sequence[int]) -> list[Infeasibility]:
    counts: dict[str, int] = {}
    for per_host in state.aa:
        for group, n in per_host.items():
            counts[group] = counts.get(group, 0) + n
    moving = {g for h in to_patch for v in state.residents[h].values() if v.migratable
              for g in v.groups}
    up = len(state.names) - 1
    cluster = state.cluster.name
    return [Infeasibility(
        cluster, f"anti-affinity group {g} has {counts[g]} running guests but only {up} hosts "
                 "are up while one is in maintenance", constraint="anti-affinity",
        suggestion=f"{counts[g] - up} more host(s) in cluster {cluster}, or fewer members in {g}")
        for g in sorted(moving) if counts.get(g, 0) > up]
