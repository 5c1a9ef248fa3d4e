"""``hvpatch assess``, ``risk``, ``exceptions`` and ``policy``: judge and decide, with reasons."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.domain.risk import DEFAULT_POLICY
from hvpatch.services.exceptions import (
    add_exception,
    approve_exception,
    expire_exception,
    list_exceptions,
)
from hvpatch.services.risk import (
    RiskSummary,
    assess_risk,
    explain_risk,
    load_overrides,
    load_policy,
    ranked,
)

risk_app = typer.Typer(help="Judge: explain a host's risk and decision.", no_args_is_help=True)
exceptions_app = typer.Typer(help="Defer findings with a compensating control, approved by "
                             "someone else, until an expiry.", no_args_is_help=True)
policy_app = typer.Typer(help="The risk policy: SLAs per outcome and decision thresholds.",
                         no_args_is_help=True)

POLICY_OPTION = typer.Option(None, "--policy", envvar="HVPATCH_POLICY",
                             help="Policy YAML (default: the built-in policy).")
OVERRIDES_OPTION = typer.Option(None, "--overrides", envvar="HVPATCH_OVERRIDES",
                                help="Per-CVE overrides YAML (impact class, mitigation).")
ACTOR_OPTION = typer.Option(None, "--actor", "--as", envvar="HVPATCH_ACTOR",
                            help="Who is acting (default: your login name).")


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or getpass.getuser()


def _changes(summary: RiskSummary) -> None:
    if not summary.changes:
        console.print("No change since the previous assessment.")
        return
    rows = [[c["host"], c.get("cve", "-"), c["change"], c.get("from", "-"),
             c.get("to") or f"{c.get('decision', '')}/{c.get('outcome', '')}".strip("/") or "-"]
            for c in summary.changes[:30]]
    more = f" (first 30 of {len(summary.changes)})" if len(summary.changes) > 30 else ""
    console.print(table(f"What changed since the previous assessment{more}",
                        ["host", "cve", "change", "from", "to"], rows))


def print_ranked(rows: list[dict[str, Any]], by: str, limit: int) -> None:
    """The ranked decision table."""
    if by == "host":
        wide = console.width >= 150
        cols = ["host", "decision", "outcome", "exposure", "patch risk", "deadline", "findings"]
        body = [[r["host"], r["decision"] + (" (defer?)" if r["suggest_defer"] else ""),
                 r["outcome"], r["exposure"], r["patch_risk"],
                 f"{r['deadline']}{' OVERDUE' if r['overdue'] else ''}",
                 r["open_findings"]] + ([r["candidate"]] if wide else []) for r in rows[:limit]]
        cols += ["candidate"] if wide else []
    else:
        cols = [by, "hosts", "outcome", "exposure", "deadline", "overdue hosts", "decisions",
                "findings"]
        body = [[r[by], r["hosts"], r["outcome"], r["exposure"], r["deadline"], r["overdue"],
                 ", ".join(f"{k} {v}" for k, v in sorted(r["decisions"].items())),
                 r["open_findings"]] for r in rows[:limit]]
    title = f"Ranked by urgency, per {by}" + (f" (top {limit} of {len(rows)})"
                                             if len(rows) > limit else "")
    console.print(table(title, cols, body, right=("exposure", "patch risk", "findings", "hosts",
                                                  "overdue hosts")))


def assess(
    ctx: typer.Context,
    by: str = typer.Option("host", "--by", help="host, cluster, tenant or site."),
    policy: Path | None = POLICY_OPTION,
    overrides: Path | None = OVERRIDES_OPTION,
    actor: str | None = ACTOR_OPTION,
    limit: int = typer.Option(25, help="Rows to show (table output)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Score every open finding, decide per host, rank by urgency, show what changed.

    Decisions: patch-now (emergency path), patch-through-rings, mitigate-first, defer (only
    with an approved exception). Deadlines: the earliest of the KEV due date and the policy SLA.

    Example: hvpatch assess --by tenant
    """
    if by not in ("host", "cluster", "tenant", "site"):
        raise typer.BadParameter("expected host, cluster, tenant or site", param_hint="--by")
    store = state(ctx).store()
    summary = assess_risk(store, policy=load_policy(policy), overrides=load_overrides(overrides),
                          actor=_actor(actor))
    rows = ranked(store, by=by)
    if output is Output.JSON:
        emit_json({"summary": summary.as_dict(), "by": by, "ranked": rows})
        return
    print_ranked(rows, by, limit)
    console.print(f"{summary.hosts} hosts with open findings: "
                  + ", ".join(f"{v} {k}" for k, v in sorted(summary.by_decision.items()))
                  + f"; {summary.overdue} past their deadline.")
    _changes(summary)


