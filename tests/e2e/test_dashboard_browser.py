"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Log in through the form, read the overview and its plots, open a host and a finding's
explanation, then approve a rollout's gate and watch its progress update in place (the page
is not reloaded) until the rollout completes. Chromium comes from the test setup
(``scripts/install-test-packages.sh``); without it the tests skip, except under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_support import PASSWORD, Api, fast_hashes  # noqa: F401
from hvpatch.adapters.store.db import Store
from hvpatch.services.catalog import page_hosts
from hvpatch.services.findings import list_findings
from web_support import ROLLOUT, dashboard, dashboard_store

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("Debian's chromium is not installed: scripts/install-test-packages.sh "
                    "installs it", pytrace=False)
    pytest.skip("Debian's chromium is not installed (scripts/install-test-packages.sh)",
                allow_module_level=True)

#: simulated seconds per second: the rollout's one wave (about 32 simulated minutes) takes
#: several seconds, long enough to be seen running, short enough for the suite
SPEED = 300.0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Api, Store]]:
    store = dashboard_store(f"sqlite:///{tmp_path / 'hvpatch.db'}", speed=SPEED)
    with dashboard(store) as api:
        yield api, store
    store.close()


def _login(browser: object, api: Api, user: str, start: str = "/") -> object:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.set_default_timeout(30_000)
    page.goto(api.base + start)
    assert "/login" in page.url
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_log_in_read_the_overview_and_open_a_host(browser: object,
                                                  site: tuple[Api, Store]) -> None:
    api, store = site
    page = _login(browser, api, "vera", start="/fleet")
    assert page.url == api.base + "/fleet"  # back where the login interrupted
    page.click("text=Overview")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#me") == "vera · viewer"
    cards = page.inner_text("#exposure")
    assert f"{len(page_hosts(store, limit=1000))}\nhosts" in cards
    plots = page.eval_on_selector_all(
        "img.plot", "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert sorted(src for src, _ in plots) == ["/charts/age.png", "/charts/burndown.png",
                                               "/charts/outcomes.png", "/charts/tenants.png"]
    assert all(width > 300 for _, width in plots), plots  # every plot loaded and drew

    host = next(h for h in page_hosts(store, limit=1000) if h["open_findings"])
    page.click("text=Fleet")
    page.click(f"#hosts >> text={host['name']}")
    page.wait_for_load_state()
    assert page.url == f"{api.base}/hosts/{host['name']}"
    assert page.inner_text("h1") == host["name"]
    assert host["version"] in page.inner_text("#version")
    table = page.inner_text("#findings")
    cves = {f["cve"] for f in list_findings(store, host=host["name"])}
    assert all(cve in table for cve in cves)
    first = sorted(cves)[0]
    page.click(f"#findings >> text={first}")
    page.wait_for_load_state()
    assert first in page.inner_text("h1") and page.locator("#verdicts tr").count() > 1
    page.close()


def test_approve_a_gate_and_watch_the_rollout_progress(browser: object,
                                                       site: tuple[Api, Store]) -> None:
    api, _store = site
    page = _login(browser, api, "april")
    page.click("#in-flight >> text=" + ROLLOUT)
    page.wait_for_load_state()
    assert page.inner_text("#state") == "awaiting-approval"
    page.fill("#controls input[name=reason]", "second pair of eyes")
    page.click("#approve")
    page.wait_for_load_state()
    assert "prod entry gate approved by april" in page.inner_text(".flash")
    page.evaluate("window.__stayed = true")   # gone if the page reloads
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = page.inner_text("#state")
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("completed", "halted", "aborted"):
            break
        page.wait_for_timeout(200)
    assert seen[-1] == "completed", seen
    assert "running" in seen, seen        # progress shown while it ran, not only the end
    assert page.evaluate("window.__stayed === true")
    counts = page.inner_text("#counts")
    total = counts.split(" of ")[1].split()[0]
    assert counts.startswith(f"{total} of {total} host(s) done")
    assert page.locator("#approve").count() == 0 and page.locator("#abort").count() == 0
    page.reload()
    gates = page.inner_text("#gates")
    assert "april" in gates and "passed" in gates
    page.close()
