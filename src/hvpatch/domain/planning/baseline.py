"""The plan today's tools amount to, kept as a yardstick for :func:`.waves.plan_cluster`.

vSphere Lifecycle Manager, Cluster-Aware Updating and Xen Orchestra's rolling pool update all
work the same way by default: one host at a time (the pool coordinator first), in inventory
order; maintenance mode moves each running guest to the first host with room; when the host is
back, every guest it had returns to it. :func:`plan_cluster_baseline` does exactly that with the
same safety rules (capacity, HA rule, CPU groups, anti-affinity, pinned-guest policy) and the same
:class:`.waves.ClusterPlan` output, so a benchmark can compare migrations per evacuated guest and
makespan side by side. Where first fit runs out of room half-way, it fails as those tools do.
"""

from __future__ import annotations

from collections.abc import Mapping

from hvpatch.domain.fleet import Cluster
from hvpatch.domain.planning import capacity
from hvpatch.domain.planning.capacity import necessary_conditions
from hvpatch.domain.planning.model import Infeasibility, Wave
from hvpatch.domain.planning.placement import (
    PATCHED,
    WAITING,
    ClusterState,
    explain_stuck,
    scope_cluster,
)
from hvpatch.domain.planning.timing import TimeModel, WaveRun, cluster_lower_bound, run_wave
from hvpatch.domain.planning.waves import (
    ClusterPlan,
    ClusterPolicy,
    InfeasiblePlan,
    reserve_of,
    shutdown_vms,
    summarise,
)


def plan_cluster_baseline(cluster: Cluster, targets: Mapping[str, str],
                          policy: ClusterPolicy = ClusterPolicy(),
                          timing: TimeModel = TimeModel(), *,
                          patched: frozenset[str] = frozenset()) -> ClusterPlan:
    """One host per wave, first fit, migrate everything back (module doc).

    ``policy`` supplies the pinned-guest policy, the HA reserve and the migration limits; its
    ``max_parallel_hosts`` and ``migrate_back`` are ignored (1 and always). The lower bound is
    the same as :func:`.waves.plan_cluster` computes, so ratios compare.
    """
    scope = scope_cluster(cluster, targets, policy.pinned, patched)
    if scope.failures:
        raise InfeasiblePlan(cluster.name, scope.failures)
    state = ClusterState(cluster, [PATCHED] * len(cluster.hosts), timing.migration_seconds)
    reserve = reserve_of(cluster, policy)
    stop = shutdown_vms(state, scope)
    problems = necessary_conditions(state, sorted(scope.labels), stop, reserve)
    if problems:
        raise InfeasiblePlan(cluster.name, problems)
    bound = cluster_lower_bound(
        state, list(scope.labels), (scope.coordinators or (None,))[0], stop,
        (policy.max_parallel_hosts, policy.migrations_per_host, policy.migrations_per_cluster),
        timing, reserve)
    order = [*scope.coordinators, *(h for h in sorted(scope.labels) if h not in scope.coordinators)]
    n = len(state.names)
    waves: list[Wave] = []
    notes: list[str] = []
    start = 0.0
    demand = (sum(state.load_mem), sum(state.load_cpu))
    for h in order:
        gone = stop.get(h, ())
        need = (demand[0] - sum(v.memory_mb for v in gone), demand[1] - sum(v.vcpus for v in gone))
        mem = [c for i, c in enumerate(state.cap_mem) if i != h]
        cpu = [c for i, c in enumerate(state.cap_cpu) if i != h]
        if not capacity.keeps_reserve(need, mem, cpu, reserve):
            raise InfeasiblePlan(cluster.name, [Infeasibility(
                cluster.name, f"HA admission control refuses maintenance of {state.names[h]}",
                host=state.names[h], constraint="ha-reserve")])
        blocked = [i == h for i in range(n)]
        moves, stuck = state.evacuate(h, blocked, WAITING, [0.0] * n, first_fit=True)
        if stuck is not None:
            raise InfeasiblePlan(cluster.name, [explain_stuck(
                state, h, blocked, len(waves),
                (cluster.memory_overcommit, cluster.cpu_overcommit))])
        run = WaveRun(len(waves) + 1, [h], moves, list(gone), scope.labels, start,
                      policy.migrations_per_host, policy.migrations_per_cluster, True)
        wave, wave_notes = run_wave(state, run, timing)
        waves.append(wave)
        notes.extend(wave_notes)
        start += wave.seconds
    return summarise(cluster.name, waves, notes, scope.skipped, bound)
