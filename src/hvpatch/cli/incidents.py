"""``hvpatch incident``: open, close and list operational incidents (an open one holds gates)."""

from __future__ import annotations

import typer
from rich.markup import escape

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.cli.risk import _actor
from hvpatch.services.incidents import close_incident, list_incidents, open_incident

app = typer.Typer(
    help="Operational incidents: while one is open, ring gates that require none stay closed, "
         "so no rollout moves on to the next ring.",
    no_args_is_help=True,
)

AS_OPTION = typer.Option(None, "--as", "--actor", envvar="HVPATCH_ACTOR", metavar="NAME",
                         help="Who is acting (default: your login name).")


@app.command("open")
def open_(
    ctx: typer.Context,
    title: str = typer.Argument(..., help="What is wrong, in a line."),
    actor: str | None = AS_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Open an incident; ring gates that require no open incident stay closed until it is
    closed. Recorded in the audit log.

    Example: hvpatch incident open "storage latency in fra1" --as alice
    """
    store = state(ctx).store()
    incident_id = open_incident(store, title, _actor(actor))
    if output is Output.JSON:
        emit_json(next(r for r in list_incidents(store) if r["id"] == incident_id))
        return
    console.print(f"incident {incident_id} opened; ring gates that require no open incident "
                  f"hold until: hvpatch incident close {incident_id}", highlight=False)


@app.command("close")
def close(
    ctx: typer.Context,
    incident_id: int = typer.Argument(..., metavar="ID", help="The incident's id."),
    actor: str | None = AS_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Close an open incident. Recorded in the audit log.

    Exits 2 when there is no such incident or it is already closed.

    Example: hvpatch incident close 3 --as alice
    """
    row = close_incident(state(ctx).store(), incident_id, _actor(actor))
    if output is Output.JSON:
        emit_json(row)
        return
    console.print(f"incident {row['id']} closed by {row['closed_by']}: {row['title']}",
                  highlight=False, markup=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    open_only: bool = typer.Option(False, "--open", help="Only the open incidents."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List incidents, newest first.

    Example: hvpatch incident list --open
    """
    rows = list_incidents(state(ctx).store(), open_only=open_only)
    if output is Output.JSON:
        emit_json(rows)
        return
    opened = sum(1 for r in rows if r["state"] == "open")
    console.print(table(
        f"{len(rows)} incidents ({opened} open)",
        ["id", "state", "title", "opened", "by", "closed", "closed by"],
        [[r["id"], r["state"], escape(r["title"]), f"{r['opened']:%Y-%m-%d %H:%M}",
          escape(r["opened_by"]), f"{r['closed']:%Y-%m-%d %H:%M}" if r["closed"] else "-",
          escape(r["closed_by"] or "-")]
         for r in rows], right=("id",)))
