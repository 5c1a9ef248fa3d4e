"""The rollout engine against every fault the simulator injects, and under operator control.

Each case runs a simulated rollout of a small three-ring plan (test: 3 AHV hosts, staging: 4 Xen
hosts, prod: 5 ESXi hosts) with one kind of fault and checks the documented outcome -- retried
then done, host rolled back, host failed and named as needing a human, campaign halted (failure
budget spent), paused (first failure in a ring the policy names), halted before the next host
gets a withdrawn release -- and, in every ending, the cleanup a user relies on: no reachable
host left in maintenance, every guest that ran before running, the cluster settings the rollout
changed back to what they were, and an intact audit trail. Then pause, abort, resume and the
approval flow with separation of duties.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from hvpatch.adapters.drivers.faults import Fault, FaultPlan
from hvpatch.adapters.drivers.simulator import SimulatorDriver
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    GuestRow,
    HostRow,
    RolloutStepRow,
    WithdrawnReleaseRow,
)
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.errors import InputError
from hvpatch.orchestration.runner import build_driver, drive, simulator_spec, start_rollout
from hvpatch.services.audit import list_entries, verify_store
from hvpatch.services.incidents import close_incident, open_incident
from hvpatch.services.rollouts import approve, get_rollout, request_control, rollout_status
from rollout_support import FAST_RINGS, make_plan

# the plan of make_plan(hosts=16, seed=2): rings and hosts in the order they are patched
TEST = ["zrh1-ahv-01-h01", "zrh1-ahv-01-h03", "zrh1-ahv-01-h02"]
STAGING = ["zrh1-xen-01-h04", "zrh1-xen-01-h01", "zrh1-xen-01-h02", "zrh1-xen-01-h03"]
PROD = ["zrh1-esx-01-h03", "zrh1-esx-01-h04", "zrh1-esx-01-h02", "zrh1-esx-01-h01",
        "zrh1-esx-01-h05"]
ALL = TEST + STAGING + PROD
PINNED = "zrh1-k8s-0122"  # the plan shuts it down on zrh1-ahv-01-h03 and restarts it there
SPEED = 1e6


def rings(**budgets: int) -> dict[str, Any]:
    """A plan policy: fast soaks, the given failure budgets (default 0), no approval."""
    spec: dict[str, Any] = {r: dict(v) for r, v in FAST_RINGS.items()}
    spec["prod"] = {"soak_hours": 0.0, "approval": False, "max_failures": 0}
    for ring, n in budgets.items():
        spec[ring]["max_failures"] = n
    return {"rings": spec}


@dataclass
class Run:
    """A rollout of the small plan with its simulator, and the platform's state before it."""

    store: Store
    name: str
    driver: SimulatorDriver
    before: dict[str, Any]
    settings: dict[str, dict[str, str]]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def drive(self, on_event: Callable[[str, Mapping[str, Any]], None] | None = None) -> str:
        def record(kind: str, data: Mapping[str, Any]) -> None:
            self.events.append((kind, dict(data)))
            if on_event is not None:
                on_event(kind, data)

        return asyncio.run(drive(self.store, self.name, on_event=record, heartbeat_s=0.05))

    def status(self) -> dict[str, Any]:
        return rollout_status(self.store, self.name)

    def hosts(self) -> dict[str, dict[str, Any]]:
        """host -> its row in ``rollout status`` (state, step, attempts, error)."""
        return {h["host"]: h for r in self.status()["rings"] for w in r["waves"]
                for h in w["hosts"]}

    def sim(self) -> dict[str, Any]:
        return self.driver.snapshot()

    def assert_cleaned_up(self, *, unreachable: tuple[str, ...] = ()) -> dict[str, Any]:
        """What every ending must leave; returns the platform's state."""
        after = self.sim()
        for host, h in after["hosts"].items():
            if host in unreachable:
                assert not h["up"], f"{host} was expected not to answer"
                continue
            assert h["up"] or h["ready_at"] is not None, f"{host} is down"
            assert not h["maintenance"], f"{host} was left in maintenance mode"
        assert set(after["guests"]) == set(self.before["guests"]), "a guest was lost"
        stopped = sorted(g for g, v in self.before["guests"].items()
                         if v["running"] and not after["guests"][g]["running"])
        assert stopped == [], f"guests that ran before are stopped now: {stopped}"
        with self.store.session() as s:
            inventory = dict(s.execute(select(GuestRow.name, HostRow.name).join(
                HostRow, HostRow.id == GuestRow.host_id)).all())
        misplaced = {g: (inventory.get(g), v["host"]) for g, v in after["guests"].items()
                     if inventory.get(g) != v["host"]}
        assert misplaced == {}, f"the inventory differs from the platform: {misplaced}"
        for cluster, settings in self.settings.items():
            assert asyncio.run(self.driver.cluster_settings(cluster)) == settings, cluster
        st = self.status()
        assert st["lease"]["owner"] == "", "the engine kept its lease"
        assert "in-progress" not in st["hosts"], st["hosts"]
        verdict = verify_store(self.store)
        assert verdict.ok, verdict.reason
        return after


