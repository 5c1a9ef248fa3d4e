"""Where guests go during a plan: the cluster's working state, destination choice, and why not.

:class:`ClusterState` is the *mutable working copy* a planner keeps while it builds a plan (plain
lists indexed by host, for speed); it never leaves the planning functions, which return frozen
values. It tracks only running guests: stopped and suspended guests stay where they are and take
nothing. A destination ``d`` can take guest ``g`` leaving host ``s`` when

* ``d`` is not ``s``, not in maintenance and not blocked for this wave;
* CPU compatibility: when ``s`` has a ``cpu_group``, ``d`` has the same one;
* memory and vCPUs: ``d``'s running guests plus ``g`` stay within its effective capacity;
* anti-affinity: no running guest on ``d`` shares a group with ``g``.

Destinations are ranked by *tier* -- 0: already on the target (patched earlier in the plan or
given as ``patched``), 1: not part of the campaign, 2: still to be patched (the guest will move
again) -- and, within a tier, by the migration seconds already headed there in this wave, so that
the receiving side of the concurrency limits is shared out. When an evacuation may use hosts
still waiting, the room on patched and untouched hosts goes to the host's *smallest* guests first
(the most guests that fit there, so the fewest move twice); the rest then go largest first.

:func:`scope_cluster` decides what a plan may touch at all: which hosts it patches, which it
skips and why, and which guests that cannot live-migrate it stops (the pinned-guest policy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hvpatch.domain.fleet import Cluster, Guest, PowerState
from hvpatch.domain.planning import capacity
from hvpatch.domain.planning.capacity import Extra, count, gib
from hvpatch.domain.planning.model import Infeasibility, PinnedPolicy, Skip

PATCHED, OUTSIDE, WAITING = 0, 1, 2
_EPS = 1e-9
_TIER_WEIGHT = 1e15


class Vm(NamedTuple):
    """A running guest as the planner sees it (its migration seconds precomputed)."""

    name: str
    memory_mb: int
    vcpus: int
    groups: tuple[str, ...]
    migratable: bool
    seconds: float
    guest: Guest


Migration = tuple[Vm, int, int]  # guest, source host index, destination host index


class ClusterState:
    """Running guests per host, loads, anti-affinity groups, tiers and hosts in maintenance."""

    __slots__ = ("aa", "allowed", "cap_cpu", "cap_mem", "cluster", "down", "group", "load_cpu",
                 "load_mem", "names", "residents", "tier", "where")

    def __init__(self, cluster: Cluster, tiers: Sequence[int],
                 migration_seconds: Callable[[float], float]) -> None:
        hosts = cluster.hosts
        self.cluster = cluster
        self.names = [str(h.name) for h in hosts]
        self.cap_mem = [h.memory_mb * cluster.memory_overcommit for h in hosts]
        self.cap_cpu = [h.cores * cluster.cpu_overcommit for h in hosts]
        self.group = [h.cpu_group for h in hosts]
        self.tier = list(tiers)
        self.down = [False] * len(hosts)
        self.load_mem = [0.0] * len(hosts)
        self.load_cpu = [0.0] * len(hosts)
        self.residents: list[dict[str, Vm]] = [{} for _ in hosts]
        self.aa: list[dict[str, int]] = [{} for _ in hosts]
        self.where: dict[str, int] = {}
        by_group: dict[str, list[int]] = {}
        for i, h in enumerate(hosts):
            by_group.setdefault(h.cpu_group, []).append(i)
        everyone = list(range(len(hosts)))
        self.allowed = [[d for d in (by_group[g] if g else everyone) if d != i]
                        for i, g in enumerate(self.group)]
        for i, h in enumerate(hosts):
            here, counts = self.residents[i], self.aa[i]
            for g in h.guests:
                if g.power_state is PowerState.RUNNING:
                    vm = Vm(g.name, g.memory_mb, g.vcpus, g.anti_affinity,
                            g.migration_block is None, migration_seconds(g.memory_mb), g)
                    here[vm.name] = vm
                    self.where[vm.name] = i
                    self.load_mem[i] += vm.memory_mb
                    self.load_cpu[i] += vm.vcpus
                    for group in vm.groups:
                        counts[group] = counts.get(group, 0) + 1

    def add(self, vm: Vm, host: int) -> None:
        """``vm`` starts running on ``host``."""
        self.residents[host][vm.name] = vm
        self.where[vm.name] = host
        self.load_mem[host] += vm.memory_mb
        self.load_cpu[host] += vm.vcpus
        counts = self.aa[host]
        for group in vm.groups:
            counts[group] = counts.get(group, 0) + 1

    def remove(self, vm: Vm) -> int:
        """``vm`` stops; returns the host it ran on."""
        host = self.where.pop(vm.name)
        del self.residents[host][vm.name]
        self.load_mem[host] -= vm.memory_mb
        self.load_cpu[host] -= vm.vcpus
        counts = self.aa[host]
        for group in vm.groups:
            counts[group] -= 1
            if not counts[group]:
                del counts[group]
        return host

    def move(self, vm: Vm, destination: int) -> None:
        """``vm`` live-migrates to ``destination``."""
        self.remove(vm)
        self.add(vm, destination)

    def movable(self, host: int) -> list[Vm]:
        """Running, live-migratable guests of ``host``, largest first (name breaks ties)."""
        return sorted((v for v in self.residents[host].values() if v.migratable),
                      key=lambda v: (-v.memory_mb, -v.vcpus, v.name))

    def weight(self, host: int) -> tuple[int, int, str]:
        """(guests that must leave ``host``, their memory, its name): lightest hosts go first."""
        movers = [v.memory_mb for v in self.residents[host].values() if v.migratable]
        return len(movers), sum(movers), self.names[host]

    def fits(self, vm: Vm, host: int) -> bool:
        """Capacity and anti-affinity allow ``vm`` to run on ``host`` now."""
        if self.cap_mem[host] - self.load_mem[host] < vm.memory_mb - _EPS:
            return False
        if self.cap_cpu[host] - self.load_cpu[host] < vm.vcpus - _EPS:
            return False
        counts = self.aa[host]
        return not (vm.groups and any(g in counts for g in vm.groups))

    def choose(self, vm: Vm, source: int, blocked: Sequence[bool], max_tier: int,
               busy: Sequence[float], first_fit: bool = False) -> int:
        """Best destination for ``vm`` leaving ``source`` (module doc), or -1 if none fits."""
        best, best_key = -1, 0.0
        cap_mem, load_mem, cap_cpu, load_cpu = self.cap_mem, self.load_mem, self.cap_cpu, \
            self.load_cpu
        down, tier, aa = self.down, self.tier, self.aa
        mem, cpu, groups = vm.memory_mb - _EPS, vm.vcpus - _EPS, vm.groups
        for d in self.allowed[source]:
            t = tier[d]
            if t > max_tier or blocked[d] or down[d]:
                continue
            if cap_mem[d] - load_mem[d] < mem or cap_cpu[d] - load_cpu[d] < cpu:
                continue
            if groups and any(g in aa[d] for g in groups):
                continue
            if first_fit:
                return d
            key = t * _TIER_WEIGHT + busy[d]
            if best < 0 or key < best_key:
                best, best_key = d, key
        return best

    def evacuate(self, host: int, blocked: Sequence[bool], max_tier: int, busy: list[float],
                 first_fit: bool = False) -> tuple[list[Migration], Vm | None]:
        """Move every movable guest off ``host``; if one fits nowhere, undo and return it.

        With ``max_tier`` WAITING (and not ``first_fit``), when the guests cannot all go to
        patched and untouched hosts, the smallest first take the room there and the others follow
        largest first (module doc); should that leave a guest with nowhere to go, the plain
        largest-first order is used instead.
        """
        if max_tier == WAITING and not first_fit:
            leaving = math.fsum(v.memory_mb for v in self.residents[host].values()
                                if v.migratable)
            if self._room_below_waiting(host, blocked) >= leaving - _EPS:
                moves, stuck = self._place(host, blocked, OUTSIDE, busy, first_fit)
                if stuck is None:
                    return moves, None
            settled = self._settle(host, blocked, busy)
            if settled:
                rest, stuck = self._place(host, blocked, max_tier, busy, first_fit)
                if stuck is None:
                    return settled + rest, None
                self.undo(settled, busy)
        return self._place(host, blocked, max_tier, busy, first_fit)

    def _room_below_waiting(self, host: int, blocked: Sequence[bool]) -> float:
        """Free memory on the patched and untouched hosts that could take ``host``'s guests."""
        return math.fsum(self.cap_mem[d] - self.load_mem[d] for d in self.allowed[host]
                         if self.tier[d] < WAITING and not blocked[d] and not self.down[d])

    def _settle(self, host: int, blocked: Sequence[bool], busy: list[float]) -> list[Migration]:
        """Move ``host``'s smallest guests onto patched or untouched hosts while they fit there."""
        done: list[Migration] = []
        for vm in reversed(self.movable(host)):
            d = self.choose(vm, host, blocked, OUTSIDE, busy)
            if d >= 0:
                self.move(vm, d)
                busy[d] += vm.seconds
                done.append((vm, host, d))
        return done

    def _place(self, host: int, blocked: Sequence[bool], max_tier: int, busy: list[float],
               first_fit: bool) -> tuple[list[Migration], Vm | None]:
        """Move every movable guest left on ``host``, largest first (undone if one is stuck)."""
        done: list[Migration] = []
        for vm in self.movable(host):
            d = self.choose(vm, host, blocked, max_tier, busy, first_fit)
            if d < 0:
                self.undo(done, busy)
                return [], vm
            self.move(vm, d)
            busy[d] += vm.seconds
            done.append((vm, host, d))
        return done, None

    def undo(self, migrations: list[Migration], busy: list[float]) -> None:
        """Reverse ``migrations`` (latest first)."""
        for vm, source, destination in reversed(migrations):
            self.move(vm, source)
            busy[destination] -= vm.seconds

    def why_not(self, vm: Vm, source: int, blocked: Sequence[bool]) -> list[tuple[str, str]]:
        """For every other host, (constraint, explanation) of why ``vm`` cannot go there."""
        out: list[tuple[str, str]] = []
        allowed = set(self.allowed[source])
        for d, name in enumerate(self.names):
            if d == source:
                continue
            if d not in allowed:
                out.append(("cpu-group", f"{name}: CPU group {self.group[d] or '(none)'} is not "
                                         f"{self.group[source]}"))
            elif self.down[d] or blocked[d]:
                out.append(("maintenance", f"{name}: in maintenance in this wave"))
            elif self.cap_mem[d] - self.load_mem[d] < vm.memory_mb - _EPS:
                free = max(0.0, self.cap_mem[d] - self.load_mem[d])
                out.append(("memory", f"{name}: {gib(free)} GiB free"))
            elif self.cap_cpu[d] - self.load_cpu[d] < vm.vcpus - _EPS:
                free = max(0.0, self.cap_cpu[d] - self.load_cpu[d])
                out.append(("cpu", f"{name}: {count(free, 'vCPU')} free"))
            else:
                mates = sorted(v.name for v in self.residents[d].values()
                               if set(v.groups) & set(vm.groups))
                out.append(("anti-affinity", f"{name}: runs {', '.join(mates)} of the same "
                                             "anti-affinity group"))
        return out


