"""Cluster wave planning on generated fleets, side by side with the one-host-at-a-time baseline.

For every cluster of a generated fleet, every host a target (a new fix everywhere: the hardest
case), pinned guests shut down for their host's patch (with ``fail``, nearly every cluster would
stop at its ~4 % of pinned guests), it plans with :func:`plan_cluster` and with
:func:`plan_cluster_baseline` (one host at a time, first fit, migrate everything back) and
reports, measured in the same run:

* planning time for the whole fleet (wall and CPU seconds), clusters planned and infeasible;
* migrations per evacuated guest, on the clusters *both* planners could plan, with the floor
  (at least one wave's guests must move twice when every host of a cluster is a target: the
  lightest host's, if it goes first alone);
* makespan against each cluster's lower bound: total seconds over total bound, the median and
  90th percentile of the per-cluster ratio, and the campaign (clusters in parallel: the longest
  cluster over the longest bound);
* the same for ``spare_waves`` 1 and 2 (fewer guests moving twice for a little more time), and
  for an N+0 reserve during maintenance (the usual workaround when admission control blocks).

    .venv/bin/python -m bench.bench_planning --hosts 16000 --guests-per-host 19 --seed 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvpatch.domain.fleet import Cluster, Fleet
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.planning.baseline import plan_cluster_baseline
from hvpatch.domain.planning.model import PinnedPolicy
from hvpatch.domain.planning.waves import ClusterPlan, ClusterPolicy, InfeasiblePlan, plan_cluster

Planner = Callable[..., ClusterPlan]


@dataclass
class Run:
    """One planner over every cluster of the fleet."""

    name: str
    wall_s: float
    cpu_s: float
    plans: dict[str, ClusterPlan]
    failures: dict[str, InfeasiblePlan]


def _plan_all(name: str, planner: Planner, clusters: list[Cluster], policy: ClusterPolicy) -> Run:
    plans: dict[str, ClusterPlan] = {}
    failures: dict[str, InfeasiblePlan] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for c in clusters:
        key = f"{c.site}/{c.name}"
        try:
            plans[key] = planner(c, {h.name: "fixed" for h in c.hosts}, policy)
        except InfeasiblePlan as exc:
            failures[key] = exc
    return Run(name, time.perf_counter() - wall, time.process_time() - cpu, plans, failures)


def _summary(run: Run, keys: list[str]) -> dict[str, Any]:
    plans = [run.plans[k] for k in keys]
    migrations = sum(p.migrations for p in plans)
    evacuated = sum(p.evacuated_guests for p in plans)
    ratios = sorted(p.seconds / p.lower_bound_seconds for p in plans if p.lower_bound_seconds)
    return {
        "planner": run.name, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
        "planned": len(run.plans), "infeasible": len(run.failures),
        "migrations_per_evacuated": migrations / evacuated if evacuated else 0.0,
        "seconds_over_bound": sum(p.seconds for p in plans)
        / sum(p.lower_bound_seconds for p in plans),
        "median_ratio": statistics.median(ratios),
        "p90_ratio": ratios[int(0.9 * (len(ratios) - 1))],
        "campaign_ratio": max(p.seconds for p in plans) / max(p.lower_bound_seconds for p in plans),
        "waves": sum(len(p.waves) for p in plans),
        "hours": sum(p.seconds for p in plans) / 3600,
        "campaign_h": max(p.seconds for p in plans) / 3600,
    }


def _floor(clusters: dict[str, Cluster], keys: list[str]) -> float:
    """Migrations per evacuated guest no plan can beat when every host is a target."""
    guests = extra = 0
    for k in keys:
        movable = [sum(1 for g in h.guests if g.running and g.live_migratable)
                   for h in clusters[k].hosts]
        guests += sum(movable)
        extra += min(movable) if len(movable) > 1 else 0
    return (guests + extra) / guests if guests else 1.0


def _row(s: dict[str, Any], label: str) -> str:
    return (f"{label:<38} {s['planned']:>5} {s['infeasible']:>5} {s['wall_s']:>7.2f} "
            f"{s['cpu_s']:>6.2f} {s['migrations_per_evacuated']:>8.3f} "
            f"{s['seconds_over_bound']:>7.3f} {s['median_ratio']:>6.3f} {s['p90_ratio']:>6.3f} "
            f"{s['campaign_ratio']:>7.3f} {s['hours']:>9.0f}")


def compare(fleet: Fleet, policy: ClusterPolicy, label: str,
            baseline: Run | None = None) -> tuple[list[dict[str, Any]], Run]:
    """Plan every cluster with both planners (the baseline's run may be given, it does not
    depend on ``spare_waves``); print and return one summary per planner, and the baseline run."""
    clusters = list(fleet.clusters())
    by_key = {f"{c.site}/{c.name}": c for c in clusters}
    ours = _plan_all("waves", plan_cluster, clusters, policy)
    base = baseline or _plan_all("baseline", plan_cluster_baseline, clusters, policy)
    common = sorted(set(ours.plans) & set(base.plans))
    rows = []
    for each in (ours, base) if baseline is None else (ours,):
        s = _summary(each, common)
        s.update(label=label, common=len(common), floor=_floor(by_key, common))
        rows.append(s)
        print(_row(s, f"{label} / {each.name}"))
    return rows, base


def run(hosts: int, seed: int, guests_per_host: float) -> list[dict[str, Any]]:
    """All comparisons on one generated fleet; returns every summary row."""
    t0 = time.perf_counter()
    fleet = generate_fleet(hosts, seed, guests_per_host=guests_per_host)
    gen_s = time.perf_counter() - t0
    clusters = list(fleet.clusters())
    n_guests = sum(len(h.guests) for h in fleet.hosts())
    print(f"fleet: {hosts} hosts, {len(clusters)} clusters, {n_guests} guests "
          f"(generated in {gen_s:.2f} s); every host a target, pinned guests shut down")
    print(f"{'policy / planner':<38} {'plans':>5} {'infs':>5} {'wall s':>7} {'cpu s':>6} "
          f"{'mig/evac':>8} {'sum/LB':>7} {'median':>6} {'p90':>6} {'campaign':>7} "
          f"{'hours':>9}")
    base = ClusterPolicy(pinned=PinnedPolicy.SHUTDOWN)
    rows, baseline_run = compare(fleet, base, "cluster reserve, spare 0")
    for spare in (1, 2):
        more, _ = compare(fleet, ClusterPolicy(pinned=PinnedPolicy.SHUTDOWN, spare_waves=spare),
                          f"cluster reserve, spare {spare}", baseline_run)
        rows += more
    more, _ = compare(fleet, ClusterPolicy(pinned=PinnedPolicy.SHUTDOWN, ha_reserve_hosts=0),
                      "N+0 in maintenance, spare 0")
    rows += more
    ours, baseline = rows[0], rows[1]
    print(f"\non the {ours['common']} clusters both planned (default policy): migrations per "
          f"evacuated guest {ours['migrations_per_evacuated']:.3f} vs "
          f"{baseline['migrations_per_evacuated']:.3f} (baseline), floor "
          f"{ours['floor']:.3f}; maintenance {ours['hours']:.0f} h vs {baseline['hours']:.0f} h "
          f"summed over clusters (x{baseline['hours'] / ours['hours']:.2f}), campaign "
          f"{ours['campaign_h']:.1f} h vs {baseline['campaign_h']:.1f} h with clusters in "
          f"parallel; planning {ours['wall_s']:.2f} s vs {baseline['wall_s']:.2f} s")
    _print_failures(fleet, base)
    return rows


def _print_failures(fleet: Fleet, policy: ClusterPolicy) -> None:
    reasons: Counter[str] = Counter()
    example = ""
    for c in fleet.clusters():
        try:
            plan_cluster(c, {h.name: "fixed" for h in c.hosts}, policy)
        except InfeasiblePlan as exc:
            reasons.update({i.constraint or "other" for i in exc.infeasibilities})
            example = example or str(exc)
    print("infeasible clusters by constraint (a cluster may count under several): "
          + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
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
