"""``hvpatch audit``: verify the tamper-evident audit log, and read it."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.services.audit import list_entries, verify_store

#: exit code of ``audit verify`` when the chain is broken
EXIT_BROKEN = 1

app = typer.Typer(
    help="The audit log: every rollout step, approval, exception and incident, chained by "
         "SHA-256 hashes so that editing, deleting or inserting an entry is detected.",
    no_args_is_help=True,
)


@app.command("verify")
def verify(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Check the whole audit chain: sequence, links, hashes, and that none was cut off the end.

    Exit codes: 0 the chain is intact; 1 the chain is broken (the first bad entry and why are
    shown); 3 the store cannot be used.

    Example: hvpatch audit verify --output json
    """
    result = verify_store(state(ctx).store())
    if output is Output.JSON:
        emit_json({"ok": result.ok, "entries": result.entries,
                   "first_bad_seq": result.first_bad_seq, "reason": result.reason or None})
    elif result.ok:
        console.print(f"audit chain intact: {result.entries} entries")
    else:
        console.print(f"[bold red]audit chain BROKEN[/] at entry {result.first_bad_seq} "
                      f"({result.entries} entries read): {escape(result.reason)}")
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


@app.command("list")
def list_(
    ctx: typer.Context,
    subject: str | None = typer.Option(None, "--subject", help="Only this subject, e.g. "
                                       "'incident:3' or a host name."),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. "
                                      "'incident.open'."),
    actor: str | None = typer.Option(None, "--actor", help="Only what this person (or engine) "
                                     "did."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=100_000,
                              help="Show the newest N matching entries."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List the newest audit entries (oldest of them first), optionally filtered.

    Filters match exactly and combine. The JSON output carries each entry's details and hashes.

    Example: hvpatch audit list --action incident.open --limit 20
    """
    rows = list_entries(state(ctx).store(), subject=subject, action=action, actor=actor,
                        limit=limit)
    if output is Output.JSON:
        emit_json(rows)
        return

    def details(d: dict[str, object]) -> str:
        text = json.dumps(d, sort_keys=True, separators=(", ", ": "), default=str,
                          ensure_ascii=False)
        return escape(text if len(text) <= 80 else text[:77] + "...")

    console.print(table(
        f"{len(rows)} audit entries" + (f" (the newest {limit})" if len(rows) == limit else ""),
        ["seq", "at (UTC)", "actor", "action", "subject", "details"],
        [[r["seq"], r["at"][:19].replace("T", " "), escape(r["actor"]), escape(r["action"]),
          escape(r["subject"]), details(r["details"])] for r in rows], right=("seq",)))
