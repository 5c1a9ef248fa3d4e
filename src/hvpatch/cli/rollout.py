"""``hvpatch rollout``: act -- execute a stored plan, durably, with gates and rollback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from hvpatch.adapters.drivers.faults import load_fault_plan
from hvpatch.adapters.yamlfile import load_yaml
from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.cli.risk import ACTOR_OPTION, _actor
from hvpatch.domain.rollout import rollout_policy_from_dict
from hvpatch.errors import InputError, Problem
from hvpatch.orchestration.runner import (
    DRIVERS,
    connection_spec,
    drive,
    simulator_spec,
    start_rollout,
)
from hvpatch.services.rollouts import approve as approve_gate
from hvpatch.services.rollouts import list_rollouts, request_control, rollout_status

app = typer.Typer(help="Act: execute a stored plan through the rings -- evacuate, patch, reboot, "
                  "verify, roll back on failure, always clean up. State survives crashes: "
                  "`rollout resume` carries on where it stopped.", no_args_is_help=True)

NAME_ARG = typer.Argument(None, help="Rollout name (default: the newest rollout).")
_STYLE = {"done": "green", "failed": "red", "rolled-back": "yellow", "cancelled": "yellow",
          "in-progress": "cyan", "pending": "dim"}
_NEXT = {
    "completed": "hvpatch audit verify   # the whole trail, hash-chained",
    "paused": "look at `hvpatch rollout status`, then `hvpatch rollout resume` or `abort`",
    "awaiting-approval": "someone other than the requester: hvpatch rollout approve --as NAME; "
                         "then hvpatch rollout resume",
    "halted": "hvpatch rollout status   # what failed, and what was cleaned up",
    "aborted": "hvpatch rollout status",
}


def print_event(kind: str, data: Mapping[str, Any], *, verbose: bool = False) -> None:
    """One progress line per event worth a person's attention (steps only with verbose)."""
    if kind == "step":
        if verbose:
            console.print(f"    {data['host'] or data['ring']}: {data['step']}"
                          + (f" (attempt {data['attempt']})" if data["attempt"] > 1 else ""),
                          highlight=False)
    elif kind == "ring":
        console.rule(f"ring {data['ring']} · {data['hosts']} hosts")
    elif kind == "wave":
        console.print(f"[bold]wave {data['wave']}[/] · {data['cluster']} · "
                      f"{', '.join(data['hosts'])}", highlight=False)
    elif kind == "window":
        console.print(f"  [dim]waiting[/]     {data['cluster']} wave {data['wave']} until "
                      f"{data['start']} ({data['window']})", highlight=False)
    elif kind == "host":
        style = _STYLE.get(data["state"], "")
        console.print(f"  [{style}]{data['state']:11}[/] {data['host']}"
                      + (f"  [dim]{data['error']}[/]" if data.get("error") else ""),
                      highlight=False)
    elif kind == "retry":
        console.print(f"  [yellow]retry[/]       {data['host']} {data['step']}: {data['error']} "
                      f"(next try in {data['wait_s']:.0f} s)", highlight=False)
    elif kind == "gate":
        mark = "[green]passed[/]" if data["passed"] else "[red]not passed[/]"
        console.print(f"  gate after {data['ring']}: {mark} · " + "; ".join(data["reasons"]),
                      highlight=False)
    elif kind == "stop":
        console.print(f"  [yellow]{data['kind']}[/]: {data['reason']}", highlight=False)
    elif kind == "rollout" and data["state"] != "running":
        console.print(f"rollout {data['rollout']}: [bold]{data['state']}[/] · "
                      f"{data.get('reason', '')}", highlight=False)


def _drive(ctx: typer.Context, name: str | None, output: Output, verbose: bool) -> str:
    store = state(ctx).store()
    quiet = output is Output.JSON

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if not quiet:
            print_event(kind, data, verbose=verbose)

    final = asyncio.run(drive(store, name, on_event=on_event))
    status = rollout_status(store, name)
    if quiet:
        emit_json(status)
    else:
        console.print(f"hosts: {status['hosts']}")
        if final in _NEXT:
            console.print(f"next: {_NEXT[final]}", highlight=False)
    return final


