"""The time model refined from recorded patches: the median of what real runs took, per step.

The defaults of :class:`~.timing.TimeModel` are orders of magnitude, not measurements of your
estate. The rollout engine records when each step of each host started and finished; one
:class:`PatchObservation` per host patched in a rollout (the last finished attempt of each step)
is what :func:`calibrate` turns into a refined model and a :class:`Calibration` report that says,
per quantity, how many samples there were, the default, the refined value and whether it was
used.

Recorded steps map to the model's quantities (:data:`STEPS_OF`): install = stage + apply and
reboot = reboot + wait-ready, per family; checks = verify + checks, enter = enter-maintenance and
exit = exit-maintenance, over all families (they depend on the checks and the platform's
maintenance mode more than on the hypervisor). A quantity takes the **median** of its samples --
one slow host or a retry storm does not move it -- and only with at least ``min_samples``
(default 3); with fewer it keeps the base value, and the report says so.

**Migration bandwidth.** A host's evacuation is not one number the model has: it is a schedule
of migrations under concurrency limits. So the recorded evacuate step is compared with the
plan's own estimate of it, for hosts whose plan expected an evacuation (estimate > 0). Each
estimate is first rescaled to the base model's rate (a plan made with a refined rate
``r_plan`` estimated ``r_plan / r_base`` times less than the base would have), so history stays
comparable however each plan was made. With enough samples every live migration is taken to
last ``ratio = median(observed / estimate)`` times what the base says: ``migration_mib_per_s =
base / ratio`` and ``migration_overhead_s = base overhead * ratio`` (the records cannot tell
bandwidth from per-migration overhead apart, and scaling both makes a wave's evacuation
schedule -- and so the next plan's estimate -- exactly ``ratio`` times longer). The ratio is
bounded to ``[0.1, 10]`` (:data:`RATIO_BOUNDS`): a refined rate stays within a factor of ten of
the base, because a larger gap more likely means records that did not measure migrations (a
host found already empty, a clock jump) than a link ten times faster or slower.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from statistics import median
from types import MappingProxyType
from typing import Any

from hvpatch.domain.planning.timing import TimeModel
from hvpatch.errors import InputError, Problem

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "RATIO_BOUNDS",
    "RECORDED_STEPS",
    "STEPS_OF",
    "Calibration",
    "PatchObservation",
    "Refinement",
    "calibrate",
    "model_as_dict",
    "observation_from_steps",
]

DEFAULT_MIN_SAMPLES = 3
#: the median ratio observed / estimated evacuation is kept within these bounds
RATIO_BOUNDS = (0.1, 10.0)
#: the migration rate every plan assumed before plans recorded theirs
BUILTIN_MIGRATION_MIB_PER_S = TimeModel().migration_mib_per_s

#: model quantity -> the recorded rollout steps whose durations add up to it
STEPS_OF: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "evacuate": ("evacuate",),
    "enter_maintenance": ("enter-maintenance",),
    "install": ("stage", "apply"),
    "reboot": ("reboot", "wait-ready"),
    "checks": ("verify", "checks"),
    "exit_maintenance": ("exit-maintenance",),
})
#: every rollout step a calibration reads
RECORDED_STEPS: tuple[str, ...] = tuple(sorted({s for steps in STEPS_OF.values() for s in steps}))

_PER_FAMILY = ("install", "reboot")
_ALL_FAMILIES = ("checks", "enter_maintenance", "exit_maintenance")


@dataclass(frozen=True, slots=True)
class PatchObservation:
    """One host patched in one rollout: seconds per model quantity, from its finished steps.

    ``seconds`` has a quantity (``install``, ``reboot``, ``checks``, ``enter_maintenance``,
    ``exit_maintenance``, ``evacuate``) only when every step of it has a usable record.
    ``family`` is ``None`` when the host is no longer in the inventory: it then counts only for
    the quantities of all families. ``planned_evacuate_s`` is the plan's estimate of the host's
    evacuation, made at ``planned_mib_per_s``.
    """

    host: str
    family: str | None
    seconds: Mapping[str, float] = field(default_factory=dict)
    planned_evacuate_s: float = 0.0
    planned_mib_per_s: float = BUILTIN_MIGRATION_MIB_PER_S


def observation_from_steps(host: str, family: str | None, steps: Mapping[str, float], *,
                           planned_evacuate_s: float = 0.0,
                           planned_mib_per_s: float = BUILTIN_MIGRATION_MIB_PER_S,
                           ) -> PatchObservation:
    """The observation of a host from its recorded step durations (rollout step -> seconds).

    A quantity is left out unless all of its steps (:data:`STEPS_OF`) have a duration that is
    a finite number of seconds, 0 or more: half an install is not an install.
    """
    seconds: dict[str, float] = {}
    for quantity, names in STEPS_OF.items():
        parts = [steps.get(name) for name in names]
        if all(p is not None and math.isfinite(p) and p >= 0 for p in parts):
            seconds[quantity] = math.fsum(p for p in parts if p is not None)
    return PatchObservation(host, family, seconds, planned_evacuate_s, planned_mib_per_s)


@dataclass(frozen=True, slots=True)
class Refinement:
    """What history says about one quantity (of one family, or ``""`` for all of them).

    ``median`` is the median of the samples in the quantity's own unit -- for ``migration``
    and ``migration_overhead`` the median ratio of recorded to estimated evacuation (above 1:
    slower than the model).
    ``value`` is what the refined model uses: the median when ``applied``, else ``default``.
    """

    quantity: str
    family: str
    unit: str
    samples: int
    default: float
    value: float
    applied: bool
    median: float | None = None
    note: str = ""

    def label(self) -> str:
        """How a person names it: ``esxi install``, ``checks``, ``migration``."""
        name = self.quantity.replace("_", " ")
        return f"{self.family} {name}" if self.family else name


@dataclass(frozen=True, slots=True)
class Calibration:
    """The report of a calibration: how many host patches, and per quantity what changed."""

    host_patches: int
    min_samples: int
    refinements: tuple[Refinement, ...]
    source: str = "recorded rollouts"

    @property
    def refined(self) -> bool:
        """Whether any quantity differs from the base model because of history."""
        return any(r.applied for r in self.refinements)

    def applied(self) -> tuple[Refinement, ...]:
        """The quantities history refined, in report order."""
        return tuple(r for r in self.refinements if r.applied)

    def describe(self) -> str:
        """One line for a person: where the model comes from and what history changed."""
        if not self.host_patches:
            return f"defaults (no host patch recorded on {self.source})"
        if not self.refined:
            return (f"defaults ({_count(self.host_patches)} recorded on {self.source}, fewer "
                    f"than {self.min_samples} samples of every step)")
        changes = ", ".join(f"{r.label()} {_num(r.value)} {r.unit} (default {_num(r.default)} "
                            f"{r.unit})" for r in self.applied())
        rest = "" if all(r.applied for r in self.refinements) else "; the rest: defaults"
        return (f"refined from {_count(self.host_patches)} recorded on {self.source}: "
                f"{changes}{rest}")

    def brief(self) -> str:
        """What history changed, without the defaults: a plan's note (``""`` if nothing)."""
        if not self.refined:
            return ""
        changes = ", ".join(f"{r.label()} {_num(r.value)} {r.unit}" for r in self.applied())
        return f"refined from {_count(self.host_patches)} recorded on {self.source}: {changes}"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: the summary line and every quantity's row."""
        return {"source": self.source, "host_patches": self.host_patches,
                "min_samples": self.min_samples, "refined": self.refined,
                "summary": self.describe(),
                "quantities": [asdict(r) for r in self.refinements]}


