"""Workflows through the real HTTP server: a feed import as a background job followed by
server-sent events, cursor pagination over every finding, /metrics, separation of duties on
exceptions and gates, a rollout started, approved and resumed over the API, secrets encrypted
at rest -- each change in the audit log under the authenticated user's name."""

from __future__ import annotations

import json
import re
import stat
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api_support import Api, assert_error, fast_hashes, running, wait_job  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, FindingRow, SecretRow
from hvpatch.domain.generator import demo_fleet
from hvpatch.errors import StoreError
from hvpatch.services.inventory import import_fleet
from hvpatch.services.secrets import get_secret, put_secret
from rollout_support import FAST_RINGS, make_plan

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                     r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? (\S+)$')


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parse the Prometheus text format strictly: every line a HELP, a TYPE or a sample of a
    family declared before it; returns family -> [(labels, value)]."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    typed: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            families.setdefault(line.split()[2], [])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter", "untyped", "histogram", "summary")
            typed.add(name)
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels = m.group(1), m.group(3) or ""
            assert name in typed, f"sample before its TYPE: {line!r}"
            pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
            families[name].append((pairs, float(m.group(4))))
    return families


def _actions(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [(r.actor, r.action, r.subject) for r in s.scalars(select(AuditRow)
                                                                 .order_by(AuditRow.seq))]


def _events(client: httpx.Client, job_id: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    return out


def test_feed_import_job_events_pagination_and_metrics(store: Store) -> None:
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    with running(store) as api:
        op = api.client("operator")
        queued = op.post("/api/v1/feeds/import", json={"match": True})
        assert queued.status_code == 202, queued.text
        assert queued.json()["state"] == "queued" and queued.json()["actor"] == "oscar"
        events = _events(api.client("viewer"), queued.json()["id"])
        assert events[-1][0] == "end" and all(e == "progress" for e, _ in events[:-1])
        job = events[-1][1]
        assert job["state"] == "done", job
        assert job["result"]["totals"]["records"] > 1000
        opened = job["result"]["matching"]["open_total"]
        assert opened > 100

        # cursor pagination visits every finding exactly once
        viewer = api.client("viewer")
        seen: list[int] = []
        url: str | None = "/api/v1/findings?state=all&limit=37"
        pages = 0
        while url:
            page = viewer.get(url).json()
            seen += [f["id"] for f in page["items"]]
            url = f"/api/v1/findings?state=all&limit=37&cursor={page['next']}" \
                if page["next"] else None
            pages += 1
        with store.session() as s:
            stored = set(s.scalars(select(FindingRow.id)))
        assert len(seen) == len(set(seen)) == len(stored) and set(seen) == stored
        assert pages == -(-len(stored) // 37) or pages == len(stored) // 37 + 1
        kev = viewer.get("/api/v1/findings?kev=true&confidence=high&limit=1000").json()
        assert kev["items"] and all(f["kev"] and f["confidence"] == "high"
                                    for f in kev["items"])

        # /metrics in the Prometheus text format, agreeing with the store
        r = viewer.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        metrics = parse_prometheus(r.text)
        assert sum(v for labels, v in metrics["hvpatch_findings"]
                   if labels["state"] == "open") == opened
        assert {labels["state"] for labels, _ in metrics["hvpatch_jobs"]} == {
            "queued", "running", "done", "failed"}
        assert dict((lb["state"], v) for lb, v in metrics["hvpatch_jobs"])["done"] == 1
        assert metrics["hvpatch_overdue_findings"][0][1] >= 0

    actions = _actions(store)
    assert ("oscar", "job.submit", f"job:{job['id']}") in actions
    assert ("oscar", "job.done", f"job:{job['id']}") in actions


def test_exception_separation_of_duties(store: Store) -> None:
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    body = {"host": "dfw2-esx-01-h01", "cve": None, "reason": "vendor fix pending",
            "compensating_control": "isolated management network",
            "expires_on": str(date.today() + timedelta(days=30))}
    with running(store) as api:
        april = api.client("approver")
        own = april.post("/api/v1/exceptions", json=body)
        assert own.status_code == 201, own.text
        exc_id = own.json()["id"]
        before = api.counts()
        error = assert_error(april.post(f"/api/v1/exceptions/{exc_id}/approve"), 403,
                             "separation_of_duties")
        assert "own" in error["message"]
        assert_error(api.client("operator").post(f"/api/v1/exceptions/{exc_id}/approve"), 403,
                     "forbidden")
        assert api.counts() == before
        approved = api.client("admin").post(f"/api/v1/exceptions/{exc_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["approved_by"] == "ada" and approved.json()["state"] == "approved"
        assert_error(api.client("admin").post(f"/api/v1/exceptions/{exc_id}/approve"), 422)
        assert april.post(f"/api/v1/exceptions/{exc_id}/expire").json()["state"] == "expired"
        listed = api.client("viewer").get("/api/v1/exceptions").json()["items"]
        assert [(e["id"], e["state"]) for e in listed] == [(exc_id, "expired")]
    actions = _actions(store)
    subject = f"exception:{exc_id}"
    assert [a for a in actions if a[2] == subject] == [
        ("april", "exception.request", subject), ("ada", "exception.approve", subject),
        ("april", "exception.expire", subject)]


def test_rollout_start_gate_approval_and_resume(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    make_plan(store, hosts=8, seed=2, policy={"rings": {
        **FAST_RINGS, "prod": {"soak_hours": 0.0, "approval": True}}})
    with running(store) as api:
        april = api.client("approver")  # starts it: so she may not approve its gate
        started = april.post("/api/v1/rollouts", json={"plan": "p1", "name": "r1",
                                                       "speed": 1_000_000})
        assert started.status_code == 202, started.text
        job = wait_job(april, started.json()["job"]["id"])
        assert job["state"] == "done" and job["result"] == {"rollout": "r1",
                                                            "state": "awaiting-approval"}
        assert job["progress"]["rollout"] == "r1" and job["progress"]["events"] > 0
        status = april.get("/api/v1/rollouts/r1").json()
        assert status["state"] == "awaiting-approval" and status["requester"] == "april"
        metrics = parse_prometheus(april.get("/metrics").text)
        assert sum(v for lb, v in metrics["hvpatch_rollout_hosts"] if lb["rollout"] == "r1") \
            == sum(status["hosts"].values())

        before = api.counts()
        assert_error(april.post("/api/v1/rollouts/r1/approve", json={}), 403,
                     "separation_of_duties")
        assert_error(api.client("operator").post("/api/v1/rollouts/r1/approve"), 403,
                     "forbidden")
        assert api.counts() == before
        ok = api.client("admin").post("/api/v1/rollouts/r1/approve",
                                      json={"comment": "looks good"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["approved_by"] == "ada"
        resumed = api.client("operator").post("/api/v1/rollouts/r1/resume")
        assert resumed.status_code == 202, resumed.text
        assert wait_job(april, resumed.json()["id"])["result"]["state"] == "completed"

        viewer = api.client("viewer")
        gates = viewer.get("/api/v1/rollouts/r1/gates").json()
        assert all(g["state"] in ("passed", "approved") or g["approved_by"] for g in gates)
        assert any(g["approved_by"] == "ada" for g in gates)
        assert any(g["evidence"] for g in gates)
        steps, cursor = [], ""
        while True:
            page = viewer.get(f"/api/v1/rollouts/r1/steps?limit=50{cursor}").json()
            steps += page["items"]
            if not page["next"]:
                break
            cursor = f"&cursor={page['next']}"
        assert len({s["id"] for s in steps}) == len(steps) == viewer.get(
            "/api/v1/rollouts/r1").json()["steps"]
        assert_error(api.client("operator").post("/api/v1/rollouts/r1/pause"), 422)
        assert_error(api.client("operator").post("/api/v1/rollouts/r1/resume"), 422)
        assert viewer.get("/api/v1/rollouts").json()["items"][0]["state"] == "completed"
        verify = viewer.get("/api/v1/audit/verify").json()
        assert verify["ok"] is True and verify["entries"] > 0
    actions = _actions(store)
    store.close()
    assert ("april", "rollout.create", "r1") in actions
    assert any(a[:2] == ("ada", "gate.approved") for a in actions)
    assert any(a[:2] == ("oscar", "job.submit") for a in actions)


def test_secrets_encrypted_at_rest_never_returned(store: Store, tmp_path: Path) -> None:
    value = "s3cr3t-hypervisor-password!"
    with running(store) as api:
        admin = api.client("admin")
        put = admin.put("/api/v1/secrets/vcenter-fra1", json={"kind": "password",
                                                              "value": value})
        assert put.status_code == 200, put.text
        assert value not in put.text and put.json()["name"] == "vcenter-fra1"
        listed = admin.get("/api/v1/secrets")
        assert value not in listed.text and listed.json()["items"][0]["kind"] == "password"
        assert_error(api.client("approver").get("/api/v1/secrets"), 403)
        assert get_secret(store, "vcenter-fra1") == value
        with store.session() as s:
            row = s.scalars(select(SecretRow)).one()
            audit = json.dumps([r.details for r in s.scalars(select(AuditRow))])
        assert value not in row.ciphertext and value not in audit
        key = tmp_path / "secret.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert admin.delete("/api/v1/secrets/vcenter-fra1").status_code == 204
        assert admin.get("/api/v1/secrets").json()["items"] == []
    # a key file others may read is refused
    key.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        put_secret(store, "another", "value", kind="token", actor="test")
