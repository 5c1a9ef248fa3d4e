"""``hvpatch users``: bootstrap access to the API -- add users, list them, issue tokens,
disable."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, table
from hvpatch.cli.risk import _actor
from hvpatch.errors import InputError, Problem
from hvpatch.services.users import ROLES, add_user, create_token, disable_user, list_users

app = typer.Typer(
    help="Users of the API and dashboard, with roles (viewer < operator < approver < admin), "
         "and their API tokens. Passwords and tokens are shown once and stored hashed.",
    no_args_is_help=True,
)

ACTOR_OPTION = typer.Option(None, "--actor", envvar="HVPATCH_ACTOR", metavar="NAME",
                            help="Who is acting, for the audit log (default: your login name).")


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name (letters, digits, . _ @ -)."),
    role: str = typer.Option("viewer", "--role", "-r",
                             help=f"One of {', '.join(ROLES)} (each may do what the ones "
                             "before it may)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from stdin (one line) instead "
                                        "of generating one."),
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Add a user with a role; a generated password is printed once.

    Without --password-stdin a password is generated, printed once, and must be changed at the
    first login.

    Example: hvpatch users add bob --role approver
    Example: printf '%s\\n' "$PW" | hvpatch users add ci --role operator --password-stdin
    """
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("no password on stdin", [Problem("--password-stdin",
                                                              "write the password as one line")])
    user, generated = add_user(state(ctx).store(), name, role, actor=_actor(actor),
                               password=password)
    if output is Output.JSON:
        emit_json({"user": user, "password": generated})
        return
    console.print(f"user {escape(name)} added with role {role}", highlight=False)
    if generated:
        console.print(f"one-time password (shown only now; change it at the first login): "
                      f"{generated}", highlight=False, markup=False)


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Every user with role and state (never a password).

    Example: hvpatch users list --output json
    """
    rows = list_users(state(ctx).store())
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} users", ["name", "role", "created (UTC)", "state"], [
        [escape(r["name"]), r["role"], f"{r['created']:%Y-%m-%d %H:%M}",
         "disabled" if r["disabled"] else ("must change password" if r["must_change"]
                                           else "active")] for r in rows]))


@app.command("token")
def token(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The user the token acts as."),
    token_name: str = typer.Option("api", "--name", help="What the token is for."),
    expires_days: int | None = typer.Option(None, "--expires-days", min=1, max=3650,
                                            help="Days until it expires (default: never)."),
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Create an API token for a user and print it once (only its hash is stored).

    Use it as the header `Authorization: Bearer <token>`.

    Example: hvpatch users token ci --name pipeline --expires-days 90
    """
    clear, record = create_token(state(ctx).store(), name, actor=_actor(actor),
                                 name=token_name, expires_days=expires_days)
    if output is Output.JSON:
        emit_json({"token": clear, "record": record})
        return
    console.print(f"token {record['prefix']}... for {escape(name)}"
                  + (f", expires {record['expires']:%Y-%m-%d}" if record["expires"] else "")
                  + " (shown only now):", highlight=False)
    console.print(clear, highlight=False, markup=False, soft_wrap=True)


@app.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="The user to disable."),
            actor: str | None = ACTOR_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Disable a user: their sessions and API tokens stop working at once.

    The last enabled admin cannot be disabled.

    Example: hvpatch users disable bob
    """
    user = disable_user(state(ctx).store(), name, actor=_actor(actor))
    if output is Output.JSON:
        emit_json(user)
        return
    console.print(f"user {escape(name)} disabled", highlight=False)
