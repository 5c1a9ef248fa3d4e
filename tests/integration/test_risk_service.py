"""Risk assessment, decisions and exceptions through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import RiskRunRow
from hvpatch.errors import InputError
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.exceptions import (
    add_exception,
    approve_exception,
    expire_exception,
    list_exceptions,
)
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet
from hvpatch.services.risk import assess_risk, explain_risk, load_overrides, load_policy, ranked

EXAMPLES = Path(__file__).parents[2] / "examples"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def assessed(store: Store) -> Store:
    parsed = read_inventory(EXAMPLES / "inventory.yaml")
    import_fleet(store, parsed.fleet, source="t", sha256="")
    import_feeds(store, [bundled_feeds_dir()], now=NOW)
    refresh_findings(store, now=NOW)
    assess_risk(store, now=NOW)
    return store


def test_every_host_with_findings_gets_a_decision_with_reasons(assessed: Store) -> None:
    rows = ranked(assessed, today=NOW.date())
    assert rows and all(r["decision"] in ("patch-now", "patch-through-rings", "mitigate-first",
                                          "defer") for r in rows)
    ranks = [{"Track": 0, "Track*": 1, "Attend": 2, "Act": 3}[r["outcome"]] for r in rows]
    assert ranks == sorted(ranks, reverse=True)  # most urgent first
    esx = explain_risk(assessed, "fra1-esx-01-h01")
    assert esx["reasons"] and esx["patch_factors"] and esx["findings"]
    kev = [f for f in esx["findings"] if f["cve"] == "CVE-2024-37085"]
    assert kev and kev[0]["deadline"] == date(2024, 8, 20)  # the KEV due date wins
    assert "CISA KEV due date" in kev[0]["deadline_reason"]


def test_rollups_cover_the_same_hosts(assessed: Store) -> None:
    hosts = ranked(assessed, today=NOW.date())
    for by in ("cluster", "site", "tenant"):
        groups = ranked(assessed, by=by, today=NOW.date())
        assert groups and all(g["hosts"] >= 1 for g in groups)
    sites = ranked(assessed, by="site", today=NOW.date())
    assert sum(g["hosts"] for g in sites) == len(hosts)
    with pytest.raises(InputError):
        ranked(assessed, by="planet")


def test_rerun_reports_what_changed(assessed: Store, tmp_path: Path) -> None:
    same = assess_risk(assessed, now=NOW + timedelta(minutes=1))
    assert same.changes == []
    # CVE-2024-37085 (KEV; AD group takeover of ESXi) is a management-plane weakness by the
    # data: total impact, Act. Overridden to a host DoS its impact is partial: Attend.
    override = tmp_path / "overrides.yaml"
    override.write_text("overrides:\n  CVE-2024-37085: {impact: host-dos}\n")
    changed = assess_risk(assessed, now=NOW + timedelta(minutes=2),
                          overrides=load_overrides(override))
    moved = {(c["host"], c.get("cve")): c for c in changed.changes}
    change = moved[("fra1-esx-01-h01", "CVE-2024-37085")]
    assert (change["change"], change["from"], change["to"]) == ("outcome", "Act", "Attend")
    with assessed.session() as s:
        runs = s.scalars(select(RiskRunRow).order_by(RiskRunRow.id)).all()
    assert len(runs) == 3 and runs[-1].actor == "hvpatch"


def test_exception_needs_another_approver_and_lapses(assessed: Store) -> None:
    host = "fra1-esx-01-h01"
    before = explain_risk(assessed, host)
    assert before["decision"] != "defer"
    exc = add_exception(assessed, host=host, cve=None, reason="vendor fix needs 8.0",
                        control="host isolated from guests' networks",
                        expires_on=NOW.date() + timedelta(days=30), actor="bob", now=NOW)
    assert exc["state"] == "pending"
    assess_risk(assessed, now=NOW)
    assert explain_risk(assessed, host)["decision"] != "defer"  # pending defers nothing
    with pytest.raises(InputError, match="separation of duties"):
        approve_exception(assessed, exc["id"], actor="Bob", now=NOW)
    approve_exception(assessed, exc["id"], actor="alice", now=NOW)
    assess_risk(assessed, now=NOW)
    deferred = explain_risk(assessed, host)
    assert deferred["decision"] == "defer" and deferred["defer_until"] == exc["expires_on"]
    later = NOW + timedelta(days=31)  # the exception lapsed: the findings are back
    summary = assess_risk(assessed, now=later)
    assert explain_risk(assessed, host)["decision"] != "defer"
    assert any(c["host"] == host for c in summary.changes)
    assert list_exceptions(assessed, today=later.date())[0]["state"] == "expired"


def test_bad_exception_requests_are_refused_whole(assessed: Store) -> None:
    with pytest.raises(InputError) as info:
        add_exception(assessed, host="nope", cve="CVE-12", reason="", control="",
                      expires_on=NOW.date() + timedelta(days=400), actor="bob", now=NOW)
    fields = {p.location for p in info.value.problems}
    assert fields == {"CVE", "--reason", "--control", "--expires", "HOST"}
    assert list_exceptions(assessed) == []


def test_expire_ends_an_approved_exception(assessed: Store) -> None:
    exc = add_exception(assessed, host="fra1-esx-01-h01", cve="CVE-2024-37085", reason="r",
                        control="c", expires_on=NOW.date() + timedelta(days=10), actor="bob",
                        now=NOW)
    approve_exception(assessed, exc["id"], actor="alice", now=NOW)
    ended = expire_exception(assessed, exc["id"], actor="carol", now=NOW)
    assert ended["state"] == "expired" and ended["closed_by"] == "carol"
    with pytest.raises(InputError):
        expire_exception(assessed, exc["id"], actor="carol", now=NOW)


def test_policy_file_changes_deadlines(assessed: Store, tmp_path: Path) -> None:
    strict = tmp_path / "policy.yaml"
    strict.write_text("sla_days: {Act: 1, Attend: 2, Track*: 3, Track: 4}\n")
    assess_risk(assessed, policy=load_policy(strict), now=NOW)
    rows = ranked(assessed, today=NOW.date())
    assert all(r["deadline"] <= NOW.date() + timedelta(days=4) for r in rows)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sla_days: {Act: 30, Track: 2}\nmitigate_when_patch_risk_over: lots\n")
    with pytest.raises(InputError) as info:
        load_policy(bad)
    text = str(info.value)
    assert "sla_days" in text and "mitigate_when_patch_risk_over" in text
