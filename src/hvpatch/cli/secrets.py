"""``hvpatch secrets``: credentials for connections, encrypted at rest in the store.

A connection refers to one as ``--credential secret:NAME`` (``docs/connectors.md``). Values are
read from stdin, never from the command line (where they would land in the shell's history and
the process list), and are never printed again.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.cli.risk import _actor
from hvpatch.errors import InputError, Problem
from hvpatch.services.secrets import KINDS, delete_secret, list_secrets, put_secret

app = typer.Typer(
    help="Credentials for connections (hypervisor managers, hosts), encrypted at rest in the "
         "store with the key of HVPATCH_SECRET_KEY or its key file; values are never shown.",
    no_args_is_help=True,
)

ACTOR_OPTION = typer.Option(None, "--actor", envvar="HVPATCH_ACTOR", metavar="NAME",
                            help="Who is acting, for the audit log (default: your login name).")


@app.command("put")
def put(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Secret name (letters, digits, . _ : / @ -)."),
    kind: str = typer.Option("password", "--kind", help=f"One of {', '.join(KINDS)}."),
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Store or replace a secret; the value is read from stdin (all of it, one trailing
    newline removed), so it never appears in the shell history or the process list.

    Example: printf '%s' "$VC_PASSWORD" | hvpatch secrets put vc1 --kind password
    Example: hvpatch secrets put kvm-key --kind ssh-key < ~/.ssh/hvpatch_ed25519
    """
    value = sys.stdin.read()
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise InputError("no value on stdin", [Problem("stdin", "pipe the secret's value in")])
    record = put_secret(state(ctx).store(), name, value, kind=kind, actor=_actor(actor))
    if output is Output.JSON:
        emit_json(record)
        return
    console.print(f"secret {escape(name)} ({kind}) stored, encrypted; refer to it as "
                  f"--credential secret:{escape(name)}", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Secrets by name with their kind and dates (never a value).

    Example: hvpatch secrets list -o json
    """
    rows = list_secrets(state(ctx).store())
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} secrets", ["name", "kind", "created (UTC)",
                                                  "updated (UTC)"], [
        [escape(r["name"]), r["kind"], f"{r['created']:%Y-%m-%d %H:%M}",
         f"{r['updated']:%Y-%m-%d %H:%M}"] for r in rows]))


@app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="The secret to delete."),
           actor: str | None = ACTOR_OPTION) -> None:
    """Delete a secret (connections that refer to it stop working).

    Example: hvpatch secrets delete vc1
    """
    delete_secret(state(ctx).store(), name, actor=_actor(actor))
    console.print(f"secret {escape(name)} deleted", highlight=False)
