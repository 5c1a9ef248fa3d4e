"""``hvpatch report``: evidence for auditors and platform decisions, as HTML, PDF, CSV or JSON."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from hvpatch.cli.context import state
from hvpatch.cli.render import console
from hvpatch.errors import InputError, Problem
from hvpatch.services.reports import (
    campaign_report,
    compliance_report,
    default_path,
    exceptions_report,
    maturity_report,
    render_report,
    write_report,
)

app = typer.Typer(
    help="Reports: compliance evidence for auditors (KEV due dates met or missed, decisions, "
         "patches, exceptions, the audit chain), a campaign's record, the exceptions, and the "
         "maturity of each hypervisor product line. Formats: html (one self-contained page), "
         "pdf, csv (the main table), json (everything).",
    no_args_is_help=True,
)


class Format(StrEnum):
    """Report formats."""

    HTML = "html"
    PDF = "pdf"
    CSV = "csv"
    JSON = "json"


FORMAT_OPTION = typer.Option(
    Format.HTML, "--format", "-f", case_sensitive=False,
    help="html (self-contained page with charts), pdf, csv (the report's main table) or json "
         "(the whole report).")
OUT_OPTION = typer.Option(
    None, "--out", metavar="PATH",
    help="Where to write it; '-' for stdout. Default: hvpatch-<kind>-<date>.<ext> in the "
         "current directory (json without --out prints to stdout).")


def _to_stdout(fmt: Format, out: Path | None) -> bool:
    """Whether the report goes to stdout: ``--out -``, or JSON without ``--out``."""
    return (out is None and fmt is Format.JSON) or out == Path("-")


def _emit(kind: str, report: dict[str, Any], fmt: Format, out: Path | None) -> None:
    """Write the rendered report to ``out``, the default file, or stdout."""
    if _to_stdout(fmt, out):
        sys.stdout.buffer.write(render_report(report, fmt.value))
        sys.stdout.flush()
        return
    path = out or default_path(kind, fmt.value, date.fromisoformat(report["as_of"]))
    write_report(report, fmt.value, path)
    console.print(f"wrote {path}", highlight=False)


@app.command("compliance")
def compliance(ctx: typer.Context, fmt: Format = FORMAT_OPTION,
               out: Path | None = OUT_OPTION) -> None:
    """Compliance evidence: what was exposed, decided, patched (when, by whom), overdue, and
    excepted; every KEV finding judged against its CISA due date (BOD 22-01: met, missed or
    pending); and whether the audit chain verifies. The CSV holds the KEV findings.

    Example: hvpatch report compliance --format pdf --out compliance.pdf
    """
    report = compliance_report(state(ctx).store())
    _emit("compliance", report, fmt, out)
    if _to_stdout(fmt, out):
        return
    s = report["summary"]
    k = s["kev_by_status"]
    console.print(f"KEV findings: {k['met']} met, {k['missed']} missed, {k['pending']} pending "
                  f"their due date; {s['overdue_findings']} findings past the policy deadline; "
                  f"{s['hosts_patched']} hosts patched; audit chain "
                  + ("verified" if s["audit_chain_ok"] else "BROKEN"), highlight=False)


@app.command("campaign")
def campaign(
    ctx: typer.Context,
    rollout: str | None = typer.Option(None, "--rollout", metavar="NAME",
                                       help="The rollout (default: the newest)."),
    plan: str | None = typer.Option(None, "--plan", metavar="NAME",
                                    help="A plan instead: with its newest rollout, if any."),
    fmt: Format = FORMAT_OPTION,
    out: Path | None = OUT_OPTION,
) -> None:
    """A campaign's record: the plan, ring gates and their evidence, approvals, every host's
    outcome (versions before and after, findings closed), failures and retries, and the
    cleanup. The CSV holds the hosts.

    Example: hvpatch report campaign --rollout demo-rollout --format html
    """
    if rollout and plan:
        raise InputError("name a rollout or a plan, not both", [
            Problem("--plan", "the rollout names its plan; leave --plan out")])
    report = campaign_report(state(ctx).store(), rollout=rollout, plan=plan)
    _emit("campaign", report, fmt, out)


@app.command("exceptions")
def exceptions(ctx: typer.Context, fmt: Format = FORMAT_OPTION,
               out: Path | None = OUT_OPTION) -> None:
    """Every risk exception: state, reason and compensating control, who asked and who
    approved (separation of duties), expiry, and the open findings it defers now.

    Example: hvpatch report exceptions --format csv --out exceptions.csv
    """
    _emit("exceptions", exceptions_report(state(ctx).store()), fmt, out)


@app.command("maturity")
def maturity(ctx: typer.Context, fmt: Format = FORMAT_OPTION,
             out: Path | None = OUT_OPTION) -> None:
    """The maturity of each hypervisor product line in the fleet, for platform decisions: age,
    support status and end dates, releases running, CVE history (how many, how severe, how many
    exploited), withdrawn or regressing releases, and hosts that failed or were rolled back.

    Example: hvpatch report maturity --format pdf
    """
    _emit("maturity", maturity_report(state(ctx).store()), fmt, out)