@app.command("start")
def start(
    ctx: typer.Context,
    plan: str = typer.Argument(..., help="Name of a stored plan (hvpatch plan list)."),
    name: str | None = typer.Option(None, help="Rollout name (default: <plan>-rollout-<time>)."),
    policy: Path | None = typer.Option(None, "--policy", envvar="HVPATCH_ROLLOUT_POLICY",
                                       help="Rollout policy YAML: retries, rollback, pauses, "
                                       "checks, suites (see examples/rollout-policy.yaml)."),
    driver: str = typer.Option("simulator", "--driver",
                               help="Platform driver: 'simulator' (the digital twin) or "
                               "'connection' (a real platform: see --connection)."),
    connection: str | None = typer.Option(None, "--connection", metavar="NAME",
                                          help="The connection whose remediation driver "
                                          "patches the hosts (hvpatch connect add; kinds "
                                          "vsphere, kvm-ssh); implies --driver connection."),
    faults: Path | None = typer.Option(None, "--faults", help="Fault plan YAML for the "
                                       "simulator (see docs/simulator.md)."),
    speed: float = typer.Option(3600.0, "--speed", help="Simulated seconds per real second."),
    actor: str | None = ACTOR_OPTION,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print every step."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Start executing a plan and drive it until it completes, pauses, waits or halts.

    Each host goes precheck -> evacuate -> enter maintenance -> stage -> apply -> reboot ->
    wait ready -> verify (live version, findings re-matched) -> regression checks -> exit
    maintenance -> restart stopped guests. Every step is recorded before and after; after a
    crash, `hvpatch rollout resume` carries on without repeating or skipping a step.

    Example: hvpatch rollout start march --faults examples/faults.yaml
    Example: hvpatch rollout start march --connection vc1
    """
    if connection:
        driver = "connection"
    if driver not in DRIVERS:
        raise InputError("unknown driver", [Problem("--driver", f"{driver!r}: expected one of "
                                                    f"{', '.join(DRIVERS)}")])
    if driver == "connection" and not connection:
        raise InputError("which connection?", [Problem("--connection", "name the connection "
                                                       "whose driver patches the hosts")])
    if driver == "connection" and faults:
        raise InputError("faults are the simulator's", [Problem(
            "--faults", "fault injection runs on the simulator only")])
    rpolicy = rollout_policy_from_dict(load_yaml(policy), str(policy)) if policy else \
        rollout_policy_from_dict(None)
    store = state(ctx).store()
    if connection:
        spec = connection_spec(store, connection)
        how = f"connection {connection} ({spec['kind']})"
    else:
        spec = simulator_spec(speed=speed, faults=load_fault_plan(faults) if faults else None)
        how = f"simulator, {speed:g}x simulated time"
    rollout = start_rollout(store, plan, requester=_actor(actor), policy=rpolicy, driver=spec,
                            name=name)
    if output is not Output.JSON:
        console.print(f"rollout {rollout} of plan {plan} started ({how})", highlight=False)
    _drive(ctx, rollout, output, verbose)


@app.command("resume")
def resume(ctx: typer.Context, name: str | None = NAME_ARG,
           verbose: bool = typer.Option(False, "--verbose", "-v", help="Print every step."),
           output: Output = OUTPUT_OPTION) -> None:
    """Carry on a rollout after a crash, a pause or an approval.

    Reconciles the recorded steps with the platform's live state: a step that was started but
    not recorded as finished is re-run idempotently (nothing is applied twice). If another
    engine holds the rollout's lease, this refuses; a lease of a dead process on this machine
    is taken over at once.

    Example: hvpatch rollout resume march-rollout-20261129-101500
    """
    _drive(ctx, name, output, verbose)


@app.command("status")
def status(ctx: typer.Context, name: str | None = NAME_ARG, output: Output = OUTPUT_OPTION,
           hosts: bool = typer.Option(False, "--hosts", help="List every host.")) -> None:
    """Where a rollout stands: state, rings and gates, hosts by state, recent failures.

    Example: hvpatch rollout status --hosts
    """
    st = rollout_status(state(ctx).store(), name)
    if output is Output.JSON:
        emit_json(st)
        return
    console.print(_status_table(st, hosts=hosts))
    for f in st["recent_failures"]:
        console.print(f"  failed: {f['host'] or '-'} {f['step']} (attempt {f['attempt']}): "
                      f"{f['error']}", highlight=False, markup=False)


def _status_table(st: Mapping[str, Any], *, hosts: bool = True) -> Table:
    t = Table(title=f"rollout {st['name']} · plan {st['plan']} · {st['state']}"
              + (f" · {st['reason']}" if st["reason"] else ""), title_justify="left")
    for col in ("ring", "wave", "host", "state", "step", "tries", "note"):
        t.add_column(col)
    for ring in st["rings"]:
        gate = ring.get("exit_gate") or {}
        t.add_row(f"[bold]{ring['ring']}[/]", "", "", ", ".join(
            f"{n} {k}" for k, n in sorted(ring["hosts"].items())), "", "",
            f"gate: {gate.get('state', '-')}"
            + (f" (approved by {gate['approved_by']})" if gate.get("approved_by") else ""))
        if not hosts:
            continue
        for wave in ring["waves"]:
            for h in wave["hosts"]:
                style = _STYLE.get(h["state"], "")
                t.add_row("", str(wave["wave"]), h["host"], f"[{style}]{h['state']}[/]",
                          h["step"], str(h["attempts"] or ""), h["error"][:80])
    return t


@app.command("watch")
def watch(ctx: typer.Context, name: str | None = NAME_ARG,
          interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between "
                                         "refreshes."),
          once: bool = typer.Option(False, "--once", help="Draw once and exit.")) -> None:
    """Live progress per ring, wave and host (from the store; run beside `start`/`resume`).

    Stops when the rollout is no longer running. Example: hvpatch rollout watch
    """
    store = state(ctx).store()
    st = rollout_status(store, name)
    with Live(_status_table(st), console=console, refresh_per_second=4) as live:
        while not once and st["state"] in ("running", "pending"):
            time.sleep(interval)
            st = rollout_status(store, st["name"])
            live.update(_status_table(st))


def _control(ctx: typer.Context, name: str | None, action: str, actor: str | None,
             reason: str, output: Output) -> dict[str, Any]:
    result = request_control(state(ctx).store(), name, action, actor=_actor(actor),
                             reason=reason)
    if output is Output.JSON:
        emit_json(result)
    elif result["driven"]:
        console.print(f"{action} requested: the engine driving {result['name']} acts on it at "
                      "its next safe point", highlight=False)
    return result


@app.command("pause")
def pause(ctx: typer.Context, name: str | None = NAME_ARG, actor: str | None = ACTOR_OPTION,
          reason: str = typer.Option("", "--reason", help="Why (kept in the audit log)."),
          output: Output = OUTPUT_OPTION) -> None:
    """Pause at the next safe point: hosts not yet patched are put back as they were, hosts
    being patched finish. Resume with `hvpatch rollout resume`.

    Example: hvpatch rollout pause --reason "storage alarm in fra1" --as alice
    """
    result = _control(ctx, name, "pause", actor, reason, output)
    if output is not Output.JSON and not result["driven"]:
        console.print(f"{result['name']} is not being driven; it stays {result['state']}")


@app.command("abort")
def abort(ctx: typer.Context, name: str | None = NAME_ARG, actor: str | None = ACTOR_OPTION,
          reason: str = typer.Option("", "--reason", help="Why (kept in the audit log)."),
          output: Output = OUTPUT_OPTION) -> None:
    """Abort: stop starting hosts, put back those not yet patched, clean up, end the rollout.

    If no engine drives the rollout now, this one runs the cleanup itself.

    Example: hvpatch rollout abort march-rollout-20261129-101500 --reason "vendor recall"
    """
    result = _control(ctx, name, "abort", actor, reason, output)
    if not result["driven"]:
        _drive(ctx, result["name"], output, False)


@app.command("approve")
def approve(ctx: typer.Context, name: str | None = NAME_ARG,
            ring: str | None = typer.Option(None, "--ring", help="Approve this ring's gate "
                                            "(default: the gate the rollout waits for)."),
            comment: str = typer.Option("", "--comment", help="Kept in the audit log."),
            actor: str | None = ACTOR_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Approve a ring gate (separation of duties: not the rollout's or the plan's requester).

    Example: hvpatch rollout approve --as bob && hvpatch rollout resume
    """
    result = approve_gate(state(ctx).store(), name, actor=_actor(actor), ring=ring,
                          comment=comment)
    if output is Output.JSON:
        emit_json(result)
        return
    console.print(f"{result['approved_by']} approved the {result['gate']} gate of ring "
                  f"{result['ring']} of {result['name']}; next: hvpatch rollout resume "
                  f"{result['name']}", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Every rollout, newest first.

    Example: hvpatch rollout list -o json
    """
    rows = list_rollouts(state(ctx).store())
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} rollouts", ["name", "plan", "state", "by", "hosts",
                                                  "reason"],
                        [[r["name"], r["plan"], r["state"], r["requester"],
                          ", ".join(f"{n} {k}" for k, n in sorted(r["hosts"].items())),
                          r["reason"][:80]] for r in rows]))
