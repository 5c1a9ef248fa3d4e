"""The time model refined from the rollouts recorded in the store (:mod:`...calibration`).

Every rollout records each step of each host, started and finished; here they become one
observation per host patched in a rollout (the last finished attempt of each step, the host's
family from the inventory, the plan's evacuation estimate for it) in three queries, whatever the
size of the history: the steps, the plans they belong to, nothing per host.

Only rollouts on real platforms count by default. A simulated rollout's durations come from the
time model itself -- the simulator sleeps what the model says, on an accelerated clock -- so they
would only echo the defaults back, plus scheduling noise multiplied by the clock's speed.
``include_simulated=True`` takes them too (demos, tests). A step reconciled after a crash
("already done on the platform") is left out: its record times the check, not the work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import HostRow, PlanRow, RolloutRow, RolloutStepRow
from hvpatch.adapters.store.plan_codec import plan_from_dict
from hvpatch.domain.planning.calibration import (
    BUILTIN_MIGRATION_MIB_PER_S,
    DEFAULT_MIN_SAMPLES,
    RECORDED_STEPS,
    Calibration,
    PatchObservation,
    calibrate,
    model_as_dict,
    observation_from_steps,
)
from hvpatch.domain.planning.timing import TimeModel

__all__ = ["SIMULATOR", "SUMMARY_KEY", "planned_rate", "recorded_patches",
           "time_model_from_history", "time_model_record"]

#: the driver name of simulated rollouts (``orchestration.runner.simulator_spec``)
SIMULATOR = "simulator"
#: where a stored plan's summary keeps the time model it was planned with
SUMMARY_KEY = "time_model"


def time_model_from_history(store: Store, *, base: TimeModel = TimeModel(),
                            include_simulated: bool = False,
                            min_samples: int = DEFAULT_MIN_SAMPLES,
                            ) -> tuple[TimeModel, Calibration]:
    """``base`` refined from the recorded rollouts, and the report of what changed.

    Rollouts on the simulator are left out unless ``include_simulated`` (see the module doc).
    """
    source = "real and simulated platforms" if include_simulated else "real platforms"
    return calibrate(base, recorded_patches(store, include_simulated=include_simulated),
                     min_samples=min_samples, source=source)


def recorded_patches(store: Store, *, include_simulated: bool = False,
                     ) -> list[PatchObservation]:
    """One observation per host of each counted rollout that finished a step that is timed."""
    q = (select(RolloutStepRow.rollout_id, RolloutStepRow.host, RolloutStepRow.step,
                RolloutStepRow.started, RolloutStepRow.finished,
                RolloutStepRow.evidence["already_done"].as_boolean(), RolloutRow.plan_id,
                HostRow.family)
         .join(RolloutRow, RolloutRow.id == RolloutStepRow.rollout_id)
         .outerjoin(HostRow, HostRow.name == RolloutStepRow.host)
         .where(RolloutStepRow.state == "finished", RolloutStepRow.host != "",
                RolloutStepRow.step.in_(RECORDED_STEPS))
         .order_by(RolloutStepRow.id))
    if not include_simulated:
        q = q.where(func.coalesce(RolloutRow.driver["name"].as_string(), "") != SIMULATOR)
    steps: dict[tuple[int, str], dict[str, float | None]] = {}
    about: dict[tuple[int, str], tuple[int, str | None]] = {}
    with store.session() as s:
        for rid, host, step, started, finished, reconciled, plan_id, family in s.execute(q):
            key = (rid, host)
            about[key] = (plan_id, family)
            seconds = (finished - started).total_seconds() if finished is not None else None
            # the last finished record wins, a reconciled one included: it voids the step
            steps.setdefault(key, {})[step] = None if reconciled else seconds
        plan_ids = sorted({plan_id for plan_id, _ in about.values()})
        plans = s.execute(select(PlanRow.id, PlanRow.data, PlanRow.summary)
                          .where(PlanRow.id.in_(plan_ids))).all() if plan_ids else []
    estimates = {pid: (_evacuations(data), planned_rate(summary)) for pid, data, summary in plans}
    out = []
    for (rid, host), durations in steps.items():
        plan_id, family = about[(rid, host)]
        evac, rate = estimates.get(plan_id, ({}, BUILTIN_MIGRATION_MIB_PER_S))
        out.append(observation_from_steps(
            host, family, {k: v for k, v in durations.items() if v is not None},
            planned_evacuate_s=evac.get(host, 0.0), planned_mib_per_s=rate))
    return out


def _evacuations(data: dict[str, Any]) -> dict[str, float]:
    """host -> the plan's estimate of its evacuation, in seconds."""
    plan = plan_from_dict(data)
    return {h.host: float(h.seconds.get("evacuate", 0.0)) for w in plan.waves() for h in w.hosts}


def time_model_record(model: TimeModel, calibration: Calibration | None) -> dict[str, Any]:
    """What a stored plan's summary keeps of the model it was planned with: every value, and
    how many recorded host patches refined it. Its migration rate is what later calibrations
    rescale the plan's evacuation estimates by, so a plan made with a refined rate does not
    pull the next refinement back."""
    refined = calibration is not None and calibration.refined
    return {**model_as_dict(model),
            "refined_from": calibration.host_patches if calibration and refined else 0}


def planned_rate(summary: Mapping[str, Any] | None) -> float:
    """The migration rate a stored plan assumed: its record, else the built-in rate (plans
    made before plans recorded it were all made with the built-in model)."""
    record = (summary or {}).get(SUMMARY_KEY)
    rate = record.get("migration_mib_per_s") if isinstance(record, Mapping) else None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) \
            or not rate > 0:
        return BUILTIN_MIGRATION_MIB_PER_S
    return float(rate)
