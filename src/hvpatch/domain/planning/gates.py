"""Ring gates and the plan policy: what must hold before a campaign moves on to the next ring.

Rings run in the fleet's order (test -> dev -> staging -> prod by default). After a ring's waves,
its :class:`~hvpatch.domain.planning.model.Gate` must pass before the next ring starts:

* the regression suite ran on every host of the ring (hosts that failed count as failures);
* the soak time has elapsed since the ring's last wave;
* failures stay within the ring's budget (a count, a percentage of the ring's hosts, or both,
  in which case the stricter applies; neither means no failure is tolerated);
* no incident is open;
* when the *next* ring requires approval, someone other than the requester approved
  (separation of duties: the requester is recorded with the plan, and an approval by the same
  person does not count). The first ring's approval, if required, is asked before it starts.

Emergency campaigns (a patch-now decision) compress soak times -- to a ring's
``emergency_soak_hours`` when the policy gives one, else by ``emergency_soak_factor`` -- but
never skip the regression suite of the first ring, whatever the policy says.

The :class:`PlanPolicy` also carries the capacity rules the wave planner uses (pinned guests,
migrate-back, parallel hosts, migration limits) and the maintenance windows. Users write it
as YAML (``examples/plan-policy.yaml``, ``docs/planning.md``); :func:`plan_policy_from_dict`
validates it, naming every bad field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from hvpatch.domain.planning.model import Gate, PinnedPolicy
from hvpatch.domain.planning.windows import Blackout, MaintenanceWindow
from hvpatch.domain.planning.windows_spec import parse_blackouts, parse_windows
from hvpatch.errors import InputError, Problem

__all__ = [
    "DEFAULT_PLAN_POLICY",
    "DEFAULT_RING_RULES",
    "GateEvidence",
    "GateResult",
    "PlanPolicy",
    "RingRules",
    "evaluate_gate",
    "failure_allowance",
    "plan_policy_from_dict",
]


@dataclass(frozen=True, slots=True)
class RingRules:
    """A ring's promotion rules as the policy states them."""

    soak_hours: float = 24.0
    #: Soak in an emergency; None: ``soak_hours`` times the policy's emergency factor.
    emergency_soak_hours: float | None = None
    max_failures: int = 0
    max_failure_percent: float = 0.0
    #: A second person approves before this ring starts.
    approval: bool = False
    regression_suite: bool = True
    no_open_incident: bool = True


