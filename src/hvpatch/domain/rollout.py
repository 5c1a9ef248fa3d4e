"""How a rollout behaves when things go wrong, and what it proves before moving on.

The :class:`RolloutPolicy` is the engine's rule book: retries per host with exponential back-off
(CAU's ``MaxRetriesPerNode``), automatic rollback of a failed host where the platform can, a
pause for a human at the first failure in the rings that ask for it (prod by default), how long
a rebooting host may take, which built-in regression checks run after each host, and the user's
own suites per ring (a shell command, a pytest path or an Ansible playbook). The failure budget
itself is the ring gate's (:class:`~hvpatch.domain.planning.model.Gate`), so the plan and the
run agree on it. Users write the policy as YAML (``examples/rollout-policy.yaml``);
:func:`rollout_policy_from_dict` validates it, naming every bad field.

The host step sequence is here too, as data: the engine walks it, records each step before and
after, and resumes at the first step not recorded as finished.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hvpatch.errors import InputError, Problem

__all__ = [
    "BUILTIN_CHECKS",
    "DEFAULT_ROLLOUT_POLICY",
    "GUEST_CHECKS",
    "HOST_STEPS",
    "RolloutPolicy",
    "SuiteSpec",
    "backoff_seconds",
    "rollout_policy_from_dict",
]

#: The steps of one host, in order. ``evacuate`` live-migrates (or, with consent, shuts down)
#: its guests as the plan says; ``checks`` runs the host checks while the host is still empty
#: (a failure there rolls the host back); ``restart`` starts the guests the plan shut down, and
#: ``guest-checks`` then proves every guest runs again (a failure there fails the host but does
#: not roll it back: that would take a second evacuation, which a human decides).
HOST_STEPS: tuple[str, ...] = (
    "precheck", "evacuate", "enter-maintenance", "stage", "apply", "reboot", "wait-ready",
    "verify", "checks", "exit-maintenance", "restart", "guest-checks",
)

#: Built-in checks that look at guests: they run in ``guest-checks``, after the restart.
GUEST_CHECKS: tuple[str, ...] = ("guests-running", "no-guest-lost")

#: Built-in host checks, by name (see :mod:`hvpatch.adapters.checks`).
BUILTIN_CHECKS: tuple[str, ...] = (
    "reachable", "version-is-target", "guests-running", "no-guest-lost", "services-healthy",
    "performance-baseline",
)

SUITE_KINDS = ("command", "pytest", "ansible")


@dataclass(frozen=True, slots=True)
class SuiteSpec:
    """A user-defined regression suite run against a ring's hosts once they are patched."""

    name: str
    kind: str              # command, pytest, ansible
    run: str               # the command line, the pytest path, or the playbook
    rings: tuple[str, ...] = ()   # empty: every ring
    timeout_s: float = 900.0

    def applies_to(self, ring: str) -> bool:
        """Whether the suite runs for ``ring``."""
        return not self.rings or ring in self.rings


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """Retries, rollback, pauses, timeouts and checks of a rollout."""

    max_retries_per_host: int = 3
    retry_backoff_s: float = 30.0
    retry_backoff_max_s: float = 900.0
    rollback_on_failure: bool = True
    #: rings whose first failed host pauses the rollout for a human
    pause_on_first_failure: tuple[str, ...] = ("prod",)
    host_ready_timeout_s: float = 1800.0
    #: how much worse than the pre-patch measurement a metric may get (0.25 = 25 %)
    performance_tolerance: float = 0.25
    checks: tuple[str, ...] = BUILTIN_CHECKS
    suites: tuple[SuiteSpec, ...] = ()
    #: cluster settings held during the rollout and restored after (e.g. DRS to manual, so the
    #: platform does not move guests against the plan's placements)
    cluster_settings: Mapping[str, str] = field(
        default_factory=lambda: {"drs_automation": "manual"})
    #: seconds a lease lasts without renewal; another engine may take over after that
    lease_seconds: float = 30.0
    #: whether to wait out each ring's soak (False: the gate fails until it has elapsed)
    wait_for_soak: bool = True
    #: whether to start each wave inside the plan's maintenance windows, waiting for the next
    #: one that fits it (False: start at once, as a plan without windows does)
    wait_for_windows: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored with the rollout)."""
        return {
            "max_retries_per_host": self.max_retries_per_host,
            "retry_backoff_s": self.retry_backoff_s,
            "retry_backoff_max_s": self.retry_backoff_max_s,
            "rollback_on_failure": self.rollback_on_failure,
            "pause_on_first_failure": list(self.pause_on_first_failure),
            "host_ready_timeout_s": self.host_ready_timeout_s,
            "performance_tolerance": self.performance_tolerance,
            "checks": list(self.checks),
            "suites": [{"name": s.name, "kind": s.kind, "run": s.run, "rings": list(s.rings),
                        "timeout_s": s.timeout_s} for s in self.suites],
            "cluster_settings": dict(self.cluster_settings),
            "lease_seconds": self.lease_seconds,
            "wait_for_soak": self.wait_for_soak,
            "wait_for_windows": self.wait_for_windows,
        }


DEFAULT_ROLLOUT_POLICY = RolloutPolicy()


def backoff_seconds(policy: RolloutPolicy, attempt: int, hinted: float = 0.0) -> float:
    """Wait before retry number ``attempt`` (1-based): doubling from the base, capped, and never
    shorter than the driver's hint (e.g. a Retry-After)."""
    base = policy.retry_backoff_s * float(2 ** max(0, attempt - 1))
    return max(hinted, min(base, policy.retry_backoff_max_s))