def simulator(store: Store, name: str) -> SimulatorDriver:
    """The rollout's simulator, rebuilt from its stored spec as ``rollout resume`` does."""
    driver, _ = build_driver(store, get_rollout(store, name).driver)
    assert isinstance(driver, SimulatorDriver)
    return driver


def start(store: Store, *, faults: Sequence[Fault] = (),
          plan_policy: dict[str, Any] | None = None, **policy: Any) -> Run:
    make_plan(store, hosts=16, seed=2, policy=plan_policy or rings())
    name = start_rollout(store, "p1", requester="alice",
                         policy=RolloutPolicy(retry_backoff_s=1, **policy),
                         driver=simulator_spec(speed=SPEED,
                                               faults=FaultPlan(7, tuple(faults))))
    driver = simulator(store, name)
    before = driver.snapshot()
    clusters = sorted({h["cluster"] for h in before["hosts"].values()})
    settings = {c: asyncio.run(driver.cluster_settings(c)) for c in clusters}
    assert all(s["drs_automation"] == "fully-automated" for s in settings.values())
    return Run(store, name, driver, before, settings)


def assert_patched_once(run: Run, hosts: list[str], after: dict[str, Any]) -> None:
    for host in hosts:
        h = after["hosts"][host]
        assert h["applies"] == 1 and not h["pending"], (host, h)
        assert h["components"] != run.before["hosts"][host]["components"], host


def assert_untouched(run: Run, hosts: list[str], after: dict[str, Any]) -> None:
    for host in hosts:
        assert after["hosts"][host]["applies"] == 0, host
        assert after["hosts"][host]["components"] == run.before["hosts"][host]["components"]


# --- the fault matrix ---------------------------------------------------------------------------


def test_transient_faults_of_every_kind_are_retried_and_the_hosts_end_done(store: Store) -> None:
    once = {
        "install-fails": TEST[0], "migration-fails": TEST[1], "migration-timeout": STAGING[0],
        "driver-unresponsive": PROD[0],
    }
    run = start(store, faults=[Fault(kind, hosts=(host,), times=1, delay_s=5)
                               for kind, host in once.items()])
    assert run.drive() == "completed"
    hosts = run.hosts()
    assert {h["state"] for h in hosts.values()} == {"done"}
    for kind, host in once.items():
        assert hosts[host]["attempts"] == 1, (kind, hosts[host])
    retried = {d["host"] for k, d in run.events if k == "retry"}
    assert retried == set(once.values())
    after = run.assert_cleaned_up()
    assert_patched_once(run, ALL, after)
    assert all(h["rollbacks"] == 0 for h in after["hosts"].values())


@dataclass(frozen=True)
class Case:
    """A fault, the policies, and what the user must see after the rollout stops."""

    faults: tuple[Fault, ...]
    state: str                          # the rollout's end state
    host: str                           # the host the fault hits
    host_state: str                     # its end state
    reason: tuple[str, ...]             # words the rollout's reason contains
    applied: bool                       # the host ran the target at some point
    rolled_back: bool = False
    unreachable: bool = False
    done: tuple[str, ...] = ()          # hosts that end done (patched once)
    plan_policy: dict[str, Any] = field(default_factory=rings)
    policy: dict[str, Any] = field(default_factory=dict)


