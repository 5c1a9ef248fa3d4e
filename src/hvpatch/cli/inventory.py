"""``hvpatch inventory``: import, list, show and summarise the fleet."""

from __future__ import annotations

from pathlib import Path

import typer

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, gib, table
from hvpatch.domain.software import software_to_dict
from hvpatch.services.inventory import ImportSummary, get_host, import_fleet, load_fleet
from hvpatch.services.summary import FleetSummary, summarize

app = typer.Typer(help="Know the fleet: import it, list it, look at one host.",
                  no_args_is_help=True)


def print_import(summary: ImportSummary, dry_run: bool) -> None:
    """One line per kind: added / changed / removed / unchanged."""
    rows = [[k, summary.added[k], summary.changed[k], summary.removed[k], summary.unchanged[k]]
            for k in summary.added]
    title = "Import (dry run, nothing written)" if dry_run else "Import"
    console.print(table(title, ["kind", "added", "changed", "removed", "unchanged"], rows,
                        right=("added", "changed", "removed", "unchanged")))
    if not summary.touched:
        console.print("Nothing changed: the store already holds this inventory.")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Inventory file: .yaml, .yml, .json or .csv."),
    fmt: str | None = typer.Option(None, "--format", help="yaml, json or csv (default: from "
                                   "the extension)."),
    replace: bool = typer.Option(False, "--replace", help="Make the store hold exactly this "
                                 "file: remove hosts, guests and clusters it does not name."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show what would "
                                 "change; write nothing."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Import an inventory file; atomic and idempotent.

    A file with problems is rejected as a whole: every problem is listed with its line (or CSV
    row and column) and the store is left unchanged (exit code 2).

    Example: hvpatch inventory import examples/inventory.yaml
    """
    parsed = read_inventory(file, fmt)
    summary = import_fleet(state(ctx).store(), parsed.fleet, source=parsed.source,
                           sha256=parsed.sha256, replace=replace, dry_run=dry_run)
    if output is Output.JSON:
        emit_json({"file": str(file), "sha256": parsed.sha256, "dry_run": dry_run,
                   **summary.as_dict()})
    else:
        print_import(summary, dry_run)


@app.command("list")
def list_(
    ctx: typer.Context,
    site: str | None = typer.Option(None, help="Only this site."),
    cluster: str | None = typer.Option(None, help="Only this cluster."),
    family: str | None = typer.Option(None, help="Only this family (esxi, hyperv, kvm, "
                                      "proxmox, xen, ahv, generic)."),
    ring: str | None = typer.Option(None, help="Only hosts in this ring."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List hosts with their software, ring, load and exposure.

    Example: hvpatch inventory list --family esxi --ring prod
    """
    fleet = load_fleet(state(ctx).store(), site=site, cluster=cluster)
    hosts = [h for h in fleet.hosts()
             if (family is None or h.family.value == family) and (ring is None or h.ring == ring)]
    if output is Output.JSON:
        emit_json([{
            "name": h.name, "site": h.site, "cluster": h.cluster, "family": h.family.value,
            "version": h.software.label, "ring": h.ring, "exposure": h.exposure.value,
            "cores": h.cores, "memory_mb": h.memory_mb, "memory_used_mb": h.memory_demand_mb,
            "guests": len(h.guests), "tenants": len(h.tenants),
        } for h in hosts])
        return
    rows = [[h.name, h.cluster, h.family.value, h.software.label, h.ring or "-",
             h.exposure.value, len(h.guests), len(h.tenants),
             f"{gib(h.memory_demand_mb)}/{gib(h.memory_mb)}"] for h in hosts]
    console.print(table(f"{len(hosts)} hosts", ["host", "cluster", "family", "version", "ring",
                        "exposure", "guests", "tenants", "mem GiB used/total"], rows,
                        right=("guests", "tenants", "mem GiB used/total")))


@app.command("show")
def show(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Host name."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Show one host: software, capacity, exposure, and every guest with its constraints.

    Example: hvpatch inventory show fra1-esx-01-h01
    """
    h = get_host(state(ctx).store(), host)
    if output is Output.JSON:
        emit_json({
            "name": h.name, "site": h.site, "cluster": h.cluster, "family": h.family.value,
            "version": h.software.label, "software": software_to_dict(h.software),
            "components": [{"name": c.name, "scheme": c.scheme, "version": c.version}
                           for c in h.software.components()],
            "ring": h.ring, "exposure": h.exposure.value, "cores": h.cores,
            "memory_mb": h.memory_mb, "cpu_group": h.cpu_group, "coordinator": h.coordinator,
            "guests": [{
                "name": g.name, "tenant": g.tenant, "vcpus": g.vcpus, "memory_mb": g.memory_mb,
                "criticality": g.criticality.value,
                "data_classification": g.data_classification.value,
                "power_state": g.power_state.value, "anti_affinity": list(g.anti_affinity),
                "migration_block": g.migration_block.value if g.migration_block else None,
                "migration_note": g.migration_note,
            } for g in h.guests],
        })
        return
    console.print(f"[bold]{h.name}[/]  {h.software.label}")
    console.print(f"site {h.site} · cluster {h.cluster} · ring {h.ring or '-'} · "
                  f"exposure {h.exposure.value}" + (" · pool coordinator" if h.coordinator else ""))
    console.print(f"{h.cores} cores, {gib(h.memory_mb)} GiB; running guests use "
                  f"{h.vcpu_demand} vCPU and {gib(h.memory_demand_mb)} GiB; "
                  f"{len(h.tenants)} tenant(s)")
    comps = [[c.name, c.scheme, c.version] for c in h.software.components()]
    console.print(table("Software components", ["component", "scheme", "version"], comps))
    rows = [[g.name, g.tenant, g.vcpus, gib(g.memory_mb), g.power_state.value,
             g.criticality.value, g.data_classification.value, ",".join(g.anti_affinity) or "-",
             (f"{g.migration_block.value}: {g.migration_note}" if g.migration_block else "yes")]
            for g in h.guests]
    console.print(table(f"{len(h.guests)} guests", ["guest", "tenant", "vCPU", "GiB", "power",
                        "criticality", "data", "anti-affinity", "live-migratable"], rows,
                        right=("vCPU", "GiB")))


def print_summary(s: FleetSummary) -> None:
    """The summary tables shared by ``inventory summary`` and ``demo``."""
    t = s.totals
    console.print(f"[bold]Fleet[/]: {t['hosts']} hosts, {t['guests']} guests, {t['tenants']} "
                  f"tenants in {t['clusters']} clusters at {t['sites']} sites")
    cols = ("hosts", "guests", "tenants", "memory_used_pct")
    console.print(table("By site", ["site", "timezone", "clusters", *cols],
                        [[r["site"], r["timezone"], r["clusters"], *[r[c] for c in cols]]
                         for r in s.by_site], right=("clusters", *cols)))
    console.print(table("By hypervisor family", ["family", *cols],
                        [[r["family"], *[r[c] for c in cols]] for r in s.by_family], right=cols))
    console.print(table("By ring", ["ring", *cols],
                        [[r["ring"], *[r[c] for c in cols]] for r in s.by_ring], right=cols))
    console.print(table("Versions in use", ["family", "version", "hosts"],
                        [[r["family"], r["version"], r["hosts"]] for r in s.versions],
                        right=("hosts",)))


@app.command("summary")
def summary(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Summarise the fleet per site, family and ring, with the versions in use.

    Example: hvpatch inventory summary --output json
    """
    s = summarize(load_fleet(state(ctx).store()))
    if output is Output.JSON:
        emit_json(s.as_dict())
    else:
        print_summary(s)
