"""Bad input through the real HTTP server, on SQLite and PostgreSQL: malformed JSON, wrong types,
unknown fields, oversized bodies, unknown ids, bad cursors and values the services refuse each
get a 4xx with the consistent error body -- and change nothing (every table's row count, the
audit log included, is the same afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx

from api_support import assert_error, fast_hashes, running  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.domain.generator import demo_fleet
from hvpatch.services.inventory import import_fleet

HOST = "dfw2-esx-01-h01"


def _exception(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"host": HOST, "cve": "CVE-2024-37085", "reason": "vendor fix "
                               "pending", "compensating_control": "management network isolated",
                               "expires_on": str(date.today() + timedelta(days=30))}
    body.update(changes)
    return body


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"title": "'
    for _ in range(total // 65536):
        yield b"x" * 65536
    yield b'"}'


def test_bad_input_gets_4xx_and_changes_nothing(store: Store) -> None:
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    with running(store) as api:
        op = api.client("operator")
        before = api.counts()
        checks: list[tuple[httpx.Response, int, str]] = [
            # malformed JSON
            (op.post("/api/v1/exceptions", content=b'{"host": "x",',
                     headers={"content-type": "application/json"}), 400, "malformed_json"),
            (op.post("/api/v1/incidents", content=b"\xff\xfe not json",
                     headers={"content-type": "application/json"}), 400, "bad_request"),
            # wrong types, missing and unknown fields
            (op.post("/api/v1/exceptions", json=_exception(expires_on="next tuesday")), 422,
             "validation"),
            (op.post("/api/v1/exceptions", json=_exception(host=17)), 422, "validation"),
            (op.post("/api/v1/exceptions", json={"host": HOST}), 422, "validation"),
            (op.post("/api/v1/exceptions", json=_exception(approved_by="me")), 422,
             "validation"),
            (op.post("/api/v1/incidents", json=["a list"]), 422, "validation"),
            (op.post("/api/v1/incidents", json={"title": ""}), 422, "validation"),
            (op.post("/api/v1/incidents", json={"title": "nul \x00 inside"}), 422, "validation"),
            (op.post("/api/v1/rollouts", json={"plan": "p", "speed": -1}), 422, "validation"),
            (op.post("/api/v1/rollouts", json={"plan": "p", "policy": {"retries": "many"}}),
             422, "bad_input"),
            (op.post("/api/v1/plans", json={"include": ["patch-whenever"]}), 422, "validation"),
            (op.post("/api/v1/plans", json={"policy": {"rings": 3}}), 422, "bad_input"),
            (op.get("/api/v1/findings?limit=0"), 422, "validation"),
            (op.get("/api/v1/findings?limit=abc"), 422, "validation"),
            (op.get("/api/v1/findings?state=sleeping"), 422, "validation"),
            (op.get("/api/v1/findings?cursor=bm90LWEtY3Vyc29y"), 422, "bad_input"),
            (op.get("/api/v1/findings?cursor=eyJrIjoiYSJ9"), 422, "bad_input"),  # {"k":"a"}
            (op.get("/api/v1/decisions?by=planet"), 422, "validation"),
            # refused by the service: the policy's longest exception, an unknown host, a bad CVE
            (op.post("/api/v1/exceptions", json=_exception(
                expires_on=str(date.today() + timedelta(days=400)))), 422, "bad_input"),
            (op.post("/api/v1/exceptions", json=_exception(host="no-such-host")), 422,
             "bad_input"),
            (op.post("/api/v1/exceptions", json=_exception(cve="CVE-XYZ")), 422, "bad_input"),
            # unknown ids and names
            (op.get("/api/v1/hosts/no-such-host"), 404, "not_found"),
            (op.get("/api/v1/decisions/no-such-host"), 404, "not_found"),
            (op.get("/api/v1/plans/no-such-plan"), 404, "not_found"),
            (op.get("/api/v1/plans/123456789012345"), 404, "not_found"),
            (op.get("/api/v1/rollouts/no-such-rollout"), 404, "not_found"),
            (op.get("/api/v1/rollouts/no-such-rollout/steps"), 404, "not_found"),
            (op.get("/api/v1/jobs/424242"), 404, "not_found"),
            (op.get("/api/v1/jobs/424242/events"), 404, "not_found"),
            (op.get("/api/v1/jobs/0"), 422, "validation"),
            (op.get("/api/v1/jobs/99999999999999999999"), 422, "validation"),
            (op.post("/api/v1/rollouts", json={"plan": "no-such-plan"}), 404, "not_found"),
            (op.post("/api/v1/rollouts/no-such-rollout/pause"), 404, "not_found"),
            (op.post("/api/v1/rollouts/no-such-rollout/resume"), 404, "not_found"),
            (op.post("/api/v1/incidents/424242/close"), 404, "not_found"),
            (api.client("approver").post("/api/v1/exceptions/424242/approve"), 404,
             "not_found"),
            (api.client("admin").post("/api/v1/users/nobody/disable"), 404, "not_found"),
            (api.client("admin").delete("/api/v1/secrets/nothing"), 404, "not_found"),
            (op.get("/api/v1/no-such-endpoint"), 404, "not_found"),
            (op.delete("/api/v1/hosts"), 405, "method_not_allowed"),
            # oversized bodies: declared, and streamed without a length
            (op.post("/api/v1/incidents", json={"title": "x" * (1024 * 1024 + 1)}), 413,
             "too_large"),
            (op.post("/api/v1/incidents", content=_chunks(2 * 1024 * 1024),
                     headers={"content-type": "application/json"}), 413, "too_large"),
        ]
        for response, status, kind in checks:
            assert_error(response, status, kind)
        # every problem names where it is
        wrong = op.post("/api/v1/exceptions", json=_exception(expires_on="soon", host=[]))
        locations = {p["location"] for p in assert_error(wrong, 422)["problems"]}
        assert {"body.expires_on", "body.host"} <= locations
        assert api.counts() == before
        # an anonymous client with an oversized body learns nothing more than 413
        assert_error(api.client().post("/api/v1/incidents", content=b"x" * (2 * 1024 * 1024)),
                     413, "too_large")
        assert api.counts() == before
        # and good input still works afterwards (the server is fine)
        ok = op.post("/api/v1/exceptions", json=_exception())
        assert ok.status_code == 201, ok.text
        assert ok.json()["requested_by"] == "oscar"
        assert datetime.fromisoformat(ok.json()["requested_at"]) <= datetime.now(UTC)
