"""Reports on SQLite and PostgreSQL, checked for what an auditor would look at.

One scenario feeds every report: the demo fleet with the bundled advisories, first seen on
2024-08-01 (before both KEV due dates in the snapshot: CVE-2024-37085 due 2024-08-20 and
CVE-2025-22224..6 due 2025-03-25), an approved and a pending exception, an assessment, the
emergency plan, and its rollout on the simulator from 2024-08-05 (campaign clock) with one
retried install and one host rolled back after a failed check. Judged as of 2025-01-15, the
KEV findings fall into all three classes: met, missed and pending.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hvpatch.adapters.drivers.faults import FaultPlan
from hvpatch.adapters.store.db import Store
from hvpatch.domain.generator import demo_fleet
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.errors import InputError, NotFoundError
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.exceptions import add_exception, approve_exception
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import list_findings, refresh_findings
from hvpatch.services.inventory import import_fleet
from hvpatch.services.plans import create_plan
from hvpatch.services.reports import (
    campaign_report,
    compliance_report,
    exceptions_report,
    maturity_report,
    render_report,
)
from hvpatch.services.risk import assess_risk
from hvpatch.services.rollouts import approve
from rollout_support import make_plan

SEEN = datetime(2024, 8, 1, 12, tzinfo=UTC)
#: the rollout's simulated clock starts here; at this speed it ends within days
START = datetime(2024, 8, 5, tzinfo=UTC)
SPEED = 36_000.0
AS_OF = datetime(2025, 1, 15, 12, tzinfo=UTC)
POLICY = plan_policy_from_dict({"ha_reserve_hosts": 0, "pinned_guests": "skip-host",
                                "rings": {"prod": {"max_failures": 1}}})


@pytest.fixture
def patched(store: Store) -> dict[str, Any]:
    """The scenario of the module docstring; what the tests need to know about it."""
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    import_feeds(store, [bundled_feeds_dir()], now=SEEN)
    refresh_findings(store, now=SEEN)
    kev_host = list_findings(store, cve="CVE-2024-37085")[0]["host"]
    granted = add_exception(store, host=kev_host, cve="CVE-2024-37085", reason="no fix yet",
                            control="AD integration off", expires_on=date(2024, 8, 20),
                            actor="alice", now=SEEN)
    approve_exception(store, granted["id"], actor="bob", now=SEEN)
    asked = add_exception(store, host=kev_host, cve=None, reason="freeze", control="isolated",
                          expires_on=date(2024, 9, 1), actor="carol", now=SEEN)
    assess_risk(store, now=SEEN)
    _id, plan = create_plan(store, requester="alice", name="p", include=("patch-now",),
                            policy=POLICY, now=SEEN)
    hosts = [h.host for w in plan.waves() for h in w.hosts]
    faults = FaultPlan.from_dict({"seed": 7, "faults": [
        {"kind": "install-fails", "hosts": [hosts[0]], "times": 1},
        {"kind": "services-unhealthy", "hosts": [hosts[-1]]}]}, "test")
    name = start_rollout(store, "p", requester="alice", name="r1",
                         policy=RolloutPolicy(retry_backoff_s=1, pause_on_first_failure=()),
                         driver=simulator_spec(speed=SPEED, faults=faults, start=START))
    state = asyncio.run(drive(store, name, heartbeat_s=0.2))
    while state == "awaiting-approval":
        approve(store, name, actor="bob")
        state = asyncio.run(drive(store, name, heartbeat_s=0.2))
    assert state == "completed"
    return {"granted": granted["id"], "asked": asked["id"], "kev_host": kev_host,
            "hosts": hosts, "retried": hosts[0], "rolled_back": hosts[-1]}


def _pages(pdf: bytes) -> int:
    pages = len(re.findall(rb"/Type /Page(?!s)", pdf))
    count = re.search(rb"/Type /Pages[^>]*?/Count (\d+)|/Count (\d+)", pdf)
    assert count is not None and pages == int(next(g for g in count.groups() if g))
    return pages


def _check_compliance(store: Store, s: dict[str, Any]) -> dict[str, Any]:
    r = compliance_report(store, now=AS_OF)
    assert json.loads(json.dumps(r)) == r  # plain JSON types only
    assert r["kind"] == "compliance" and r["as_of"] == "2025-01-15" and r["store"]
    today = AS_OF.date()
    kev = r["kev"]
    assert kev and all(k["due"] for k in kev)
    for k in kev:  # every verdict follows from the row's own dates
        due = date.fromisoformat(k["due"])
        if k["state"] == "closed" and not k["rolled_back_in"]:
            closed = date.fromisoformat(k["closed_at"][:10])
            assert k["status"] == ("met" if closed <= due else "missed"), k
            assert k["closed_by"] == "r1", k
        else:
            assert k["status"] == ("missed" if today > due else "pending"), k
            assert (k["days_late"] == (today - due).days if k["status"] == "missed"
                    else k["days_left"] == (due - today).days), k
    statuses = {k["status"] for k in kev}
    assert {"met", "missed", "pending"} <= statuses
    assert all(k["status"] == "missed" and k["days_late"] == 148
               for k in kev if k["cve"] == "CVE-2024-37085")  # due 2024-08-20, never fixed
    counts = r["summary"]["kev_by_status"]
    assert sum(counts.values()) == len(kev) == r["summary"]["kev_findings"]
    assert counts["met"] == sum(1 for k in kev if k["status"] == "met")
    # the rolled-back host runs the old release again: the rollback's re-verification reopened
    # its findings, so none counts as met
    back = [k for k in kev if k["host"] == s["rolled_back"]]
    assert back and all(k["state"] == "open" and k["status"] != "met" for k in back)
    assert r["summary"]["kev_closed_on_rolled_back_hosts"] == 0
    # patched: when, by whom, approved by someone else, with the findings closed
    by_host = {p["host"]: p for p in r["patched"]}
    assert set(by_host) == set(s["hosts"]) - {s["rolled_back"]}
    for p in by_host.values():
        assert p["rollout"] == "r1" and p["requested_by"] == "alice" and p["plan"] == "p"
        assert [a["by"] for a in p["approvals"]] == ["bob"]
        assert p["approvals"][0]["audit_seq"] is not None
        assert p["verified_at"] and p["verified_at"] >= START.isoformat()
        assert p["findings_closed"] and all(c["before"] != c["after"]
                                            for c in p["findings_closed"])
    assert r["summary"]["hosts_patched"] == len(by_host)
    assert r["rollouts"][0]["hosts"] == {"done": len(by_host), "rolled-back": 1}
    # decided and why; overdue against the policy
    assert r["decisions"] and all(d["reasons"] for d in r["decisions"])
    assert sum(r["summary"]["decisions"].values()) == len(r["decisions"])
    assert r["overdue"] and all(o["deadline"] < "2025-01-15" and o["days_overdue"] > 0
                                for o in r["overdue"])
    deferred = [o for o in r["overdue"] if o["deferred_by"]]
    assert {o["deferred_by"] for o in deferred} <= {s["granted"]}
    ex = {e["id"]: e for e in r["exceptions"]}
    assert ex[s["granted"]]["approved_by"] == "bob" and ex[s["granted"]]["state"] == "expired"
    assert ex[s["asked"]]["state"] == "pending" and ex[s["asked"]]["approved_by"] is None
    assert r["audit"]["ok"] and r["audit"]["entries"] > 0
    return r


def _check_renderings(r: dict[str, Any]) -> None:
    page = render_report(r, "html").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "KEV findings against CISA due dates" in page and "Patched: when and by whom" in page
    assert page.count("<table") >= 5 and "Audit chain verified" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n"
                                    for i in images)
    assert all(p["host"] in page for p in r["patched"]) and ">bob at " in page
    pdf = render_report(r, "pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert _pages(pdf) >= 2
    rows = list(csv.DictReader(io.StringIO(render_report(r, "csv").decode("utf-8"))))
    assert len(rows) == len(r["kev"])
    assert {"status", "host", "cve", "due", "closed_at", "closed_by"} <= set(rows[0])
    assert [(x["host"], x["cve"], x["status"]) for x in rows] == [
        (k["host"], k["cve"], k["status"]) for k in r["kev"]]
    assert json.loads(render_report(r, "json")) == r
    with pytest.raises(InputError):
        render_report(r, "xml")


def _check_campaign(store: Store, s: dict[str, Any], compliance: dict[str, Any]) -> None:
    c = campaign_report(store, rollout="r1", now=AS_OF)
    assert json.loads(json.dumps(c)) == c
    assert campaign_report(store, plan="p", now=AS_OF)["rollout"] == c["rollout"]
    assert c["plan"]["name"] == "p" and c["plan"]["requester"] == "alice"
    assert c["rollout"]["state"] == "completed" and c["rollout"]["requester"] == "alice"
    hosts = {h["host"]: h for h in c["hosts"]}
    assert set(hosts) == set(s["hosts"])
    assert hosts[s["retried"]]["state"] == "done" and hosts[s["retried"]]["retries"] == 1
    rb = hosts[s["rolled_back"]]
    assert rb["state"] == "rolled-back" and "services" in rb["error"] and rb["note"]
    steps = {(f["host"], f["step"]) for f in c["failures"]}
    assert {(s["retried"], "apply"), (s["rolled_back"], "checks")} <= steps
    assert c["summary"]["findings_closed"] == compliance["summary"][
        "findings_closed_by_rollouts"]
    assert [a["by"] for a in c["approvals"]] == ["bob"]
    exit_gate = next(g for g in c["gates"] if g["kind"] == "exit")
    assert exit_gate["state"] == "passed" and exit_gate["reasons"]
    assert c["cleanup"]["settings"] and c["cleanup"]["all_restored"]
    rows = list(csv.DictReader(io.StringIO(render_report(c, "csv").decode())))
    assert {r["host"]: r["state"] for r in rows} == {h: x["state"] for h, x in hosts.items()}
    assert render_report(c, "pdf").startswith(b"%PDF")
    assert "Gate evidence" in render_report(c, "html").decode()
    with pytest.raises(NotFoundError, match="r1"):
        campaign_report(store, rollout="nope")


def _check_exceptions(store: Store, s: dict[str, Any]) -> None:
    e = exceptions_report(store, now=datetime(2024, 8, 10, tzinfo=UTC))
    rows = {x["id"]: x for x in e["exceptions"]}
    granted, asked = rows[s["granted"]], rows[s["asked"]]
    assert granted["state"] == "approved" and granted["expires_on"] == "2024-08-20"
    assert granted["days_to_expiry"] == 10 and granted["expiring_soon"]
    assert granted["separate_approver"] is True and granted["defers_open_findings"] >= 1
    assert asked["state"] == "pending" and asked["separate_approver"] is None
    assert e["summary"]["separation_of_duties_kept"] and e["summary"]["pending_approval"] == 1
    later = exceptions_report(store, now=AS_OF)
    assert {x["state"] for x in later["exceptions"]} == {"expired", "pending"}
    assert len(list(csv.DictReader(io.StringIO(render_report(e, "csv").decode())))) == 2


def _check_maturity(store: Store, s: dict[str, Any]) -> None:
    m = maturity_report(store, now=datetime(2026, 1, 15, tzinfo=UTC))
    assert json.loads(json.dumps(m)) == m
    lines = {x["line"]: x for x in m["lines"]}
    assert sum(x["hosts"] for x in lines.values()) == m["summary"]["hosts"] == 80
    esxi = lines["esxi 7.0"]
    assert esxi["lifecycle"]["status"] == "end-of-life"  # ESXi 7.0 ended 2025-10-02
    assert esxi["lifecycle"]["first_release"] == "2020-04-02"
    assert {w["build_or_kb"] for w in esxi["withdrawn_releases"]} >= {"18644231"}
    v = esxi["vulnerabilities"]
    assert v["cves"] == sum(v["by_severity"].values()) and v["kev"] >= 2
    assert [g["host"] for g in esxi["regressions"]] == [s["rolled_back"]]
    assert esxi["rollout_hosts"] == {"done": len(s["hosts"]) - 1, "rolled-back": 1}
    assert any("end of life" in n for n in esxi["notes"])
    assert any(x["lifecycle"] is None for x in lines.values())  # KVM: no kernel lifecycle data
    rows = list(csv.DictReader(io.StringIO(render_report(m, "csv").decode())))
    assert [r["line"] for r in rows] == list(lines)
    assert rows[0]["lifecycle.status"] == m["lines"][0]["lifecycle"]["status"]
    assert 'src="data:image/png;base64,' in render_report(m, "html").decode()
    assert _pages(render_report(m, "pdf")) >= 1


def test_reports_are_evidence_of_a_patched_fleet(store: Store, patched: dict[str, Any]) -> None:
    compliance = _check_compliance(store, patched)
    _check_renderings(compliance)
    _check_campaign(store, patched, compliance)
    _check_exceptions(store, patched)
    _check_maturity(store, patched)


def test_reports_before_anything_happened(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no rollout"):
        campaign_report(store)
    make_plan(store, hosts=12, name="p1")
    plan_only = campaign_report(store, plan="p1")
    assert plan_only["rollout"] is None and plan_only["summary"]["state"] == "not rolled out"
    assert plan_only["hosts"] and {h["state"] for h in plan_only["hosts"]} == {"planned"}
    with pytest.raises(NotFoundError, match="p1"):
        campaign_report(store, plan="nope")
    empty = compliance_report(store)
    assert empty["kev"] == [] and empty["patched"] == [] and empty["audit"]["ok"]
    exceptions = exceptions_report(store)
    maturity = maturity_report(store)
    assert maturity["summary"]["hosts"] == 12
    for report in (plan_only, empty, exceptions, maturity):
        page = render_report(report, "html").decode()
        assert page.count("<h2>") >= 2
        assert render_report(report, "pdf").startswith(b"%PDF")
        header = render_report(report, "csv").decode().splitlines()[0]
        assert header.count(",") >= 3
    assert "No KEV-listed CVE was ever found" in render_report(empty, "html").decode()
