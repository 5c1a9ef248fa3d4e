"""The dashboard over a real HTTP server, as a browser without script sees it: login and
sessions, every page on a populated store, the buttons with their roles, CSRF and separation of
duties, and errors as pages (the API keeps its JSON errors)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api_support import PASSWORD, assert_error, fast_hashes  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, RolloutGateRow
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.services.audit import record
from hvpatch.services.catalog import page_hosts
from hvpatch.services.dashboard import exposure_now
from hvpatch.services.findings import list_findings
from hvpatch.services.plans import create_plan
from hvpatch.services.rollouts import rollout_status, rollout_timeline
from hvpatch.services.users import add_user
from web_support import PLAN, REQUESTER, ROLLOUT, browser_login, dashboard, dashboard_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "hvpatch.db"
    dashboard_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Store:
    target = tmp_path / "copy.db"
    shutil.copyfile(template, target)
    return Store(f"sqlite:///{target}")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _wait_state(store: Store, name: str, states: tuple[str, ...], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = str(rollout_status(store, name)["state"])
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_pages_need_a_login_and_show_the_store(store: Store) -> None:
    with dashboard(store) as api:
        anon = httpx.Client(base_url=api.base, timeout=30)
        for path, target in (("/", "/login?next=%2F"),
                             ("/hosts/x?y=1", "/login?next=%2Fhosts%2Fx%3Fy%3D1"),
                             ("/charts/age.png", "/login?next=%2Fcharts%2Fage.png")):
            r = anon.get(path)
            assert (r.status_code, r.headers["location"]) == (303, target)
        assert_error(anon.get("/api/v1/hosts"), 401, "unauthenticated")  # the API stays JSON
        wrong = anon.post("/login", data={"name": "vera", "password": "nope"})
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        assert anon.get("/").status_code == 303
        evil = anon.post("/login", data={"name": "vera", "password": PASSWORD,
                                         "next": "//evil.example/x"})
        assert (evil.status_code, evil.headers["location"]) == (303, "/")
        for _ in range(5):
            assert anon.post("/login", data={"name": "oscar", "password": "x"}
                             ).status_code == 401
        held = anon.post("/login", data={"name": "oscar", "password": PASSWORD})
        assert held.status_code == 429 and "too many failed logins" in held.text

        viewer, _ = browser_login(api, "vera")
        page = _text(viewer.get("/").text)
        now = exposure_now(store)
        assert f"{now['hosts']} hosts" in page
        assert f"{now['hosts_by_outcome']['Act']} hosts Act" in page
        assert f"{now['kev_cves']} KEV CVEs open on {now['hosts_with_kev']} hosts" in page
        assert f"{now['overdue_hosts']} hosts past their deadline" in page
        assert ROLLOUT in page  # in flight: it waits for an approval
        for chart in ("burndown", "outcomes", "tenants", "age"):
            r = viewer.get(f"/charts/{chart}.png")
            assert r.headers["content-type"] == "image/png" and r.content[:8] == PNG_MAGIC
        assert viewer.get("/plans/p1/gantt.png").content[:8] == PNG_MAGIC

        first = viewer.get("/fleet?limit=50").text
        nxt = re.search(r'id="next" href="([^"]+)"', first)
        assert nxt, "80 hosts make two pages of 50"
        second = viewer.get(nxt.group(1).replace("&amp;", "&")).text
        assert 'id="next"' not in second
        shown = re.findall(r'<a href="/hosts/([^"]+)">', first + second)
        assert shown == [h["name"] for h in page_hosts(store, limit=1000)]

        host = next(h for h in page_hosts(store, limit=1000) if h["open_findings"])
        page = viewer.get(f"/hosts/{host['name']}").text
        assert host["version"] in page
        cves = {f["cve"] for f in list_findings(store, host=host["name"])}
        linked = set(re.findall(rf'href="/hosts/{host["name"]}/findings/([^"]+)"', page))
        assert cves <= linked
        cve = sorted(cves)[0]
        why = _text(viewer.get(f"/hosts/{host['name']}/findings/{cve}").text)
        assert cve in why and "Why it matches" in why and "Deadline" in why

        missing = viewer.get("/hosts/no-such-host")
        assert missing.status_code == 404 and "no host named" in missing.text
        assert viewer.get("/no/such/page").status_code == 404
        rollout = viewer.get(f"/rollouts/{ROLLOUT}").text
        assert "awaiting-approval" in rollout
        assert 'id="approve"' not in rollout and 'id="abort"' not in rollout  # a viewer's
        assert 'id="start"' not in viewer.get(f"/plans/{PLAN}").text
        audit = viewer.get(f"/audit?subject={ROLLOUT}").text
        assert "rollout.create" in audit and REQUESTER in audit


def test_buttons_check_role_csrf_and_separation_of_duties(store: Store) -> None:
    with dashboard(store) as api:
        viewer, viewer_csrf = browser_login(api, "vera")
        april, csrf = browser_login(api, "april")
        oscar, oscar_csrf = browser_login(api, REQUESTER)
        assert 'id="approve"' in april.get(f"/rollouts/{ROLLOUT}").text
        before = api.counts()
        refused = [
            viewer.post(f"/rollouts/{ROLLOUT}/pause", data={"csrf_token": viewer_csrf}),
            april.post(f"/rollouts/{ROLLOUT}/approve", data={}),            # no CSRF token
            april.post(f"/rollouts/{ROLLOUT}/approve", data={"csrf_token": "forged"}),
            april.post(f"/rollouts/{ROLLOUT}/approve", data={"csrf_token": oscar_csrf}),
            oscar.post(f"/rollouts/{ROLLOUT}/approve", data={"csrf_token": oscar_csrf}),
            viewer.post(f"/plans/{PLAN}/start", data={"csrf_token": viewer_csrf}),
        ]
        assert [r.status_code for r in refused] == [403] * 6
        assert "CSRF" in refused[1].text and "approver role" in refused[4].text
        assert api.counts() == before

        busy = april.post(f"/plans/{PLAN}/start", data={"csrf_token": csrf})
        assert busy.headers["location"] == f"/plans/{PLAN}"
        assert "not started: the plan already has an unfinished rollout" in _text(
            april.get(busy.headers["location"]).text)
        # april starts a rollout of another plan from its page: she may not approve its gate
        create_plan(store, requester=REQUESTER, name="p2", include=("patch-now",),
                    policy=plan_policy_from_dict({"ha_reserve_hosts": 0,
                                                  "pinned_guests": "skip-host"}))
        started = april.post("/plans/p2/start", data={"csrf_token": csrf, "speed": "1000000"})
        assert started.status_code == 303 and started.headers["location"] != "/plans/p2"
        second = started.headers["location"].rsplit("/", 1)[1]
        assert _wait_state(store, second, ("awaiting-approval",)) == "awaiting-approval"
        own = april.post(f"/rollouts/{second}/approve", data={"csrf_token": csrf})
        page = april.get(own.headers["location"]).text
        assert "approve refused: separation of duties" in page and "april started" in page
        with store.session() as s:
            assert not s.scalars(select(RolloutGateRow.approved_by).where(
                RolloutGateRow.approved_by == "april")).all()
        aborted = oscar.post(f"/rollouts/{second}/abort", data={"csrf_token": oscar_csrf})
        assert "abort requested" in oscar.get(aborted.headers["location"]).text
        assert _wait_state(store, second, ("aborted",)) == "aborted"

        ok = april.post(f"/rollouts/{ROLLOUT}/approve",
                        data={"csrf_token": csrf, "reason": "second pair of eyes"})
        assert ok.status_code == 303
        assert "prod entry gate approved by april" in april.get(ok.headers["location"]).text
        assert _wait_state(store, ROLLOUT, ("completed", "halted")) == "completed"
        progress = _text(april.get(f"/rollouts/{ROLLOUT}/progress").text)
        status = rollout_status(store, ROLLOUT)
        total = sum(status["hosts"].values())
        assert f"{total} of {total} host(s) done" in progress and "Approve" not in progress
        assert status["findings_closed"] > 0
        timeline = rollout_timeline(store, ROLLOUT)
        assert sum(sum(w["hosts"].values()) for w in timeline["waves"]) == total
        assert min(w["start_s"] for w in timeline["waves"]) == 0.0
        assert all(w["seconds"] > 0 for w in timeline["waves"])
        assert april.get(f"/rollouts/{ROLLOUT}/gantt.png").content[:8] == PNG_MAGIC
    with store.session() as s:
        trail = s.execute(select(AuditRow.actor, AuditRow.action, AuditRow.subject)
                          .order_by(AuditRow.seq)).all()
    assert ("april", "gate.approved", "prod:entry") in trail
    assert ("april", "rollout.create", second) in trail
    assert ("oscar", "rollout.abort-requested", second) in trail
    store.close()


def test_one_time_password_must_be_changed_first(store: Store) -> None:
    with dashboard(store) as api:
        _user, once = add_user(store, "newbie", "viewer", actor="test")
        assert once
        client = httpx.Client(base_url=api.base, timeout=30)
        r = client.post("/login", data={"name": "newbie", "password": once, "next": "/fleet"})
        assert (r.status_code, r.headers["location"]) == (303, "/password")
        assert client.get("/fleet").headers["location"] == "/password"
        form = client.get("/password").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf and "one-time password" in form
        new = "a much longer passphrase 42"
        differ = client.post("/password", data={"csrf_token": csrf.group(1), "current": once,
                                                "password": new, "repeat": new + "x"})
        assert differ.status_code == 422 and "differ" in differ.text
        done = client.post("/password", data={"csrf_token": csrf.group(1), "current": once,
                                              "password": new, "repeat": new})
        assert (done.status_code, done.headers["location"]) == (303, "/")
        assert client.get("/fleet").status_code == 200
        out = client.post("/logout", data={"csrf_token": csrf.group(1)})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert client.get("/fleet").status_code == 303
    store.close()


def test_the_audit_page_pages_back_through_the_whole_trail(store: Store) -> None:
    """A compliance reader can reach every entry: newest first, a page at a time, the filter
    kept on every page, and back to the newest."""
    with store.session() as s:
        for i in range(450):
            record(s, actor="auditor-bot", action="test.entry", subject=f"thing-{i}",
                   details={"i": i})
        s.commit()
    with store.session() as s:
        every = list(s.scalars(select(AuditRow.seq).order_by(AuditRow.seq.desc())))
        mine = list(s.scalars(select(AuditRow.seq).where(AuditRow.actor == "auditor-bot")
                              .order_by(AuditRow.seq.desc())))
    with dashboard(store) as api:
        viewer, _csrf = browser_login(api, "vera")
        for query, expected in (("", every), ("?actor=auditor-bot", mine)):
            seen: list[int] = []
            page = viewer.get(f"/audit{query}").text
            assert "newest entries" not in page
            while True:
                rows = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)]
                assert 0 < len(rows) <= 200
                seen += rows
                older = re.search(r'<a id="older" href="([^"]+)"', page)
                if not older:
                    assert "oldest entry reached" in page
                    break
                link = older.group(1).replace("&amp;", "&")
                assert ("actor=auditor-bot" in link) == bool(query)
                page = viewer.get(link).text
                assert 'newest entries' in page
            # every entry once, newest first (logging in added entries to the whole trail)
            assert seen == sorted(set(seen), reverse=True) and set(expected) <= set(seen)
        assert seen == mine
        assert viewer.get("/audit?before=0").status_code == 422
