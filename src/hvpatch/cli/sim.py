"""``hvpatch sim``: the simulated fleet (digital twin) generator."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from hvpatch.adapters.inventory.export import write_inventory
from hvpatch.cli.context import state
from hvpatch.cli.inventory import print_import
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, err_console
from hvpatch.domain.generator import generate_fleet
from hvpatch.services.inventory import import_fleet

app = typer.Typer(help="Simulated fleets for demos, rehearsals and benchmarks.",
                  no_args_is_help=True)


@app.command("generate")
def generate(
    ctx: typer.Context,
    hosts: int = typer.Option(80, "--hosts", "-n", min=1, max=200_000,
                              help="Number of hosts."),
    seed: int = typer.Option(1, "--seed", "-s", help="Random seed; same seed, same fleet."),
    out: Path | None = typer.Option(None, "--out", help="Write the inventory to this file "
                                    "(.json or .yaml) instead of importing it."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Generate a realistic multi-vendor fleet and import it (or write it with --out).

    Versions are real (ESXi builds, Windows Server builds, QEMU/Xen/Proxmox releases); guests
    fill hosts to realistic levels; some guests cannot live-migrate.

    Example: hvpatch sim generate --hosts 500 --seed 42 --out fleet.json
    """
    t0 = time.perf_counter()
    with err_console.status(f"generating {hosts} hosts"):
        fleet = generate_fleet(hosts, seed)
    n_guests = sum(len(h.guests) for h in fleet.hosts())
    t1 = time.perf_counter()
    if out is not None:
        write_inventory(fleet, out)
        data = {"out": str(out), "hosts": hosts, "guests": n_guests, "seed": seed,
                "seconds": round(time.perf_counter() - t0, 3)}
        if output is Output.JSON:
            emit_json(data)
        else:
            console.print(f"wrote {hosts} hosts and {n_guests} guests to {out} "
                          f"in {data['seconds']} s")
        return
    with err_console.status(f"importing {hosts} hosts and {n_guests} guests"):
        summary = import_fleet(state(ctx).store(), fleet, source=f"sim:hosts={hosts},seed={seed}",
                               sha256="")
    secs = {"generate": round(t1 - t0, 3), "import": round(time.perf_counter() - t1, 3)}
    if output is Output.JSON:
        emit_json({"hosts": hosts, "guests": n_guests, "seed": seed, "seconds": secs,
                   **summary.as_dict()})
    else:
        print_import(summary, dry_run=False)
        console.print(f"generated in {secs['generate']} s, imported in {secs['import']} s")
