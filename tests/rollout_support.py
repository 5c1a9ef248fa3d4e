"""Shared set-up of rollout tests: a generated fleet, a stored multi-ring plan, a simulator.

``make_plan`` imports a generated fleet and plans a campaign that bumps every host's main
component (the ESXi build, the Windows build, QEMU, ...) to the next version, so a rollout has
real work on every platform the generator makes, in every ring.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import PlanRow
from hvpatch.adapters.store.plan_codec import plan_to_dict
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.planning.campaign import InfeasibleCampaign, build_campaign
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.targets import TargetChoice, product_line
from hvpatch.domain.versions import parse_version
from hvpatch.errors import VersionParseError
from hvpatch.services.inventory import import_fleet, load_fleet

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FAST_RINGS = {r: {"soak_hours": 1.0, "max_failures": 0} for r in ("test", "dev", "staging")}


def bump(version: str) -> str:
    """The version with its last number raised by one."""
    m = list(re.finditer(r"\d+", version))[-1]
    return version[:m.start()] + str(int(m.group()) + 1) + version[m.end():]


def make_plan(store: Store, *, hosts: int = 24, seed: int = 3, guests_per_host: float = 6,
              policy: dict[str, Any] | None = None, name: str = "p1",
              requester: str = "alice") -> CampaignPlan:
    """Import a generated fleet and store a plan that patches every host it can."""
    import_fleet(store, generate_fleet(hosts, seed, guests_per_host=guests_per_host),
                 source="test", sha256="")
    fleet = load_fleet(store)
    targets = {}
    for h in fleet.hosts():
        c = h.software.components()[0]
        new = bump(c.version)
        try:
            parse_version(c.scheme, new)
        except VersionParseError:
            continue
        line = product_line(h) or h.family.value
        targets[h.name] = TargetChoice(line, f"{c.name} {new}", new, "test", ((c.name, new),))
    spec = {"ha_reserve_hosts": 0, "pinned_guests": "shutdown",
            "rings": dict(FAST_RINGS, prod={"soak_hours": 0.0, "approval": False}),
            **(policy or {})}
    while True:  # generated clusters can be infeasible (a lone CPU group): leave them out
        try:
            plan = build_campaign(fleet, targets, (), plan_policy_from_dict(spec), name=name,
                                  created=NOW, emergency=False, requester=requester)
            break
        except InfeasibleCampaign as exc:
            bad = set(exc.clusters)
            targets = {h: t for h, t in targets.items()
                       if next(x.cluster for x in fleet.hosts() if x.name == h) not in bad}
    with store.session() as s:
        s.add(PlanRow(name=name, created=NOW, requester=requester, scope="test",
                      emergency=False, status="draft", summary={}, data=plan_to_dict(plan)))
        s.commit()
    return plan