def explain_stuck(state: ClusterState, host: int, blocked: Sequence[bool], waves_done: int,
                  overcommit: tuple[float, float]) -> Infeasibility:
    """Why ``host`` cannot be emptied now: the first guest that fits nowhere, host by host.

    The suggestion sizes one more host (in the source's CPU group) for every guest of ``host``
    that is left once the others have been placed.
    """
    busy = [0.0] * len(state.names)
    placed: list[Migration] = []
    stuck: Vm | None = None
    left: list[Vm] = []
    for vm in state.movable(host):
        if stuck is None:
            d = state.choose(vm, host, blocked, WAITING, busy)
            if d >= 0:
                state.move(vm, d)
                placed.append((vm, host, d))
                continue
            stuck = vm
        left.append(vm)
    reasons = state.why_not(stuck, host, blocked) if stuck else []
    state.undo(placed, busy)
    cluster, name = state.cluster.name, state.names[host]
    if stuck is None:
        return Infeasibility(cluster, f"{name} could not be emptied in any wave", host=name,
                             constraint="no-wave")
    kinds = sorted({k for k, _ in reasons}, key=[k for k, _ in reasons].index)
    constraint = "no-destination" if not reasons else \
        kinds[0] if len(kinds) == 1 else "+".join(kinds)
    when = f"after {waves_done} wave(s), " if waves_done else ""
    detail = "; ".join(text for _, text in reasons[:8])
    more = f"; and {len(reasons) - 8} more" if len(reasons) > 8 else ""
    size = f"{gib(stuck.memory_mb)} GiB, {count(stuck.vcpus, 'vCPU')}"
    reason = (f"{when}guest {stuck.name} ({size}) on {name} fits on no other host: "
              f"{detail or 'the cluster has no other host'}{more}")
    need = Extra(1, sum(v.memory_mb for v in left) / overcommit[0],
                 sum(v.vcpus for v in left) / overcommit[1])
    suggestion = need.text(cluster, state.group[host])
    if "anti-affinity" in kinds:
        suggestion += f", or a host without a member of {', '.join(stuck.groups)}"
    return Infeasibility(cluster, reason, guest=stuck.name, host=name, constraint=constraint,
                         suggestion=suggestion)


