"""``hvpatch db``: where the store is and whether its schema is current."""

from __future__ import annotations

import typer

from hvpatch.adapters.store.db import Store, schema_revision
from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json
from hvpatch.services.inventory import store_counts

app = typer.Typer(help="The store: status and schema upgrades.", no_args_is_help=True)


@app.command("status")
def status(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Show the store URL, its schema revision and what it holds.

    Example: hvpatch --db postgresql://postgres@127.0.0.1:5432/test db status
    """
    store = state(ctx).store()
    current, head = schema_revision(store.engine)
    counts = store_counts(store)
    data = {"url": store.safe_url, "dialect": store.dialect, "revision": current,
            "head": head, "counts": counts}
    if output is Output.JSON:
        emit_json(data)
        return
    console.print(f"store    {store.safe_url} ({store.dialect})")
    console.print(f"schema   {current} (this hvpatch: {head})")
    console.print("holds    " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Create the schema or apply pending migrations (also done on first use).

    Example: hvpatch --db postgresql://postgres@127.0.0.1:5432/test db upgrade
    """
    store: Store = state(ctx).store()
    current, head = schema_revision(store.engine)
    console.print(f"{store.safe_url}: schema at {current} (head {head})")
