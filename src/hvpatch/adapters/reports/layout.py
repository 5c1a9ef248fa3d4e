"""Lay out each kind of report dict as a :class:`~hvpatch.adapters.reports.model.Document`.

This is the only place that knows which fields of a report become which tables, columns and
charts; the renderers stay generic. The main table of each kind is what CSV exports: the KEV
findings (compliance), the hosts (campaign), the exceptions, the product lines (maturity).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hvpatch.adapters.reports.model import Chart, Column, Document, Table, display
from hvpatch.errors import InputError, Problem

__all__ = ["KINDS", "layout"]

C = Column
_KEV_COLOURS = {"met": "#59a14f", "missed": "#e15759", "pending": "#edc948",
                "no due date": "#bab0ac"}
_OUTCOME_COLOURS = {"Act": "#e15759", "Attend": "#f28e2b", "Track*": "#edc948",
                    "Track": "#4e79a7"}
_STATE_COLOURS = {"done": "#59a14f", "failed": "#e15759", "rolled-back": "#f28e2b",
                  "cancelled": "#bab0ac", "pending": "#76b7b2", "in-progress": "#4e79a7",
                  "planned": "#76b7b2", "approved": "#59a14f", "expired": "#bab0ac",
                  "rejected": "#e15759"}
_SEVERITY_COLOURS = ("#7b1fa2", "#e15759", "#f28e2b", "#edc948", "#bab0ac")


def _approvals(value: Any) -> str:
    if not value:
        return "-"
    return "; ".join(f"{a['by']} at {display(a.get('at'))} ({a['gate']}"
                     + (f", audit #{a['audit_seq']}" if a.get("audit_seq") else "") + ")"
                     for a in value)


def _closed(value: Any) -> str:
    if not value:
        return "-"
    return "; ".join(f"{c['cve']} {c['component']} {c['before']} → {c['after']}" for c in value)


def _count(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else display(value)


def _meta(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [("generated", display(r["generated"]) + " UTC"), ("judged as of", r["as_of"]),
            ("store", r["store"])]


def _audit_verdict(audit: Mapping[str, Any]) -> tuple[bool, str]:
    if audit["ok"]:
        return True, f"Audit chain verified: {audit['entries']} entries, intact."
    return False, (f"Audit chain BROKEN at entry {audit['first_bad_seq']}: {audit['reason']} "
                   f"({audit['entries']} entries read).")


def _bar(title: str, counts: Mapping[str, int], order: list[str] | None = None,
         colours: Mapping[str, str] | None = None, xlabel: str = "") -> Chart:
    labels = order if order is not None else sorted(counts)
    return Chart(title, labels, [("", [counts.get(k, 0) for k in labels])], xlabel=xlabel,
                 colours=[(colours or {}).get(k, "#4e79a7") for k in labels])


def compliance(r: Mapping[str, Any]) -> Document:
    """The compliance report: KEV due dates, overdue, decisions, patches, exceptions, audit."""
    s = r["summary"]
    kev = s["kev_by_status"]
    facts = [
        ("hosts in the inventory", str(s["hosts"])),
        ("hosts with open findings", str(s["hosts_with_open_findings"])),
        ("findings open / closed", f"{s['findings_open']} / {s['findings_closed']}"),
        ("KEV findings (CVEs)", f"{s['kev_findings']} ({s['kev_cves']})"),
        ("KEV due dates met / missed / pending",
         f"{kev['met']} / {kev['missed']} / {kev['pending']}"),
        ("KEV closures undone by a rollback (judged open)",
         str(s["kev_closed_on_rolled_back_hosts"])),
        ("overdue against policy (deferred by exception)",
         f"{s['overdue_findings']} ({s['overdue_deferred_by_exception']})"),
        ("decisions", display(s["decisions"])),
        ("hosts patched by rollouts", f"{s['hosts_patched']} in {s['rollouts']} rollouts, "
                                      f"{s['findings_closed_by_rollouts']} findings closed"),
        ("exceptions", display(s["exceptions"])),
    ]
    outcomes = ["Act", "Attend", "Track*", "Track"]
    return Document(
        title=r["title"], meta=_meta(r), facts=facts,
        intro="KEV findings are judged against CISA's due date (BOD 22-01): met when closed on "
              "or before it, missed when closed after it or still open past it, pending when "
              "open and not yet due. A finding closed on a host its rollout then rolled back "
              "is judged as open.",
        verdicts=[_audit_verdict(r["audit"])],
        charts=[_bar("KEV findings by due-date status", kev, list(kev), _KEV_COLOURS,
                     "findings"),
                _bar("Hosts by exposure outcome", s["outcomes"], outcomes, _OUTCOME_COLOURS,
                     "hosts")],
        main=Table("KEV findings against CISA due dates", (
            C("status", "status"), C("host", "host"), C("cve", "CVE"),
            C("component", "component"), C("kev_added", "KEV added"), C("due", "due"),
            C("first_seen", "first seen"), C("state", "state"), C("closed_at", "closed"),
            C("days_late", "days late"), C("days_left", "days left"),
            C("closed_by", "closed by rollout"), C("rolled_back_in", "host rolled back in"),
            C("policy_deadline", "policy deadline"),
            C("deferred_by", "exception"), C("ransomware", "ransomware")),
            r["kev"], mark="status", empty="No KEV-listed CVE was ever found in the fleet."),
        tables=[
            Table("Overdue against policy deadlines", (
                C("host", "host"), C("cve", "CVE"), C("component", "component"),
                C("outcome", "outcome"), C("deadline", "deadline"),
                C("days_overdue", "days overdue"), C("kev", "KEV"),
                C("deferred_by", "exception"), C("deadline_reason", "why this deadline",
                                                 wide=True)),
                r["overdue"], empty="No open finding is past its deadline."),
            Table("Decisions per host, and why", (
                C("host", "host"), C("decision", "decision"), C("outcome", "outcome"),
                C("exposure", "exposure"), C("patch_risk", "patch risk"),
                C("deadline", "deadline"), C("overdue", "overdue"),
                C("open_findings", "open"), C("reasons", "reasons", wide=True)),
                r["decisions"], mark="outcome", empty="No decisions (run hvpatch assess)."),
            Table("Patched: when and by whom", (
                C("host", "host"), C("rollout", "rollout"), C("ring", "ring"),
                C("requested_by", "requested by"), C("approvals", "approved by", _approvals,
                                                     wide=True),
                C("verified_at", "verified"), C("before", "before"), C("after", "after"),
                C("findings_closed", "findings closed (before → after)", _closed, wide=True)),
                r["patched"], empty="No host was patched by a rollout."),
            Table("Rollouts", (
                C("name", "rollout"), C("plan", "plan"), C("state", "state"),
                C("requested_by", "requested by"), C("plan_requested_by", "plan by"),
                C("created", "created"), C("finished", "finished"), C("hosts", "hosts"),
                C("reason", "reason", wide=True)), r["rollouts"], mark="state"),
            _exceptions_table(r["exceptions"]),
        ])


def _exceptions_table(rows: Any) -> Table:
    return Table("Exceptions", (
        C("id", "id"), C("host", "host"), C("cve", "CVE"), C("state", "state"),
        C("requested_by", "requested by"), C("approved_by", "approved by"),
        C("approved_at", "approved"), C("expires_on", "expires"),
        C("reason", "reason", wide=True),
        C("compensating_control", "compensating control", wide=True)),
        rows, mark="state", empty="No exception was ever requested.")


def campaign(r: Mapping[str, Any]) -> Document:
    """The campaign report: plan, gates, per-host outcome, failures, cleanup."""
    s, p = r["summary"], r["plan"]
    ro = r["rollout"] or {}
    facts = [
        ("plan", f"{p['name']} by {p['requester']} at {display(p['created'])}"
                 + (" (emergency)" if p["emergency"] else "")),
        ("scope", p["scope"]),
        ("targets", display(p["targets"])),
        ("rollout", f"{ro['name']} by {ro['requester']}, {ro['state']}" if ro
         else "not rolled out"),
        ("started / finished", f"{display(ro.get('created'))} / {display(ro.get('finished'))}"),
        ("hosts", f"{s['hosts']}: {display(s['by_state'])}"),
        ("retries / failed steps", f"{s['retries']} / {s['failed_steps']}"),
        ("findings closed by verification", str(s["findings_closed"])),
        ("cluster settings restored", display(s["settings_restored"])),
    ]
    if ro.get("reason"):
        facts.append(("final reason", ro["reason"]))
    return Document(
        title=r["title"], meta=_meta(r), facts=facts, verdicts=[_audit_verdict(r["audit"])],
        charts=[_bar("Hosts by outcome", s["by_state"], None, _STATE_COLOURS, "hosts")],
        main=Table("Hosts", (
            C("host", "host"), C("cluster", "cluster"), C("ring", "ring"), C("wave", "wave"),
            C("state", "state"), C("retries", "retries"), C("failed_steps", "failed steps"),
            C("before", "before"), C("after", "after"), C("verified_at", "verified"),
            C("findings_closed", "findings closed"), C("error", "error", wide=True),
            C("note", "note", wide=True)),
            r["hosts"], mark="state"),
        tables=[
            Table("Rings and gates as planned", (
                C("ring", "ring"), C("waves", "waves"), C("hosts", "hosts"),
                C("hours", "hours"), C("gate.soak_hours", "soak h"),
                C("gate.max_failures", "max failures"), C("gate.regression_suite", "suite"),
                C("gate.approval", "approval"), C("entry_approval", "entry approval"),
                C("fits_windows", "fits windows")), p["rings"]),
            Table("Gate evidence", (
                C("ring", "ring"), C("kind", "gate"), C("state", "state"),
                C("ring_done", "ring done"), C("evaluated", "evaluated"),
                C("approved_by", "approved by"), C("approved_at", "approved"),
                C("reasons", "reasons", wide=True)), r["gates"], mark="state"),
            Table("Approvals", (
                C("ring", "ring"), C("by", "by"), C("at", "at"), C("gate", "gate"),
                C("audit_seq", "audit entry"), C("comment", "comment", wide=True)),
                r["approvals"], empty="No approval was given."),
            Table("Failures and retries", (
                C("host", "host"), C("ring", "ring"), C("step", "step"),
                C("attempt", "attempt"), C("finished", "at"), C("error", "error", wide=True)),
                r["failures"], empty="No step failed."),
            Table("Cleanup: cluster settings", (
                C("cluster", "cluster"), C("key", "setting"), C("old", "before"),
                C("new", "during"), C("restored", "restored")), r["cleanup"]["settings"],
                empty="The rollout changed no cluster setting."),
            Table("Skipped by the plan", (C("host", "host"), C("reason", "reason", wide=True)),
                  p["skipped"], empty="No targeted host was skipped.",
                  note=f"{p['untargeted_hosts']} other hosts had no finding the campaign "
                       "targets."),
        ])


def exceptions(r: Mapping[str, Any]) -> Document:
    """The exceptions report."""
    s = r["summary"]
    main = _exceptions_table(r["exceptions"])
    main = Table(main.title, (*main.columns, C("days_to_expiry", "days left"),
                              C("separate_approver", "separate approver"),
                              C("approval_audit_seq", "approval audit entry"),
                              C("defers_open_findings", "defers")),
                 main.rows, mark="state", empty=main.empty)
    facts = [("exceptions", str(s["exceptions"])), ("by state", display(s["by_state"])),
             ("pending approval", str(s["pending_approval"])),
             (f"active, expiring within {s['expiring_within_days']} days",
              str(s["expiring_soon"])),
             ("open findings deferred now", str(s["open_findings_deferred"]))]
    sod = s["separation_of_duties_kept"]
    return Document(
        title=r["title"], meta=_meta(r), facts=facts, main=main,
        verdicts=[(sod, "Separation of duties kept: every approver differs from the requester."
                   if sod else "Separation of duties BROKEN: an exception was approved by its "
                   "requester.")],
        charts=[_bar("Exceptions by state", s["by_state"], None, _STATE_COLOURS,
                     "exceptions")] if s["exceptions"] else [])


def maturity(r: Mapping[str, Any]) -> Document:
    """The maturity report: per product line."""
    s = r["summary"]
    lines = r["lines"]
    sev = ("critical", "high", "medium", "low", "unknown")
    facts = [("product lines", str(s["product_lines"])), ("hosts", str(s["hosts"])),
             ("support status", display(s["by_support_status"])),
             ("hosts on end-of-life lines", str(s["hosts_end_of_life"])),
             ("CVEs ever found (KEV)", f"{s['cves']} ({s['kev_cves']})"),
             ("hosts failed or rolled back in rollouts", str(s["regressing_hosts"]))]
    flat = [{"line": e["line"], "release": rel} for e in lines for rel in
            e["releases_running"]]
    withdrawn = [{"line": e["line"], **w} for e in lines for w in e["withdrawn_releases"]]
    withdrawn += [{"line": e["line"], "release": f"{w['component']} {w['version']}",
                   "build_or_kb": "", "event": f"withdrawn during a campaign: {w['reason']}",
                   "date": w["at"], "replacement": ""} for e in lines
                  for w in e["withdrawn_in_campaigns"]]
    regress = [{"line": e["line"], **g} for e in lines for g in e["regressions"]]
    return Document(
        title=r["title"], meta=_meta(r), facts=facts,
        intro="Vulnerability history counts the distinct CVEs ever matched on the line's hosts "
              "in this store (open and closed), by the CVSS severity of the record.",
        charts=[Chart("CVEs found per product line, by severity", [e["line"] for e in lines],
                      [(name, [e["vulnerabilities"]["by_severity"][name] for e in lines])
                       for name in sev], xlabel="distinct CVEs",
                      colours=_SEVERITY_COLOURS, horizontal=True)] if lines else [],
        main=Table("Product lines", (
            C("line", "line"), C("family", "family"), C("hosts", "hosts"),
            C("lifecycle.first_release", "first release"), C("lifecycle.age_years", "age (y)"),
            C("lifecycle.status", "support"), C("lifecycle.support_end", "support ends"),
            C("lifecycle.security_end", "security ends"),
            C("vulnerabilities.cves", "CVEs"),
            *(C(f"vulnerabilities.by_severity.{x}", x) for x in sev[:4]),
            C("vulnerabilities.kev", "KEV"), C("withdrawn_releases", "withdrawn", _count),
            C("regressions", "failed/rolled back", _count),
            C("notes", "notes", wide=True)), lines, mark="lifecycle.status"),
        tables=[
            Table("Releases running", (
                C("line", "line"), C("release.label", "release"), C("release.hosts", "hosts"),
                C("release.released", "released"), C("release.age_days", "age (days)")), flat),
            Table("Withdrawn or regressing releases", (
                C("line", "line"), C("release", "release"), C("build_or_kb", "build / KB"),
                C("event", "what happened", wide=True), C("date", "when"),
                C("replacement", "replacement", wide=True)), withdrawn,
                empty="None on record for the lines in the fleet."),
            Table("Failed or rolled-back hosts in rollouts", (
                C("line", "line"), C("rollout", "rollout"), C("host", "host"),
                C("state", "state"), C("error", "error", wide=True)), regress, mark="state",
                empty="No host failed or was rolled back."),
        ])


KINDS: dict[str, Callable[[Mapping[str, Any]], Document]] = {
    "compliance": compliance, "campaign": campaign, "exceptions": exceptions,
    "maturity": maturity}


def layout(report: Mapping[str, Any]) -> Document:
    """The document of a report dict (dispatching on its ``kind``)."""
    kind = report.get("kind")
    if kind not in KINDS:
        raise InputError("unknown report kind", [Problem("kind", f"{kind!r} is not one of "
                                                         f"{', '.join(KINDS)}")])
    return KINDS[str(kind)](report)