def demand(state: ClusterState, stopped: Iterable[Vm] = ()) -> tuple[float, float]:
    """Memory and vCPUs of the running guests, less those of ``stopped``."""
    gone = list(stopped)
    return (math.fsum(state.load_mem) - sum(v.memory_mb for v in gone),
            math.fsum(state.load_cpu) - sum(v.vcpus for v in gone))


def relief(hosts: Iterable[int], stop: Mapping[int, tuple[Vm, ...]]
            ) -> tuple[list[float], list[float]]:
    """Per host, the memory and vCPUs its stopped pinned guests free while it is down."""
    hosts = list(hosts)
    return ([float(sum(v.memory_mb for v in stop.get(h, ()))) for h in hosts],
            [float(sum(v.vcpus for v in stop.get(h, ()))) for h in hosts])


def capacities(state: ClusterState, without: Iterable[int]) -> tuple[list[float], list[float]]:
    """Memory and vCPU capacities of the hosts up, ``without`` some."""
    out = set(without)
    keep = [i for i in range(len(state.names)) if i not in out and not state.down[i]]
    return [state.cap_mem[i] for i in keep], [state.cap_cpu[i] for i in keep]


def group_limits(state: ClusterState, hosts: list[int],
                 stop: Mapping[int, tuple[Vm, ...]] | None = None, *, ordered: bool = False
                 ) -> dict[str, tuple[list[int], int]]:
    """Per CPU group: its ``hosts`` lightest first, and how many can be down at once.

    Guests of a CPU group stay in it, so at most so many of its hosts can be down together that
    its running guests fit on the rest (capacity only; the HA rule is cluster-wide). Hosts without
    a group send guests anywhere and are not limited here. With ``stop``, the pinned guests
    stopped on hosts that are down count as relief (an upper bound, for the lower bound).
    ``ordered`` says ``hosts`` are already lightest first.
    """
    by_group: dict[str, list[int]] = {}
    for h in hosts if ordered else sorted(hosts, key=state.weight):
        by_group.setdefault(state.group[h], []).append(h)
    out: dict[str, tuple[list[int], int]] = {}
    for g in sorted(by_group):
        mine = by_group[g]
        if not g:
            out[g] = (mine, len(mine))
            continue
        members = [i for i, x in enumerate(state.group) if x == g]
        down = set(mine)
        demand = (math.fsum(state.load_mem[i] for i in members),
                  math.fsum(state.load_cpu[i] for i in members))
        staying = ([state.cap_mem[i] for i in members if i not in down],
                   [state.cap_cpu[i] for i in members if i not in down])
        removable = ([state.cap_mem[h] for h in mine], [state.cap_cpu[h] for h in mine])
        most = capacity.max_parallel(demand, staying, removable, 0,
                                     relief(mine, stop) if stop is not None else None)
        out[g] = (mine, max(1, most))
    return out


