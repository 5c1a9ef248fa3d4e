"""Capacity-aware waves for one cluster: which hosts go into maintenance together, where guests go.

:func:`plan_cluster` patches the hosts named in ``targets`` in *waves* (hosts in maintenance at
the same time, one wave after the other) so that at every step every running guest still runs
within the rules of :mod:`.capacity` (effective capacity, the N+k HA reserve) and
:mod:`.placement` (CPU groups, anti-affinity). How it decides, in order:

1. **Scope.** Hosts not in ``targets`` are never evacuated but take guests. A running guest that
   cannot live-migrate follows ``policy.pinned``: ``shutdown`` (stopped before its host's
   maintenance, restarted on it after), ``skip-host`` (the host is left alone, with the reason)
   or ``fail`` (:class:`InfeasiblePlan` naming every such guest). A skipped pool coordinator
   skips its whole pool: members are never updated before their coordinator.
2. **Necessary conditions**, each reported with what would fix it: every host must be able to go
   into maintenance alone under the HA rule; every guest must fit on some other host of its CPU
   group; a CPU group must hold its guests without any one of its hosts; an anti-affinity group
   needs as many hosts as members while one host is down.
3. **Waves.** A pool coordinator goes first, alone. Before the first other wave the planner
   estimates the fewest waves the hosts need -- by count under the HA rule, per CPU group, and
   by capacity (:func:`.capacity.fewest_waves`) -- plus ``policy.spare_waves``: the budget.
   Each wave then *must* take enough hosts, per CPU group and in total, for the rest to fit in
   the waves left (tightest group first, lightest hosts first: fewest guests to move, then least
   memory, then name). It first takes every host, lightest first, whose guests all fit on hosts
   already patched or outside the campaign -- those guests move once -- and then the hosts it
   must still take, whose guests go to patched hosts first and otherwise to hosts still waiting
   (they will move again); a host that cannot be emptied is replaced by the next of its group.
   So the first wave, which can only send guests to hosts still waiting, is as small as the
   budget allows. With ``policy.deadline_seconds`` the budget grows to the waves expected to end
   by then (the mean wave so far, at least the lower bound per fewest wave, sets the pace). With
   ``migrate_back`` every guest returns after its wave, so waves are simply as large as the rules
   allow. If no wave can be formed, the lightest host's first guest that fits nowhere is
   reported, host by host.
4. **Time** per wave and the cluster's **lower bound**: :mod:`.timing`.
5. **Clusters together** (:func:`plan_clusters`, used for each ring of a campaign): clusters run
   in parallel, so the ring lasts as long as its longest cluster. The cluster with the largest
   lower bound is planned first, as asked; every other cluster then gets that plan's duration
   (or that bound, if longer) as its deadline and spends the slack on smaller early waves, so
   fewer of its guests move twice while the ring takes no longer. A cluster whose plan with a
   deadline would end after it is planned again without one, and the shorter plan is kept.

Same input, same plan: every choice is ordered by numbers and names, never by set order or chance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from hvpatch.domain.fleet import Cluster
from hvpatch.domain.planning import capacity
from hvpatch.domain.planning.capacity import necessary_conditions
from hvpatch.domain.planning.model import Infeasibility, MoveKind, PinnedPolicy, Skip, Wave
from hvpatch.domain.planning.placement import (
    OUTSIDE,
    WAITING,
    ClusterState,
    Migration,
    Scope,
    Vm,
    anti_affinity_room,
    capacities,
    demand,
    explain_stuck,
    group_limits,
    interleave,
    relief,
    scope_cluster,
)
from hvpatch.domain.planning.timing import (
    TimeModel,
    WaveRun,
    cluster_lower_bound,
    run_wave,
)
from hvpatch.errors import InputError, PlanError, Problem


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """How a cluster may be patched.

    ``max_parallel_hosts`` caps hosts in maintenance at once (None: capacity decides);
    ``migrations_per_host`` caps live migrations leaving or entering one host at once,
    ``migrations_per_cluster`` those in the whole cluster; ``pinned`` says what happens to guests
    that cannot live-migrate; ``migrate_back`` returns evacuated guests after each wave;
    ``ha_reserve_hosts`` overrides the cluster's N+k reserve for this plan (None: keep it);
    ``spare_waves`` lets the plan take that many waves more than the fewest possible, spent on
    smaller early waves so that fewer guests move twice (module doc, step 3);
    ``deadline_seconds`` lets it take as many more as are expected to end within that many
    seconds of the cluster's start (:func:`plan_clusters` sets it from the ring's longest plan).
    """

    max_parallel_hosts: int | None = None
    migrations_per_host: int = 2
    migrations_per_cluster: int = 8
    pinned: PinnedPolicy = PinnedPolicy.FAIL
    migrate_back: bool = False
    ha_reserve_hosts: int | None = None
    spare_waves: int = 0
    deadline_seconds: float | None = None

    def __post_init__(self) -> None:
        problems = [Problem(name, "must be 1 or more") for name in
                    ("max_parallel_hosts", "migrations_per_host", "migrations_per_cluster")
                    if getattr(self, name) is not None and getattr(self, name) < 1]
        if self.deadline_seconds is not None and not 0 < self.deadline_seconds < math.inf:
            problems.append(Problem("deadline_seconds", "must be a number of seconds above 0"))
        problems.extend(Problem(name, "must be 0 or more") for name in
                        ("ha_reserve_hosts", "spare_waves")
                        if getattr(self, name) is not None and getattr(self, name) < 0)
        if problems:
            raise InputError("invalid cluster policy", problems)


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    """The waves of one cluster (numbered from 1), the hosts skipped, and what it costs.

    ``seconds`` is the sum of the waves, ``lower_bound_seconds`` what no plan can beat
    (:func:`.timing.lower_bound`); ``migrations`` counts live migrations (evacuations and
    migrate-backs), ``evacuated_guests`` the distinct guests evacuated at least once,
    ``shutdowns`` the pinned guests stopped and restarted; ``notes`` say what did not go as asked
    (a guest that could not migrate back).
    """

    cluster: str
    waves: tuple[Wave, ...]
    skipped: tuple[Skip, ...]
    seconds: float
    lower_bound_seconds: float
    migrations: int
    evacuated_guests: int
    shutdowns: int = 0
    notes: tuple[str, ...] = ()


class InfeasiblePlan(PlanError):
    """No safe plan exists for a cluster; ``infeasibilities`` say why and what would fix it."""

    def __init__(self, cluster: str, infeasibilities: Iterable[Infeasibility]) -> None:
        self.cluster = cluster
        self.infeasibilities: tuple[Infeasibility, ...] = tuple(infeasibilities)
        lines = [f"  - {i.reason}" + (f" (fix: {i.suggestion})" if i.suggestion else "")
                 for i in self.infeasibilities]
        super().__init__(f"no safe plan for cluster {cluster}:\n" + "\n".join(lines))


def reserve_of(cluster: Cluster, policy: ClusterPolicy) -> int:
    """The N+k reserve in force: the policy's override, else the cluster's."""
    return cluster.ha_reserve_hosts if policy.ha_reserve_hosts is None else policy.ha_reserve_hosts


@dataclass(frozen=True, slots=True)
class ClusterJob:
    """One cluster to plan with :func:`plan_clusters`: its targets (host name -> target
    release) and its hosts already on the target (``patched``, e.g. in an earlier ring)."""

    cluster: Cluster
    targets: Mapping[str, str]
    patched: frozenset[str] = frozenset()


def plan_cluster(cluster: Cluster, targets: Mapping[str, str],
                 policy: ClusterPolicy = ClusterPolicy(), timing: TimeModel = TimeModel(), *,
                 patched: frozenset[str] = frozenset()) -> ClusterPlan:
    """Waves that patch ``targets`` (host name -> target release) safely, or why none can.

    Raises :class:`InfeasiblePlan` with every reason found when no safe plan exists.
    """
    return _Prepared(ClusterJob(cluster, targets, patched), policy, timing).plan(policy)


def plan_clusters(jobs: Iterable[ClusterJob], policy: ClusterPolicy = ClusterPolicy(),
                  timing: TimeModel = TimeModel(), *, slack: bool = True,
                  ) -> list[ClusterPlan | InfeasiblePlan]:
    """Plan clusters that run in parallel (module doc, step 5); per job its plan or why none.

    With ``slack`` (and without ``migrate_back`` or a deadline of the policy's own), clusters
    off the critical path spend their slack on fewer guests moving twice; else every cluster is
    planned as :func:`plan_cluster` would.
    """
    jobs = list(jobs)
    done: dict[int, ClusterPlan | InfeasiblePlan] = {}
    ready: dict[int, _Prepared] = {}
    for i, job in enumerate(jobs):
        try:
            ready[i] = _Prepared(job, policy, timing)
        except InfeasiblePlan as exc:
            done[i] = exc
    if not slack or policy.migrate_back or policy.deadline_seconds is not None or len(ready) < 2:
        done.update((i, _attempt(prepared, policy)) for i, prepared in ready.items())
        return [done[i] for i in range(len(jobs))]
    deadline = 0.0
    for i in sorted(ready, key=lambda i: (-ready[i].bound, i)):  # the critical cluster first
        if not deadline:
            first = done[i] = _attempt(ready[i], policy)
            if isinstance(first, ClusterPlan):
                deadline = max(first.seconds, first.lower_bound_seconds)
            continue
        plan = _attempt(ready[i], replace(policy, deadline_seconds=deadline))
        if not isinstance(plan, ClusterPlan) or plan.seconds > deadline:
            again = _attempt(_Prepared(jobs[i], policy, timing), policy)
            if isinstance(again, ClusterPlan) and (not isinstance(plan, ClusterPlan)
                                                   or again.seconds < plan.seconds):
                plan = again
        done[i] = plan
    return [done[i] for i in range(len(jobs))]


def _attempt(prepared: _Prepared, policy: ClusterPolicy) -> ClusterPlan | InfeasiblePlan:
    try:
        return prepared.plan(policy)
    except InfeasiblePlan as exc:
        return exc


class _Prepared:
    """A cluster checked and ready to plan once: its scope, working state, reserve, stopped
    pinned guests and lower bound (raises :class:`InfeasiblePlan` when the checks fail)."""

    def __init__(self, job: ClusterJob, policy: ClusterPolicy, timing: TimeModel) -> None:
        cluster = job.cluster
        scope = scope_cluster(cluster, job.targets, policy.pinned, job.patched)
        if scope.failures:
            raise InfeasiblePlan(cluster.name, scope.failures)
        state = ClusterState(cluster, scope.tiers, timing.migration_seconds)
        reserve = reserve_of(cluster, policy)
        stop = shutdown_vms(state, scope)
        problems = necessary_conditions(state, sorted(scope.labels), stop, reserve)
        if problems:
            raise InfeasiblePlan(cluster.name, problems)
        self.scope, self.state, self.reserve, self.stop, self.timing = \
            scope, state, reserve, stop, timing
        self.bound = cluster_lower_bound(
            state, list(scope.labels), (scope.coordinators or (None,))[0], stop,
            (policy.max_parallel_hosts, policy.migrations_per_host, policy.migrations_per_cluster),
            timing, reserve)

    def plan(self, policy: ClusterPolicy) -> ClusterPlan:
        """The cluster's plan under ``policy`` (which may differ from the preparing policy only
        in ``spare_waves`` and ``deadline_seconds``). Once only: planning uses up the state."""
        chooser = _WaveChooser(self.state, self.scope, policy, self.reserve, self.stop,
                               self.bound)
        return summarise(self.state.cluster.name, *_waves(chooser, self.timing),
                         self.scope.skipped, self.bound)


def _waves(chooser: _WaveChooser, timing: TimeModel) -> tuple[list[Wave], list[str]]:
    """Choose and run waves until every host is patched; the waves and their notes."""
    state, scope, policy = chooser.state, chooser.scope, chooser.policy
    pending = sorted(scope.labels)
    waves: list[Wave] = []
    notes: list[str] = []
    start = 0.0
    while pending:
        hosts, evacuations = chooser.next_wave(pending, len(waves), start)
        if not hosts:  # the coordinator must go first; else the lightest host is explained
            first = [c for c in scope.coordinators if c in pending][:1]
            stuck = first[0] if first else min(pending, key=state.weight)
            blocked = [h == stuck for h in range(len(state.names))]
            cluster = state.cluster
            raise InfeasiblePlan(cluster.name, [explain_stuck(
                state, stuck, blocked, len(waves),
                (cluster.memory_overcommit, cluster.cpu_overcommit))])
        run = WaveRun(len(waves) + 1, hosts, evacuations,
                      [vm for h in hosts for vm in chooser.stop.get(h, ())], scope.labels, start,
                      policy.migrations_per_host, policy.migrations_per_cluster,
                      policy.migrate_back)
        wave, wave_notes = run_wave(state, run, timing)
        waves.append(wave)
        notes.extend(wave_notes)
        start += wave.seconds
        chosen = set(hosts)
        pending = [h for h in pending if h not in chosen]
    return waves, notes


def summarise(cluster: str, waves: list[Wave], notes: list[str], skipped: tuple[Skip, ...],
              bound: float) -> ClusterPlan:
    """Count the moves of ``waves`` into a :class:`ClusterPlan`."""
    migrations = evacuations = shutdowns = 0
    evacuated: set[str] = set()
    for wave in waves:
        for move in wave.moves:
            if move.kind is MoveKind.EVACUATE:
                evacuations += 1
                evacuated.add(move.guest)
            elif move.kind is MoveKind.SHUTDOWN:
                shutdowns += 1
            elif move.kind is MoveKind.MIGRATE_BACK:
                migrations += 1
    return ClusterPlan(cluster, tuple(waves), skipped, math.fsum(w.seconds for w in waves),
                       bound, migrations + evacuations, len(evacuated), shutdowns, tuple(notes))


def fewest_moved_twice(cluster: Cluster, targets: Mapping[str, str],
                       pinned: PinnedPolicy = PinnedPolicy.SHUTDOWN,
                       patched: frozenset[str] = frozenset()) -> int:
    """Guests that move at least twice in *any* plan of ``targets`` without migrate-back.

    Guests only move within their CPU group, so in a group whose hosts all wait for the patch
    (none patched, none outside the campaign) the first host to go sends its guests to hosts that
    will go later: they move again. Per such group of two hosts or more that is at least the
    fewest live-migratable running guests any of its hosts has -- or the pool coordinator's,
    which goes first. Hosts without a CPU group may send guests anywhere, so they add their
    own first host only when every host of the cluster waits (and the coordinator, going first,
    when it is one of them). :func:`plan_cluster` never does better; the benchmark reports it.
    """
    scope = scope_cluster(cluster, targets, pinned, patched)
    hosts = cluster.hosts
    movable = [sum(1 for g in h.guests if g.running and g.live_migratable) for h in hosts]
    everyone_waits = len(scope.labels) == len(hosts)
    first = scope.coordinators[0] if scope.coordinators else None
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hosts):
        groups.setdefault(h.cpu_group, []).append(i)
    total = 0
    for group, members in groups.items():
        if group and (len(members) < 2 or any(i not in scope.labels for i in members)):
            continue
        if not group and not (everyone_waits and (len(groups) == 1 or first in members)):
            continue
        total += movable[first] if first in members else min(movable[i] for i in members)
    return total


def shutdown_vms(state: ClusterState, scope: Scope) -> dict[int, tuple[Vm, ...]]:
    """The running pinned guests each host stops for its maintenance, as planner guests."""
    return {h: tuple(state.residents[h][g.name] for g in guests)
            for h, guests in scope.shutdowns.items()}


_SPARES = 2  # hosts of a CPU group tried in place of one that cannot go in its wave


class _Wave:
    """A wave being built: its hosts and moves, hosts blocked as destinations, caps per group."""

    def __init__(self, hosts: int, limits: dict[str, int], widest: int) -> None:
        self.hosts: list[int] = []
        self.moves: list[Migration] = []
        self.blocked = [False] * hosts
        self.busy = [0.0] * hosts
        self.limits, self.widest = limits, widest
        self.taken = dict.fromkeys(limits, 0)

    def room_for(self, group: str) -> bool:
        """True when one more host of ``group`` stays within the caps."""
        return len(self.hosts) < self.widest and self.taken[group] < self.limits[group]

    def add(self, host: int, group: str, moves: list[Migration]) -> None:
        """``host`` joins the wave; its guests left with ``moves``."""
        self.hosts.append(host)
        self.moves += moves
        self.blocked[host] = True
        self.taken[group] += 1


class _WaveChooser:
    """Picks the next wave (module doc, step 3); private working object of :func:`plan_cluster`."""

    def __init__(self, state: ClusterState, scope: Scope, policy: ClusterPolicy, reserve: int,
                 stop: Mapping[int, tuple[Vm, ...]], bound: float = 0.0) -> None:
        self.state, self.scope, self.policy = state, scope, policy
        self.reserve, self.stop, self.bound = reserve, stop, bound
        self.budget: int | None = None  # waves the cluster may take in all (set on first use)
        self.pace = 0.0  # seconds a wave is expected to take at least (set with the budget)
        self.aa_room = anti_affinity_room(state, stop)

    def next_wave(self, pending: list[int], waves_done: int, elapsed: float = 0.0,
                  ) -> tuple[list[int], list[Migration]]:
        """Hosts of the next wave and their evacuations (applied to the state); ([], []) if none.

        ``elapsed``: seconds the ``waves_done`` waves take, for ``policy.deadline_seconds``.
        """
        st = self.state
        coordinator = [c for c in self.scope.coordinators if c in pending][:1]
        if coordinator:
            return self._alone(coordinator)
        lightest = sorted(pending, key=st.weight)
        groups = group_limits(st, lightest, ordered=True)  # to size the plan
        most = self._most(pending)
        limits, widest = groups, most  # caps: with the pinned guests stopped while hosts are down
        if self.stop:
            limits = group_limits(st, lightest, self.stop, ordered=True)
            widest = self._most(pending, True)
        if self.budget is None:
            fewest = self._fewest(pending, groups, most)
            self.budget = waves_done + fewest + self.policy.spare_waves
            self.pace = self.bound / (waves_done + fewest)
        left = 1 if self.policy.migrate_back else max(1, self.budget - waves_done)
        deadline = self.policy.deadline_seconds
        if deadline is not None and not self.policy.migrate_back:
            pace = max(self.pace, elapsed / waves_done if waves_done else 0.0)
            if pace > 0:
                left = max(left, int((deadline - elapsed) // pace))
        wave = _Wave(len(st.names), {g: limit for g, (_, limit) in limits.items()}, widest)
        must = self._must(pending, groups, most, left)
        if not self.policy.migrate_back:
            self._add_clean(wave, interleave(groups), must)
        self._add_required(wave, must, groups)
        if not wave.hosts:
            return self._alone(interleave(groups))
        return wave.hosts, wave.moves

    def _add_clean(self, wave: _Wave, order: list[int], must: list[int]) -> None:
        """Add every host whose guests all fit on patched or untouched hosts (they move once),
        keeping room under the HA rule for the hosts this wave must take."""
        st = self.state
        failed: set[str] = set()
        for h in order:
            g = st.group[h]
            if g in failed or not wave.room_for(g):
                continue
            if not self._keeps_reserve([*wave.hosts, h,
                                        *(x for x in must if x != h and not wave.blocked[x])]):
                continue
            moves, stuck = st.evacuate(h, wave.blocked, OUTSIDE, wave.busy)
            if stuck is not None:
                failed.add(g)  # the lighter hosts of its group did not fit: nor will heavier ones
                continue
            wave.add(h, g, moves)

    def _add_required(self, wave: _Wave, must: list[int],
                      groups: Mapping[str, tuple[list[int], int]]) -> None:
        """Add the hosts this wave must take (guests may go to hosts still waiting); one that
        cannot be emptied is replaced by the next of its CPU group, if any."""
        st = self.state
        rest = [h for h in must if not wave.blocked[h]]
        for h in rest:
            wave.blocked[h] = True
        spares = {g: [x for x in hosts if not wave.blocked[x]][:_SPARES]
                  for g, (hosts, _) in groups.items()}
        for h in rest:
            for x in [h, *spares[st.group[h]]]:
                g = st.group[x]
                if x in wave.hosts or not wave.room_for(g) \
                        or any(d == x for _, _, d in wave.moves) \
                        or not self._keeps_reserve([*wave.hosts, x]):
                    continue  # (a host that took guests of this wave cannot join it)
                wave.blocked[x] = True
                moves, stuck = st.evacuate(x, wave.blocked, WAITING, wave.busy)
                if stuck is None:
                    wave.add(x, g, moves)
                    if x != h:
                        spares[g].remove(x)
                    break

    def _fewest(self, pending: list[int], groups: Mapping[str, tuple[list[int], int]],
                most: int) -> int:
        """Waves the pending hosts need at least: by count, per CPU group, by capacity."""
        st = self.state
        need = max([-(-len(pending) // most)]
                   + [-(-len(hosts) // limit) for hosts, limit in groups.values()])
        freed = relief(pending, self.stop)
        need_now = demand(st)
        for r, caps in enumerate((st.cap_mem, st.cap_cpu)):
            room = capacity.wave_capacity(caps, self.reserve, most, need_now[r])
            nets = [caps[h] - freed[r][k] for k, h in enumerate(pending)]
            need = max(need, capacity.fewest_waves(nets, room))
        return need

    def _must(self, pending: list[int], groups: Mapping[str, tuple[list[int], int]], most: int,
              left: int) -> list[int]:
        """Hosts this wave must take for the rest to fit in ``left - 1`` waves, tightest first."""
        quota = {g: min(limit, len(hosts), max(0, len(hosts) - (left - 1) * limit))
                 for g, (hosts, limit) in groups.items()}
        total = min(most, len(pending), max(sum(quota.values()), len(pending) - (left - 1) * most))
        tight = sorted(groups, key=lambda g: (-(-len(groups[g][0]) // groups[g][1]),
                                              groups[g][1], g))
        must: list[int] = []
        for h in [h for g in tight for h in groups[g][0][:quota[g]]] + interleave(groups):
            g = self.state.group[h]
            if len(must) >= total:
                break
            if h not in must and sum(self.state.group[x] == g for x in must) < groups[g][1] \
                    and self._keeps_reserve([*must, h]):
                must.append(h)
        return must

    def _most(self, pending: list[int], stopped: bool = False) -> int:
        """Most pending hosts the HA rule lets go at once (policy cap applied); ``stopped``:
        counting their stopped pinned guests at best (an upper bound)."""
        st = self.state
        removable = ([st.cap_mem[h] for h in pending], [st.cap_cpu[h] for h in pending])
        most = capacity.max_parallel(demand(st), capacities(st, pending), removable, self.reserve,
                                     relief(pending, self.stop) if stopped else None)
        most = min(most, self.aa_room)
        if self.policy.max_parallel_hosts is not None:
            most = min(most, self.policy.max_parallel_hosts)
        return max(1, most)

    def _keeps_reserve(self, hosts: list[int]) -> bool:
        """True when ``hosts`` in maintenance together keep the HA rule."""
        gone = [v for h in hosts for v in self.stop.get(h, ())]
        mem, cpu = capacities(self.state, hosts)
        return capacity.keeps_reserve(demand(self.state, gone), mem, cpu, self.reserve)

    def _alone(self, order: list[int]) -> tuple[list[int], list[Migration]]:
        """The first host of ``order`` that can go into maintenance on its own, if any."""
        st, n = self.state, len(self.state.names)
        for h in order:
            if not self._keeps_reserve([h]):
                continue
            moves, stuck = st.evacuate(h, [i == h for i in range(n)], WAITING, [0.0] * n)
            if stuck is None:
                return [h], moves
        return [], []