@risk_app.command("explain")
def explain(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Host name."),
    cve: str | None = typer.Argument(None, help="Only this CVE."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Every factor behind a host's decision and its findings' scores.

    Example: hvpatch risk explain fra1-esx-01-h01 CVE-2024-37085
    """
    data = explain_risk(state(ctx).store(), host, cve)
    if output is Output.JSON:
        emit_json(data)
        return
    console.print(f"[bold]{data['host']}[/]: {data['decision']} · outcome {data['outcome']} · "
                  f"exposure {data['exposure']} vs patch risk {data['patch_risk']} · deadline "
                  f"{data['deadline']}")
    for r in data["reasons"]:
        console.print(f"  - {r}", markup=False, highlight=False)
    console.print(f"candidate: {data['candidate']}")
    console.print(table("Patch risk factors", ["factor", "value", "weight", "part", "note"],
                        [[f["name"], f["value"], f"{f['weight']:.3f}", f["part"], f["note"]]
                         for f in data["patch_factors"]]))
    for f in data["findings"][: (None if cve else 5)]:
        ssvc = ", ".join(f"{k}={v}" for k, v in f["ssvc"].items())
        console.print(f"\n[bold]{f['cve']}[/] ({f['component']}): score {f['score']}, "
                      f"{f['outcome']}, {f['impact_class']}; due {f['deadline']} "
                      f"({f['deadline_reason']})" + (f"; deferred by exception "
                                                     f"{f['deferred_by']}" if f["deferred_by"]
                                                     else ""))
        console.print(f"  SSVC: {ssvc}", highlight=False)
        console.print(table("", ["factor", "value", "weight", "part", "note"],
                            [[x["name"], x["value"], f"{x['weight']:.3f}", x["part"], x["note"]]
                             for x in f["factors"]]))
    if not cve and len(data["findings"]) > 5:
        console.print(f"... {len(data['findings']) - 5} more findings: add a CVE or use "
                      "--output json")


@exceptions_app.command("add")
def exc_add(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Host name."),
    cve: str = typer.Argument(..., help="CVE id, or * for every finding on the host."),
    reason: str = typer.Option(..., "--reason", help="Why the finding is deferred."),
    control: str = typer.Option(..., "--control", help="The compensating control in place."),
    expires: datetime = typer.Option(..., "--expires", formats=["%Y-%m-%d"],
                                     help="Last day the exception holds (YYYY-MM-DD)."),
    policy: Path | None = POLICY_OPTION,
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Request an exception (pending until someone else approves it).

    Example: hvpatch exceptions add fra1-esx-01-h01 CVE-2024-37085 --reason "vendor fix only
    in 8.0" --control "AD group 'ESX Admins' removed" --expires 2027-01-31
    """
    row = add_exception(state(ctx).store(), host=host, cve=None if cve == "*" else cve,
                        reason=reason, control=control, expires_on=expires.date(),
                        actor=_actor(actor), policy=load_policy(policy))
    if output is Output.JSON:
        emit_json(row)
    else:
        console.print(f"exception {row['id']} recorded ({row['state']}); it defers nothing until "
                      "approved by someone else: hvpatch exceptions approve "
                      f"{row['id']} --actor NAME")


@exceptions_app.command("list")
def exc_list(
    ctx: typer.Context,
    state_: str | None = typer.Option(None, "--state", help="pending, approved or expired."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List exceptions with their effective state (past expiry means expired).

    Example: hvpatch exceptions list --state pending
    """
    rows = list_exceptions(state(ctx).store(), state=state_)
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} exceptions", ["id", "host", "cve", "state", "expires",
                                                     "requested by", "approved by", "control"],
                        [[r["id"], r["host"], r["cve"], r["state"], r["expires_on"],
                          r["requested_by"], r["approved_by"] or "-",
                          r["compensating_control"]] for r in rows], right=("id",)))


@exceptions_app.command("approve")
def exc_approve(ctx: typer.Context, exception_id: int = typer.Argument(..., metavar="ID"),
                actor: str | None = ACTOR_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Approve a pending exception; the approver must not be the requester.

    Example: hvpatch exceptions approve 3 --actor alice
    """
    row = approve_exception(state(ctx).store(), exception_id, actor=_actor(actor))
    if output is Output.JSON:
        emit_json(row)
    else:
        console.print(f"exception {row['id']} approved by {row['approved_by']}; it defers "
                      f"{row['cve']} on {row['host']} until {row['expires_on']} "
                      "(run hvpatch assess)")


@exceptions_app.command("expire")
def exc_expire(ctx: typer.Context, exception_id: int = typer.Argument(..., metavar="ID"),
               actor: str | None = ACTOR_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """End an exception now; its findings come back at the next assessment.

    Example: hvpatch exceptions expire 3
    """
    row = expire_exception(state(ctx).store(), exception_id, actor=_actor(actor))
    if output is Output.JSON:
        emit_json(row)
    else:
        console.print(f"exception {row['id']} expired by {row['closed_by']}")


@policy_app.command("show")
def policy_show(policy: Path | None = POLICY_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Show the policy in force (the built-in defaults, or --policy FILE).

    Example: hvpatch policy show --output json
    """
    data = load_policy(policy).as_dict()
    if output is Output.JSON:
        emit_json(data)
        return
    import yaml

    console.print(f"# {'policy from ' + str(policy) if policy else 'built-in default policy'}")
    console.print(yaml.safe_dump(data, sort_keys=False), highlight=False, markup=False)


@policy_app.command("validate")
def policy_validate(file: Path = typer.Argument(..., help="Policy YAML to check.")) -> None:
    """Check a policy file; every bad field is named (exit code 2) and nothing changes.

    Example: hvpatch policy validate examples/policy.yaml
    """
    p = load_policy(file)
    changed = {k: v for k, v in p.as_dict().items() if DEFAULT_POLICY.as_dict()[k] != v}
    console.print(f"{file}: valid" + (f"; differs from the defaults in {', '.join(changed)}"
                                      if changed else "; same as the defaults"))
