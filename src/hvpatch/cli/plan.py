"""``hvpatch plan``: rehearse the campaign -- rings, waves, every guest move, durations."""

from __future__ import annotations

from pathlib import Path

import typer

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.cli.risk import ACTOR_OPTION, _actor
from hvpatch.domain.planning.calibration import (
    DEFAULT_MIN_SAMPLES,
    Calibration,
    Refinement,
    model_as_dict,
)
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.errors import InputError, Problem
from hvpatch.services.plans import (
    create_plan,
    diff_plans,
    export_plan,
    gantt,
    get_plan,
    list_plans,
    load_plan_policy,
    summary,
)
from hvpatch.services.timing_history import time_model_from_history

app = typer.Typer(help="Rehearse: plan a campaign like a 'terraform plan' before anything is "
                  "touched.", no_args_is_help=True)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def print_plan(plan: CampaignPlan, *, moves: int = 3) -> None:
    """The plan as a person reads it; ``moves`` per wave (-1: all)."""
    s = summary(plan)
    console.print(f"[bold]Campaign {plan.name}[/]" + (" [red](emergency)[/]" if plan.emergency
                                                      else "")
                  + f" · {s['rings']} rings · {s['waves']} waves · {s['hosts']} hosts · "
                  f"{s['moves']} guest moves · expected {_hours(plan.seconds)}")
    for line, target in sorted(plan.targets.items()):
        console.print(f"  target {line}: {target}", highlight=False)
    for ring in plan.rings:
        g = ring.gate
        gate = ", ".join(x for x in (
            "regression suite" if g.regression_suite else "", f"soak {g.soak_hours:g} h",
            f"≤{g.max_failures} failures" if g.max_failures else "no failure tolerated",
            "approval by someone else" if g.approval else "") if x)
        console.rule(f"ring {ring.ring} · {_hours(ring.seconds)} · gate: {gate}"
                     + ("" if ring.fits_windows else " · DOES NOT FIT THE WINDOWS"))
        for w in ring.waves:
            console.print(f"[bold]wave {w.index}[/] · {w.cluster} · {len(w.hosts)} hosts · "
                          f"{_hours(w.seconds)}" + (f" · window {w.window}" if w.window else ""))
            for h in w.hosts:
                console.print(f"  ~ {h.host}  {h.current} -> {h.target}", highlight=False)
            shown = w.moves if moves < 0 else w.moves[:moves]
            for m in shown:
                console.print(f"    {m.kind.value:12} {m.guest} ({m.memory_mb / 1024:.0f} GiB) "
                              f"{m.source} -> {m.destination or '-'}"
                              + (f"  [{m.reason}]" if m.reason else ""), highlight=False,
                              markup=False)
            if len(w.moves) > len(shown):
                console.print(f"    ... {len(w.moves) - len(shown)} more moves (--moves all)")
    if plan.skipped:
        console.rule(f"{len(plan.skipped)} hosts skipped")
        by_reason: dict[str, list[str]] = {}
        for sk in plan.skipped:
            by_reason.setdefault(sk.reason, []).append(sk.host)
        for reason, hosts in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            names = ", ".join(hosts[:4]) + (f" and {len(hosts) - 4} more" if len(hosts) > 4
                                            else "")
            short = reason if len(reason) <= 240 else reason[:237] + "..."
            console.print(f"  - {names}: {short}", highlight=False, markup=False)
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False)


