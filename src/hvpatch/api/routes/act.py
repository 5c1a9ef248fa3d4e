"""Rehearse and act: plans; rollouts with their gates, steps and evidence; controls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hvpatch.adapters.drivers.faults import FaultPlan
from hvpatch.api.bodies import ApproveIn, ControlIn, PlanIn, RolloutIn
from hvpatch.api.deps import Approver, Filter, Jobs, Operator, PathName, StoreDep, Viewer
from hvpatch.api.models import (
    ApprovalOut,
    ControlOut,
    GateOut,
    JobOut,
    RolloutOut,
    RolloutStarted,
    StepOut,
)
from hvpatch.api.pages import Page, Paging, page_of, ranked_page
from hvpatch.domain.planning.gates import DEFAULT_PLAN_POLICY, plan_policy_from_dict
from hvpatch.domain.rollout import rollout_policy_from_dict
from hvpatch.errors import InputError, Problem
from hvpatch.orchestration.runner import simulator_spec, start_rollout
from hvpatch.services.jobs import Progress
from hvpatch.services.plans import create_plan, export_plan, get_plan, list_plans, summary
from hvpatch.services.rollouts import (
    ENDS,
    approve,
    get_rollout,
    list_rollouts,
    request_control,
    rollout_gates,
    rollout_status,
    rollout_steps,
)
from hvpatch.services.timing_history import time_model_from_history

router = APIRouter(tags=["plans and rollouts"])


@router.get("/plans", response_model=Page[dict[str, Any]])
def plans(_who: Viewer, store: StoreDep, paging: Paging) -> Page[Any]:
    """Stored campaign plans, newest first, with their summaries."""
    return ranked_page(list_plans(store), paging)


@router.get("/plans/{name}", response_model=dict[str, Any])
def plan(name: PathName, _who: Viewer, store: StoreDep) -> dict[str, Any]:
    """A stored plan (by name or id): its record, and the whole plan (rings, waves, moves)."""
    meta, campaign = get_plan(store, name)
    return {**meta, "plan": export_plan(campaign)}


@router.post("/plans", status_code=202, response_model=JobOut)
def create(body: PlanIn, who: Operator, store: StoreDep, jobs: Jobs) -> dict[str, Any]:
    """Plan a campaign from the stored decisions (or for given CVEs): a background job whose
    result names the plan; an infeasible campaign fails the job with every cluster's reason."""
    policy = (plan_policy_from_dict(body.policy, "policy") if body.policy is not None
              else DEFAULT_PLAN_POLICY)

    def work(progress: Progress) -> dict[str, Any]:
        timing, calibration = time_model_from_history(store) if body.history else (None, None)
        progress({"step": "planning"})
        plan_id, campaign = create_plan(store, requester=who.name, name=body.name,
                                        include=body.include, cves=body.cves, policy=policy,
                                        timing=timing, calibration=calibration)
        return {"plan": campaign.name, "id": plan_id, "summary": summary(campaign),
                "time_model": calibration.as_dict() if calibration else None}

    return jobs.submit("plan.create", who.name, body.model_dump(), work)


@router.get("/rollouts", response_model=Page[RolloutOut])
def rollouts(_who: Viewer, store: StoreDep, paging: Paging) -> Page[Any]:
    """Every rollout, newest first, with host counts by state."""
    return ranked_page(list_rollouts(store), paging)


@router.post("/rollouts", status_code=202, response_model=RolloutStarted)
def start(body: RolloutIn, who: Operator, store: StoreDep, jobs: Jobs) -> dict[str, Any]:
    """Start executing a stored plan on the simulator; the engine runs in the background (the
    job) until the rollout completes, pauses, waits for an approval or halts."""
    policy = rollout_policy_from_dict(body.policy, "policy")
    faults = FaultPlan.from_dict(body.faults, "faults") if body.faults else None
    name = start_rollout(store, body.plan, requester=who.name, policy=policy,
                         driver=simulator_spec(speed=body.speed, faults=faults), name=body.name)
    return {"rollout": name, "job": jobs.drive(name, who.name, "start")}


@router.get("/rollouts/{name}", response_model=dict[str, Any])
def status(name: PathName, _who: Viewer, store: StoreDep) -> dict[str, Any]:
    """Where a rollout stands: state, rings and gates, waves and hosts, recent failures."""
    return rollout_status(store, name)


@router.get("/rollouts/{name}/gates", response_model=list[GateOut])
def gates(name: PathName, _who: Viewer, store: StoreDep) -> list[dict[str, Any]]:
    """Every gate of the rollout with its whole evidence and approvals."""
    return rollout_gates(store, name)


@router.get("/rollouts/{name}/steps", response_model=Page[StepOut])
def steps(name: PathName, _who: Viewer, store: StoreDep, paging: Paging, host: Filter = None
          ) -> Page[Any]:
    """Every recorded step attempt with its evidence, in order."""
    rows = rollout_steps(store, name, after=paging.after(int) or 0, limit=paging.limit + 1,
                         host=host)
    return page_of(rows, paging.limit, lambda r: r["id"])


@router.post("/rollouts/{name}/pause", response_model=ControlOut)
def pause(name: PathName, who: Operator, store: StoreDep, body: ControlIn | None = None
          ) -> dict[str, Any]:
    """Pause at the engine's next safe point."""
    return request_control(store, name, "pause", actor=who.name,
                           reason=(body or ControlIn()).reason)


@router.post("/rollouts/{name}/abort", response_model=ControlOut)
def abort(name: PathName, who: Operator, store: StoreDep, jobs: Jobs,
          body: ControlIn | None = None) -> dict[str, Any]:
    """Abort: the engine driving it stops and cleans up; when none drives it, a background job
    does the clean-up."""
    result = request_control(store, name, "abort", actor=who.name,
                             reason=(body or ControlIn()).reason)
    if not result["driven"]:
        result["job"] = jobs.drive(result["name"], who.name, "abort")
    return result


@router.post("/rollouts/{name}/resume", status_code=202, response_model=JobOut)
def resume(name: PathName, who: Operator, store: StoreDep, jobs: Jobs) -> dict[str, Any]:
    """Carry on after a pause, an approval or a crash (a background job)."""
    row = get_rollout(store, name)
    if row.state in ENDS:
        raise InputError(f"rollout {name} has ended ({row.state})",
                         [Problem("name", "nothing to resume")])
    return jobs.drive(row.name, who.name, "resume")


@router.post("/rollouts/{name}/approve", response_model=ApprovalOut)
def approve_gate(name: PathName, who: Approver, store: StoreDep, body: ApproveIn | None = None
                 ) -> dict[str, Any]:
    """Approve the gate the rollout waits for (or a ring's); separation of duties: not the
    rollout's or its plan's requester. Resume the rollout afterwards."""
    opts = body or ApproveIn()
    return approve(store, name, actor=who.name, ring=opts.ring, comment=opts.comment)
