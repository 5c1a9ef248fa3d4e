"""The services behind the API's access control and jobs, on SQLite and PostgreSQL: users and
passwords, tokens (a busy store never makes a request wait for bookkeeping), secrets with a key
from the environment, and jobs (results, errors, bugs, orphans)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text, update

from api_support import fast_hashes  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import ApiTokenRow, AuditRow, JobRow
from hvpatch.errors import InputError, NotFoundError, StoreError
from hvpatch.services import jobs, secrets, users


def test_users_passwords_and_roles(store: Store) -> None:
    with pytest.raises(InputError) as bad:
        users.add_user(store, "bad name!", "root", actor="t", password="short")
    assert {p.location for p in bad.value.problems} == {"NAME", "role", "password"}
    _, generated = users.add_user(store, "bob", "operator", actor="t")
    assert generated and users.authenticate(store, "bob", generated).must_change  # type: ignore[union-attr]
    with pytest.raises(InputError):
        users.add_user(store, "bob", "viewer", actor="t", password="x" * 12)
    assert users.authenticate(store, "bob", "wrong password") is None
    assert users.authenticate(store, "nobody", generated) is None
    users.set_password(store, "bob", "a brand new password", actor="bob", current=generated)
    assert users.authenticate(store, "bob", "a brand new password").must_change is False  # type: ignore[union-attr]
    users.add_user(store, "root", "admin", actor="t", password="x" * 12)
    users.disable_user(store, "bob", actor="root")
    assert users.authenticate(store, "bob", "a brand new password") is None
    assert users.allows("admin", "approver") and not users.allows("operator", "approver")
    assert not users.allows("superuser", "viewer")
    with pytest.raises(NotFoundError):
        users.disable_user(store, "ghost", actor="root")


def test_token_use_never_waits_for_a_busy_sqlite(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    users.add_user(store, "ci", "operator", actor="t", password="x" * 12)
    token, record = users.create_token(store, "ci", actor="t")
    holder = create_engine(sqlite_url, connect_args={"timeout": 0})
    with holder.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # what a long import does: hold the write lock
        conn.execute(text("UPDATE users SET role = role"))
        started = time.monotonic()
        user = users.verify_token(store, token)
        assert user is not None and user.name == "ci"
        assert time.monotonic() - started < 5
        conn.exec_driver_sql("ROLLBACK")
    holder.dispose()
    users.verify_token(store, token)  # and once the store is free, the use is recorded
    with store.session() as s:
        assert s.get_one(ApiTokenRow, record["id"]).last_used is not None
    store.close()


def test_secrets_with_a_key_from_the_environment(store: Store,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("HVPATCH_SECRET_KEY", Fernet.generate_key().decode())
    secrets.put_secret(store, "ipmi/fra1", "hunter2-hunter2", kind="password", actor="ada")
    secrets.put_secret(store, "ipmi/fra1", "rotated-value", kind="password", actor="ada")
    assert secrets.get_secret(store, "ipmi/fra1") == "rotated-value"
    assert not (tmp_path / "secret.key").exists()  # the environment's key, no file
    assert [s["name"] for s in secrets.list_secrets(store)] == ["ipmi/fra1"]
    with pytest.raises(InputError):
        secrets.put_secret(store, "", "v", kind="magic", actor="ada")
    monkeypatch.setenv("HVPATCH_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(StoreError, match="cannot be decrypted"):
        secrets.get_secret(store, "ipmi/fra1")
    monkeypatch.setenv("HVPATCH_SECRET_KEY", "not a key")
    with pytest.raises(StoreError, match="not a Fernet key"):
        secrets.get_secret(store, "ipmi/fra1")
    with store.session() as s:
        actions = [(r.action, r.details) for r in s.scalars(select(AuditRow))]
    assert ("secret.add", {"kind": "password"}) in actions
    assert ("secret.replace", {"kind": "password"}) in actions


def test_jobs_results_errors_bugs_and_orphans(store: Store) -> None:
    def ok(progress: jobs.Progress) -> dict[str, Any]:
        progress({"step": 1, "when": date(2026, 1, 2)})
        return {"when": date(2026, 1, 2)}

    def refused(_progress: jobs.Progress) -> dict[str, Any]:
        raise InputError("nothing to plan", [])

    def bug(_progress: jobs.Progress) -> dict[str, Any]:
        raise ZeroDivisionError("oops")

    done = jobs.create_job(store, "assess", actor="oscar", params={"full": True})
    assert jobs.run_job(store, done, ok) == "done"
    job = jobs.get_job(store, done)
    assert job["result"] == {"when": "2026-01-02"} and job["progress"]["step"] == 1
    assert job["started"] <= job["finished"]
    failed = jobs.create_job(store, "plan.create", actor="oscar")
    assert jobs.run_job(store, failed, refused) == "failed"
    assert jobs.get_job(store, failed)["error"] == "InputError: nothing to plan"
    broken = jobs.create_job(store, "plan.create", actor="oscar")
    assert jobs.run_job(store, broken, bug) == "failed"
    assert "ZeroDivisionError" in jobs.get_job(store, broken)["error"]
    assert "oops" not in jobs.get_job(store, broken)["error"]  # details stay in the log
    # a job of a dead server process of this machine is failed at the next start
    orphan = jobs.create_job(store, "assess", actor="oscar", worker="x")
    alive = jobs.create_job(store, "assess", actor="oscar", worker=jobs.new_worker())
    host = jobs.new_worker().split(":")[0]
    with store.session() as s:
        s.execute(update(JobRow).where(JobRow.id == orphan)
                  .values(worker=f"{host}:999999999:dead", state="running"))
        s.commit()
    assert jobs.fail_orphans(store) == 1
    assert jobs.get_job(store, orphan)["state"] == "failed"
    assert jobs.get_job(store, alive)["state"] == "queued"
    assert [j["id"] for j in jobs.list_jobs(store, limit=2)] == [alive, orphan]
    assert jobs.job_counts(store) == {"queued": 1, "running": 0, "done": 1, "failed": 3}
    with pytest.raises(NotFoundError):
        jobs.get_job(store, 4242)
    with store.session() as s:
        trail = [(r.actor, r.action) for r in s.scalars(select(AuditRow)
                                                        .where(AuditRow.subject == f"job:{done}"))]
    assert trail == [("oscar", "job.submit"), ("oscar", "job.done")]
