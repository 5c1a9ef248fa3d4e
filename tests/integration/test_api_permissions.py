"""The permission matrix: every endpoint of the API x every role (and no credentials).

The endpoints come from the served application's routes (its published OpenAPI schema, which
FastAPI generates from them), so an endpoint added without an entry in :data:`MATRIX` fails this
test. Each request names things that do not exist or carries a body
with an unknown field, so an allowed request is refused *after* the access check (404, 422) and
changes nothing; a forbidden one must get 403, an anonymous one 401.
"""

from __future__ import annotations

import re

import httpx

from api_support import ROLE_USERS, Api, assert_error, fast_hashes, running  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.services.users import ROLES

#: (method, path) -> the least role allowed; None: open to everyone
MATRIX: dict[tuple[str, str], str | None] = {
    # know
    ("GET", "/api/v1/sites"): "viewer",
    ("GET", "/api/v1/clusters"): "viewer",
    ("GET", "/api/v1/hosts"): "viewer",
    ("GET", "/api/v1/hosts/{name}"): "viewer",
    ("GET", "/api/v1/guests"): "viewer",
    ("GET", "/api/v1/tenants"): "viewer",
    ("GET", "/api/v1/inventory/summary"): "viewer",
    # judge
    ("GET", "/api/v1/feeds"): "viewer",
    ("POST", "/api/v1/feeds/import"): "operator",
    ("GET", "/api/v1/findings"): "viewer",
    ("GET", "/api/v1/findings/overview"): "viewer",
    ("GET", "/api/v1/findings/explain"): "viewer",
    ("GET", "/api/v1/decisions"): "viewer",
    ("GET", "/api/v1/decisions/{host}"): "viewer",
    ("GET", "/api/v1/assessments"): "viewer",
    ("POST", "/api/v1/assessments"): "operator",
    ("GET", "/api/v1/exceptions"): "viewer",
    ("POST", "/api/v1/exceptions"): "operator",
    ("POST", "/api/v1/exceptions/{exception_id}/approve"): "approver",
    ("POST", "/api/v1/exceptions/{exception_id}/expire"): "approver",
    # rehearse and act
    ("GET", "/api/v1/plans"): "viewer",
    ("GET", "/api/v1/plans/{name}"): "viewer",
    ("POST", "/api/v1/plans"): "operator",
    ("GET", "/api/v1/rollouts"): "viewer",
    ("POST", "/api/v1/rollouts"): "operator",
    ("GET", "/api/v1/rollouts/{name}"): "viewer",
    ("GET", "/api/v1/rollouts/{name}/gates"): "viewer",
    ("GET", "/api/v1/rollouts/{name}/steps"): "viewer",
    ("POST", "/api/v1/rollouts/{name}/pause"): "operator",
    ("POST", "/api/v1/rollouts/{name}/abort"): "operator",
    ("POST", "/api/v1/rollouts/{name}/resume"): "operator",
    ("POST", "/api/v1/rollouts/{name}/approve"): "approver",
    # operations
    ("GET", "/api/v1/incidents"): "viewer",
    ("POST", "/api/v1/incidents"): "operator",
    ("POST", "/api/v1/incidents/{incident_id}/close"): "operator",
    ("GET", "/api/v1/audit"): "viewer",
    ("GET", "/api/v1/audit/verify"): "viewer",
    ("GET", "/api/v1/jobs"): "viewer",
    ("GET", "/api/v1/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/jobs/{job_id}/events"): "viewer",
    ("GET", "/metrics"): "viewer",
    ("GET", "/healthz"): None,
    # access
    ("POST", "/api/v1/session"): None,
    ("GET", "/api/v1/session"): "viewer",
    ("DELETE", "/api/v1/session"): "viewer",
    ("GET", "/api/v1/me"): "viewer",
    ("POST", "/api/v1/me/password"): "viewer",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users/{name}/disable"): "admin",
    ("GET", "/api/v1/users/{name}/tokens"): "admin",
    ("POST", "/api/v1/users/{name}/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/secrets"): "admin",
    ("PUT", "/api/v1/secrets/{name}"): "admin",
    ("DELETE", "/api/v1/secrets/{name}"): "admin",
}


def _endpoints(api: Api) -> set[tuple[str, str]]:
    schema = api.client().get("/api/v1/openapi.json").json()
    return {(method.upper(), path) for path, item in schema["paths"].items()
            for method in item if method in ("get", "post", "put", "patch", "delete")}


def _concrete(path: str) -> str:
    path = re.sub(r"\{[a-z_]+_id\}", "999999", path)
    return re.sub(r"\{[a-z_]+\}", "no-such-thing", path)


def _request(client: httpx.Client, method: str, path: str) -> httpx.Response:
    if method in ("GET", "DELETE"):
        return client.request(method, _concrete(path))
    # an unknown field: an allowed caller gets 422 from validation (or 404), never an effect
    return client.request(method, _concrete(path), json={"matrix_probe": True})


def test_permission_matrix(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with running(store) as api:
        endpoints = _endpoints(api)
        assert endpoints - set(MATRIX) == set(), "endpoints without a permission matrix entry"
        assert set(MATRIX) - endpoints == set(), "matrix entries for endpoints that are gone"
        before = api.counts()
        clients = {role: api.client(role) for role in (None, *ROLES)}
        wrong: list[str] = []
        for (method, path), needed in sorted(MATRIX.items()):
            for role, client in clients.items():
                r = _request(client, method, path)
                if needed is None:
                    ok = r.status_code not in (401, 403)
                elif role is None:
                    ok = r.status_code == 401
                    if ok:
                        assert_error(r, 401, "unauthenticated")
                elif ROLES.index(role) < ROLES.index(needed):
                    ok = r.status_code == 403
                    if ok:
                        assert needed in assert_error(r, 403, "forbidden")["message"]
                else:
                    ok = r.status_code not in (401, 403) and r.status_code < 500
                if not ok:
                    wrong.append(f"{method} {path} as {role or 'anonymous'}: {r.status_code} "
                                 f"{r.text[:120]}")
        after = api.counts()
        for client in clients.values():
            client.close()
    store.close()
    assert wrong == []
    # nothing was changed by any of these requests (tokens' last-use times aside)
    assert after == before
