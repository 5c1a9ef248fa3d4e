"""``hvpatch demo``: the whole product end to end on a fresh embedded store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import platformdirs
import typer
from sqlalchemy.engine import make_url

from hvpatch.adapters.store.db import Store
from hvpatch.cli.context import state
from hvpatch.cli.demo_rollout import DEMO_SPEED, run_demo_rollout
from hvpatch.cli.feeds import print_refresh
from hvpatch.cli.inventory import print_summary
from hvpatch.cli.plan import print_plan
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, err_console, table
from hvpatch.cli.risk import print_ranked
from hvpatch.domain.generator import demo_fleet
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.errors import InputError, PlanError
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import explain, list_findings, overview, refresh_findings
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.plans import create_plan, gantt
from hvpatch.services.plans import summary as plan_summary
from hvpatch.services.reports import compliance_report, write_report
from hvpatch.services.risk import assess_risk, explain_risk, ranked
from hvpatch.services.summary import summarize


def _data_dir() -> Path:
    path = Path(platformdirs.user_data_dir("hvpatch"))
    path.mkdir(parents=True, exist_ok=True)
    return path


DEMO_PLAN_POLICY = {"ha_reserve_hosts": 0, "pinned_guests": "skip-host"}


def _plan(store: Store) -> tuple[CampaignPlan | None, str | None]:
    """The emergency campaign for the patch-now hosts, or why none is safe."""
    try:
        _id, plan = create_plan(store, requester="demo", name="demo-emergency",
                                include=("patch-now",),
                                policy=plan_policy_from_dict(DEMO_PLAN_POLICY, "demo policy"))
    except (PlanError, InputError) as exc:
        return None, str(exc)
    return plan, None


def _fresh_demo_db(explicit: str | None) -> str:
    """The demo's store: ``--db`` if given, else a new SQLite file next to the default store."""
    if explicit:
        return explicit
    path = _data_dir() / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def demo(
    ctx: typer.Context,
    seed: int = typer.Option(7, "--seed", help="Seed of the demo fleet."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Run hvpatch end to end on a simulated fleet, in a fresh SQLite store.

    Generates a demo fleet (about 80 hosts, 1,500 guests, 20 tenants, every hypervisor family,
    four rings), imports it and summarises it. Your own store is not touched unless you pass --db.

    Example: hvpatch demo
    """
    st = state(ctx)
    root = ctx.find_root()
    source = root.get_parameter_source("db")
    given = source is not None and source.name == "COMMANDLINE"  # not the env var or default
    st.db_url = _fresh_demo_db(st.db_url if given else None)
    store = st.store()
    t0 = time.perf_counter()
    fleet = demo_fleet(seed)
    result = import_fleet(store, fleet, source=f"demo:seed={seed}", sha256="")
    summary = summarize(load_fleet(store))
    with err_console.status("importing the bundled advisory snapshot"):
        feeds = import_feeds(store, [bundled_feeds_dir()])
        matching = refresh_findings(store)
    exposure = overview(store)
    example = _example(store)
    risk = assess_risk(store, actor="demo")  # the built-in policy, no per-CVE overrides
    ranking = ranked(store)
    plan, plan_error = _plan(store)
    gantt_path = None
    if plan is not None:
        gantt_path = gantt(plan, _data_dir() / "demo-plan.png")
    if output is Output.JSON:
        rollout = run_demo_rollout(store, plan, show=False) if plan is not None else None
        report = _write_report(store)
        secs = round(time.perf_counter() - t0, 2)
        emit_json({"store": store.safe_url, "import": result.as_dict(),
                   "summary": summary.as_dict(), "feeds": feeds.totals(),
                   "matching": matching.as_dict(), "findings": exposure,
                   "example": example, "risk": risk.as_dict(), "ranked": ranking[:20],
                   "plan": plan_summary(plan) if plan else None, "plan_error": plan_error,
                   "gantt": str(gantt_path) if gantt_path else None, "rollout": rollout,
                   "report": str(report), "seconds": secs})
        return
    console.rule("[bold]hvpatch demo[/] · 1. Know: the fleet")
    print_summary(summary)
    console.rule("2. Judge: real advisories matched to every host")
    t = feeds.totals()
    console.print(f"Imported the bundled snapshot: {t['records']} records from "
                  f"{len(feeds.files)} files (NVD hypervisor records, CISA KEV, EPSS, AlmaLinux "
                  "OSV, Rocky CSAF, Debian changelogs, XSA list).")
    print_refresh(matching)
    print_overview(exposure)
    if example:
        console.print(f"\nWhy is {example['host']} exposed to {example['cve']}? "
                      "(hvpatch findings explain)")
        for v in example["verdicts"]:
            if v["affected"]:
                for e in v["evidence"]:
                    console.print(f"  [{e['source']}] {e['rule']}: {e['comparison']}",
                                  markup=False, highlight=False)
    console.rule("3. Decide: exposure against patch risk, per host")
    print_ranked(ranking, "host", 12)
    console.print(f"{risk.hosts} hosts with open findings: "
                  + ", ".join(f"{v} {k}" for k, v in sorted(risk.by_decision.items()))
                  + f"; {risk.overdue} past their deadline (KEV due dates count).")
    if ranking:
        top = explain_risk(store, ranking[0]["host"])
        console.print(f"\nWhy {top['host']} is {top['decision']} (hvpatch risk explain):")
        for r in top["reasons"]:
            console.print(f"  - {r}", markup=False, highlight=False)
    console.rule("4. Rehearse: the campaign for the patch-now hosts")
    if plan is None:
        console.print(f"No safe plan: {plan_error}", highlight=False, markup=False)
    else:
        console.print("Plan policy: the built-in gates, no HA reserve during maintenance (N+0, "
                      "as vLCM suspends admission control), pinned guests skip their host.")
        print_plan(plan, moves=2)
        console.print(f"Gantt chart: {gantt_path}")
        console.rule("5. Act: the campaign rolled out on the simulator (digital twin)")
        console.print(f"Simulated time runs {DEMO_SPEED:g}x faster. One failure is injected: "
                      "the first host's install fails once. Every step is recorded before and "
                      "after, every event is hash-chained into the audit log.")
        rollout = run_demo_rollout(store, plan, show=True)
        audit = rollout["audit"]
        console.print(("[green]audit chain verified[/]" if audit["ok"] else
                       f"[red]audit chain broken[/]: {audit['reason']}")
                      + f": {audit['entries']} entries (hvpatch audit verify)")
    report = _write_report(store)
    secs = round(time.perf_counter() - t0, 2)
    db = store.safe_url
    path = make_url(db).database if db.startswith("sqlite") else None
    console.rule("What to try next")
    console.print(f"The demo store is {path or db}; point commands at it with --db:")
    first = next(iter(fleet.hosts())).name
    for line in (
        f"hvpatch --db {db} inventory list --family esxi --ring prod",
        f"hvpatch --db {db} inventory show {first}",
        f"hvpatch --db {db} findings list --kev --confidence high",
        f"hvpatch --db {db} assess --by tenant",
        f"hvpatch --db {db} plan show demo-emergency --moves all",
        f"hvpatch --db {db} rollout status demo-rollout --hosts",
        f"hvpatch --db {db} audit list --limit 20",
        f"hvpatch --db {db} report maturity --format pdf",
        f"hvpatch --db {db} findings explain {example['host']} {example['cve']}"
        if example else f"hvpatch --db {db} findings list",
        "hvpatch sim generate --hosts 500 --seed 42 --out fleet.json",
        "hvpatch inventory import examples/inventory.yaml    # into your own store",
        "hvpatch --help",
    ):
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    console.print(f"Compliance report (KEV due dates, decisions, patches, audit): {report}",
                  soft_wrap=True, highlight=False)
    console.print(f"Open the dashboard: hvpatch --db {db} serve, then http://127.0.0.1:8000/ "
                  "in a browser; log in as admin with the one-time password serve prints on "
                  "its first run (the REST API's docs: http://127.0.0.1:8000/api/v1/docs)",
                  soft_wrap=True, highlight=False)
    console.print(f"[dim]done in {secs} s[/]")


def _write_report(store: Store) -> Path:
    """The compliance report of the demo's store, as HTML next to the demo store."""
    return write_report(compliance_report(store), "html", _data_dir() / "demo-compliance.html")


def _example(store: Store) -> dict[str, Any] | None:
    """The evidence of one KEV finding (the first by CVE id), to show what explain gives."""
    rows = list_findings(store, kev_only=True, confidence=["high"], limit=1) or list_findings(
        store, limit=1)
    return explain(store, rows[0]["host"], rows[0]["cve"]) if rows else None


def print_overview(o: dict[str, Any]) -> None:
    """Open findings per family and the most urgent CVEs."""
    console.print(f"{o['open']} open findings: {o['cves']} CVEs on {o['hosts_affected']} hosts; "
                  f"{o['kev_cves']} CVEs are known exploited (KEV), on {o['hosts_with_kev']} "
                  "hosts.")
    console.print(table("Open findings by family (confidence)",
                        ["family", "hosts", "high", "medium", "low"],
                        [[f, d["hosts"], d["high"], d["medium"], d["low"]]
                         for f, d in sorted(o["by_family"].items())],
                        right=("hosts", "high", "medium", "low")))
    console.print(table("Most urgent CVEs (KEV first, then EPSS)",
                        ["cve", "hosts", "families", "KEV due", "EPSS"],
                        [[c["cve"], c["hosts"], ",".join(c["families"]), c["kev_due"] or "-",
                          f"{c['epss']:.3f}" if c["epss"] is not None else "-"]
                         for c in o["top"]], right=("hosts",)))
