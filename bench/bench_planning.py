"""Campaign planning on generated fleets, side by side with the one-host-at-a-time baseline.

Two campaigns on one generated fleet (``--hosts``, default 16,000 hosts with about 300,000
guests), pinned guests shut down for their host's patch (with ``fail``, nearly every cluster
would stop at its ~4 % of guests that cannot live-migrate):

* **every host a target** (a new fix everywhere: the hardest case), every cluster in parallel;
* **the campaign for the real findings**: the fleet is imported into a temporary SQLite store,
  matched against the bundled advisory snapshot and assessed with the built-in risk policy, as
  ``hvpatch demo`` does; the campaign targets the hosts decided patch-now or patch-through-rings
  (:func:`~hvpatch.domain.planning.targets.select_targets` picks each line's target; hosts that
  need nothing stay out and take guests), ring after ring.

Each is planned three ways: the wave planner as ``hvpatch plan create`` runs it (clusters of a
ring together, the ring's slack spent on fewer double moves:
:func:`~hvpatch.domain.planning.campaign.plan_ring_clusters`), the wave planner cluster by
cluster without that (``ring_slack: false``), and the baseline
(:func:`~hvpatch.domain.planning.baseline.plan_cluster_baseline`: what vLCM, CAU and XO's
rolling pool update do by default -- one host at a time, first fit, everything migrated back),
all under the same rules. Reported, measured in the same run:

* clusters planned and infeasible, planning time (wall and CPU seconds);
* migrations per evacuated guest, with the **floor** no plan can beat
  (:func:`~hvpatch.domain.planning.waves.fewest_moved_twice`: per CPU group whose hosts all wait,
  the first host's guests move twice);
* makespan against the lower bound (:func:`~hvpatch.domain.planning.timing.cluster_lower_bound`):
  summed over clusters, the median and 90th percentile per cluster, and the **campaign**:
  clusters of a ring in parallel, rings one after the other (soak left out), over the same sum
  of each ring's largest bound.

Ratios compare the clusters every planner could plan.

    .venv/bin/python -m bench.bench_planning --hosts 16000 --guests-per-host 19 --seed 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hvpatch.adapters.store.db import Store
from hvpatch.domain.fleet import DEFAULT_RINGS, Cluster, Fleet
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.planning.baseline import plan_cluster_baseline
from hvpatch.domain.planning.campaign import cluster_policy, plan_ring_clusters
from hvpatch.domain.planning.gates import PlanPolicy
from hvpatch.domain.planning.model import PinnedPolicy
from hvpatch.domain.planning.targets import select_targets
from hvpatch.domain.planning.waves import ClusterPlan, InfeasiblePlan, fewest_moved_twice
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.plans import targeted_findings
from hvpatch.services.risk import assess_risk

Key = tuple[int, str, str]  # ring position, site, cluster
Targets = Mapping[str, str]


@dataclass(frozen=True)
class Job:
    """A cluster's hosts to patch in one ring, and its hosts patched in earlier rings."""

    cluster: Cluster
    targets: dict[str, str]
    patched: frozenset[str]


@dataclass
class Run:
    """One planner over a campaign: each (ring, cluster)'s plan, the infeasible ones."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    plans: dict[Key, ClusterPlan] = field(default_factory=dict)
    failures: dict[Key, InfeasiblePlan] = field(default_factory=dict)


@contextmanager
def _timed(run: Run) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    run.wall_s, run.cpu_s = time.perf_counter() - wall, time.process_time() - cpu


def ring_jobs(fleet: Fleet, targets: Targets) -> dict[Key, Job]:
    """The campaign's clusters ring by ring, as it places hosts: the host's ring, else its
    cluster's, else the last ring."""
    rings = sorted(fleet.rings or DEFAULT_RINGS, key=lambda r: (r.position, r.name))
    position = {r.name: i for i, r in enumerate(rings)}
    jobs: dict[Key, Job] = {}
    for c in fleet.clusters():
        ring_of = {h.name: position[h.ring or c.ring or rings[-1].name] for h in c.hosts
                   if h.name in targets}
        for ring in sorted(set(ring_of.values())):
            jobs[(ring, c.site, c.name)] = Job(
                c, {h: targets[h] for h, r in ring_of.items() if r == ring},
                frozenset(h for h, r in ring_of.items() if r < ring))
    return jobs


