"""Planning use cases: plan a campaign from the stored decisions, keep it, show, diff, export.

A campaign targets the open findings of hosts decided *patch now* or *patch through the rings*
(findings an approved exception defers are left out), or the findings of given CVEs. Target
releases are selected per product line, the fleet is planned ring by ring and cluster by
cluster, and the plan is stored under a name. An infeasible campaign is not stored: the error
lists every cluster's explanation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hvpatch.adapters.plots.gantt import render_gantt
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRiskRow, FindingRow, HostRiskRow, HostRow, PlanRow
from hvpatch.adapters.store.plan_codec import plan_from_dict, plan_to_dict
from hvpatch.adapters.yamlfile import load_yaml
from hvpatch.domain.planning.calibration import Calibration
from hvpatch.domain.planning.campaign import build_campaign
from hvpatch.domain.planning.gates import DEFAULT_PLAN_POLICY, PlanPolicy, plan_policy_from_dict
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.targets import TargetedFinding, select_targets
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.errors import InputError, NotFoundError, PlanError, Problem
from hvpatch.services.inventory import load_fleet
from hvpatch.services.timing_history import SUMMARY_KEY, time_model_record

DECISIONS = ("patch-now", "patch-through-rings", "mitigate-first")


def load_plan_policy(path: Path | None) -> PlanPolicy:
    """The plan policy in ``path`` (validated), or the defaults."""
    return plan_policy_from_dict(load_yaml(path), str(path)) if path else DEFAULT_PLAN_POLICY


def targeted_findings(store: Store, include: Iterable[str], cves: Iterable[str] | None,
                      ) -> tuple[list[TargetedFinding], bool]:
    """The open findings a campaign targets -- those of the given CVEs, else those of hosts
    decided one of ``include`` (deferred findings left out) -- and whether any host is decided
    patch-now (an emergency)."""
    wanted = {c.upper() for c in cves} if cves else None
    allowed = set(include)
    with store.session() as s:
        rows = s.execute(
            select(HostRow.name, FindingRow.cve_id, FindingRow.component, FindingRow.installed,
                   FindingRow.fixed_in, HostRiskRow.decision, FindingRiskRow.deferred_by)
            .join(HostRow, HostRow.id == FindingRow.host_id)
            .outerjoin(HostRiskRow, HostRiskRow.host_id == FindingRow.host_id)
            .outerjoin(FindingRiskRow, FindingRiskRow.finding_id == FindingRow.id)
            .where(FindingRow.state == "open")
            .order_by(HostRow.name, FindingRow.cve_id, FindingRow.component)).all()
    if wanted is None and rows and all(r[5] is None for r in rows):
        raise InputError("no risk decisions yet", [Problem(
            "hvpatch assess", "run `hvpatch assess` first, or plan for given CVEs with --cve")])
    out, emergency = [], False
    for host, cve, component, installed, fixed_in, decision, deferred in rows:
        if wanted is not None:
            if cve.upper() not in wanted:
                continue
        elif decision not in allowed or deferred is not None:
            continue
        out.append(TargetedFinding(host, cve, component, installed, fixed_in))
        emergency = emergency or decision == "patch-now"
    return out, emergency


def create_plan(store: Store, *, requester: str, name: str | None = None,
                include: Iterable[str] = ("patch-now", "patch-through-rings"),
                cves: Iterable[str] | None = None, policy: PlanPolicy = DEFAULT_PLAN_POLICY,
                overrides: dict[str, str] | None = None,
                now: datetime | None = None, timing: TimeModel | None = None,
                calibration: Calibration | None = None) -> tuple[int, CampaignPlan]:
    """Plan and store a campaign; raise PlanError (every cluster's reason) when none is safe.

    ``timing`` is the time model (default: the built-in one); ``calibration``, when it refined
    ``timing`` from history, adds a note saying so. The stored summary keeps the migration rate
    the plan assumed, which later calibrations compare recorded evacuations with.
    """
    now = now or datetime.now(UTC)
    bad = sorted(set(include) - set(DECISIONS))
    if bad:
        raise InputError("unknown decision", [Problem("--include", f"{bad[0]!r} is not one of "
                                                      f"{', '.join(DECISIONS)}")])
    name = name or f"campaign-{now:%Y%m%d-%H%M%S}"
    with store.session() as s:
        if s.scalar(select(PlanRow.id).where(PlanRow.name == name)) is not None:
            raise InputError("the plan name is taken", [Problem("--name", f"a plan named "
                                                                f"{name!r} exists")])
    targeted, emergency = targeted_findings(store, include, cves)
    if not targeted:
        raise InputError("nothing to plan", [Problem(
            "--cve" if cves else "--include",
            "no open finding matches" + (f" {', '.join(cves)}" if cves else
                                         f" hosts decided {', '.join(include)}"))])
    fleet = load_fleet(store)
    targets, skipped = select_targets(fleet, targeted, overrides or {})
    model = timing or TimeModel()
    plan = build_campaign(fleet, targets, skipped, policy, name=name, created=now,
                          emergency=emergency, requester=requester, findings=len(targeted),
                          timing=model)
    if calibration is not None and calibration.refined:
        plan = replace(plan, notes=(*plan.notes, f"time model {calibration.brief()}"))
    if not plan.waves():
        reasons = sorted({f"{s.host}: {s.reason}" for s in plan.skipped
                          if s.reason != "no targeted finding on this host"})
        raise PlanError("no targeted host can be patched; nothing was stored\n"
                        + "\n".join(f"  - {r}" for r in reasons))
    scope = (f"cves={','.join(sorted({c.upper() for c in cves}))}" if cves
             else f"decisions={','.join(sorted(include))}")
    with store.session() as s:
        row = PlanRow(name=name, created=now, requester=requester, scope=scope,
                      emergency=plan.emergency, status="draft",
                      summary={**summary(plan),
                               SUMMARY_KEY: time_model_record(model, calibration)},
                      data=plan_to_dict(plan))
        s.add(row)
        s.commit()
        return row.id, plan


def summary(plan: CampaignPlan) -> dict[str, Any]:
    """Counts a person reads first."""
    waves = plan.waves()
    moves = plan.moves()
    hosts = sum(len(w.hosts) for w in waves)
    evac = {m.guest for m in moves if m.kind.value == "evacuate"}
    return {"rings": len(plan.rings), "waves": len(waves), "hosts": hosts,
            "skipped": len(plan.skipped), "moves": len(moves),
            "migrations_per_evacuated_guest": round(
                sum(1 for m in moves if m.kind.value in ("evacuate", "migrate-back"))
                / len(evac), 3) if evac else 0.0,
            "hours": round(plan.seconds / 3600, 2), "emergency": plan.emergency,
            "targets": dict(plan.targets), "findings": plan.findings}


def get_plan(store: Store, ref: str) -> tuple[dict[str, Any], CampaignPlan]:
    """A stored plan by name or id: its record and the plan."""
    with store.session() as s:
        q = select(PlanRow)
        by_id = ref.isascii() and ref.isdigit() and len(ref) <= 9
        q = q.where(PlanRow.id == int(ref)) if by_id else q.where(PlanRow.name == ref)
        row = s.scalars(q).first()
        if row is None:
            names = list(s.scalars(select(PlanRow.name).order_by(PlanRow.id.desc()).limit(5)))
            raise NotFoundError(f"no plan {ref!r}" + (f"; recent plans: {', '.join(names)}"
                                                      if names else "; create one with "
                                                      "`hvpatch plan create`"))
        meta = {"id": row.id, "name": row.name, "created": row.created,
                "requester": row.requester, "scope": row.scope, "status": row.status,
                "summary": row.summary}
        return meta, plan_from_dict(row.data)


def list_plans(store: Store) -> list[dict[str, Any]]:
    """Every stored plan, newest first."""
    with store.session() as s:
        return [{"id": r.id, "name": r.name, "created": r.created, "requester": r.requester,
                 "scope": r.scope, "status": r.status, **r.summary}
                for r in s.scalars(select(PlanRow).order_by(PlanRow.id.desc()))]


def _host_map(plan: CampaignPlan) -> dict[str, tuple[str, int, str]]:
    return {h.host: (r.ring, w.index, h.target) for r in plan.rings for w in r.waves
            for h in w.hosts}


def diff_plans(a: CampaignPlan, b: CampaignPlan) -> dict[str, Any]:
    """What changes from plan ``a`` to plan ``b``: hosts, targets, waves, moves, durations."""
    ha, hb = _host_map(a), _host_map(b)
    moved = {m.guest: m.destination for m in a.moves() if m.kind.value == "evacuate"}
    moved_b = {m.guest: m.destination for m in b.moves() if m.kind.value == "evacuate"}
    return {
        "added_hosts": sorted(set(hb) - set(ha)),
        "removed_hosts": sorted(set(ha) - set(hb)),
        "target_changes": {h: {"from": ha[h][2], "to": hb[h][2]}
                           for h in sorted(set(ha) & set(hb)) if ha[h][2] != hb[h][2]},
        "wave_changes": {h: {"from": f"{ha[h][0]}/{ha[h][1]}", "to": f"{hb[h][0]}/{hb[h][1]}"}
                         for h in sorted(set(ha) & set(hb)) if ha[h][:2] != hb[h][:2]},
        "guest_destination_changes": sum(1 for g in set(moved) & set(moved_b)
                                         if moved[g] != moved_b[g]),
        "skipped": {"added": sorted({s.host for s in b.skipped} - {s.host for s in a.skipped}),
                    "removed": sorted({s.host for s in a.skipped} - {s.host for s in b.skipped})},
        "hours": {"from": round(a.seconds / 3600, 2), "to": round(b.seconds / 3600, 2)},
        "targets": {"from": dict(a.targets), "to": dict(b.targets)},
    }


def export_plan(plan: CampaignPlan) -> dict[str, Any]:
    """The plan as JSON-able data."""
    return plan_to_dict(plan)


def gantt(plan: CampaignPlan, path: Path) -> Path:
    """Write the Gantt chart of ``plan`` to ``path`` (.png or .svg)."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise InputError("unsupported image format", [Problem("--out", f"{path.name}: expected "
                                                              ".png or .svg")])
    return render_gantt(plan, path)