CASES = {
    "install-fails-permanent-budget-spent": Case(
        (Fault("install-fails", hosts=(TEST[0],), times=None),), "halted", TEST[0], "failed",
        ("failure budget of 0", TEST[0], "apply"), applied=False),
    "no-boot-once-rolled-back-budget-spent": Case(
        (Fault("no-boot", hosts=(TEST[0],), times=1),), "halted", TEST[0], "rolled-back",
        ("failure budget of 0", "did not come back"), applied=True, rolled_back=True),
    "no-boot-always-needs-a-human": Case(
        (Fault("no-boot", hosts=(TEST[0],), times=None),), "halted", TEST[0], "failed",
        ("failure budget", f"{TEST[0]} does not answer: it needs a human"), applied=True,
        unreachable=True),
    "migration-fails-permanent": Case(
        (Fault("migration-fails", hosts=(TEST[0],), times=None),), "halted", TEST[0], "failed",
        ("failure budget of 0", "migration of guest"), applied=False),
    "migration-fails-permanent-host-with-a-guest-to-shut-down": Case(
        (Fault("migration-fails", hosts=(TEST[1],), times=None),), "halted", TEST[1], "failed",
        ("failure budget of 0", "migration of guest"), applied=False, done=(TEST[0],)),
    "migration-of-one-guest-fails-while-another-is-shut-down": Case(
        (Fault("migration-fails", hosts=(TEST[1],), guests=("zrh1-vdi-0118",), times=None),),
        "completed", TEST[1], "failed", ("11 host(s) patched",), applied=False,
        done=tuple(h for h in ALL if h != TEST[1]), plan_policy=rings(test=1)),
    "migration-timeout-permanent": Case(
        (Fault("migration-timeout", hosts=(TEST[0],), times=None, timeout_s=600),), "halted",
        TEST[0], "failed", ("timed out after 600 s",), applied=False),
    "guest-crash-fails-the-host-keeps-it-patched": Case(
        (Fault("guest-crash", hosts=(TEST[1],), guests=(PINNED,), times=1),), "halted",
        TEST[1], "failed", ("failure budget of 0", "guests-running", PINNED), applied=True,
        done=(TEST[0],)),
    "perf-regression-rolled-back-budget-spent": Case(
        (Fault("perf-regression", hosts=(TEST[0],), factor=3.0),), "halted", TEST[0],
        "rolled-back", ("failure budget of 0", "performance-baseline"), applied=True,
        rolled_back=True),
    "services-unhealthy-pauses-first-failure": Case(
        (Fault("services-unhealthy", hosts=(TEST[0],)),), "paused", TEST[0], "rolled-back",
        ("first failure in ring test", "services-healthy"), applied=True, rolled_back=True,
        plan_policy=rings(test=1), policy={"pause_on_first_failure": ("test",)}),
    "driver-unresponsive-always-needs-a-human": Case(
        (Fault("driver-unresponsive", hosts=(TEST[0],), times=None),), "halted", TEST[0],
        "failed", ("failure budget of 0", f"{TEST[0]} does not answer: it needs a human"),
        applied=False),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_fault_outcome_and_cleanup(store: Store, case: Case) -> None:
    run = start(store, faults=list(case.faults), plan_policy=case.plan_policy, **case.policy)
    assert run.drive() == case.state
    st = run.status()
    assert st["state"] == case.state
    for words in case.reason:
        assert words in st["reason"], (words, st["reason"])
    hosts = run.hosts()
    assert hosts[case.host]["state"] == case.host_state, hosts[case.host]
    assert hosts[case.host]["error"], "a failed host says why"
    after = run.assert_cleaned_up(unreachable=(case.host,) if case.unreachable else ())
    h = after["hosts"][case.host]
    assert h["applies"] == (1 if case.applied else 0), h
    if case.rolled_back:
        assert h["rollbacks"] == 1 and h["components"] == run.before["hosts"][case.host][
            "components"], h
    elif case.applied and not case.unreachable:
        assert h["rollbacks"] == 0 and h["components"] != run.before["hosts"][case.host][
            "components"], "a host failed after a good patch is not rolled back"
    assert_patched_once(run, list(case.done), after)
    assert {n for n, x in hosts.items() if x["state"] == "done"} == set(case.done)
    untouched = [n for n in ALL if n not in case.done and n != case.host]
    assert_untouched(run, untouched, after)
    if case.state == "paused":  # a human looked: resume carries on past the failed host
        assert run.drive() == "completed"
        after = run.assert_cleaned_up()
        assert_patched_once(run, [n for n in ALL if n != case.host], after)
        assert after["hosts"][case.host]["applies"] == 1


def test_withdrawn_release_halts_before_the_next_host_gets_it(store: Store) -> None:
    run = start(store, faults=[Fault("withdraw-release", after_applies=1)])
    assert run.drive() == "halted"
    st = run.status()
    assert "the target release was withdrawn" in st["reason"], st["reason"]
    with store.session() as s:
        withdrawn = s.execute(select(WithdrawnReleaseRow.component,
                                     WithdrawnReleaseRow.version)).all()
        applies = s.scalars(select(RolloutStepRow.host).where(
            RolloutStepRow.step == "apply")).all()
    assert [tuple(w) for w in withdrawn] == [("ahv", "20230302.102002")]
    after = run.assert_cleaned_up()
    # the first host got it (the apply that withdrew it) and finished; no other host got it
    assert_patched_once(run, [TEST[0]], after)
    assert set(applies) == {TEST[0]}
    assert_untouched(run, ALL[1:], after)
    hosts = run.hosts()
    assert hosts[TEST[0]]["state"] == "done"
    assert hosts[TEST[1]]["state"] == "cancelled", hosts[TEST[1]]


# --- operator control ---------------------------------------------------------------------------


def _when(run: Run, host: str, step: str, action: str) -> Callable[[str, Mapping[str, Any]], None]:
    """An event callback that requests ``action`` once ``host`` starts ``step``."""
    asked: list[str] = []

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "step" and data["host"] == host and data["step"] == step and not asked:
            asked.append(action)
            request_control(run.store, run.name, action, actor="bob", reason="look first")

    return on_event


def test_pause_while_running_then_resume_patches_every_host_once(store: Store) -> None:
    run = start(store)
    assert run.drive(_when(run, STAGING[0], "precheck", "pause")) == "paused"
    st = run.status()
    assert st["reason"] == "paused by an operator" and st["control"] == ""
    hosts = run.hosts()
    assert set(st["hosts"]) <= {"done", "pending"}, st["hosts"]
    done = [n for n in ALL if hosts[n]["state"] == "done"]
    assert set(TEST) <= set(done) and PROD[0] not in done
    after = run.assert_cleaned_up()
    assert_patched_once(run, done, after)
    assert_untouched(run, [n for n in ALL if n not in done], after)

    assert run.drive() == "completed"
    after = run.assert_cleaned_up()
    assert_patched_once(run, ALL, after)
    assert run.status()["hosts"] == {"done": len(ALL)}
    actions = [e["action"] for e in list_entries(store, limit=10_000)]
    assert actions.count("rollout.pause-requested") == 1
    assert actions.count("rollout.paused") == 1 and actions[-1] == "rollout.completed"


def test_abort_while_running_ends_the_rollout_cleaned_up(store: Store) -> None:
    run = start(store)
    assert run.drive(_when(run, STAGING[0], "precheck", "abort")) == "aborted"
    st = run.status()
    assert st["state"] == "aborted" and st["finished"] is not None
    hosts = run.hosts()
    done = [n for n in ALL if hosts[n]["state"] == "done"]
    assert set(TEST) <= set(done) and PROD[0] not in done
    assert set(st["hosts"]) <= {"done", "cancelled", "pending"}, st["hosts"]
    after = run.assert_cleaned_up()
    assert_patched_once(run, done, after)
    assert_untouched(run, [n for n in ALL if n not in done], after)
    # an aborted rollout stays aborted: resuming it does nothing
    assert run.drive() == "aborted"
    with pytest.raises(InputError, match="has ended"):
        request_control(store, run.name, "pause", actor="bob")


def test_approval_needs_someone_other_than_the_requester(store: Store) -> None:
    policy = rings()
    policy["rings"]["prod"]["approval"] = True
    run = start(store, plan_policy=policy)
    assert run.drive() == "awaiting-approval"
    st = run.status()
    assert "approval" in st["reason"]
    staging = next(r for r in st["rings"] if r["ring"] == "staging")
    assert staging["exit_gate"]["state"] == "awaiting-approval"
    hosts = run.hosts()
    assert [n for n in ALL if hosts[n]["state"] == "done"] == TEST + STAGING
    after = run.assert_cleaned_up()
    assert_untouched(run, PROD, after)

    for who in ("alice", " ALICE "):
        with pytest.raises(InputError, match="separation of duties"):
            approve(store, run.name, actor=who)
    assert run.drive() == "awaiting-approval"  # nobody approved: it still waits
    approved = approve(store, run.name, actor="bob", comment="staging looks fine")
    assert (approved["ring"], approved["gate"], approved["approved_by"]) == (
        "staging", "exit", "bob")
    assert run.drive() == "completed"
    after = run.assert_cleaned_up()
    assert_patched_once(run, ALL, after)
    st = run.status()
    staging = next(r for r in st["rings"] if r["ring"] == "staging")
    assert staging["exit_gate"]["state"] == "passed"
    assert staging["exit_gate"]["approved_by"] == "bob"
    approvals = [e for e in list_entries(store, action="gate.approved")]
    assert [(e["actor"], e["subject"]) for e in approvals] == [("bob", "staging:exit")]


def test_an_open_incident_holds_the_ring_gate_until_it_is_closed(store: Store) -> None:
    run = start(store)
    incident = open_incident(store, "storage latency alarm in zrh1", "carol")
    assert run.drive() == "paused"
    st = run.status()
    assert "incident" in st["reason"]
    assert next(r for r in st["rings"] if r["ring"] == "test")["exit_gate"]["state"] == "blocked"
    hosts = run.hosts()
    assert [n for n in ALL if hosts[n]["state"] == "done"] == TEST  # the next ring waits
    after = run.assert_cleaned_up()
    assert_untouched(run, STAGING + PROD, after)
    close_incident(store, incident, "carol")
    assert run.drive() == "completed"
    assert_patched_once(run, ALL, run.assert_cleaned_up())