def plan_waves(fleet: Fleet, targets: Targets, policy: PlanPolicy, *, slack: bool) -> Run:
    """The wave planner, ring by ring, as ``hvpatch plan create`` runs it."""
    run = Run("waves, ring slack" if slack else "waves, cluster by cluster")
    with _timed(run):
        plans, failures = plan_ring_clusters(fleet, targets, policy, slack=slack)
    keys = {(k[1], k[2], k[0]) for k in ring_jobs(fleet, targets)}
    ring = {r.name: i for i, r in enumerate(sorted(fleet.rings or DEFAULT_RINGS,
                                                   key=lambda r: (r.position, r.name)))}
    for name, pairs in plans.items():
        for cluster, plan in pairs:
            run.plans[(ring[name], cluster.site, cluster.name)] = plan
    for failure in failures:  # a cluster fails in its first ring: later rings are not planned
        site, name, first = min((k for k in keys if k[1] == failure.cluster),
                                key=lambda k: k[2])
        run.failures[(first, site, name)] = failure
    return run


def plan_baseline(fleet: Fleet, targets: Targets, policy: PlanPolicy) -> Run:
    """The baseline, ring by ring (hosts patched in an earlier ring passed as patched)."""
    run = Run("baseline")
    cpolicy = cluster_policy(policy)
    with _timed(run):
        for key, job in ring_jobs(fleet, targets).items():
            try:
                run.plans[key] = plan_cluster_baseline(job.cluster, job.targets, cpolicy,
                                                       patched=job.patched)
            except InfeasiblePlan as exc:
                run.failures[key] = exc
    return run


def summary(run: Run, keys: list[Key], jobs: Mapping[Key, Job], pinned: PinnedPolicy,
            ) -> dict[str, Any]:
    """The numbers of one row: ``run`` over the clusters ``keys`` every planner could plan."""
    plans = [run.plans[k] for k in keys]
    migrations = sum(p.migrations for p in plans)
    evacuated = sum(p.evacuated_guests for p in plans)
    twice = sum(fewest_moved_twice(jobs[k].cluster, jobs[k].targets, pinned, jobs[k].patched)
                for k in keys)
    ratios = sorted(p.seconds / p.lower_bound_seconds for p in plans if p.lower_bound_seconds)
    rings = sorted({k[0] for k in keys})
    longest = sum(max(run.plans[k].seconds for k in keys if k[0] == r) for r in rings)
    bound = sum(max(run.plans[k].lower_bound_seconds for k in keys if k[0] == r) for r in rings)
    return {
        "planner": run.name, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
        "planned": len(run.plans), "infeasible": len(run.failures), "compared": len(keys),
        "migrations_per_evacuated": migrations / evacuated if evacuated else 0.0,
        "floor": (evacuated + twice) / evacuated if evacuated else 1.0,
        "seconds_over_bound": sum(p.seconds for p in plans)
        / sum(p.lower_bound_seconds for p in plans),
        "median_ratio": statistics.median(ratios),
        "p90_ratio": ratios[int(0.9 * (len(ratios) - 1))],
        "campaign_ratio": longest / bound, "campaign_h": longest / 3600,
        "hours": sum(p.seconds for p in plans) / 3600,
    }


def compare(label: str, fleet: Fleet, targets: Targets, policy: PlanPolicy,
            ) -> list[dict[str, Any]]:
    """Plan ``targets`` with the three planners; print and return one row each.

    Planning time and the planned/infeasible counts come from planning every target. The
    other numbers come from planning again only the clusters every planner could plan (the
    ring's slack is then that of those clusters), so all three are measured on one campaign.
    """
    def three(wanted: Targets) -> list[Run]:
        return [plan_waves(fleet, wanted, policy, slack=True),
                plan_waves(fleet, wanted, policy, slack=False),
                plan_baseline(fleet, wanted, policy)]

    full = three(targets)
    failed = {k[1:] for r in full for k in r.failures}
    where = {h.name: (c.site, c.name) for c in fleet.clusters() for h in c.hosts}
    common = {h: t for h, t in targets.items() if where[h] not in failed}
    runs = three(common)
    jobs = ring_jobs(fleet, common)
    keys = sorted(jobs)
    rows = []
    for whole, r in zip(full, runs, strict=True):
        row = summary(r, keys, jobs, policy.pinned_guests)
        row.update(scenario=label, wall_s=whole.wall_s, cpu_s=whole.cpu_s,
                   planned=len(whole.plans), infeasible=len(whole.failures))
        rows.append(row)
        print(_row(row, f"{label} / {r.name}"))
    return rows