def _number(data: Mapping[str, Any], key: str, lo: float, hi: float, loc: str,
            problems: list[Problem]) -> float | None:
    if key not in data:
        return None
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or not lo <= v <= hi:
        problems.append(Problem(f"{loc}: {key}", f"expected a number between {lo:g} and {hi:g}, "
                                f"got {v!r}"))
        return None
    return float(v)


def _names(data: Mapping[str, Any], key: str, loc: str, problems: list[Problem],
           allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
    if key not in data:
        return None
    v = data[key]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        problems.append(Problem(f"{loc}: {key}", f"expected a list of names, got {v!r}"))
        return None
    if allowed is not None:
        for x in v:
            if x not in allowed:
                problems.append(Problem(f"{loc}: {key}", f"unknown {x!r} (expected any of "
                                        f"{', '.join(allowed)})"))
    return tuple(v)


def _suite(i: int, spec: Any, loc: str, problems: list[Problem]) -> SuiteSpec | None:
    where = f"{loc}: suites[{i}]"
    if not isinstance(spec, dict):
        problems.append(Problem(where, "expected a mapping with name, kind, run"))
        return None
    known = {"name", "kind", "run", "rings", "timeout_s"}
    for key in sorted(set(spec) - known, key=str):
        problems.append(Problem(f"{where}.{key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(known))})"))
    ok = True
    for key in ("name", "run"):
        if not isinstance(spec.get(key), str) or not spec.get(key, "").strip():
            problems.append(Problem(f"{where}.{key}", "required text"))
            ok = False
    if spec.get("kind") not in SUITE_KINDS:
        problems.append(Problem(f"{where}.kind", f"expected one of {', '.join(SUITE_KINDS)}, "
                                f"got {spec.get('kind')!r}"))
        ok = False
    rings = _names(spec, "rings", where, problems) or ()
    timeout = _number(spec, "timeout_s", 1, 86400, where, problems)
    if not ok:
        return None
    return SuiteSpec(spec["name"].strip(), spec["kind"], spec["run"], rings,
                     timeout if timeout is not None else 900.0)


_KEYS = {"max_retries_per_host", "retry_backoff_s", "retry_backoff_max_s", "rollback_on_failure",
         "pause_on_first_failure", "host_ready_timeout_s", "performance_tolerance", "checks",
         "suites", "cluster_settings", "lease_seconds", "wait_for_soak", "wait_for_windows"}


def rollout_policy_from_dict(data: Any, where: str = "rollout policy") -> RolloutPolicy:
    """Validate a parsed rollout policy; raise :class:`InputError` naming every bad field.

    Every field is optional. Accepts what :meth:`RolloutPolicy.to_dict` writes.
    """
    if data is None:
        return DEFAULT_ROLLOUT_POLICY
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a rollout policy", [Problem(where, "expected a mapping")])
    problems: list[Problem] = []
    for key in sorted(set(data) - _KEYS, key=str):
        problems.append(Problem(f"{where}: {key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(_KEYS))})"))
    values: dict[str, Any] = {}
    if "max_retries_per_host" in data:
        v = data["max_retries_per_host"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
            problems.append(Problem(f"{where}: max_retries_per_host", f"expected a whole number "
                                    f"between 0 and 100, got {v!r}"))
        else:
            values["max_retries_per_host"] = v
    for key, lo, hi in (("retry_backoff_s", 0, 86400), ("retry_backoff_max_s", 0, 86400),
                        ("host_ready_timeout_s", 1, 86400), ("performance_tolerance", 0, 10),
                        ("lease_seconds", 1, 3600)):
        n = _number(data, key, lo, hi, where, problems)
        if n is not None:
            values[key] = n
    for key in ("rollback_on_failure", "wait_for_soak", "wait_for_windows"):
        if key in data:
            if isinstance(data[key], bool):
                values[key] = data[key]
            else:
                problems.append(Problem(f"{where}: {key}", "expected true or false"))
    rings = _names(data, "pause_on_first_failure", where, problems)
    if rings is not None:
        values["pause_on_first_failure"] = rings
    checks = _names(data, "checks", where, problems, BUILTIN_CHECKS)
    if checks is not None:
        values["checks"] = checks
    if "suites" in data:
        raw = data["suites"]
        if not isinstance(raw, list):
            problems.append(Problem(f"{where}: suites", "expected a list of suites"))
        else:
            suites = [_suite(i, s, where, problems) for i, s in enumerate(raw)]
            values["suites"] = tuple(s for s in suites if s is not None)
            names = [s.name for s in values["suites"]]
            for dup in sorted({n for n in names if names.count(n) > 1}):
                problems.append(Problem(f"{where}: suites", f"two suites are named {dup!r}"))
    if "cluster_settings" in data:
        raw = data["cluster_settings"]
        if not isinstance(raw, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            problems.append(Problem(f"{where}: cluster_settings",
                                    "expected a mapping of setting name to text value"))
        else:
            values["cluster_settings"] = dict(raw)
    if problems:
        raise InputError(f"{where} is not a valid rollout policy; nothing was changed", problems)
    return replace(DEFAULT_ROLLOUT_POLICY, **values)