def _count(n: int) -> str:
    return f"{n:,} host patch" + ("" if n == 1 else "es")


def _num(value: float) -> str:
    """Whole numbers from 100 up (seconds: a tenth is noise there), else one decimal."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}".removesuffix(".0")


def calibrate(base: TimeModel, observations: Iterable[PatchObservation], *,
              min_samples: int = DEFAULT_MIN_SAMPLES,
              source: str = "recorded rollouts") -> tuple[TimeModel, Calibration]:
    """``base`` refined from ``observations`` (see the module doc), and the report.

    Families reported are the base model's and those observed; a quantity without enough
    samples keeps the base value. Raises :class:`InputError` for ``min_samples`` below 1.
    """
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InputError("bad minimum of samples", [Problem(
            "min_samples", f"{min_samples!r}: expected a whole number, 1 or more")])
    seen = list(observations)
    families = sorted(set(base.install_s) | set(base.reboot_s)
                      | {o.family for o in seen if o.family})
    rows: list[Refinement] = []
    per_family: dict[str, dict[str, float]] = {"install": dict(base.install_s),
                                               "reboot": dict(base.reboot_s)}
    defaults = {"install": base.install, "reboot": base.reboot}
    for quantity in _PER_FAMILY:
        for family in families:
            row = _refine(quantity, family, [o.seconds[quantity] for o in seen
                                             if o.family == family and quantity in o.seconds],
                          defaults[quantity](family), min_samples)
            rows.append(row)
            if row.applied:
                per_family[quantity][family] = row.value
    scalars: dict[str, float] = {}
    for quantity in _ALL_FAMILIES:
        row = _refine(quantity, "", [o.seconds[quantity] for o in seen if quantity in o.seconds],
                      getattr(base, f"{quantity}_s"), min_samples)
        rows.append(row)
        if row.applied:
            scalars[f"{quantity}_s"] = row.value
    migration, overhead = _migration(base, seen, min_samples)
    rows.extend((migration, overhead))
    if migration.applied:
        scalars["migration_mib_per_s"] = migration.value
        scalars["migration_overhead_s"] = overhead.value
    model = replace(base, install_s=MappingProxyType(per_family["install"]),
                    reboot_s=MappingProxyType(per_family["reboot"]), **scalars)
    return model, Calibration(len(seen), min_samples, tuple(rows), source)


def _usable(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v) and v >= 0]


def _kept(n: int, min_samples: int) -> str:
    if n == 0:
        return "no samples: default kept"
    return f"{n} sample{'' if n == 1 else 's'}, fewer than {min_samples}: default kept"


def _refine(quantity: str, family: str, values: Iterable[float], default: float,
            min_samples: int) -> Refinement:
    """The median of ``values`` when there are at least ``min_samples``, else the default."""
    samples = _usable(values)
    mid = round(median(samples), 1) if samples else None
    if mid is None or len(samples) < min_samples:
        return Refinement(quantity, family, "s", len(samples), default, default, False, mid,
                          _kept(len(samples), min_samples))
    return Refinement(quantity, family, "s", len(samples), default, mid, True, mid)


def _migration(base: TimeModel, seen: Iterable[PatchObservation],
               min_samples: int) -> tuple[Refinement, Refinement]:
    """The migration rate and overhead from recorded / estimated evacuations (estimates
    rescaled to the base rate): both scaled by the bounded median ratio, or both kept."""
    ratios = _usable(
        o.seconds["evacuate"] / (o.planned_evacuate_s * o.planned_mib_per_s
                                 / base.migration_mib_per_s)
        for o in seen
        if "evacuate" in o.seconds and o.planned_evacuate_s > 0 and o.planned_mib_per_s > 0)
    rate, overhead = base.migration_mib_per_s, base.migration_overhead_s
    raw = median(ratios) if ratios else None
    mid = None if raw is None else round(raw, 3)
    n = len(ratios)
    if raw is None or n < min_samples:
        note = _kept(n, min_samples)
        return (Refinement("migration", "", "MiB/s", n, rate, rate, False, mid, note),
                Refinement("migration_overhead", "", "s", n, overhead, overhead, False, mid,
                           note))
    low, high = RATIO_BOUNDS
    bounded = min(max(raw, low), high)
    note = ("" if bounded == raw else
            f"evacuations took {mid:g} times the estimate; bounded to {bounded:g}")
    return (Refinement("migration", "", "MiB/s", n, rate, round(rate / bounded, 1), True, mid,
                       note),
            Refinement("migration_overhead", "", "s", n, overhead,
                       round(overhead * bounded, 1), True, mid, note))


def model_as_dict(model: TimeModel) -> dict[str, Any]:
    """A time model as plain JSON-able data (seconds, and MiB/s for migrations)."""
    return {"migration_mib_per_s": model.migration_mib_per_s,
            "migration_overhead_s": model.migration_overhead_s,
            "install_s": dict(sorted(model.install_s.items())),
            "reboot_s": dict(sorted(model.reboot_s.items())),
            "checks_s": model.checks_s, "enter_maintenance_s": model.enter_maintenance_s,
            "exit_maintenance_s": model.exit_maintenance_s,
            "guest_shutdown_s": model.guest_shutdown_s, "guest_start_s": model.guest_start_s}
