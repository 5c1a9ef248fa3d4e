"""Authentication through the real HTTP server, on SQLite and PostgreSQL: API tokens (hashed at
rest; unknown, revoked, expired and disabled ones refused), browser sessions with CSRF, the
first admin's one-time password."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

from api_support import PASSWORD, Api, assert_error, fast_hashes, running  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import ApiTokenRow, AuditRow
from hvpatch.services.users import bootstrap_admin


def test_tokens_missing_bad_revoked_expired_disabled(store: Store) -> None:
    with running(store) as api:
        assert_error(api.client().get("/api/v1/hosts"), 401, "unauthenticated")
        r = api.client().get("/api/v1/hosts")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for header in ("Bearer hvp_notarealtokenatallnotarealtoken", "Bearer", "Basic abc",
                       "hvp_x", "Bearer " + api.tokens["viewer"][:-1]):
            with api.client(headers={"Authorization": header}) as c:
                assert_error(c.get("/api/v1/hosts"), 401, "unauthenticated")
        admin = api.client("admin")
        assert api.client("viewer").get("/api/v1/me").json()["user"] == "vera"

        # a new token works, is stored only as its hash, and stops working once revoked
        made = admin.post("/api/v1/users/vera/tokens", json={"name": "ci"})
        assert made.status_code == 201, made.text
        token, token_id = made.json()["token"], made.json()["record"]["id"]
        assert token.startswith("hvp_")
        with api.client(token=token) as c:
            assert c.get("/api/v1/me").json() == {"user": "vera", "role": "viewer",
                                                  "via": "token", "must_change": False}
            with store.session() as s:
                row = s.get_one(ApiTokenRow, token_id)
                assert row.token_hash != token and token not in row.token_hash
                assert row.prefix == token[:12] and row.last_used is not None
                audit = json.dumps([r.details for r in s.scalars(select(AuditRow))])
            assert token not in audit and token[12:] not in audit
            listed = admin.get("/api/v1/users/vera/tokens").json()
            assert token not in json.dumps(listed)
            assert admin.delete(f"/api/v1/tokens/{token_id}").json()["revoked"] is True
            assert_error(c.get("/api/v1/me"), 401)

        # an expired token
        made = admin.post("/api/v1/users/vera/tokens", json={"expires_days": 1}).json()
        with store.session() as s:
            s.execute(update(ApiTokenRow).where(ApiTokenRow.id == made["record"]["id"])
                      .values(expires=datetime.now(UTC) - timedelta(seconds=1)))
            s.commit()
        with api.client(token=made["token"]) as c:
            assert_error(c.get("/api/v1/me"), 401)

        # a disabled user's token
        assert admin.post("/api/v1/users/vera/disable").json()["disabled"] is True
        assert_error(api.client("viewer").get("/api/v1/me"), 401)
        # the last enabled admin cannot be disabled
        assert_error(admin.post("/api/v1/users/ada/disable"), 422, "bad_input")


def _login(api: Api, name: str, password: str) -> tuple[httpx.Client, str]:
    client = api.client()
    r = client.post("/api/v1/session", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


def test_session_login_csrf_and_logout(store: Store) -> None:
    with running(store) as api:
        anon = api.client()
        assert_error(anon.post("/api/v1/session", json={"name": "oscar", "password": "wrong"}),
                     401, "unauthenticated")
        assert_error(anon.post("/api/v1/session", json={"name": "nobody", "password": "x"}),
                     401, "unauthenticated")
        client, csrf = _login(api, "oscar", PASSWORD)
        assert "hvpatch_session" in client.cookies
        cookie = client.cookies["hvpatch_session"]
        assert PASSWORD not in cookie and "oscar" not in cookie
        assert client.get("/api/v1/me").json()["via"] == "session"
        before = api.counts()
        body = {"title": "storage latency"}
        # an unsafe request of a session needs the CSRF token: missing, wrong, then right
        assert "CSRF" in assert_error(client.post("/api/v1/incidents", json=body), 403,
                                      "forbidden")["message"]
        assert_error(client.post("/api/v1/incidents", json=body,
                                 headers={"X-CSRF-Token": csrf[:-2] + "xx"}), 403, "forbidden")
        # the token of another session does not fit this one
        _, other = _login(api, "oscar", PASSWORD)
        assert_error(client.post("/api/v1/incidents", json=body,
                                 headers={"X-CSRF-Token": other}), 403, "forbidden")
        assert api.counts() == before
        made = client.post("/api/v1/incidents", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        assert made.json()["opened_by"] == "oscar"
        # the form field works as well as the header
        closed = client.post(f"/api/v1/incidents/{made.json()['id']}/close",
                             data={"csrf_token": csrf})
        assert closed.status_code == 200, closed.text
        assert client.get("/api/v1/session").json()["csrf_token"] == csrf
        # log out: the cookie no longer authenticates
        assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}
                             ).status_code == 204
        assert_error(client.get("/api/v1/me"), 401)
        # a session of a user disabled since the login ends
        client, _ = _login(api, "vera", PASSWORD)
        api.client("admin").post("/api/v1/users/vera/disable")
        assert_error(client.get("/api/v1/me"), 401)


def test_first_admin_one_time_password(store: Store) -> None:
    password = bootstrap_admin(store)
    assert password and len(password) >= 16
    assert bootstrap_admin(store) is None  # printed once: never again
    with running(store) as api:
        client, csrf = _login(api, "admin", password)
        assert client.get("/api/v1/me").json()["must_change"] is True
        # nothing else until the one-time password is changed
        assert "password" in assert_error(client.get("/api/v1/hosts"), 403)["message"]
        headers = {"X-CSRF-Token": csrf}
        assert_error(client.post("/api/v1/me/password", headers=headers,
                                 json={"current": "wrong", "password": "a new long password"}),
                     422, "bad_input")
        assert_error(client.post("/api/v1/me/password", headers=headers,
                                 json={"current": password, "password": "short"}), 422)
        r = client.post("/api/v1/me/password", headers=headers,
                        json={"current": password, "password": "a new long password"})
        assert r.status_code == 204, r.text
        assert client.get("/api/v1/hosts").status_code == 200
        assert client.get("/api/v1/users").json()["items"][0]["name"] == "ada"
        _login(api, "admin", "a new long password")
        with store.session() as s:
            actions = [(r.actor, r.action) for r in s.scalars(select(AuditRow))]
        assert ("hvpatch (first run)", "user.add") in actions
        assert ("admin", "user.password") in actions
        audit = json.dumps([r for r in actions])
        assert password not in audit


def test_failed_logins_are_throttled_per_address_and_user(store: Store) -> None:
    with running(store) as api:
        client = httpx.Client(base_url=api.base, timeout=30)
        for _ in range(5):
            assert_error(client.post("/api/v1/session", json={"name": "vera",
                                                              "password": "guess"}), 401)
        held = client.post("/api/v1/session", json={"name": "vera", "password": PASSWORD})
        error = assert_error(held, 429, "too_many_requests")
        assert "too many failed logins" in error["message"]
        assert 1 <= int(held.headers["Retry-After"]) <= 600
        # another user from the same address still logs in, and a success clears only them
        assert client.post("/api/v1/session", json={"name": "april",
                                                    "password": PASSWORD}).status_code == 200
