"""A whole campaign: targeted hosts by ring, then by cluster, waves per cluster, gates, durations.

:func:`build_campaign` assembles a :class:`~hvpatch.domain.planning.model.CampaignPlan` from the
targets :func:`~hvpatch.domain.planning.targets.select_targets` picked:

1. Targeted hosts are grouped by ring (the host's ring, else its cluster's; a host with neither
   goes with the last ring, the most guarded, and the plan says so), rings in the fleet's order.
   A ring left with no host to patch (none targeted, or the wave planner skipped them all) is
   left out, with a note, and takes no part in promotion.
2. Within a ring, the clusters are planned together by
   :func:`~hvpatch.domain.planning.waves.plan_clusters` (waves, evacuation, capacity): they run
   in parallel, so with the policy's ``ring_slack`` (the default, unless maintenance windows
   bind the campaign) clusters off the ring's critical path spend their slack on fewer guests
   moving twice, and the ring takes no longer. Hosts of the same cluster patched in an earlier
   ring are passed as ``patched``. If any cluster of any ring has no safe plan, the campaign
   fails with :class:`~hvpatch.domain.planning.waves.InfeasiblePlan` listing *every* cluster's
   explanation -- never a partial plan.
3. Durations: clusters of a ring run in parallel and the waves of one cluster in sequence, so a
   ring takes its longest cluster's schedule plus its soak; rings run one after another.
   With maintenance windows, each wave starts at the next window start that fits it (searched
   from the campaign's ``start``); a ring whose wave finds no window within the policy's
   horizon is marked ``fits_windows=False`` and the reason is noted, the wave then being
   placed unconstrained so the rest of the schedule still shows.
4. Gates come from the plan policy, compressed in an emergency (never dropping the first ring's
   regression suite); the requester is recorded for separation of duties.

Deterministic: the same inputs give the same plan (clusters and hosts in fleet order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hvpatch.domain.fleet import DEFAULT_RINGS, Cluster, Fleet, Host, Ring
from hvpatch.domain.planning.gates import DEFAULT_PLAN_POLICY, PlanPolicy
from hvpatch.domain.planning.model import CampaignPlan, RingPlan, Skip, Wave
from hvpatch.domain.planning.targets import TargetChoice, product_line
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.domain.planning.waves import (
    ClusterJob,
    ClusterPlan,
    ClusterPolicy,
    InfeasiblePlan,
    plan_clusters,
)
from hvpatch.domain.planning.windows import find_slot
from hvpatch.errors import InputError, PlanError, Problem

__all__ = ["InfeasibleCampaign", "build_campaign", "cluster_policy", "plan_ring_clusters"]


class InfeasibleCampaign(InfeasiblePlan):
    """Clusters of a campaign without a safe plan: every cluster's explanation, together."""

    def __init__(self, failures: Iterable[InfeasiblePlan]) -> None:
        found = list(failures)
        self.clusters: tuple[str, ...] = tuple(f.cluster for f in found)
        self.cluster = ", ".join(self.clusters)
        self.infeasibilities = tuple(i for f in found for i in f.infeasibilities)
        PlanError.__init__(self, f"no safe plan for the campaign: {len(found)} cluster(s) "
                           f"cannot be patched safely\n" + "\n".join(str(f) for f in found))


def cluster_policy(policy: PlanPolicy) -> ClusterPolicy:
    """The wave planner's rules (:class:`ClusterPolicy`) taken from the plan policy."""
    return ClusterPolicy(
        pinned=policy.pinned_guests,
        migrate_back=policy.migrate_back,
        max_parallel_hosts=policy.max_parallel_hosts,
        migrations_per_host=policy.migrations_per_host,
        migrations_per_cluster=policy.migrations_per_cluster,
        ha_reserve_hosts=policy.ha_reserve_hosts,
    )


@dataclass(frozen=True, slots=True)
class _Placed:
    """A host to patch with its cluster, ring and target."""

    host: Host
    cluster: Cluster
    ring: str
    label: str
    line: str
    components: tuple[tuple[str, str], ...] = ()


def _rings(fleet: Fleet) -> list[Ring]:
    return sorted(fleet.rings or DEFAULT_RINGS, key=lambda r: (r.position, r.name))


def _place(fleet: Fleet, targets: Mapping[str, TargetChoice | str],
           rings: list[Ring], notes: list[str]) -> list[_Placed]:
    names = {r.name for r in rings}
    last = rings[-1].name
    problems: list[Problem] = []
    placed: list[_Placed] = []
    seen: set[str] = set()
    unringed: list[str] = []
    for cluster in fleet.clusters():
        for host in cluster.hosts:
            target = targets.get(host.name)
            if target is None:
                continue
            seen.add(host.name)
            ring = host.ring or cluster.ring
            if not ring:
                unringed.append(host.name)
                ring = last
            elif ring not in names:
                problems.append(Problem(f"host {host.name}", f"unknown ring {ring!r} (rings: "
                                        f"{', '.join(r.name for r in rings)})"))
                continue
            components: tuple[tuple[str, str], ...] = ()
            if isinstance(target, TargetChoice):
                label, line, components = target.label, target.line, target.components
            else:
                label, line = target, product_line(host) or host.family.value
            placed.append(_Placed(host, cluster, ring, label, line, components))
    for name in sorted(set(targets) - seen):
        problems.append(Problem(f"targets[{name!r}]", "no such host in the fleet"))
    if problems:
        raise InputError("the campaign's targets do not match the fleet", problems)
    if unringed:
        notes.append(f"{len(unringed)} host(s) have no ring and are planned with the last ring "
                     f"({last}): {', '.join(unringed)}")
    return placed


