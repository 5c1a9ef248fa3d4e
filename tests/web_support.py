"""Shared set-up of the dashboard tests: a populated store (demo fleet, bundled advisories,
findings, decisions) with a plan and a rollout that waits for its entry gate's approval, and
the dashboard's server on it (:func:`hvpatch.web.create_server`, a real HTTP server).

The plan and the rollout are requested by ``oscar`` (the operator of
:data:`api_support.ROLE_USERS`), so that ``april`` (approver) and ``ada`` (admin) may approve
and he may not.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx

from api_support import PASSWORD, Api, populate, running
from hvpatch.adapters.store.db import Store
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.plans import create_plan
from hvpatch.web import create_server

REQUESTER = "oscar"
PLAN = "p1"
ROLLOUT = "r1"


def dashboard_store(url: str, *, speed: float = 1e6) -> Store:
    """A populated store with plan :data:`PLAN` (the patch-now hosts, one prod ring whose entry
    needs an approval) and rollout :data:`ROLLOUT` driven until it waits for that approval;
    ``speed`` is the simulator's (simulated seconds per second) for the rest of the run."""
    store = Store(url)
    populate(store)
    create_plan(store, requester=REQUESTER, name=PLAN, include=("patch-now",),
                policy=plan_policy_from_dict({"ha_reserve_hosts": 0,
                                              "pinned_guests": "skip-host"}))
    start_rollout(store, PLAN, requester=REQUESTER, name=ROLLOUT, policy=RolloutPolicy(),
                  driver=simulator_spec(speed=speed))
    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        state = pool.submit(lambda: asyncio.run(drive(store, ROLLOUT, heartbeat_s=0.2))
                            ).result()
    assert state == "awaiting-approval", state
    return store


@contextmanager
def dashboard(store: Store) -> Iterator[Api]:
    """The dashboard and the API on ``store``, with a user and token per role."""
    with running(store, create_server) as api:
        yield api


def browser_login(api: Api, user: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A cookie client logged in through the dashboard's form, and its CSRF token."""
    client = httpx.Client(base_url=api.base, timeout=30)
    r = client.post("/login", data={"name": user, "password": password})
    assert r.status_code == 303, r.text
    page = client.get("/campaigns").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page[:500]
    return client, token.group(1)
