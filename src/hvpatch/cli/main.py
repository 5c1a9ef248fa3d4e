"""The ``hvpatch`` command: global options, sub-commands, and the one error-to-exit-code mapping."""

from __future__ import annotations

import sys

import typer

from hvpatch import __version__
from hvpatch.cli import audit as audit_cmd
from hvpatch.cli import connect as connect_cmd
from hvpatch.cli import db as db_cmd
from hvpatch.cli import demo as demo_cmd
from hvpatch.cli import feeds as feeds_cmd
from hvpatch.cli import findings as findings_cmd
from hvpatch.cli import incidents as incidents_cmd
from hvpatch.cli import inventory as inventory_cmd
from hvpatch.cli import plan as plan_cmd
from hvpatch.cli import report as report_cmd
from hvpatch.cli import risk as risk_cmd
from hvpatch.cli import rollout as rollout_cmd
from hvpatch.cli import secrets as secrets_cmd
from hvpatch.cli import serve as serve_cmd
from hvpatch.cli import sim as sim_cmd
from hvpatch.cli import users as users_cmd
from hvpatch.cli.context import AppState
from hvpatch.cli.errors import EXIT_BUG, report
from hvpatch.cli.render import err_console
from hvpatch.errors import HvpatchError

app = typer.Typer(
    name="hvpatch",
    help=(
        "Vendor-neutral hypervisor security patch management.\n\n"
        "Know your hypervisor fleet, judge its exposure, rehearse and run the patching.\n\n"
        "Example: hvpatch demo"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
inventory_cmd.app.command("sync")(connect_cmd.inventory_sync)
app.add_typer(inventory_cmd.app, name="inventory")
app.add_typer(connect_cmd.app, name="connect")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(sim_cmd.app, name="sim")
app.add_typer(feeds_cmd.app, name="feeds")
app.add_typer(findings_cmd.app, name="findings")
app.add_typer(db_cmd.app, name="db")
app.command("demo")(demo_cmd.demo)
app.command("assess")(risk_cmd.assess)
app.add_typer(risk_cmd.risk_app, name="risk")
app.add_typer(risk_cmd.exceptions_app, name="exceptions")
app.add_typer(risk_cmd.policy_app, name="policy")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(rollout_cmd.app, name="rollout")
app.add_typer(incidents_cmd.app, name="incident")
app.add_typer(audit_cmd.app, name="audit")
app.command("serve")(serve_cmd.serve)
app.add_typer(users_cmd.app, name="users")
app.add_typer(report_cmd.app, name="report")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hvpatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None, "--db", metavar="URL", envvar="HVPATCH_DATABASE_URL",
        help="Database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB. "
             "Default: an SQLite file in your user data directory.",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Global options apply to every command."""
    ctx.obj = AppState(db_url=db)
    ctx.call_on_close(ctx.obj.close)


def run() -> None:
    """Console-script entry point: run the app, map hvpatch errors to exit codes."""
    try:
        app()  # standalone: usage errors exit 2, --help and Ctrl-C are handled by Typer
    except HvpatchError as exc:
        sys.exit(report(exc, err_console))
    except Exception:  # noqa: BLE001 - the top-level runner shows bugs here, only here
        err_console.print_exception()
        err_console.print("[bold red]hvpatch hit a bug[/]: please report the trace above.")
        sys.exit(EXIT_BUG)
