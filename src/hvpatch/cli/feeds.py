"""``hvpatch feeds``: import advisory files (offline first), see what is loaded, update online."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import platformdirs
import typer

from hvpatch.adapters.feeds import download, nvd_api
from hvpatch.cli.context import state
from hvpatch.cli.render import OUTPUT_OPTION, Output, console, emit_json, err_console, table
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import FeedImportReport, feed_status, import_feeds
from hvpatch.services.feeds_online import Sources, update_feeds
from hvpatch.services.findings import RefreshSummary, refresh_findings

app = typer.Typer(help="Judge, input side: advisory feeds (NVD, KEV, EPSS, CSAF, OSV, XSA, "
                  "Debian changelogs).", no_args_is_help=True)


def print_refresh(r: RefreshSummary) -> None:
    """One paragraph on what a matching run changed."""
    conf = ", ".join(f"{n} {c}" for c, n in sorted(r.by_confidence.items()))
    console.print(f"Matching ({r.scope}, {r.cves_considered} records, {r.hosts} hosts): "
                  f"{r.opened} new, {r.closed} closed, {r.reopened} reopened; "
                  f"{r.open_total} open findings" + (f" ({conf})" if conf else ""))


def print_import(report: FeedImportReport) -> None:
    """One row per feed kind with what its files added or changed (per file: --output json)."""
    kinds: dict[str, list[int]] = {}
    for f in report.files:
        row = kinds.setdefault(f.kind, [0, 0, 0, 0, 0])
        for i, n in enumerate((1, f.records, f.added, f.changed, f.unchanged)):
            row[i] += n
    console.print(table("Feed import", ["kind", "files", "records", "added", "changed",
                                        "unchanged"], [[k, *v] for k, v in kinds.items()],
                        right=("files", "records", "added", "changed", "unchanged")))
    t = report.totals()
    console.print(f"{len(report.files)} files, {t['records']} records: {t['added']} added, "
                  f"{t['changed']} changed, {t['unchanged']} unchanged"
                  + (f"; {len(report.skipped)} files skipped (not feeds)"
                     if report.skipped else ""))


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(None, help="Feed files or mirror directories (searched "
                                       "recursively). Zipped and gzipped files are read as is."),
    bundled: bool = typer.Option(False, "--bundled", help="Import the snapshot that ships with "
                                 "hvpatch (real NVD hypervisor records, KEV, EPSS, distro data)."),
    epss_date: datetime | None = typer.Option(None, "--epss-date", formats=["%Y-%m-%d"],
                                              help="Score date for EPSS files that state none."),
    match: bool = typer.Option(True, "--match/--no-match", help="Re-match the fleet afterwards "
                               "(incremental: only records that changed)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Import advisory files; atomic (a bad file changes nothing) and idempotent.

    The kind of each file is recognised from its content: NVD CVE API 2.0 feeds, pages and single
    records, legacy NVD 1.1 feeds, the CISA KEV catalog, EPSS CSV (FIRST's daily file or a
    column-mapped CSV), CSAF 2.0 / VEX, OSV, the XSA list and Debian changelogs.

    Example: hvpatch feeds import --bundled
    Example: hvpatch feeds import mirror/ nvdcve-2.0-2024.json.zip
    """
    targets = list(paths or [])
    if bundled:
        targets.append(bundled_feeds_dir())
    if not targets:
        raise typer.BadParameter("give at least one PATH, or --bundled")
    store = state(ctx).store()
    with err_console.status("importing feeds") as status:
        report = import_feeds(store, targets,
                              epss_date=epss_date.date() if epss_date else None,
                              progress=lambda p, k: status.update(f"importing {k}: {p.name}"))
        refresh = refresh_findings(store) if match else None
    if output is Output.JSON:
        emit_json({**report.as_dict(), "matching": refresh.as_dict() if refresh else None})
        return
    print_import(report)
    if refresh:
        print_refresh(refresh)


@app.command("status")
def status(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """What the store holds per feed, and how fresh it is.

    Example: hvpatch feeds status --output json
    """
    data = feed_status(state(ctx).store())
    if output is Output.JSON:
        emit_json(data)
        return
    console.print(f"NVD records       {data['vulnerabilities']} ({data['unanalysed']} not yet "
                  f"analysed by NVD), newest change {data['newest_last_modified'] or '-'}")
    console.print(f"KEV entries       {data['kev']}")
    console.print(f"EPSS scores       {data['epss']} (score date {data['epss_score_date'] or '-'})")
    console.print(f"distro fix rows   {data['package_fixes']}")
    console.print(f"Xen advisories    {data['xsa']}")
    rows = [[k, v["files"], v["last"]] for k, v in data["imports"].items()]
    if rows:
        console.print(table("Imports", ["kind", "files imported", "last import"], rows,
                            right=("files imported",)))


@app.command("update")
def update(
    ctx: typer.Context,
    mirror: Path | None = typer.Option(None, "--mirror", help="Directory for downloaded files "
                                       "(default: 'mirror' in your user data directory)."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="HVPATCH_NVD_API_KEY",
                                       help="NVD API key: 50 requests per 30 s instead of 5."),
    nvd: bool = typer.Option(True, "--nvd/--no-nvd", help="Sync NVD (incremental after the "
                             "first run)."),
    kev: bool = typer.Option(True, "--kev/--no-kev", help="Download the CISA KEV catalog."),
    epss: bool = typer.Option(True, "--epss/--no-epss", help="Download FIRST's EPSS scores."),
    nvd_url: str = typer.Option(nvd_api.NVD_API_URL, help="NVD CVE API 2.0 endpoint."),
    kev_url: str = typer.Option(download.KEV_URL, help="KEV catalog URL."),
    epss_url: str = typer.Option(download.EPSS_URL, help="EPSS daily file URL."),
    match: bool = typer.Option(True, "--match/--no-match", help="Re-match the fleet afterwards."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Fetch NVD, KEV and EPSS online into a mirror directory, then import it.

    Respects NVD's rate limits, retries with backoff, and resumes an interrupted sync where it
    stopped. Sites without internet copy such a mirror in and use `hvpatch feeds import DIR`.

    Example: hvpatch feeds update --api-key $NVD_KEY
    """
    target = mirror or Path(platformdirs.user_data_dir("hvpatch")) / "mirror"
    store = state(ctx).store()
    with err_console.status(f"fetching feeds into {target}"):
        report = update_feeds(store, target, api_key=api_key, nvd=nvd, kev=kev, epss=epss,
                              sources=Sources(nvd_url, kev_url, epss_url))
        refresh = refresh_findings(store) if match and report.imported else None
    if output is Output.JSON:
        emit_json({**report.as_dict(), "mirror": str(target),
                   "matching": refresh.as_dict() if refresh else None})
        return
    for name, data in report.fetched.items():
        console.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in data.items()))
    if report.imported:
        print_import(report.imported)
    if refresh:
        print_refresh(refresh)
