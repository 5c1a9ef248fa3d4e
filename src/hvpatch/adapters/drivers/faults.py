"""Declarative, seeded fault injection for the simulator driver.

A :class:`FaultPlan` is a seed and a list of :class:`Fault` s, written as YAML or JSON::

    seed: 7
    faults:
      - kind: install-fails
        hosts: [esx-prod-03]
        times: 1
      - kind: perf-regression
        probability: 0.1
        factor: 2.0

Which hosts a fault applies to is a pure function of the plan and the host (its name, cluster
and ring): the ``hosts``, ``clusters`` and ``rings`` filters, and for ``probability`` a hash of
``(seed, fault index, host name)``. It never depends on the order in which concurrent tasks call
the driver, so the same plan picks the same hosts in every run. How often an event fault fires
(``times``) is counted per (fault, host) by the simulator in its database, so the count survives
a restart of the engine. ``docs/simulator.md`` describes every kind.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvpatch.adapters.yamlfile import load_yaml
from hvpatch.errors import InputError, Problem

__all__ = ["FAULT_KINDS", "METRICS", "Fault", "FaultPlan", "load_fault_plan"]

#: kinds that happen at an operation and are counted (``times``)
EVENT_KINDS: tuple[str, ...] = (
    "install-fails", "no-boot", "migration-fails", "migration-timeout", "guest-crash",
    "driver-unresponsive",
)
#: kinds that are a condition of the patched host (no counting)
CONDITION_KINDS: tuple[str, ...] = ("perf-regression", "services-unhealthy")
FAULT_KINDS: tuple[str, ...] = (*EVENT_KINDS, *CONDITION_KINDS, "withdraw-release")
#: the metrics :meth:`SimulatorDriver.probe` reports
METRICS: tuple[str, ...] = ("guest_boot_s", "io_latency_ms")

_COMMON = ("kind", "hosts", "clusters", "rings", "probability")
#: fields each kind accepts besides the common ones
_FIELDS: dict[str, tuple[str, ...]] = {
    "install-fails": ("times", "delay_s"),
    "no-boot": ("times",),
    "migration-fails": ("times", "delay_s", "guests"),
    "migration-timeout": ("times", "delay_s", "guests", "timeout_s"),
    "guest-crash": ("times", "guests"),
    "driver-unresponsive": ("times", "delay_s"),
    "perf-regression": ("factor", "metrics"),
    "services-unhealthy": ("services",),
    "withdraw-release": ("after_applies",),
}
ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: its kind, which hosts (and guests) it hits, and its parameters.

    ``times`` is how often an event fault fires per host (None: ``always``, which makes it
    permanent); ``delay_s`` the retry hint of the :class:`~hvpatch.errors.TemporaryStepError` it
    raises; ``timeout_s`` how long a ``migration-timeout`` hangs; ``factor`` and ``metrics`` what a
    ``perf-regression`` worsens; ``services`` which services a ``services-unhealthy`` fails (empty:
    the first of the family); ``after_applies`` after how many applies a release is withdrawn.
    """

    kind: str
    hosts: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    rings: tuple[str, ...] = ()
    probability: float = 1.0
    times: int | None = 1
    delay_s: float = 30.0
    guests: tuple[str, ...] = ()
    timeout_s: float = 300.0
    factor: float = 1.6
    metrics: tuple[str, ...] = METRICS
    services: tuple[str, ...] = ()
    after_applies: int = 1

    @property
    def permanent(self) -> bool:
        """True for ``times: always``: the fault fires every time, as a permanent error."""
        return self.times is None

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the kind, the filters that are set, and the kind's parameters."""
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("hosts", "clusters", "rings"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.probability != 1.0:
            out["probability"] = self.probability
        for key in _FIELDS[self.kind]:
            value = getattr(self, key)
            if key == "times":
                out[key] = ALWAYS if value is None else value
            elif isinstance(value, tuple):
                if value:  # an empty filter is no filter: left out
                    out[key] = list(value)
            else:
                out[key] = value
        return out


def _unit(seed: int, index: int, host: str) -> float:
    """A number in [0, 1) that depends only on (seed, fault index, host)."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{host}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A seed and the faults to inject; the empty plan injects nothing."""

    seed: int = 0
    faults: tuple[Fault, ...] = ()

    def matching(self, kind: str, host: str, cluster: str = "",
                 ring: str = "") -> list[tuple[int, Fault]]:
        """``(index, fault)`` of every fault of ``kind`` that applies to ``host``, in plan order.

        A fault applies when the host passes each filter that is set (``hosts``, ``clusters``,
        ``rings``) and, below probability 1, when the hash of (seed, index, host) falls under it.
        """
        out = []
        for i, f in enumerate(self.faults):
            if f.kind != kind:
                continue
            if (f.hosts and host not in f.hosts) or (f.clusters and cluster not in f.clusters) \
                    or (f.rings and ring not in f.rings):
                continue
            if f.probability < 1.0 and not _unit(self.seed, i, host) < f.probability:
                continue
            out.append((i, f))
        return out

    def kinds(self) -> frozenset[str]:
        """The kinds the plan contains."""
        return frozenset(f.kind for f in self.faults)

    @property
    def needs_rings(self) -> bool:
        """Whether any fault filters on rings (the simulator then reads them)."""
        return any(f.rings for f in self.faults)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back to an equal plan."""
        return {"seed": self.seed, "faults": [f.to_dict() for f in self.faults]}

    @classmethod
    def from_dict(cls, data: Any, where: str = "fault plan") -> FaultPlan:
        """Validate a parsed plan; :class:`InputError` with a :class:`Problem` per bad field.

        ``None`` is the empty plan.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError(f"{where} is not a fault plan",
                             [Problem(where, "expected a mapping with seed and faults")])
        problems: list[Problem] = []
        for key in sorted(set(data) - {"seed", "faults"}, key=str):
            problems.append(Problem(f"{where}: {key}", "unknown field (expected seed, faults)"))
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            problems.append(Problem(f"{where}: seed", f"expected a whole number, got {seed!r}"))
            seed = 0
        raw = data.get("faults", [])
        faults: list[Fault] = []
        if not isinstance(raw, list):
            problems.append(Problem(f"{where}: faults", "expected a list of faults"))
        else:
            for i, spec in enumerate(raw):
                fault = _fault(spec, f"{where}: faults[{i}]", problems)
                if fault is not None:
                    faults.append(fault)
        if problems:
            raise InputError(f"{where} is not a valid fault plan", problems)
        return cls(seed, tuple(faults))


def load_fault_plan(path: Path) -> FaultPlan:
    """Read and validate a fault plan from a YAML or JSON file."""
    return FaultPlan.from_dict(load_yaml(path), where=str(path))


def _names(spec: Mapping[str, Any], key: str, loc: str, problems: list[Problem],
           allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
    if key not in spec:
        return None
    value = spec[key]
    if not isinstance(value, list) or not value \
            or not all(isinstance(x, str) and x.strip() for x in value):
        problems.append(Problem(f"{loc}.{key}", f"expected a non-empty list of names, "
                                f"got {value!r}"))
        return None
    bad = [x for x in value if allowed is not None and x not in allowed]
    for x in bad:
        problems.append(Problem(f"{loc}.{key}", f"unknown {x!r} (expected any of "
                                f"{', '.join(allowed or ())})"))
    return None if bad else tuple(x.strip() for x in value)


def _number(spec: Mapping[str, Any], key: str, lo: float, hi: float, loc: str,
            problems: list[Problem], *, above: bool = False) -> float | None:
    if key not in spec:
        return None
    value = spec[key]
    ok = (not isinstance(value, bool) and isinstance(value, int | float)
          and math.isfinite(value) and lo <= value <= hi and not (above and value == lo))
    if not ok:
        low = f"greater than {lo:g}" if above else f"at least {lo:g}"
        problems.append(Problem(f"{loc}.{key}", f"expected a number {low} and at most {hi:g}, "
                                f"got {value!r}"))
        return None
    return float(value)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        return None
    return value


def _fault(spec: Any, loc: str, problems: list[Problem]) -> Fault | None:
    if not isinstance(spec, Mapping):
        problems.append(Problem(loc, "expected a mapping with at least a kind"))
        return None
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        problems.append(Problem(f"{loc}.kind", f"expected one of {', '.join(FAULT_KINDS)}, "
                                f"got {kind!r}"))
        return None
    allowed = (*_COMMON, *_FIELDS[kind])
    for key in sorted(set(spec) - set(allowed), key=str):
        problems.append(Problem(f"{loc}.{key}", f"does not apply to {kind} (it takes "
                                f"{', '.join(sorted(set(allowed) - {'kind'}))})"))
    before = len(problems)
    values: dict[str, Any] = {"kind": kind}
    for key in ("hosts", "clusters", "rings", "guests", "services"):
        names = _names(spec, key, loc, problems)
        if names is not None:
            values[key] = names
    metrics = _names(spec, "metrics", loc, problems, METRICS)
    if metrics is not None:
        values["metrics"] = metrics
    probability = _number(spec, "probability", 0, 1, loc, problems)
    if probability is not None:
        values["probability"] = probability
    for key, lo, hi, above in (("delay_s", 0, 86400, False), ("timeout_s", 0, 86400, False),
                               ("factor", 0, 1000, True)):
        n = _number(spec, key, lo, hi, loc, problems, above=above)
        if n is not None:
            values[key] = n
    if "times" in spec:
        times = spec["times"]
        if times == ALWAYS:
            values["times"] = None
        elif (whole := _whole(times)) is not None:
            values["times"] = whole
        else:
            problems.append(Problem(f"{loc}.times", f"expected a whole number from 1 or "
                                    f"{ALWAYS!r}, got {times!r}"))
    if "after_applies" in spec:
        whole = _whole(spec["after_applies"])
        if whole is None:
            problems.append(Problem(f"{loc}.after_applies", f"expected a whole number from 1, "
                                    f"got {spec['after_applies']!r}"))
        else:
            values["after_applies"] = whole
    if len(problems) > before:
        return None
    return Fault(**values)