HEADER = (f"{'scenario / planner':<46} {'plans':>5} {'infs':>5} {'wall s':>7} {'cpu s':>6} "
          f"{'mig/evac':>8} {'floor':>6} {'sum/LB':>7} {'median':>6} {'p90':>6} "
          f"{'campaign':>8} {'hours':>7}")


def _row(s: dict[str, Any], label: str) -> str:
    return (f"{label:<46} {s['planned']:>5} {s['infeasible']:>5} {s['wall_s']:>7.2f} "
            f"{s['cpu_s']:>6.2f} {s['migrations_per_evacuated']:>8.3f} {s['floor']:>6.3f} "
            f"{s['seconds_over_bound']:>7.3f} {s['median_ratio']:>6.3f} {s['p90_ratio']:>6.3f} "
            f"{s['campaign_ratio']:>8.3f} {s['hours']:>7.0f}")


def real_targets(fleet: Fleet) -> tuple[dict[str, str], Counter[str], float]:
    """The targets of the campaign ``hvpatch plan create`` makes for ``fleet`` (decisions
    patch-now and patch-through-rings), hosts per skip reason, and the seconds the import,
    matching and risk assessment took."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            import_fleet(store, fleet, source="bench", sha256="")
            import_feeds(store, [bundled_feeds_dir()])
            refresh_findings(store)
            assess_risk(store, actor="bench")
            targeted, _ = targeted_findings(store, ("patch-now", "patch-through-rings"), None)
            stored = load_fleet(store)
        finally:
            store.close()
    choices, skipped = select_targets(stored, targeted)
    reasons = Counter(s.reason.split(" (")[0] for s in skipped)
    return {h: t.label for h, t in choices.items()}, reasons, time.perf_counter() - t0


def one_ring(fleet: Fleet) -> Fleet:
    """``fleet`` with every host in one ring: all clusters in parallel."""
    ring = DEFAULT_RINGS[-1]
    return replace(fleet, rings=(ring,), sites=tuple(
        replace(s, clusters=tuple(replace(c, ring=ring.name, hosts=tuple(
            replace(h, ring="") for h in c.hosts)) for c in s.clusters))
        for s in fleet.sites))


def run(hosts: int, seed: int, guests_per_host: float) -> list[dict[str, Any]]:
    """Both campaigns on one generated fleet; returns every row."""
    t0 = time.perf_counter()
    fleet = generate_fleet(hosts, seed, guests_per_host=guests_per_host)
    gen_s = time.perf_counter() - t0
    n_guests = sum(len(h.guests) for h in fleet.hosts())
    print(f"fleet: {hosts} hosts, {sum(1 for _ in fleet.clusters())} clusters, {n_guests} guests "
          f"(generated in {gen_s:.2f} s); pinned guests shut down for their host's patch")
    policy = PlanPolicy(pinned_guests=PinnedPolicy.SHUTDOWN)
    flat = one_ring(fleet)
    every = {h.name: "fixed" for h in fleet.hosts()}
    print(HEADER)
    rows = compare("every host", flat, every, policy)
    rows += compare("every host, N+0 in maintenance", flat, every,
                    replace(policy, ha_reserve_hosts=0))
    targets, skipped, prep_s = real_targets(fleet)
    print(f"\nthe campaign for the real findings: {len(targets)} of {hosts} hosts targeted "
          f"(import, matching and assessment {prep_s:.0f} s); not targeted: "
          + ", ".join(f"{n} {reason}" for reason, n in skipped.most_common(4)))
    print(HEADER)
    rows += compare("real findings", fleet, targets, policy)
    _print_failures(flat, every, policy)
    return rows


def _print_failures(fleet: Fleet, targets: Targets, policy: PlanPolicy) -> None:
    failures = plan_waves(fleet, targets, policy, slack=False).failures.values()
    reasons: Counter[str] = Counter()
    for exc in failures:
        reasons.update({i.constraint or "other" for i in exc.infeasibilities})
    print("\ninfeasible clusters, every host a target, by constraint (a cluster may count under "
          "several): " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    example = str(next(iter(failures), ""))
    if example:
        print("for example: " + example.splitlines()[0] + " " + example.splitlines()[1].strip())


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=16_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--guests-per-host", type=float, default=19)
    args = p.parse_args(argv)
    run(args.hosts, args.seed, args.guests_per_host)


if __name__ == "__main__":
    main()
