"""The maturity report: "consider the maturity of your hypervisor", per product line in the fleet.

For platform decisions: each product line the fleet runs (the line a campaign targets, such as
``esxi 7.0`` or ``kvm rocky-9``), with its age and support status and end dates from the bundled
lifecycle table, the releases the hosts run, its vulnerability history in this fleet (distinct
CVEs ever matched on its hosts, by CVSS severity, how many known exploited), and its history of
bad patches: releases the vendor withdrew or that regressed (bundled notes, and releases
withdrawn during a campaign) and hosts on the line that failed or were rolled back in rollouts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.store.codec import vuln_from_dict
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    FindingRow,
    HostRow,
    KevRow,
    RolloutHostRow,
    RolloutRow,
    VulnerabilityRow,
    WithdrawnReleaseRow,
)
from hvpatch.domain.fleet import Host
from hvpatch.domain.lifecycle import bad_patch_history, line_for, product_line
from hvpatch.domain.planning.targets import product_line as target_line
from hvpatch.domain.software import EsxiSoftware
from hvpatch.domain.versions import EsxiBuild
from hvpatch.errors import VersionParseError
from hvpatch.services.inventory import load_fleet
from hvpatch.services.reports._common import as_day, header, plain

__all__ = ["SEVERITIES", "maturity_report"]

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
#: support ending within this many days is called out
_SOON_DAYS = 365


def _severity(data: dict[str, Any]) -> str:
    """The CVSS severity of a stored record (its best metric; from the score when unnamed)."""
    best = vuln_from_dict(data).best_cvss
    if best is None:
        return "unknown"
    named = best.severity.lower()
    if named in SEVERITIES:
        return named
    score = best.base_score
    return ("critical" if score >= 9 else "high" if score >= 7 else "medium" if score >= 4
            else "low" if score > 0 else "unknown")


def _release(host: Host, today: date) -> dict[str, Any]:
    """What the host runs, with the release date where hvpatch knows it (ESXi builds)."""
    sw = host.software
    out: dict[str, Any] = {"label": sw.label, "released": None, "age_days": None}
    if isinstance(sw, EsxiSoftware):
        try:
            rel = EsxiBuild.parse(sw.build).release
        except VersionParseError:
            rel = None
        if rel is not None:
            out.update(released=rel.release_date.isoformat(),
                       age_days=(today - rel.release_date).days)
    return out


def _lifecycle(key: tuple[str, str] | None, today: date) -> dict[str, Any] | None:
    """Age, support status and end dates of a lifecycle line."""
    line = product_line(*key) if key else None
    if line is None:
        return None
    end = line.security_end
    return {"product": line.product, "line": line.line,
            "first_release": line.first_release.isoformat(),
            "age_years": round(line.age_years(today), 1), "status": line.status(today).value,
            "support_end": line.support_end.isoformat() if line.support_end else None,
            "security_end": end.isoformat() if end else None,
            "days_to_security_end": (end - today).days if end else None}


def _notes(entry: dict[str, Any]) -> list[str]:
    """What a platform decision should weigh, in words."""
    notes = []
    lc = entry["lifecycle"]
    if lc is None:
        notes.append("no lifecycle data in the bundled table: support dates unknown")
    elif lc["status"] == "end-of-life":
        notes.append(f"end of life since {lc['security_end']}: no fixes at all, plan the move "
                     "to a supported line")
    elif lc["status"] == "security-only":
        notes.append(f"security fixes only (full support ended {lc['support_end']})")
    elif lc["days_to_security_end"] is not None and lc["days_to_security_end"] <= _SOON_DAYS:
        notes.append(f"support ends in {lc['days_to_security_end']} days ({lc['security_end']})")
    v = entry["vulnerabilities"]
    if v["kev"]:
        notes.append(f"{v['kev']} of its CVEs are known exploited (CISA KEV)")
    bad = len(entry["withdrawn_releases"]) + len(entry["withdrawn_in_campaigns"])
    if bad:
        notes.append(f"{bad} withdrawn or regressing releases on record")
    reg = entry["regressions"]
    if reg:
        notes.append(f"{len(reg)} hosts failed or were rolled back in rollouts")
    return notes


def maturity_report(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """Per product line in the fleet: lifecycle, releases run, CVE history, bad patches."""
    now = now or datetime.now(UTC)
    today = as_day(now) or now.date()
    lines: dict[str, list[Host]] = defaultdict(list)
    for h in load_fleet(store).hosts():
        lines[target_line(h) or h.family.value].append(h)
    line_of: dict[str, str] = {h.name: name for name, hs in lines.items() for h in hs}
    with store.session() as s:
        names: dict[int, str] = dict(s.execute(select(HostRow.id, HostRow.name)).all())
        found = s.execute(select(FindingRow.host_id, FindingRow.cve_id, FindingRow.state)
                          .distinct()).all()
        cves = sorted({c for _h, c, _s in found})
        severity: dict[str, str] = {}
        for i in range(0, len(cves), 500):
            for cve, data in s.execute(select(VulnerabilityRow.cve_id, VulnerabilityRow.data)
                                       .where(VulnerabilityRow.cve_id.in_(cves[i:i + 500]))):
                severity[cve] = _severity(data)
        kev = set(s.scalars(select(KevRow.cve_id)))
        withdrawn = s.execute(select(WithdrawnReleaseRow.component, WithdrawnReleaseRow.version,
                                     WithdrawnReleaseRow.reason, WithdrawnReleaseRow.at)).all()
        outcomes = s.execute(select(RolloutRow.name, RolloutHostRow.host, RolloutHostRow.state,
                                    RolloutHostRow.error)
                             .join(RolloutRow, RolloutRow.id == RolloutHostRow.rollout_id)
                             .order_by(RolloutRow.id, RolloutHostRow.host)).all()
    history: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for host_id, cve, state in found:
        line = line_of.get(names.get(host_id, ""))
        if line is not None:
            history[line]["all"].add(cve)
            if state == "open":
                history[line]["open"].add(cve)
    rollout_states: dict[str, Counter[str]] = defaultdict(Counter)
    regressions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rollout, host_name, state, error in outcomes:
        line = line_of.get(host_name)
        if line is None:
            continue
        rollout_states[line][state] += 1
        if state in ("failed", "rolled-back"):
            regressions[line].append({"rollout": rollout, "host": host_name, "state": state,
                                      "error": error})
    out = []
    for name, hosts in sorted(lines.items()):
        key = next((k for k in (line_for(h.software) for h in hosts) if k), None)
        running: Counter[str] = Counter()
        info: dict[str, dict[str, Any]] = {}
        for h in hosts:
            r = _release(h, today)
            running[r["label"]] += 1
            info[r["label"]] = r
        components = {c.name for h in hosts for c in h.software.components()}
        all_cves = history[name]["all"]
        entry: dict[str, Any] = {
            "line": name, "family": hosts[0].family.value, "hosts": len(hosts),
            "lifecycle": _lifecycle(key, today),
            "releases_running": [{**info[label], "hosts": n}
                                 for label, n in sorted(running.items(),
                                                        key=lambda kv: (-kv[1], kv[0]))],
            "vulnerabilities": {
                "cves": len(all_cves), "open_cves": len(history[name]["open"]),
                "by_severity": {sev: sum(1 for c in all_cves
                                         if severity.get(c, "unknown") == sev)
                                for sev in SEVERITIES},
                "kev": sum(1 for c in all_cves if c in kev)},
            "withdrawn_releases": [
                {"release": b.release, "build_or_kb": b.build_or_kb, "event": b.event,
                 "date": b.event_date, "replacement": b.replacement}
                for b in (bad_patch_history(*key) if key else ())],
            "product_withdrawn_total": len(bad_patch_history(key[0])) if key else 0,
            "withdrawn_in_campaigns": [
                {"component": c, "version": v, "reason": why, "at": plain(as_day(at))}
                for c, v, why, at in withdrawn if c in components],
            "rollout_hosts": dict(rollout_states[name]),
            "regressions": regressions[name],
        }
        entry["notes"] = _notes(entry)
        out.append(entry)
    status = Counter((e["lifecycle"] or {}).get("status", "unknown") for e in out)
    summary = {"product_lines": len(out), "hosts": sum(e["hosts"] for e in out),
               "by_support_status": dict(status),
               "hosts_end_of_life": sum(e["hosts"] for e in out if e["lifecycle"]
                                        and e["lifecycle"]["status"] == "end-of-life"),
               "cves": len({c for h in history.values() for c in h["all"]}),
               "kev_cves": len({c for h in history.values() for c in h["all"] if c in kev}),
               "regressing_hosts": sum(len(e["regressions"]) for e in out)}
    return {**header(store, "maturity", "Hypervisor maturity report", now), "summary": summary,
            "lines": out}
