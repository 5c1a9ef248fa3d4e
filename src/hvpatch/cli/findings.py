"""``hvpatch findings``: what is exposed where, and the evidence behind each finding."""

from __future__ import annotations

import typer

from hvpatch.cli.context import state
from hvpatch.cli.feeds import print_refresh
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.services.findings import explain, list_findings, refresh_findings

app = typer.Typer(help="Judge: findings (host, component, vulnerability) with evidence.",
                  no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Only this host."),
    cve: str | None = typer.Option(None, help="Only this CVE."),
    kev: bool = typer.Option(False, "--kev", help="Only CVEs in the CISA KEV catalog."),
    confidence: list[str] = typer.Option([], "--confidence", help="high, medium or low "
                                          "(repeatable). Default: all."),
    state_: str = typer.Option("open", "--state", help="open, closed or all."),
    limit: int = typer.Option(200, help="At most this many rows (0: no limit)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List findings, KEV first in mind: each row says how sure it is and what fixes it.

    Example: hvpatch findings list --kev --confidence high
    """
    if state_ not in ("open", "closed", "all"):
        raise typer.BadParameter("expected open, closed or all", param_hint="--state")
    bad = [c for c in confidence if c not in ("high", "medium", "low")]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} is not high, medium or low",
                                 param_hint="--confidence")
    rows = list_findings(state(ctx).store(), host=host, cve=cve, kev_only=kev, state=state_,
                         confidence=confidence, limit=limit or None)
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} findings" + (" (limit reached)" if limit and
                                                   len(rows) == limit else ""),
                        ["host", "cve", "component", "installed", "fixed in", "confidence",
                         "source", "KEV due", "EPSS"],
                        [[r["host"], r["cve"], r["component"], r["installed"],
                          r["fixed_in"] or "-", r["confidence"], r["source"],
                          (str(r["kev_due"]) + (" ransomware" if r["ransomware"] else ""))
                          if r["kev"] else "-",
                          f"{r['epss']:.3f}" if r["epss"] is not None else "-"] for r in rows]))


@app.command("explain")
def explain_(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Host name."),
    cve: str = typer.Argument(..., help="CVE id, e.g. CVE-2024-22252."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Print the evidence chain for one host and one CVE (also when it is NOT affected).

    Example: hvpatch findings explain fra1-esx-01-h01 CVE-2024-22252
    """
    data = explain(state(ctx).store(), host, cve)
    if output is Output.JSON:
        emit_json(data)
        return
    console.print(f"[bold]{data['cve']}[/] on [bold]{data['host']}[/] ({data['software']})")
    if data["description"]:
        console.print(data["description"][:400], highlight=False)
    facts = [f"NVD status: {data['nvd_status']}"]
    if data["cvss"]:
        c = data["cvss"]
        facts.append(f"CVSS {c['version']} {c['score']} {c['vector']}")
    if data["kev"]:
        k = data["kev"]
        facts.append(f"KEV since {k['date_added']}, due {k['due_date']}"
                     + (", known ransomware use" if k["ransomware"] else ""))
    if data["epss"]:
        e = data["epss"]
        facts.append(f"EPSS {e['score']:.4f} (percentile {e['percentile']:.3f}, {e['date']})")
    console.print(" · ".join(facts), highlight=False)
    if not data["verdicts"]:
        console.print("No rule of any imported source concerns this host's software: "
                      "not affected as far as the data says.")
    for v in data["verdicts"]:
        verdict = "[red]AFFECTED[/]" if v["affected"] else "[green]not affected[/]"
        console.print(f"\n{verdict} {v['component']} {v['installed']} · confidence "
                      f"{v['confidence']} · source {v['source']}"
                      + (f" · fixed in {v['fixed_in']}" if v["fixed_in"] else ""))
        for i, e in enumerate(v["evidence"], 1):
            console.print(f"  {i}. [{e['source']}] {e['rule']}", highlight=False, markup=False)
            console.print(f"     {e['comparison']}", highlight=False, markup=False)
    for f in data["stored"]:
        console.print(f"\nstored: {f['component']} {f['state']} since {f['first_seen']}"
                      + (f", closed {f['closed_at']}" if f["closed_at"] else ""))


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    full: bool = typer.Option(False, "--full", help="Re-match everything, not only what "
                              "changed since the last run."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Re-match the fleet against the imported advisories and reconcile the findings.

    Example: hvpatch findings refresh --full
    """
    r = refresh_findings(state(ctx).store(), full=full)
    if output is Output.JSON:
        emit_json(r.as_dict())
    else:
        print_refresh(r)