def _moves(value: str) -> int:
    if value == "all":
        return -1
    if not value.isdigit():
        raise InputError("bad --moves", [Problem("--moves", f"{value!r}: expected a number or "
                                                 "'all'")])
    return int(value)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str | None = typer.Option(None, help="Plan name (default: campaign-<time>)."),
    include: list[str] = typer.Option(["patch-now", "patch-through-rings"], "--include",
                                      help="Decisions to target (repeatable)."),
    cve: list[str] = typer.Option([], "--cve", help="Target these CVEs instead (repeatable)."),
    target: list[str] = typer.Option([], "--target", metavar="LINE=RELEASE",
                                     help="Override a product line's target, e.g. "
                                     "'esxi 7.0=latest'."),
    policy: Path | None = typer.Option(None, "--policy", envvar="HVPATCH_PLAN_POLICY",
                                       help="Plan policy YAML (see examples/plan-policy.yaml)."),
    actor: str | None = ACTOR_OPTION,
    moves: str = typer.Option("3", "--moves", help="Guest moves shown per wave, or 'all'."),
    history: bool = typer.Option(True, "--history/--no-history",
                                 help="Estimate durations from recorded rollouts on real "
                                 "platforms (see 'hvpatch plan timing'), or use the built-in "
                                 "defaults."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Plan a campaign for the hosts decided patch-now / through the rings, and store it.

    Picks per product line the oldest non-withdrawn release that fixes every targeted finding,
    plans each cluster's waves so every running guest keeps fitting (overcommit, N+k reserve,
    anti-affinity, CPU groups), places every evacuated guest, and estimates durations.
    When no safe plan exists it says which guest does not fit where, and what would fix it.

    Durations come from the time model refined by the rollouts recorded on real platforms
    (the median per step, once a step has 3 samples); --no-history uses the built-in defaults.
    One line says which it used.

    Example: hvpatch plan create --name march --policy examples/plan-policy.yaml

    Example: hvpatch plan create --name march-defaults --no-history
    """
    overrides = {}
    for t in target:
        line, sep, release = t.partition("=")
        if not sep or not line.strip() or not release.strip():
            raise InputError("bad --target", [Problem("--target", f"{t!r}: expected "
                                                      "LINE=RELEASE, e.g. 'esxi 7.0=latest'")])
        overrides[line.strip()] = release.strip()
    store = state(ctx).store()
    calibration: Calibration | None = None
    timing = TimeModel()
    if history:
        timing, calibration = time_model_from_history(store)
    plan_id, plan = create_plan(store, requester=_actor(actor), name=name, include=include,
                                cves=cve or None, policy=load_plan_policy(policy),
                                overrides=overrides, timing=timing, calibration=calibration)
    used = (calibration.describe() if calibration is not None
            else "built-in defaults (--no-history)")
    if output is Output.JSON:
        emit_json({"id": plan_id, "summary": summary(plan),
                   "time_model": {"used": used, "model": model_as_dict(timing),
                                  "calibration": calibration.as_dict() if calibration
                                  else None},
                   "plan": export_plan(plan)})
        return
    print_plan(plan, moves=_moves(moves))
    console.print(f"time model: {used}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"\nstored as plan {plan_id} ({plan.name}); next: hvpatch plan gantt "
                  f"{plan.name} --out {plan.name}.png")


@app.command("timing")
def timing_(
    ctx: typer.Context,
    include_simulated: bool = typer.Option(
        False, "--include-simulated",
        help="Count simulated rollouts too (their durations echo the model; for demos)."),
    min_samples: int = typer.Option(
        DEFAULT_MIN_SAMPLES, "--min-samples", metavar="N",
        help="Samples a step needs before its median replaces the default."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Show the time model 'plan create' uses, refined from recorded rollouts.

    Every step of every host a rollout patched is recorded. Per step the median of what real
    platforms took replaces the default once it has --min-samples samples: install (stage +
    apply) and reboot (reboot + wait-ready) per family; checks (verify + checks), enter and exit
    maintenance over all families; the migration rate from recorded evacuations against the
    plans' estimates. Simulated rollouts are left out: they only echo the model back.

    Example: hvpatch plan timing

    Example: hvpatch plan timing --min-samples 5 --output json

    Example: hvpatch plan timing --include-simulated   (simulated times include the
    accelerated clock's own scheduling delays, multiplied by its speed: for tests and demos)
    """
    if min_samples < 1:
        raise InputError("bad --min-samples", [Problem("--min-samples", f"{min_samples}: "
                                                       "expected 1 or more")])
    model, calibration = time_model_from_history(state(ctx).store(),
                                                 include_simulated=include_simulated,
                                                 min_samples=min_samples)
    if output is Output.JSON:
        emit_json({"model": model_as_dict(model), "calibration": calibration.as_dict()})
        return
    console.print(f"time model: {calibration.describe()}", highlight=False, markup=False,
                  soft_wrap=True)
    console.print(table(
        "Per step: recorded samples, their median, the default and what plans use",
        ["step", "family", "samples", "median", "default", "used", "note"],
        [_timing_row(r) for r in calibration.refinements],
        right=("samples", "median", "default", "used")))