def _tenants(cluster: Cluster, wave: Wave) -> frozenset[str]:
    """Tenants with a guest on a host of the wave: their windows bind it."""
    names = {step.host for step in wave.hosts}
    return frozenset(g.tenant for h in cluster.hosts if h.name in names for g in h.guests)


def _schedule(plan: ClusterPlan, cluster: Cluster, policy: PlanPolicy, ring_start: datetime | None,
              notes: list[str]) -> tuple[list[Wave], float, bool]:
    """The cluster's waves with start offsets (and windows), its duration, and whether it fits."""
    if ring_start is None:  # the planner's offsets are from the cluster's (= the ring's) start
        return list(plan.waves), plan.seconds, True
    waves: list[Wave] = []
    at, fits = ring_start, True
    horizon = timedelta(days=policy.search_horizon_days)
    for wave in plan.waves:
        found = find_slot(policy.windows, at, wave.seconds, cluster=cluster.name,
                          tenants=_tenants(cluster, wave), blackouts=policy.blackouts,
                          horizon=horizon)
        label = ""
        if found.slot is None:
            fits = False
            notes.append(f"cluster {cluster.name}, wave {wave.index}: {found.reason}")
        else:
            at, label = found.slot.start, found.slot.window
        waves.append(replace(wave, start_offset=(at - ring_start).total_seconds(), window=label,
                             tenants=tuple(sorted(_tenants(cluster, wave)))))
        at += timedelta(seconds=wave.seconds)
    return waves, (at - ring_start).total_seconds(), fits


RingClusters = dict[str, list[tuple[Cluster, ClusterPlan]]]


def plan_ring_clusters(fleet: Fleet, targets: Mapping[str, TargetChoice | str],
                       plan_policy: PlanPolicy = DEFAULT_PLAN_POLICY,
                       timing: TimeModel | None = None, *, slack: bool | None = None,
                       ) -> tuple[RingClusters, list[InfeasiblePlan]]:
    """Steps 1-2 of the campaign alone: each ring's cluster plans, and the clusters without a
    safe plan (which :func:`build_campaign` refuses). ``slack`` defaults to the policy's
    ``ring_slack``."""
    rings = _rings(fleet)
    placed = _place(fleet, targets, rings, [])
    return _plan_rings(rings, placed, plan_policy, timing or TimeModel(),
                       plan_policy.ring_slack if slack is None else slack)


def _plan_rings(rings: list[Ring], placed: list[_Placed], policy: PlanPolicy,
                timing: TimeModel, slack: bool) -> tuple[RingClusters, list[InfeasiblePlan]]:
    """Every cluster of every ring planned; hosts patched in earlier rings passed as patched."""
    cpolicy = cluster_policy(policy)
    done: dict[tuple[str, str], set[str]] = {}
    plans: RingClusters = {}
    failures: list[InfeasiblePlan] = []
    for ring in rings:
        clusters: dict[tuple[str, str], list[_Placed]] = {}
        for p in placed:
            if p.ring == ring.name:
                clusters.setdefault((p.cluster.site, p.cluster.name), []).append(p)
        jobs = [ClusterJob(members[0].cluster, {p.host.name: p.label for p in members},
                           frozenset(done.get(key, set()))) for key, members in clusters.items()]
        for key, job, plan in zip(clusters, jobs, plan_clusters(jobs, cpolicy, timing,
                                                                 slack=slack), strict=True):
            if isinstance(plan, InfeasiblePlan):
                failures.append(plan)
                continue
            done.setdefault(key, set()).update(s.host for w in plan.waves for s in w.hosts)
            plans.setdefault(ring.name, []).append((job.cluster, plan))
    return plans, failures