#: Built-in rules by ring name; a ring not listed here nor in the policy gets ``RingRules()``.
DEFAULT_RING_RULES: dict[str, RingRules] = {
    "test": RingRules(soak_hours=4.0),
    "dev": RingRules(soak_hours=24.0),
    "staging": RingRules(soak_hours=48.0),
    "prod": RingRules(soak_hours=0.0, approval=True),
}


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """How a campaign is planned: ring gates, emergency compression, capacity rules, windows."""

    rings: dict[str, RingRules] = field(default_factory=lambda: dict(DEFAULT_RING_RULES))
    emergency_soak_factor: float = 0.25
    pinned_guests: PinnedPolicy = PinnedPolicy.SKIP_HOST
    migrate_back: bool = False
    #: Hosts of one cluster in maintenance at once; None: as many as capacity allows.
    max_parallel_hosts: int | None = None
    migrations_per_host: int = 2
    migrations_per_cluster: int = 8
    #: N+k reserve kept during maintenance; None: each cluster's own ``ha_reserve_hosts``.
    ha_reserve_hosts: int | None = None
    windows: tuple[MaintenanceWindow, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    #: Whether maintenance windows bind emergency campaigns too.
    windows_in_emergency: bool = True
    #: How far ahead a wave's window is searched before the ring is declared not to fit.
    search_horizon_days: int = 400
    #: Clusters off a ring's critical path take more, smaller waves so fewer guests move twice,
    #: as long as the ring takes no longer (not applied while maintenance windows bind a plan).
    ring_slack: bool = True

    def rules(self, ring: str) -> RingRules:
        """The rules of ``ring`` (the built-in default for an unlisted ring)."""
        return self.rings.get(ring, DEFAULT_RING_RULES.get(ring, RingRules()))

    def soak_hours(self, ring: str, *, emergency: bool) -> float:
        """Soak after ``ring``, compressed in an emergency."""
        rules = self.rules(ring)
        if not emergency:
            return rules.soak_hours
        if rules.emergency_soak_hours is not None:
            return min(rules.emergency_soak_hours, rules.soak_hours)
        return rules.soak_hours * self.emergency_soak_factor

    def gate(self, ring: str, *, emergency: bool, first: bool, next_ring: str | None) -> Gate:
        """The gate after ``ring``: its soak/budget/suite, and the next ring's approval.

        ``first``: the campaign's first ring, whose regression suite always runs.
        """
        rules = self.rules(ring)
        return Gate(
            regression_suite=rules.regression_suite or first,
            soak_hours=self.soak_hours(ring, emergency=emergency),
            max_failures=rules.max_failures,
            max_failure_percent=rules.max_failure_percent,
            no_open_incident=rules.no_open_incident,
            approval=next_ring is not None and self.rules(next_ring).approval,
        )


DEFAULT_PLAN_POLICY = PlanPolicy()

_RING_KEYS = {f for f in RingRules.__dataclass_fields__}
_TOP_KEYS = {"rings", "emergency_soak_factor", "pinned_guests", "migrate_back",
             "max_parallel_hosts", "migrations_per_host", "migrations_per_cluster",
             "ha_reserve_hosts", "windows",
             "blackout", "windows_in_emergency", "search_horizon_days", "ring_slack"}


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def _ring_rules(name: str, spec: Any, loc: str, problems: list[Problem]) -> RingRules:
    base = DEFAULT_RING_RULES.get(name, RingRules())
    if not isinstance(spec, dict):
        problems.append(Problem(loc, f"expected a mapping with {', '.join(sorted(_RING_KEYS))}"))
        return base
    for key in sorted(set(spec) - _RING_KEYS, key=str):
        problems.append(Problem(f"{loc}.{key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(_RING_KEYS))})"))
    values: dict[str, Any] = {}
    for key, lo, hi in (("soak_hours", 0, 8760), ("emergency_soak_hours", 0, 8760),
                        ("max_failure_percent", 0, 100)):
        if key in spec:
            v = spec[key]
            if key == "emergency_soak_hours" and v is None:
                values[key] = None
            elif _is_number(v) and lo <= v <= hi:
                values[key] = float(v)
            else:
                problems.append(Problem(f"{loc}.{key}", f"expected a number between {lo} and "
                                        f"{hi}, got {v!r}"))
    if "max_failures" in spec:
        v = spec["max_failures"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            problems.append(Problem(f"{loc}.max_failures", f"expected a whole number >= 0, got "
                                    f"{v!r}"))
        else:
            values["max_failures"] = v
    for key in ("approval", "regression_suite", "no_open_incident"):
        if key in spec:
            if isinstance(spec[key], bool):
                values[key] = spec[key]
            else:
                problems.append(Problem(f"{loc}.{key}", "expected true or false"))
    rules = replace(base, **values)
    if name == "test" and not rules.regression_suite:
        problems.append(Problem(f"{loc}.regression_suite", "the test ring's regression suite "
                                "cannot be switched off"))
    if rules.emergency_soak_hours is not None and rules.emergency_soak_hours > rules.soak_hours:
        problems.append(Problem(f"{loc}.emergency_soak_hours", f"an emergency only compresses "
                                f"soak: expected at most soak_hours ({rules.soak_hours:g})"))
    return rules


def plan_policy_from_dict(data: Any, where: str = "plan policy") -> PlanPolicy:
    """Validate a parsed plan policy document; raise :class:`InputError` naming every bad field.

    Every field is optional; a ring entry changes only the fields it gives.
    """
    if data is None:
        return DEFAULT_PLAN_POLICY
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a plan policy", [Problem(where, "expected a mapping")])
    problems: list[Problem] = []
    for key in sorted(set(data) - _TOP_KEYS, key=str):
        problems.append(Problem(f"{where}: {key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(_TOP_KEYS))})"))
    rings = dict(DEFAULT_RING_RULES)
    raw_rings = data.get("rings", {})
    if not isinstance(raw_rings, dict):
        problems.append(Problem(f"{where}: rings", "expected a mapping of ring name to rules"))
        raw_rings = {}
    for name, spec in raw_rings.items():
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{where}: rings", f"ring names are text, got {name!r}"))
            continue
        rings[name] = _ring_rules(name, spec, f"{where}: rings.{name}", problems)
    values: dict[str, Any] = {"rings": rings}
    if "emergency_soak_factor" in data:
        v = data["emergency_soak_factor"]
        if _is_number(v) and 0 <= v <= 1:
            values["emergency_soak_factor"] = float(v)
        else:
            problems.append(Problem(f"{where}: emergency_soak_factor", f"expected a number "
                                    f"between 0 and 1 (an emergency only compresses), got {v!r}"))
    for key, lo, hi in (("max_parallel_hosts", 1, 1000), ("migrations_per_host", 1, 1000),
                        ("migrations_per_cluster", 1, 10000), ("ha_reserve_hosts", 0, 100),
                        ("search_horizon_days", 1, 3660)):
        if key in data:
            v = data[key]
            if v is None and key in ("max_parallel_hosts", "ha_reserve_hosts"):
                values[key] = None
            elif isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                problems.append(Problem(f"{where}: {key}", f"expected a whole number between "
                                        f"{lo} and {hi}, got {v!r}"))
            else:
                values[key] = v
    for key in ("migrate_back", "windows_in_emergency", "ring_slack"):
        if key in data:
            if isinstance(data[key], bool):
                values[key] = data[key]
            else:
                problems.append(Problem(f"{where}: {key}", "expected true or false"))
    if "pinned_guests" in data:
        choices = [p.value for p in PinnedPolicy]
        if data["pinned_guests"] in choices:
            values["pinned_guests"] = PinnedPolicy(data["pinned_guests"])
        else:
            problems.append(Problem(f"{where}: pinned_guests", f"expected one of "
                                    f"{', '.join(choices)}, got {data['pinned_guests']!r}"))
    windows, scoped = parse_windows(data.get("windows"), f"{where}: windows", problems)
    blackouts = parse_blackouts(data.get("blackout"), f"{where}: blackout", problems)
    if problems:
        raise InputError(f"{where} is not a valid plan policy; nothing was changed", problems)
    return PlanPolicy(windows=tuple(windows), blackouts=tuple(blackouts + scoped), **values)


# --- evaluating a gate (for the rollout engine) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class GateEvidence:
    """What a ring showed: hosts passed/failed (patch and regression suite), soak, incidents,
    and who asked for and who approved the promotion."""

    hosts: int
    passed: int
    failed: int
    soak_hours_elapsed: float
    open_incidents: int = 0
    approved_by: str = ""
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether a gate passed; ``reasons`` says why not, or, when it passed, what was checked."""

    passed: bool
    reasons: tuple[str, ...]


def failure_allowance(gate: Gate, hosts: int) -> int:
    """Failed hosts tolerated among ``hosts``: the count, the percentage, or the stricter."""
    by_percent = math.floor(hosts * gate.max_failure_percent / 100.0 + 1e-9)
    if gate.max_failure_percent <= 0:
        return gate.max_failures
    if gate.max_failures <= 0:
        return by_percent
    return min(gate.max_failures, by_percent)


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def evaluate_gate(gate: Gate, evidence: GateEvidence) -> GateResult:
    """Check every condition of ``gate`` against ``evidence``; list each one that fails."""
    e = evidence
    bad: list[str] = []
    good: list[str] = []
    pending = e.hosts - e.passed - e.failed
    if pending > 0:
        bad.append(f"{pending} of {e.hosts} host(s) have no result yet")
    elif e.passed + e.failed > e.hosts or min(e.hosts, e.passed, e.failed) < 0:
        bad.append(f"inconsistent evidence: {e.passed} passed + {e.failed} failed for "
                   f"{e.hosts} host(s)")
    elif gate.regression_suite:
        good.append(f"regression suite passed on {e.passed} of {e.hosts} host(s)")
    allowed = failure_allowance(gate, e.hosts)
    if e.failed > allowed:
        bad.append(f"{e.failed} failed host(s) exceed the failure budget of {allowed}")
    else:
        good.append(f"{e.failed} failure(s) within the budget of {allowed}")
    if e.soak_hours_elapsed + 1e-9 < gate.soak_hours:
        bad.append(f"soaked {e.soak_hours_elapsed:g} h of the required {gate.soak_hours:g} h")
    else:
        good.append(f"soaked {e.soak_hours_elapsed:g} h (required {gate.soak_hours:g} h)")
    if gate.no_open_incident and e.open_incidents > 0:
        bad.append(f"{e.open_incidents} incident(s) still open")
    elif gate.no_open_incident:
        good.append("no open incident")
    if gate.approval:
        if not e.requested_by.strip():
            bad.append("the requester is not recorded, so separation of duties cannot be checked")
        elif not e.approved_by.strip():
            bad.append("not approved yet (approval by someone other than the requester needed)")
        elif _same_person(e.approved_by, e.requested_by):
            bad.append(f"approved by the requester {e.requested_by!r}: separation of duties "
                       f"needs a different approver")
        else:
            good.append(f"approved by {e.approved_by} (requested by {e.requested_by})")
    return GateResult(not bad, tuple(bad) if bad else tuple(good))
