"""The demo's last act: the planned campaign rolled out through the simulator, one injected
failure handled in plain sight, the approval gate passed by a second person, the audit chain
verified at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hvpatch.adapters.drivers.faults import FaultPlan
from hvpatch.adapters.store.db import Store
from hvpatch.cli.render import console
from hvpatch.cli.rollout import print_event
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.audit import verify_store
from hvpatch.services.rollouts import approve, rollout_status

#: simulated seconds per real second: a campaign of hours takes seconds
DEMO_SPEED = 36_000.0
APPROVER = "demo-approver"


def demo_faults(plan: CampaignPlan) -> FaultPlan:
    """One transient install failure on the campaign's first host."""
    first = plan.waves()[0].hosts[0].host
    return FaultPlan.from_dict({"seed": 7, "faults": [
        {"kind": "install-fails", "hosts": [first], "times": 1}]}, "demo faults")


def run_demo_rollout(store: Store, plan: CampaignPlan, *, show: bool) -> dict[str, Any]:
    """Roll ``plan`` out on the simulator (approving gates as a second person); the outcome."""
    faults = demo_faults(plan)
    name = start_rollout(store, plan.name, requester="demo", name="demo-rollout",
                         policy=RolloutPolicy(retry_backoff_s=120.0),
                         driver=simulator_spec(speed=DEMO_SPEED, faults=faults))

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if show:
            print_event(kind, data)

    approvals: list[dict[str, Any]] = []
    final = asyncio.run(drive(store, name, on_event=on_event, heartbeat_s=0.2))
    while final == "awaiting-approval" and len(approvals) < 10:
        got = approve(store, name, actor=APPROVER, comment="demo: second pair of eyes")
        approvals.append(got)
        if show:
            console.print(f"  [green]approved[/] by {APPROVER} (the requester 'demo' may not "
                          f"approve its own campaign): {got['gate']} gate of ring {got['ring']}",
                          highlight=False)
        final = asyncio.run(drive(store, name, on_event=on_event, heartbeat_s=0.2))
    status = rollout_status(store, name)
    audit = verify_store(store)
    if show:
        console.print(f"{status['findings_closed']} findings closed: verification re-read each "
                      "host's live build and re-matched the advisories (hvpatch findings list "
                      "--state closed)", highlight=False)
    return {"name": name, "state": final, "hosts": status["hosts"], "steps": status["steps"],
            "findings_closed": status["findings_closed"],
            "injected": faults.to_dict()["faults"], "approvals": approvals,
            "failures": status["recent_failures"],
            "audit": {"ok": audit.ok, "entries": audit.entries, "reason": audit.reason}}
