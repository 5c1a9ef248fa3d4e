"""``hvpatch demo``: the whole product end to end on a fresh embedded store."""

from __future__ import annotations

import time
from pathlib import Path

import platformdirs
import typer
from sqlalchemy.engine import make_url

from hvpatch.cli.context import state
from hvpatch.cli.inventory import print_summary
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json
from hvpatch.domain.generator import demo_fleet
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.summary import summarize


def _fresh_demo_db(explicit: str | None) -> str:
    """The demo's store: ``--db`` if given, else a new SQLite file next to the default store."""
    if explicit:
        return explicit
    path = Path(platformdirs.user_data_dir("hvpatch")) / "demo.db"
    path.parent.mkdir(parents=True, exist_ok=True)
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
    secs = round(time.perf_counter() - t0, 2)
    if output is Output.JSON:
        emit_json({"store": store.safe_url, "import": result.as_dict(),
                   "summary": summary.as_dict(), "seconds": secs})
        return
    console.rule("[bold]hvpatch demo[/] · 1. Know: the fleet")
    print_summary(summary)
    db = store.safe_url
    path = make_url(db).database if db.startswith("sqlite") else None
    console.rule("What to try next")
    console.print(f"The demo store is {path or db}; point commands at it with --db:")
    first = next(iter(fleet.hosts())).name
    for line in (
        f"hvpatch --db {db} inventory list --family esxi --ring prod",
        f"hvpatch --db {db} inventory show {first}",
        "hvpatch sim generate --hosts 500 --seed 42 --out fleet.json",
        "hvpatch inventory import examples/inventory.yaml    # into your own store",
        "hvpatch --help",
    ):
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    console.print(f"[dim]done in {secs} s[/]")
