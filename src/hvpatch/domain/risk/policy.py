"""The risk policy: SLAs per SSVC outcome and the thresholds of the decision rules.

Users change it with a YAML file (see ``docs/risk.md`` and ``examples/policy.yaml``); the
defaults are :data:`DEFAULT_POLICY`. Validation names the field and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvpatch.errors import InputError, Problem

OUTCOMES = ("Act", "Attend", "Track*", "Track")


@dataclass(frozen=True, slots=True)
class Policy:
    """What the organisation has decided about deadlines and trade-offs."""

    sla_days: dict[str, int] = field(default_factory=lambda: {
        "Act": 3, "Attend": 14, "Track*": 30, "Track": 90})
    emergency_outcome: str = "Act"
    mitigate_when_patch_risk_over: float = 60.0
    suggest_defer_ratio: float = 2.0
    max_exception_days: int = 90
    exception_needs_approval: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The policy as the YAML file writes it."""
        return {"sla_days": dict(self.sla_days), "emergency_outcome": self.emergency_outcome,
                "mitigate_when_patch_risk_over": self.mitigate_when_patch_risk_over,
                "suggest_defer_ratio": self.suggest_defer_ratio,
                "max_exception_days": self.max_exception_days,
                "exception_needs_approval": self.exception_needs_approval}


DEFAULT_POLICY = Policy()


def policy_from_dict(data: Any, where: str = "policy") -> Policy:
    """Validate a parsed policy document; raise :class:`InputError` naming every bad field."""
    if data is None:
        return DEFAULT_POLICY
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a policy", [Problem(where, "expected a mapping")])
    problems: list[Problem] = []
    known = set(DEFAULT_POLICY.as_dict())
    for key in sorted({str(k) for k in data} - known):
        problems.append(Problem(f"{where}: {key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(known))})"))
    sla = dict(DEFAULT_POLICY.sla_days)
    raw_sla = data.get("sla_days") or {}
    if not isinstance(raw_sla, dict):
        problems.append(Problem(f"{where}: sla_days", "expected a mapping of outcome to days"))
        raw_sla = {}
    for outcome, days in raw_sla.items():
        if outcome not in OUTCOMES:
            problems.append(Problem(f"{where}: sla_days.{outcome}",
                                    f"unknown outcome (expected {', '.join(OUTCOMES)})"))
        elif isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 3650:
            problems.append(Problem(f"{where}: sla_days.{outcome}",
                                    f"expected whole days between 1 and 3650, got {days!r}"))
        else:
            sla[outcome] = days
    if not (sla["Act"] <= sla["Attend"] <= sla["Track*"] <= sla["Track"]):
        problems.append(Problem(f"{where}: sla_days", "more urgent outcomes need shorter or "
                                f"equal deadlines (Act <= Attend <= Track* <= Track), got {sla}"))
    values: dict[str, Any] = {}
    for key, kind, lo, hi in (("mitigate_when_patch_risk_over", float, 0, 100),
                              ("suggest_defer_ratio", float, 1, 100),
                              ("max_exception_days", int, 1, 3650)):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or (
                    kind is int and not isinstance(v, int)) or not lo <= v <= hi:
                problems.append(Problem(f"{where}: {key}", f"expected a number between {lo} "
                                        f"and {hi}, got {v!r}"))
            else:
                values[key] = kind(v)
    if "emergency_outcome" in data and data["emergency_outcome"] not in ("Act", "Attend"):
        problems.append(Problem(f"{where}: emergency_outcome", "expected Act or Attend, got "
                                f"{data['emergency_outcome']!r}"))
    if "exception_needs_approval" in data and not isinstance(
            data["exception_needs_approval"], bool):
        problems.append(Problem(f"{where}: exception_needs_approval", "expected true or false"))
    if problems:
        raise InputError(f"{where} is not a valid policy; nothing was changed", problems)
    return Policy(sla_days=sla,
                  emergency_outcome=data.get("emergency_outcome", DEFAULT_POLICY.emergency_outcome),
                  exception_needs_approval=data.get("exception_needs_approval", True), **values)
