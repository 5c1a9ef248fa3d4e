"""Incidents (service and ``hvpatch incident``) and ``hvpatch audit verify|list``, on SQLite and
PostgreSQL: every open and close is audited in its own transaction, and tampering exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, IncidentRow
from hvpatch.errors import InputError, NotFoundError
from hvpatch.services.audit import list_entries, verify_store
from hvpatch.services.incidents import close_incident, list_incidents, open_count, open_incident


def hv(*args: str, db: str, home: Path, actor: str = "carol"
       ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": actor}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


# -- the service ---------------------------------------------------------------------------------


def test_open_close_count_and_audit(store: Store) -> None:
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    a = open_incident(store, "  storage latency in fra1 ", "alice", now=t0)
    b = open_incident(store, "DNS flapping", "bob")
    assert open_count(store) == 2
    closed = close_incident(store, a, "bob", now=t0.replace(hour=9))
    assert closed["state"] == "closed" and closed["closed_by"] == "bob"
    assert closed["title"] == "storage latency in fra1" and closed["opened_by"] == "alice"
    assert open_count(store) == 1
    assert [r["id"] for r in list_incidents(store)] == [b, a]  # newest first
    assert [r["id"] for r in list_incidents(store, open_only=True)] == [b]
    entries = list_entries(store)
    assert [(e["action"], e["subject"], e["actor"]) for e in entries] == [
        ("incident.open", f"incident:{a}", "alice"), ("incident.open", f"incident:{b}", "bob"),
        ("incident.close", f"incident:{a}", "bob")]
    assert entries[0]["at"] == t0.isoformat()
    assert entries[0]["details"] == {"title": "storage latency in fra1"}
    assert verify_store(store).ok


def test_close_errors_and_bad_input_change_nothing(store: Store) -> None:
    i = open_incident(store, "x", "alice")
    close_incident(store, i, "alice")
    with pytest.raises(InputError, match="already closed"):
        close_incident(store, i, "bob")
    with pytest.raises(NotFoundError, match="no incident with id 999"):
        close_incident(store, 999, "bob")
    with pytest.raises(InputError) as err:
        open_incident(store, "   ", " ")
    assert {p.location for p in err.value.problems} == {"TITLE", "--as"}
    with pytest.raises(InputError):
        close_incident(store, i, "")
    assert len(list_incidents(store)) == 1 and len(list_entries(store)) == 2
    assert verify_store(store).ok


def test_an_incident_and_its_audit_entry_commit_together(store: Store,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import hvpatch.services.incidents as svc

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(svc, "record", broken)
    with pytest.raises(RuntimeError):
        open_incident(store, "never stored", "alice")
    assert list_incidents(store) == [] and open_count(store) == 0


# -- the CLI -------------------------------------------------------------------------------------


def test_incident_commands(store_url: str, tmp_path: Path) -> None:
    r = hv("incident", "open", "hosts dropping off vCenter", "--as", "alice", db=store_url,
           home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "incident 1 opened" in r.stdout
    r = hv("incident", "open", "second one", "-o", "json", db=store_url, home=tmp_path)
    second = json.loads(r.stdout)
    assert second["id"] == 2 and second["opened_by"] == "carol"  # HVPATCH_ACTOR
    assert second["state"] == "open"
    table = hv("incident", "list", db=store_url, home=tmp_path)
    assert "2 incidents (2 open)" in table.stdout and "hosts dropping off vCenter" in table.stdout
    r = hv("incident", "close", "1", "--actor", "bob", db=store_url, home=tmp_path)
    assert r.returncode == 0 and "incident 1 closed by bob" in r.stdout
    listed = json.loads(hv("incident", "list", "--open", "-o", "json", db=store_url,
                           home=tmp_path).stdout)
    assert [x["id"] for x in listed] == [2]
    again = hv("incident", "close", "1", db=store_url, home=tmp_path)
    assert again.returncode == 2 and "already closed" in again.stderr
    missing = hv("incident", "close", "42", db=store_url, home=tmp_path)
    assert missing.returncode == 2 and "no incident with id 42" in missing.stderr


def test_audit_verify_and_list(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        for i in range(3):
            open_incident(store, f"incident {i}", "alice" if i else "bob")
        close_incident(store, 2, "carol")
    finally:
        store.close()
    ok = hv("audit", "verify", db=store_url, home=tmp_path)
    assert ok.returncode == 0 and "audit chain intact: 4 entries" in ok.stdout

    rows = json.loads(hv("audit", "list", "-o", "json", db=store_url, home=tmp_path).stdout)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[3]["action"] == "incident.close" and rows[3]["subject"] == "incident:2"
    # filters combine; --limit keeps the newest
    newest = json.loads(hv("audit", "list", "--action", "incident.open", "--actor", "alice",
                           "--limit", "1", "-o", "json", db=store_url, home=tmp_path).stdout)
    assert [(r["seq"], r["subject"]) for r in newest] == [(3, "incident:3")]
    subject = json.loads(hv("audit", "list", "--subject", "incident:2", "-o", "json",
                            db=store_url, home=tmp_path).stdout)
    assert [r["action"] for r in subject] == ["incident.open", "incident.close"]
    table = hv("audit", "list", db=store_url, home=tmp_path)
    assert table.returncode == 0 and "4 audit entries" in table.stdout
    assert "incident.close" in table.stdout and "incident:2" in table.stdout

    store = Store(store_url)  # tamper: edit entry 2, then cut the last one off
    try:
        with store.session() as s:
            s.execute(update(AuditRow).where(AuditRow.seq == 2).values(actor="mallory"))
            s.commit()
    finally:
        store.close()
    broken = hv("audit", "verify", db=store_url, home=tmp_path)
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stdout and "changed after it was written" in broken.stdout

    store = Store(store_url)
    try:
        with store.session() as s:
            s.execute(update(AuditRow).where(AuditRow.seq == 2).values(actor="alice"))
            s.execute(delete(AuditRow).where(AuditRow.seq == 4))
            s.execute(update(IncidentRow).where(IncidentRow.id == 2).values(closed=None))
            s.commit()
    finally:
        store.close()
    cut = hv("audit", "verify", "-o", "json", db=store_url, home=tmp_path)
    assert cut.returncode == 1
    data = json.loads(cut.stdout)
    assert data["ok"] is False and data["entries"] == 3 and data["first_bad_seq"] == 4
    assert "deleted from the end" in data["reason"]


def test_help_documents_the_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    verify = hv("audit", "verify", "--help", db=db, home=tmp_path)
    assert verify.returncode == 0 and "1 the chain is broken" in verify.stdout
    close = hv("incident", "close", "--help", db=db, home=tmp_path)
    assert close.returncode == 0 and "--as" in close.stdout and "HVPATCH_ACTOR" in close.stdout