def _timing_row(r: Refinement) -> list[str | int]:
    """A row of ``plan timing``: the migration's median is a ratio to the plans' estimates."""
    if r.median is None:
        median = "-"
    elif r.quantity.startswith("migration"):
        median = f"{r.median:.2f}x estimate"
    else:
        median = f"{r.median:,.0f} s"
    return [r.quantity.replace("_", " "), r.family or "all", r.samples, median,
            f"{r.default:,.0f} {r.unit}", f"{r.value:,.0f} {r.unit}",
            r.note or ("refined" if r.applied else "")]


@app.command("show")
def show(ctx: typer.Context, plan: str = typer.Argument(..., help="Plan name or id."),
         moves: str = typer.Option("3", "--moves", help="Guest moves per wave, or 'all'."),
         output: Output = OUTPUT_OPTION) -> None:
    """Show a stored plan.

    Example: hvpatch plan show march --moves all
    """
    meta, p = get_plan(state(ctx).store(), plan)
    if output is Output.JSON:
        emit_json({**meta, "plan": export_plan(p)})
        return
    console.print(f"plan {meta['id']} · requested by {meta['requester']} at {meta['created']} · "
                  f"{meta['scope']} · {meta['status']}")
    print_plan(p, moves=_moves(moves))


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """List stored plans, newest first.

    Example: hvpatch plan list
    """
    rows = list_plans(state(ctx).store())
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} plans", ["id", "name", "created", "by", "hosts", "waves",
                                               "moves", "hours", "emergency"],
                        [[r["id"], r["name"], f"{r['created']:%Y-%m-%d %H:%M}", r["requester"],
                          r["hosts"], r["waves"], r["moves"], r["hours"], r["emergency"]]
                         for r in rows], right=("id", "hosts", "waves", "moves", "hours")))


@app.command("diff")
def diff(ctx: typer.Context, a: str = typer.Argument(..., help="Older plan."),
         b: str = typer.Argument(..., help="Newer plan."), output: Output = OUTPUT_OPTION) -> None:
    """What changes between two plans: hosts, targets, waves, guest destinations, duration.

    Example: hvpatch plan diff march march-2
    """
    store = state(ctx).store()
    d = diff_plans(get_plan(store, a)[1], get_plan(store, b)[1])
    if output is Output.JSON:
        emit_json(d)
        return
    console.print(f"duration {d['hours']['from']} h -> {d['hours']['to']} h")
    for key in ("added_hosts", "removed_hosts"):
        if d[key]:
            console.print(f"{key.replace('_', ' ')}: {', '.join(d[key])}", highlight=False)
    for h, c in d["target_changes"].items():
        console.print(f"target {h}: {c['from']} -> {c['to']}", highlight=False)
    for h, c in d["wave_changes"].items():
        console.print(f"wave {h}: {c['from']} -> {c['to']}", highlight=False)
    console.print(f"{d['guest_destination_changes']} guests evacuate to another host")
    if not any((d["added_hosts"], d["removed_hosts"], d["target_changes"], d["wave_changes"],
                d["guest_destination_changes"])):
        console.print("the plans patch the same hosts the same way")


@app.command("export")
def export(ctx: typer.Context, plan: str = typer.Argument(..., help="Plan name or id."),
           out: Path | None = typer.Option(None, "--out", help="File (default: stdout).")) -> None:
    """Export a plan as JSON (for review tools, tickets or another hvpatch).

    Example: hvpatch plan export march --out march.json
    """
    import json

    _meta, p = get_plan(state(ctx).store(), plan)
    text = json.dumps(export_plan(p), indent=2, default=str) + "\n"
    if out is None:
        console.file.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command("gantt")
def gantt_(ctx: typer.Context, plan: str = typer.Argument(..., help="Plan name or id."),
           out: Path = typer.Option(..., "--out", help="Image file: .png or .svg.")) -> None:
    """Draw the campaign as a Gantt chart (waves per ring and cluster, soak times).

    Example: hvpatch plan gantt march --out march.png
    """
    _meta, p = get_plan(state(ctx).store(), plan)
    console.print(f"wrote {gantt(p, out)}")
