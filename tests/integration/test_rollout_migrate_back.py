"""The engine's optional migrate-back: with a plan whose policy returns evacuated guests to their
own hosts, every guest the plan moves back ends where it started -- on the simulator and in the
inventory -- each wave's moves are recorded as one step with its evidence, and a guest whose
original host failed stays on the patched host the plan proved safe.

(When the failed host is in an earlier wave, its guests stay on a host a later wave evacuates;
that host's precheck then finds guests the plan does not move and stops with "the plan is out
of date": safe, and counted against the ring's budget.)"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.drivers.faults import Fault, FaultPlan
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import GuestRow, HostRow, RolloutStepRow, SimGuestRow
from hvpatch.domain.planning.model import MoveKind
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.audit import verify_store
from hvpatch.services.rollouts import rollout_status
from rollout_support import FAST_RINGS, make_plan

POLICY: dict[str, Any] = {"migrate_back": True, "rings": {
    **{r: dict(v, max_failures=1) for r, v in FAST_RINGS.items()},
    "prod": {"soak_hours": 0.0, "approval": False, "max_failures": 1}}}


def _placement(store: Store) -> tuple[dict[str, str], dict[str, tuple[str, bool]]]:
    with store.session() as s:
        inventory = dict(s.execute(select(GuestRow.name, HostRow.name)
                                   .join(HostRow, HostRow.id == GuestRow.host_id)).all())
        sim = {g.name: (g.host, g.running) for g in s.scalars(select(SimGuestRow))}
    return inventory, sim


def _run(store: Store, faults: FaultPlan | None = None) -> tuple[str, Any]:
    plan = make_plan(store, hosts=16, seed=2, policy=POLICY)
    name = start_rollout(store, plan.name, requester="alice", policy=RolloutPolicy(),
                         driver=simulator_spec(speed=1e6, faults=faults))
    return asyncio.run(drive(store, name, heartbeat_s=0.05)), (plan, name)


def test_every_guest_moved_back_ends_on_its_own_host(store: Store) -> None:
    state, (plan, name) = _run(store)
    assert state == "completed", rollout_status(store, name)["reason"]
    back = [m for m in plan.moves() if m.kind is MoveKind.MIGRATE_BACK]
    assert len(back) >= 10, "the plan returns guests after their wave"
    evacuated = {m.guest: m.source for m in plan.moves() if m.kind is MoveKind.EVACUATE}
    inventory, sim = _placement(store)
    for m in back:
        assert m.destination == evacuated[m.guest]   # back to where it was evacuated from
        assert sim[m.guest][0] == m.destination, m   # on the platform
        assert inventory[m.guest] == m.destination, m  # and in the inventory
    assert all(sim[m.guest][1] for m in back)
    with store.session() as s:
        steps = list(s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.step.like("migrate-back:%"), RolloutStepRow.state == "finished")))
    moved = [tuple(m) for st in steps for m in st.evidence["moved"]]
    assert sorted(moved) == sorted((m.guest, m.destination) for m in back)
    assert len({st.step for st in steps}) == len(steps)   # one step per wave, never repeated
    assert verify_store(store).ok


def test_a_guest_whose_host_failed_stays_on_the_patched_host(store: Store) -> None:
    plan = make_plan(store, hosts=16, seed=2, policy=POLICY)
    back = [m for m in plan.moves() if m.kind is MoveKind.MIGRATE_BACK]
    # the last wave of the first ring: the hosts its guests went to are patched by then
    last = plan.rings[0].waves[-1]
    failed = last.hosts[0].host
    assert all(m.destination == failed for m in last.moves if m.kind is MoveKind.MIGRATE_BACK)
    name = start_rollout(store, plan.name, requester="alice", policy=RolloutPolicy(),
                         driver=simulator_spec(speed=1e6, faults=FaultPlan(0, (
                             Fault("install-fails", hosts=(failed,), times=None),))))
    state = asyncio.run(drive(store, name, heartbeat_s=0.05))
    status = rollout_status(store, name)
    hosts = {h["host"]: h for r in status["rings"] for w in r["waves"] for h in w["hosts"]}
    assert hosts[failed]["state"] == "failed", (state, status["reason"])
    _inventory, sim = _placement(store)
    stayed = [m for m in back if m.destination == failed]
    assert stayed and all(sim[m.guest][0] != failed for m in stayed)
    assert all(sim[m.guest][1] for m in stayed)   # still running, on a patched host
    with store.session() as s:
        kept = [g for st in s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.step.like("migrate-back:%"), RolloutStepRow.state == "finished"))
            for g in st.evidence.get("kept", [])]
    assert sorted(kept) == sorted(m.guest for m in stayed)
    patched = {h for h, row in hosts.items() if row["state"] == "done"}
    assert all(sim[m.guest][0] in patched for m in stayed)
    assert state == "completed"   # one failure is within the ring's budget of 1
