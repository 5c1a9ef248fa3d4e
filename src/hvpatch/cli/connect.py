"""``hvpatch connect``: connections to real platforms (libvirt, Proxmox VE, Hyper-V, XAPI, vSphere),
and ``hvpatch inventory sync`` that reads one into the store."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from hvpatch.adapters.connectors import INVENTORY, KINDS
from hvpatch.cli.context import state
from hvpatch.cli.inventory import print_import
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, err_console, table
from hvpatch.cli.risk import _actor
from hvpatch.errors import HvpatchError, InputError, Problem
from hvpatch.services.connections import (
    add_connection,
    check_connection,
    list_connections,
    remove_connection,
    sync,
)

app = typer.Typer(
    help="Connections to real platforms, whose inventory `hvpatch inventory sync` reads. A "
         "connection keeps a reference to its credential (secret:NAME, env:VAR, file:PATH), "
         "never the credential. See docs/connectors.md.",
    no_args_is_help=True,
)

ACTOR_OPTION = typer.Option(None, "--actor", envvar="HVPATCH_ACTOR", metavar="NAME",
                            help="Who is acting, for the audit log (default: your login name).")


def _insecure_note(verify_tls: bool) -> None:
    if not verify_tls:
        err_console.print("[bold yellow]warning:[/] TLS certificate verification is OFF for "
                          "this connection: anyone on the path can read its credential.")


def _options(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--option {pair}", "expected KEY=VALUE"))
        else:
            out[key.strip()] = value.strip()
    if problems:
        raise InputError("the connection was not added", problems)
    return out


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The connection's name (default site and cluster)."),
    kind: str = typer.Option(..., "--kind", help=f"One of {', '.join(KINDS)} (kvm-ssh: "
                             "remediation of KVM hosts over SSH; the others read inventory, "
                             "vsphere also remediates)."),
    url: str = typer.Option(..., "--url", help="Where the platform is: a libvirt URI "
                            "(qemu+ssh://root@kvm1/system; several comma-separated), "
                            "https://pve1:8006, https://hv1:5986/wsman, https://xcp1, "
                            "https://vc1/sdk."),
    user: str = typer.Option("", "--user", help="Who logs in (Proxmox API token: "
                             "user@realm!tokenid)."),
    credential: str = typer.Option("", "--credential", help="secret:NAME (the encrypted "
                                   "secrets store), env:VAR, or file:PATH (mode 0600)."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the platform's "
                                  "TLS certificate (warned about on every use)."),
    ca_file: str = typer.Option("", "--ca-file", help="PEM bundle to trust instead of the "
                                "system's CAs."),
    option: list[str] = typer.Option([], "--option", "-O", metavar="KEY=VALUE",
                                     help="Per-kind setting, repeatable: site, cluster, ring, "
                                     "default_tenant, hostname, kernel, distro, transport, ..."),
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Add a connection; every problem is named and nothing is stored when there is one.

    Example: hvpatch connect add kvm-lab --kind libvirt --url qemu+ssh://root@kvm1/system
    Example: hvpatch connect add pve --kind proxmox --url https://pve1:8006
    --user 'hvpatch@pve!inv' --credential env:PVE_TOKEN
    """
    row = add_connection(state(ctx).store(), name, kind=kind, url=url, actor=_actor(actor),
                         username=user, credential=credential, verify_tls=not insecure,
                         ca_file=ca_file, options=_options(option))
    _insecure_note(row["verify_tls"])
    if output is Output.JSON:
        emit_json(row)
        return
    console.print(f"connection {escape(name)} added ({kind}); read it with "
                  f"`hvpatch connect test {escape(name)}`", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Every connection with its last sync (credential references only, never a credential).

    Example: hvpatch connect list -o json
    """
    rows = list_connections(state(ctx).store())
    if output is Output.JSON:
        emit_json(rows)
        return
    console.print(table(f"{len(rows)} connections", ["name", "kind", "url", "user",
                                                     "credential", "TLS", "last sync (UTC)",
                                                     "status"], [
        [escape(r["name"]), r["kind"], escape(r["url"]), escape(r["username"]) or "-",
         escape(r["credential"]) or "-", "verify" if r["verify_tls"] else "OFF",
         f"{r['last_sync']:%Y-%m-%d %H:%M}" if r["last_sync"] else "-",
         escape(r["last_status"])] for r in rows]))


@app.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(..., help="The connection."),
           actor: str | None = ACTOR_OPTION) -> None:
    """Forget a connection; the inventory it synced stays in the store.

    Example: hvpatch connect remove kvm-lab
    """
    remove_connection(state(ctx).store(), name, actor=_actor(actor))
    console.print(f"connection {escape(name)} removed", highlight=False)


@app.command("test")
def test(ctx: typer.Context, name: str = typer.Argument(..., help="The connection."),
         output: Output = OUTPUT_OPTION) -> None:
    """Log in, read the inventory and print what was found; changes nothing.

    Example: hvpatch connect test kvm-lab
    """
    found = check_connection(state(ctx).store(), name)
    _insecure_note(found["verify_tls"])
    if output is Output.JSON:
        emit_json(found)
        return
    c = found["counts"]
    console.print(f"connection {escape(name)} ({found['kind']}): {c['hosts']} hosts, "
                  f"{c['guests']} guests, {c['tenants']} tenants in {c['clusters']} "
                  f"cluster(s)", highlight=False)
    for version in found["versions"]:
        console.print(f"  {escape(version)}", highlight=False)


def inventory_sync(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="The connection to read (default: every "
                                      "connection that has an inventory)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and show what would change; "
                                 "write nothing."),
    actor: str | None = ACTOR_OPTION,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Read a connection's inventory (or every one's) and merge it into the store (atomic per
    connection, idempotent).

    Hosts, clusters and guests the platform reports are added or updated; nothing else is
    removed. A read that fails on the network is tried again (3 attempts, 2 s then 4 s apart);
    a failure leaves the stored inventory as it was. Each sync is recorded on its connection and
    in the audit log. Without a name every connection that has an inventory is read in
    turn; a failed one is reported and the others still sync (exit code of the first
    failure).

    Example: hvpatch inventory sync kvm-lab --dry-run
    Example: hvpatch inventory sync
    """
    store = state(ctx).store()
    names = [name] if name else [c["name"] for c in list_connections(store)
                                 if c["kind"] in INVENTORY]
    if not names:
        raise InputError("nothing to sync", [Problem("name", "no connection with an inventory "
                                                     "yet: hvpatch connect add ...")])
    results: list[dict[str, Any]] = []
    first_error: HvpatchError | None = None
    for n in names:
        try:
            summary, info = sync(store, n, actor=_actor(actor), dry_run=dry_run)
        except HvpatchError as exc:
            if name:
                raise
            first_error = first_error or exc
            results.append({"name": n, "error": str(exc).splitlines()[0]})
            if output is not Output.JSON:
                err_console.print(f"[red]{escape(n)}[/]: {escape(str(exc).splitlines()[0])}",
                                  highlight=False)
            continue
        _insecure_note(info["verify_tls"])
        results.append({**info, **summary.as_dict()})
        if output is not Output.JSON:
            if not name:
                console.rule(f"{n} ({info['kind']})")
            print_import(summary, dry_run)
    if output is Output.JSON:
        emit_json(results[0] if name else results)
    if first_error is not None:
        raise first_error