def interleave(groups: Mapping[str, tuple[list[int], int]]) -> list[int]:
    """Hosts of all groups, each group lightest first, mixed in proportion to the group sizes."""
    keyed = [((i + 0.5) / len(hosts), g, i, h) for g, (hosts, _) in groups.items()
             for i, h in enumerate(hosts)]
    return [h for *_, h in sorted(keyed)]


def anti_affinity_room(state: ClusterState, stop: Mapping[int, Sequence[Vm]]) -> int:
    """Most hosts that can be down at once: each anti-affinity group keeps a host per member.

    Members that a plan stops (pinned guests under the shutdown policy) are not counted, which
    makes this an upper bound.
    """
    stopped = {v.name for vms in stop.values() for v in vms}
    counts: dict[str, int] = {}
    for per_host in state.residents:
        for vm in per_host.values():
            if vm.name not in stopped:
                for group in vm.groups:
                    counts[group] = counts.get(group, 0) + 1
    return len(state.names) - max(counts.values(), default=0)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a plan patches (host index -> current and target release), skips and must stop."""

    labels: Mapping[int, tuple[str, str]]
    skipped: tuple[Skip, ...]
    failures: tuple[Infeasibility, ...]
    shutdowns: Mapping[int, tuple[Guest, ...]]
    coordinators: tuple[int, ...]
    tiers: tuple[int, ...]


def scope_cluster(cluster: Cluster, targets: Mapping[str, str], pinned: PinnedPolicy,
                  patched: frozenset[str]) -> Scope:
    """Apply the ``pinned`` guest policy and the coordinator rule to the hosts in ``targets``.

    A running guest that cannot live-migrate is stopped and restarted (``shutdown``), leaves its
    host unpatched (``skip-host``) or makes the plan fail (``fail``); a skipped pool coordinator
    skips its whole pool, since members are never updated before their coordinator.

    Names in ``targets`` that are not hosts of ``cluster`` are ignored (a fleet-wide mapping may
    be passed); a host in both ``targets`` and ``patched`` is patched.
    """
    name = cluster.name
    wanted = [i for i, h in enumerate(cluster.hosts) if h.name in targets]
    skipped: dict[int, Skip] = {}
    failures: list[Infeasibility] = []
    shutdowns: dict[int, tuple[Guest, ...]] = {}
    for i in wanted:
        host = cluster.hosts[i]
        held = tuple(g for g in host.guests if g.running and not g.live_migratable)
        if not held:
            continue
        if pinned is PinnedPolicy.SHUTDOWN:
            shutdowns[i] = held
        elif pinned is PinnedPolicy.SKIP_HOST:
            more = f", and {len(held) - 1} more" if len(held) > 1 else ""
            skipped[i] = Skip(host.name, f"guest {_blocked(held[0])} cannot live-migrate{more} "
                                         "(pinned policy: skip-host)")
        else:
            failures.extend(Infeasibility(
                name, f"guest {_blocked(g)} on {host.name} cannot live-migrate",
                guest=g.name, host=host.name, constraint="migration-block",
                suggestion="use pinned policy 'shutdown' (stop it during the patch, with its "
                           "owner's consent) or 'skip-host', or remove the block")
                for g in held)
    coordinators = tuple(i for i in wanted if cluster.hosts[i].coordinator)
    for c in coordinators:
        if c in skipped:
            for i in wanted:
                skipped.setdefault(i, Skip(cluster.hosts[i].name, (
                    f"pool coordinator {cluster.hosts[c].name} is skipped, and pool members are "
                    "never updated before their coordinator")))
    labels = {i: (cluster.hosts[i].software.label, targets[cluster.hosts[i].name])
              for i in wanted if i not in skipped}
    tiers = tuple(WAITING if i in labels else PATCHED if h.name in patched else OUTSIDE
                  for i, h in enumerate(cluster.hosts))
    return Scope(labels, tuple(skipped[i] for i in sorted(skipped)), tuple(failures),
                 {i: g for i, g in shutdowns.items() if i in labels},
                 tuple(c for c in coordinators if c in labels), tiers)


def _blocked(guest: Guest) -> str:
    note = f": {guest.migration_note}" if guest.migration_note else ""
    return f"{guest.name} ({guest.migration_block}{note})"