def build_campaign(fleet: Fleet, targets: Mapping[str, TargetChoice | str],
                   skipped: Iterable[Skip] = (), plan_policy: PlanPolicy = DEFAULT_PLAN_POLICY,
                   *, name: str, created: datetime, emergency: bool, requester: str,
                   timing: TimeModel | None = None, start: datetime | None = None,
                   findings: int = 0) -> CampaignPlan:
    """Plan the campaign: rings in order, waves per cluster, gates, skipped hosts, durations.

    ``targets`` maps host -> target (from :func:`select_targets`, or a bare label);
    ``skipped`` are the hosts target selection left out. ``start`` (default ``created``) is
    when the schedule begins; it matters only with maintenance windows. Raises
    :class:`InfeasiblePlan` (a :class:`~hvpatch.errors.PlanError`) with every cluster's
    explanation when any cluster cannot be patched safely, :class:`InputError` when targets
    name hosts or rings the fleet does not have.
    """
    if not requester.strip():
        raise InputError("a campaign needs a requester",
                         [Problem("requester", "name who asks for the campaign: approvals "
                                  "must come from someone else")])
    begin = start or created
    use_windows = bool(plan_policy.windows or plan_policy.blackouts) and (
        plan_policy.windows_in_emergency or not emergency)
    rings = _rings(fleet)
    notes: list[str] = []
    placed = _place(fleet, targets, rings, notes)
    slack = plan_policy.ring_slack and not plan_policy.migrate_back and not use_windows
    plans, failures = _plan_rings(rings, placed, plan_policy, timing or TimeModel(), slack)
    if failures:
        raise InfeasibleCampaign(failures)
    all_skipped = list(skipped)
    for ring in rings:
        for cluster, plan in plans.get(ring.name, []):
            all_skipped.extend(plan.skipped)
            notes.extend(f"cluster {cluster.name}: {note}" for note in plan.notes)
    active = [r for r in rings if any(plan.waves for _, plan in plans.get(r.name, []))]
    idle = [r.name for r in rings if r not in active]
    if idle and placed:
        notes.append(f"ring(s) {', '.join(idle)} left out: no host to patch there")
    ring_plans: list[RingPlan] = []
    wanted: dict[str, tuple[tuple[str, str], ...]] = {
        str(p.host.name): p.components for p in placed}
    elapsed = 0.0
    for i, ring in enumerate(active):
        nxt = active[i + 1].name if i + 1 < len(active) else None
        gate = plan_policy.gate(ring.name, emergency=emergency, first=i == 0, next_ring=nxt)
        ring_start = begin + timedelta(seconds=elapsed) if use_windows else None
        waves: list[Wave] = []
        longest, fits = 0.0, True
        for cluster, plan in plans[ring.name]:
            scheduled, seconds, ok = _schedule(plan, cluster, plan_policy, ring_start, notes)
            waves.extend(_with_components(w, wanted) for w in scheduled)
            longest, fits = max(longest, seconds), fits and ok
        if slack and len(plans[ring.name]) > 1:
            critical, plan = max(plans[ring.name], key=lambda cp: cp[1].seconds)
            notes.append(f"ring {ring.name}: its other clusters may take more, smaller waves "
                         f"within the {plan.seconds / 3600:.1f} h cluster {critical.name} takes, "
                         "so fewer guests move twice (ring_slack)")
        soak = gate.soak_hours * 3600.0
        approval = i == 0 and plan_policy.rules(ring.name).approval
        ring_plans.append(RingPlan(ring.name, ring.position, tuple(waves), gate, longest + soak,
                                   fits, entry_approval=approval))
        elapsed += longest + soak
    patched = {s.host for r in ring_plans for w in r.waves for s in w.hosts}
    placed = [p for p in placed if p.host.name in patched]
    notes.extend(_line_notes(placed, active))
    if emergency and plan_policy.windows and not use_windows:
        notes.append("emergency: maintenance windows ignored (windows_in_emergency: false)")
    if emergency:
        notes.append("emergency: soak compressed per the plan policy ("
                     + ", ".join(f"{r.ring} {plan_policy.rules(r.ring).soak_hours:g} h -> "
                                 f"{r.gate.soak_hours:g} h" for r in ring_plans)
                     + "); regression suites kept")
    line_targets = {p.line: p.label for p in sorted(placed, key=lambda p: p.line)}
    return CampaignPlan(name=name, created=created, emergency=emergency, targets=line_targets,
                        rings=tuple(ring_plans), skipped=tuple(_unique(all_skipped)),
                        seconds=elapsed, findings=findings, notes=tuple(notes),
                        requester=requester.strip(), start=begin,
                        windows=tuple(plan_policy.windows) if use_windows else (),
                        blackouts=tuple(plan_policy.blackouts) if use_windows else ())


def _with_components(wave: Wave, wanted: Mapping[str, tuple[tuple[str, str], ...]]) -> Wave:
    """The wave with each host's target components, which the rollout installs."""
    return replace(wave, hosts=tuple(replace(h, components=wanted.get(h.host, ()))
                                     for h in wave.hosts))


def _unique(skips: Iterable[Skip]) -> list[Skip]:
    seen: set[str] = set()
    out = []
    for s in skips:
        if s.host not in seen:
            seen.add(s.host)
            out.append(s)
    return out


def _line_notes(placed: list[_Placed], active: list[Ring]) -> list[str]:
    """Product lines whose target is first installed after the campaign's first ring."""
    if len(active) < 2:
        return []
    order = [r.name for r in active]
    out = []
    for line in sorted({p.line for p in placed}):
        first = min(order.index(p.ring) for p in placed if p.line == line)
        if first > 0:
            label = next(p.label for p in placed if p.line == line)
            out.append(f"{line}: {label} is first installed in ring {order[first]}; no host of "
                       f"that line is patched in {', '.join(order[:first])}")
    return out
