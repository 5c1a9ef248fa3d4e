"""How long patching takes: per-host work, live migrations under concurrency limits, lower bounds.

A wave takes ``evacuation + max over its hosts of (enter + install + reboot + checks + exit
[+ restart of stopped pinned guests]) + migrate-back``. Evacuation and migrate-back are *scheduled*
(:func:`schedule_migrations`): each live migration takes ``memory / bandwidth + overhead`` and
occupies one slot of its source host, one of its destination host (``per_host`` each: a host
sends and receives at most that many at once) and one of the cluster (``per_cluster``).

**Lower bound** of a cluster's makespan (:func:`cluster_lower_bound`), true for every plan
these rules allow (waves in sequence, at most ``m`` hosts per wave under the HA rule, the policy
cap and anti-affinity): with ``W_h`` a host's own steps and ``E_h`` its guests' migration
seconds over ``per_host`` (at least its longest migration), the largest of

* ``G(E + W)``: the sum of wave maxima when hosts are grouped ``m`` at a time in the best way
  (:func:`grouped_max_sum`), since a wave lasts at least ``max E_h + max W_h``;
* ``all migration seconds / min(per_cluster, per_host * m) + G(W)``;
* the capacity bounds: a wave can take only so much capacity out of service, which bounds the
  number of waves (bin packing, :func:`.capacity.fewest_waves`) and a weighted mean of their
  lengths; and the same per CPU group (its guests cannot leave it).

Default durations per family are typical orders of magnitude, not measurements of your estate:
override them with what your own runs show (``TimeModel(install_s={...})``).

* ESXi: install 900 s (a vLCM image remediation or ``esxcli software profile update`` stages and
  writes the image, 10-15 min); reboot 600 s (large-memory servers spend minutes in POST and
  memory training before ESXi boots).
* Hyper-V: install 1800 s (a Windows Server cumulative update, including the "working on updates"
  phases around the reboot, 20-40 min); reboot 420 s.
* KVM, Proxmox: install 300 s (upgrading the qemu, libvirt and kernel packages); reboot 180 s.
* Xen / XCP-ng / XenServer: install 600 s (update ISO or ``yum update`` plus toolstack restart);
  reboot 300 s.
* AHV: install 1200 s (an LCM / 1-click AHV upgrade coordinates with the CVM); reboot 600 s.
* generic (edge appliances): 600 s and 300 s, a middle value when nothing better is known.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from hvpatch.domain.planning import capacity
from hvpatch.domain.planning.model import HostStep, Move, MoveKind, Wave
from hvpatch.domain.planning.placement import (
    OUTSIDE,
    PATCHED,
    WAITING,
    ClusterState,
    Migration,
    Vm,
    anti_affinity_room,
    capacities,
    demand,
    group_limits,
    relief,
)
from hvpatch.errors import InputError, Problem

DEFAULT_INSTALL_S: Mapping[str, float] = MappingProxyType({
    "esxi": 900.0, "hyperv": 1800.0, "kvm": 300.0, "proxmox": 300.0, "xen": 600.0,
    "ahv": 1200.0, "generic": 600.0,
})
DEFAULT_REBOOT_S: Mapping[str, float] = MappingProxyType({
    "esxi": 600.0, "hyperv": 420.0, "kvm": 180.0, "proxmox": 180.0, "xen": 300.0,
    "ahv": 600.0, "generic": 300.0,
})
FALLBACK_FAMILY = "generic"


def _install_defaults() -> Mapping[str, float]:
    return DEFAULT_INSTALL_S


def _reboot_defaults() -> Mapping[str, float]:
    return DEFAULT_REBOOT_S


@dataclass(frozen=True, slots=True)
class TimeModel:
    """Durations of the steps of a patch, in seconds; defaults per family are in the module doc.

    ``migration_mib_per_s`` is the effective rate of *one* live migration (1000 MiB/s is a
    well-tuned 10 GbE vMotion / live-migration link); ``guest_shutdown_s`` and ``guest_start_s``
    are the time to stop a pinned guest before its host's maintenance and to start it after.
    A family missing from ``install_s`` / ``reboot_s`` uses the ``generic`` value.
    """

    migration_mib_per_s: float = 1000.0
    migration_overhead_s: float = 5.0
    install_s: Mapping[str, float] = field(default_factory=_install_defaults)
    reboot_s: Mapping[str, float] = field(default_factory=_reboot_defaults)
    checks_s: float = 120.0
    enter_maintenance_s: float = 30.0
    exit_maintenance_s: float = 30.0
    guest_shutdown_s: float = 60.0
    guest_start_s: float = 60.0

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        if not self.migration_mib_per_s > 0:
            problems.append(Problem("migration_mib_per_s", "must be greater than 0"))
        scalars = ("migration_overhead_s", "checks_s", "enter_maintenance_s",
                   "exit_maintenance_s", "guest_shutdown_s", "guest_start_s")
        problems.extend(Problem(name, "must be 0 or more") for name in scalars
                        if not getattr(self, name) >= 0)
        for name in ("install_s", "reboot_s"):
            problems.extend(Problem(f"{name}.{family}", "must be 0 or more")
                            for family, value in getattr(self, name).items() if not value >= 0)
        if problems:
            raise InputError("invalid time model", problems)

    def install(self, family: str) -> float:
        """Seconds to install the update on a host of ``family``."""
        return self.install_s.get(family, self.install_s.get(FALLBACK_FAMILY,
                                                             DEFAULT_INSTALL_S[FALLBACK_FAMILY]))

    def reboot(self, family: str) -> float:
        """Seconds to reboot a host of ``family`` (POST included)."""
        return self.reboot_s.get(family, self.reboot_s.get(FALLBACK_FAMILY,
                                                           DEFAULT_REBOOT_S[FALLBACK_FAMILY]))

    def host_steps(self, family: str, *, restarts: bool = False) -> dict[str, float]:
        """The host's own steps once it is empty, by name, in order."""
        steps = {
            "enter_maintenance": self.enter_maintenance_s,
            "install": self.install(family),
            "reboot": self.reboot(family),
            "checks": self.checks_s,
            "exit_maintenance": self.exit_maintenance_s,
        }
        if restarts:
            steps["restart_guests"] = self.guest_start_s
        return steps

    def host_seconds(self, family: str, *, restarts: bool = False) -> float:
        """enter + install + reboot + checks + exit (+ restarting its stopped pinned guests)."""
        return sum(self.host_steps(family, restarts=restarts).values())

    def migration_seconds(self, memory_mb: float) -> float:
        """One live migration of a guest with ``memory_mb`` of memory (fleet sizes are MiB)."""
        return memory_mb / self.migration_mib_per_s + self.migration_overhead_s


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a batch of concurrent migrations ends, overall and per host (as source)."""

    seconds: float
    source_done: Mapping[int, float]


def schedule_migrations(migrations: Sequence[tuple[int, int, float]], per_host: int,
                        per_cluster: int) -> Schedule:
    """Work-conserving schedule of ``(source, destination, seconds)`` migrations under both limits.

    Whenever migrations end, waiting ones start while the cluster has a free slot, one per
    source per round: sources with the most seconds still to send first, each with its longest
    migration whose destination has a free slot. No host ever sends or receives more than
    ``per_host`` at once, the cluster never runs more than ``per_cluster``. Deterministic.
    """
    if not migrations:
        return Schedule(0.0, {})
    queues: dict[int, list[tuple[float, int, int]]] = {}
    for i, (src, dst, secs) in enumerate(migrations):
        queues.setdefault(src, []).append((-secs, i, dst))
    left: dict[int, float] = {}
    for src, queue in queues.items():
        queue.sort()
        left[src] = -sum(q[0] for q in queue)
    sending = dict.fromkeys(queues, 0)
    receiving: dict[int, int] = {}
    running: list[tuple[float, int, int, int]] = []
    active = sorted(queues)  # sources with migrations still waiting
    now, lanes = 0.0, 0
    done: dict[int, float] = {}
    while True:
        ready = [s for s in active if sending[s] < per_host] if lanes < per_cluster else []
        if len(ready) > 1:
            ready.sort(key=lambda s: (-left[s], s))
        while ready and lanes < per_cluster:  # one migration per source per round
            still = []
            for src in ready:
                queue = queues[src]
                j = next((j for j, q in enumerate(queue) if receiving.get(q[2], 0) < per_host),
                         -1)
                if j < 0:
                    continue
                neg, i, dst = queue.pop(j)
                left[src] += neg
                sending[src] += 1
                receiving[dst] = receiving.get(dst, 0) + 1
                lanes += 1
                heapq.heappush(running, (now - neg, i, src, dst))
                if not queue:
                    active.remove(src)
                elif sending[src] < per_host:
                    still.append(src)
                if lanes >= per_cluster:
                    break
            ready = still
        if not running:
            return Schedule(now, done)
        now = running[0][0]
        while running and running[0][0] <= now:
            _, _, src, dst = heapq.heappop(running)
            sending[src] -= 1
            receiving[dst] -= 1
            lanes -= 1
            done[src] = now


def grouped_max_sum(values: Iterable[float], group: int) -> float:
    """Least possible sum of group maxima when ``values`` are split into groups of <= ``group``.

    Sorted largest first, it is ``x[0] + x[g] + x[2g] + ...``: the ``j*g + 1`` largest values
    cannot fit in ``j`` groups, so the ``(j+1)``-th largest group maximum is at least ``x[j*g]``.
    """
    xs = sorted(values, reverse=True)
    step = max(1, group)
    return math.fsum(xs[::step])


def lower_bound(solo: Sequence[float], work: Sequence[float], migration_s: float, *,
                most_parallel: int, per_host: int, per_cluster: int,
                first_alone: int | None = None) -> float:
    """A makespan no plan of these hosts can beat (waves in sequence, rules of this package).

    ``solo[h]`` is host ``h``'s evacuation floor plus its own work (``E_h + W_h``), ``work[h]``
    its own work ``W_h`` alone, ``migration_s`` the seconds of every live migration that must
    happen at least once, ``most_parallel`` the most hosts a wave can hold (HA rule, policy cap).
    A wave lasts at least ``max(E_h) + max(W_h) >= max(E_h + W_h)`` over its hosts, and the
    cluster runs at most ``min(per_cluster, per_host * most_parallel)`` migrations at once, so

        max( G(solo), migration_s / min(per_cluster, per_host * most_parallel) + G(work) )

    where ``G`` is :func:`grouped_max_sum` with groups of ``most_parallel`` (the host given as
    ``first_alone``, a pool coordinator, counts as a group of its own).
    """
    def grouped(values: Sequence[float]) -> float:
        if first_alone is None:
            return grouped_max_sum(values, most_parallel)
        rest = [v for i, v in enumerate(values) if i != first_alone]
        return values[first_alone] + grouped_max_sum(rest, most_parallel)

    if not solo:
        return 0.0
    lanes = max(1, min(per_cluster, per_host * max(1, most_parallel)))
    return max(grouped(solo), migration_s / lanes + grouped(work))


_WHY_DESTINATION = {
    PATCHED: "to a host already on the target, so it does not move again",
    OUTSIDE: "to a host outside this campaign, so it does not move again",
    WAITING: "no patched host had room; it moves again when this destination is patched",
}
_WHY_BACK = "returns to its host, as the migrate-back policy asks"


@dataclass(frozen=True, slots=True)
class WaveRun:
    """Everything one wave needs to be timed and written down (planner-independent)."""

    index: int
    hosts: Sequence[int]
    evacuations: Sequence[Migration]
    shutdowns: Sequence[Vm]
    labels: Mapping[int, tuple[str, str]]  # host -> (current release, target release)
    start: float
    per_host: int
    per_cluster: int
    migrate_back: bool


def run_wave(state: ClusterState, run: WaveRun, timing: TimeModel) -> tuple[Wave, list[str]]:
    """Apply a chosen wave to ``state`` (evacuations already applied) and return it with notes.

    Order: evacuations, then pinned guests are stopped, hosts are patched (in parallel), pinned
    guests restart on their own host, and -- with migrate-back -- evacuated guests return to the
    host they left, each only if it fits there at that moment (else it stays, with a note).
    """
    names = state.names
    moves = [Move(vm.name, MoveKind.EVACUATE, names[s], names[d], vm.memory_mb, vcpus=vm.vcpus,
                  reason=_WHY_BACK if run.migrate_back else _WHY_DESTINATION[state.tier[d]])
             for vm, s, d in run.evacuations]
    stopped: dict[int, list[Vm]] = {}
    for vm in run.shutdowns:
        host = state.remove(vm)
        stopped.setdefault(host, []).append(vm)
        moves.append(Move(vm.name, MoveKind.SHUTDOWN, names[host], names[host], vm.memory_mb,
                          vm.vcpus, _why_stopped(vm)))
    evac = schedule_migrations([(s, d, vm.seconds) for vm, s, d in run.evacuations],
                               run.per_host, run.per_cluster)
    evac_s = max(evac.seconds, timing.guest_shutdown_s if run.shutdowns else 0.0)
    family = str(state.cluster.family)
    steps = {h: timing.host_steps(family, restarts=h in stopped) for h in run.hosts}
    for h in run.hosts:
        state.tier[h] = PATCHED
    for h, vms in sorted(stopped.items()):
        for vm in vms:
            state.add(vm, h)
            moves.append(Move(vm.name, MoveKind.RESTART, names[h], names[h], vm.memory_mb,
                              vm.vcpus, "restarted on its own host after the patch"))
    notes: list[str] = []
    back: list[tuple[int, int, float]] = []
    if run.migrate_back:
        for vm, s, d in run.evacuations:
            if state.where.get(vm.name) == d and state.fits(vm, s):
                state.move(vm, s)
                back.append((d, s, vm.seconds))
                moves.append(Move(vm.name, MoveKind.MIGRATE_BACK, names[d], names[s],
                                  vm.memory_mb, vm.vcpus, _WHY_BACK))
            else:
                notes.append(f"{vm.name} stays on {names[d]}: it no longer fits on {names[s]}")
    back_s = schedule_migrations(back, run.per_host, run.per_cluster).seconds
    host_steps = []
    for h in run.hosts:
        secs = {"evacuate": evac.source_done.get(h, 0.0), **steps[h]}
        if back_s:
            secs["migrate_back"] = back_s
        current, target = run.labels[h]
        host_steps.append(HostStep(names[h], state.cluster.name, current, target, secs))
    longest = max((sum(s.values()) for s in steps.values()), default=0.0)
    wave = Wave(run.index, state.cluster.name, tuple(host_steps), tuple(moves),
                evac_s + longest + back_s, start_offset=run.start)
    return wave, notes


def _why_stopped(vm: Vm) -> str:
    block = vm.guest.migration_block
    note = f": {vm.guest.migration_note}" if vm.guest.migration_note else ""
    return (f"cannot live-migrate ({block}{note}); stopped for the patch and restarted after "
            "(pinned policy: shutdown)")


def cluster_lower_bound(state: ClusterState, to_patch: Sequence[int], first: int | None,
                        stop: Mapping[int, tuple[Vm, ...]], limits: tuple[int | None, int, int],
                        timing: TimeModel, reserve: int) -> float:
    """The cluster's makespan lower bound from its initial state (see :func:`.timing.lower_bound`).

    Per host: ``E_h`` is its guests' migration seconds over the migrations one host can send at
    once (at least its longest one, and the shutdown of its pinned guests), ``W_h`` its own steps.
    The most hosts at once is :func:`.capacity.max_parallel` capped by the policy, and per CPU
    group what its hosts can absorb. Capacity adds two bounds: a wave may take at most
    :func:`.capacity.wave_capacity` of *net* capacity (capacity minus stopped pinned guests) out
    of service, so the waves last at least ``sum(net_h * (E_h + W_h)) / wave capacity`` (a
    weighted mean is at most the maximum), and there are at least :func:`.capacity.fewest_waves`
    waves, each as long as a distinct host at least. The same holds per CPU group, without the
    reserve. Migrate-back is left out: a guest only returns if it fits then, so it is not certain.
    """
    cap, per_host, per_cluster = limits
    to_patch = sorted(to_patch)
    if not to_patch:
        return 0.0
    lanes = min(per_host, per_cluster)
    family = str(state.cluster.family)
    solo: dict[int, float] = {}
    work: list[float] = []
    total = 0.0
    for h in to_patch:
        secs = [v.seconds for v in state.residents[h].values() if v.migratable]
        total += math.fsum(secs)
        own = timing.host_seconds(family, restarts=h in stop)
        solo[h] = own + max(math.fsum(secs) / lanes, max(secs, default=0.0),
                            timing.guest_shutdown_s if h in stop else 0.0)
        work.append(own)
    need = demand(state)
    freed = relief(to_patch, stop)
    removable = ([state.cap_mem[h] for h in to_patch], [state.cap_cpu[h] for h in to_patch])
    most = capacity.max_parallel(need, capacities(state, to_patch), removable, reserve, freed)
    most = min(most, anti_affinity_room(state, stop))
    most = max(1, most if cap is None else min(most, cap))
    bounds = [lower_bound(list(solo.values()), work, total, most_parallel=most,
                          per_host=per_host, per_cluster=per_cluster,
                          first_alone=None if first is None else to_patch.index(first))]
    for r, caps in enumerate((state.cap_mem, state.cap_cpu)):
        nets = {h: caps[h] - freed[r][k] for k, h in enumerate(to_patch)}
        room = capacity.wave_capacity(caps, reserve, most, need[r])
        bounds.append(_capacity_bound(solo, nets, room))
    for hosts, limit in group_limits(state, to_patch, stop).values():
        bounds.append(grouped_max_sum([solo[h] for h in hosts], limit))
        if not state.group[hosts[0]]:
            continue
        members = [i for i, g in enumerate(state.group) if g == state.group[hosts[0]]]
        group_freed = relief(hosts, stop)
        for r, (caps, loads) in enumerate(((state.cap_mem, state.load_mem),
                                           (state.cap_cpu, state.load_cpu))):
            room = math.fsum(caps[i] for i in members) - math.fsum(loads[i] for i in members)
            nets = {h: caps[h] - group_freed[r][k] for k, h in enumerate(hosts)}
            bounds.append(_capacity_bound(solo, nets, room))
    return max(bounds)


def _capacity_bound(solo: Mapping[int, float], nets: Mapping[int, float], room: float) -> float:
    """max(weighted-mean bound, fewest waves times distinct shortest hosts); see above."""
    if room <= 0 or not nets or min(nets.values()) < 0:  # negative: an overloaded inventory
        return 0.0
    weighted = math.fsum(solo[h] * net for h, net in nets.items()) / room
    waves = capacity.fewest_waves(list(nets.values()), room)
    return max(weighted, math.fsum(sorted(solo[h] for h in nets)[:waves]))
