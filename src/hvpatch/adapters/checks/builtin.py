"""The built-in host checks: what proves a patched host still does its job.

Each check here is host-scoped (it runs after each host's ``checks`` step) and implements
:class:`hvpatch.ports.checks.Check`. A check never raises for a failure: a failed proof, and a
:class:`~hvpatch.errors.DriverError` while gathering it, are a :class:`CheckResult` with
``ok=False`` whose ``evidence`` says what was expected, what was seen and which error occurred.
Evidence is plain JSON-able data, kept with the rollout for the ring's gate and for auditors.

==========================  ==================================================================
check                       proves
==========================  ==================================================================
``reachable``               the host answers its platform (``host_state(host).reachable``)
``version-is-target``       every targeted component runs exactly the targeted version
``guests-running``          every guest that ran before still runs, on this host or another
``no-guest-lost``           every guest the host had (running or not) is still registered
``services-healthy``        the platform's health probe reports its services fine
``performance-baseline``    no probe metric got worse than its pre-patch value + tolerance
==========================  ==================================================================

**Finding guests across hosts.** The driver port has no "list every guest"; the guest checks
read :meth:`~hvpatch.ports.driver.HypervisorDriver.host_state` of the host under test and of
every host in ``ctx.hosts`` (concurrently) and look for the guests there. Only *reachable* hosts
count (an unreachable host's guest list is stale). A guest found proves itself, so a host whose
state cannot be read fails the check only when some guest is not found; the unreadable hosts are
named in the evidence either way, since a missing guest may be on one of them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hvpatch.domain.rollout import BUILTIN_CHECKS
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.checks import Check, CheckContext, CheckResult, Scope
from hvpatch.ports.driver import HostState, HypervisorDriver

__all__ = [
    "GuestsRunning",
    "NoGuestLost",
    "PerformanceBaseline",
    "Reachable",
    "ServicesHealthy",
    "VersionIsTarget",
    "builtin_checks",
    "find_guests",
]


def _error(exc: DriverError) -> dict[str, str]:
    return {"error": str(exc), "error_type": type(exc).__name__}


class _HostCheck:
    """Common parts of the built-in checks: a fixed name, host scope, the host-less guard."""

    NAME = ""

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def scope(self) -> Scope:
        return "host"

    def result(self, ok: bool, summary: str, **evidence: Any) -> CheckResult:
        return CheckResult(self.NAME, ok, summary, evidence)

    def no_host(self) -> CheckResult:
        return self.result(False, "no host under test in the check's context", host="")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Reachable(_HostCheck):
    """The host answers its platform again."""

    NAME = "reachable"

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        if not ctx.host:
            return self.no_host()
        try:
            state = await driver.host_state(ctx.host)
        except DriverError as exc:
            return self.result(False, f"{ctx.host}: state unreadable: {exc}", host=ctx.host,
                               reachable=False, **_error(exc))
        return self.result(state.reachable, f"{ctx.host} is "
                           f"{'reachable' if state.reachable else 'NOT reachable'}",
                           host=ctx.host, reachable=state.reachable, boot_id=state.boot_id)


class VersionIsTarget(_HostCheck):
    """Every ``(component, version)`` of ``ctx.target`` is what the host runs now.

    An empty target proves nothing and fails (the engine always passes the plan's target).
    """

    NAME = "version-is-target"

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        if not ctx.host:
            return self.no_host()
        if not ctx.target:
            return self.result(False, "no target components given: nothing to compare",
                               host=ctx.host, components={})
        try:
            state = await driver.host_state(ctx.host)
        except DriverError as exc:
            return self.result(False, f"{ctx.host}: state unreadable: {exc}", host=ctx.host,
                               components={c: {"expected": v, "live": None}
                                           for c, v in ctx.target}, **_error(exc))
        components = {c: {"expected": v, "live": state.version(c)} for c, v in ctx.target}
        wrong = [c for c, e in components.items() if e["live"] != e["expected"]]
        if wrong:
            summary = f"{ctx.host}: " + "; ".join(
                f"{c} is {components[c]['live'] or 'absent'}, expected {components[c]['expected']}"
                for c in wrong)
        else:
            summary = f"{ctx.host} runs " + ", ".join(f"{c} {v}" for c, v in ctx.target)
        return self.result(not wrong, summary, host=ctx.host, components=components,
                           mismatched=wrong)


async def find_guests(driver: HypervisorDriver, hosts: Iterable[str]
                      ) -> tuple[dict[str, HostState], dict[str, dict[str, str]]]:
    """Read the state of each of ``hosts`` (deduplicated, concurrently).

    Returns the states of the hosts that answered and, per host whose state could not be read,
    the driver error. Exceptions that are not :class:`DriverError` (bugs) propagate.
    """
    names = list(dict.fromkeys(h for h in hosts if h))
    results = await asyncio.gather(*(driver.host_state(h) for h in names),
                                   return_exceptions=True)
    states: dict[str, HostState] = {}
    errors: dict[str, dict[str, str]] = {}
    for name, r in zip(names, results, strict=True):
        if isinstance(r, DriverError):
            errors[name] = _error(r)
        elif isinstance(r, BaseException):
            raise r
        else:
            states[name] = r
    return states, errors


def _where(states: Mapping[str, HostState], *, running: bool) -> dict[str, str]:
    """Guest -> host, over the reachable hosts (running guests only when ``running``)."""
    seen: dict[str, str] = {}
    for host, state in sorted(states.items()):
        if not state.reachable:
            continue
        for g in state.guests:
            # a running copy wins over a registered-but-off one (a guest mid-migration)
            if (g.running or not running) and (g.name not in seen or g.running):
                seen[g.name] = host
    return seen


class _GuestCheck(_HostCheck):
    RUNNING = True

    def expected(self, ctx: CheckContext) -> set[str]:
        raise NotImplementedError

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        if not ctx.host:
            return self.no_host()
        if ctx.before is None:
            return self.result(False, "no pre-patch state recorded: nothing to compare",
                               host=ctx.host)
        expected = self.expected(ctx)
        searched = list(dict.fromkeys((ctx.host, *ctx.hosts)))
        states, errors = await find_guests(driver, searched)
        found = _where(states, running=self.RUNNING)
        missing = sorted(expected - set(found))
        unreachable = sorted(h for h, s in states.items() if not s.reachable)
        evidence: dict[str, Any] = {
            "host": ctx.host, "expected": len(expected), "missing": missing,
            "found": {g: found[g] for g in sorted(expected & set(found))},
            "hosts_searched": searched, "hosts_unreadable": errors,
            "hosts_unreachable": unreachable,
        }
        what = "running" if self.RUNNING else "registered"
        if missing:
            blind = sorted([*errors, *unreachable])
            summary = (f"{len(missing)} of {len(expected)} guests not {what} anywhere: "
                       + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                       + (f" (could not see {', '.join(blind)})" if blind else ""))
            return self.result(False, summary, **evidence)
        if not expected:
            return self.result(True, "no guests to check", **evidence)
        return self.result(True, f"all {len(expected)} guests {what} on "
                           f"{len({found[g] for g in expected})} hosts", **evidence)


class GuestsRunning(_GuestCheck):
    """Every guest that ran on the host before, and every guest of ``cluster_guests_before``,
    runs somewhere among the host and ``ctx.hosts`` now."""

    NAME = "guests-running"
    RUNNING = True

    def expected(self, ctx: CheckContext) -> set[str]:
        assert ctx.before is not None
        return {g.name for g in ctx.before.guests if g.running} | set(ctx.cluster_guests_before)


class NoGuestLost(_GuestCheck):
    """Every guest the host had before (running or not) is still registered on the host or on
    one of ``ctx.hosts``."""

    NAME = "no-guest-lost"
    RUNNING = False

    def expected(self, ctx: CheckContext) -> set[str]:
        assert ctx.before is not None
        return {g.name for g in ctx.before.guests}


class ServicesHealthy(_HostCheck):
    """The platform's health probe says its services are fine."""

    NAME = "services-healthy"

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        if not ctx.host:
            return self.no_host()
        try:
            probe = await driver.probe(ctx.host)
        except DriverError as exc:
            return self.result(False, f"{ctx.host}: probe failed: {exc}", host=ctx.host,
                               services={}, **_error(exc))
        services = dict(probe.services)
        if probe.services_ok:
            summary = f"{ctx.host}: {len(services)} services healthy"
        else:
            summary = f"{ctx.host}: services unhealthy" + (": " + ", ".join(
                f"{k} {v}" for k, v in sorted(services.items())) if services else "")
        return self.result(probe.services_ok, summary, host=ctx.host, services=services)


class PerformanceBaseline(_HostCheck):
    """No probe metric is worse than the pre-patch measurement by more than ``tolerance``.

    Every metric is "lower is better" (boot seconds, latency milliseconds): it fails when
    ``live > baseline * (1 + tolerance)``. A baseline metric the probe no longer reports fails
    too. Without a baseline for the host the check passes, saying so.
    """

    NAME = "performance-baseline"

    def __init__(self, tolerance: float = 0.25) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
                or not math.isfinite(tolerance) or tolerance < 0:
            raise InputError("bad performance tolerance", [Problem(
                "performance_tolerance", f"expected a number >= 0, got {tolerance!r}")])
        self.tolerance = float(tolerance)

    def __repr__(self) -> str:
        return f"PerformanceBaseline(tolerance={self.tolerance:g})"

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        if not ctx.host:
            return self.no_host()
        baseline = dict(ctx.baseline.get(ctx.host) or {})
        if not baseline:
            return self.result(True, "no baseline recorded", host=ctx.host,
                               tolerance=self.tolerance, metrics={})
        try:
            probe = await driver.probe(ctx.host)
        except DriverError as exc:
            return self.result(False, f"{ctx.host}: probe failed: {exc}", host=ctx.host,
                               tolerance=self.tolerance, metrics={}, **_error(exc))
        metrics: dict[str, dict[str, Any]] = {}
        worse: list[str] = []
        for metric, base in sorted(baseline.items()):
            limit = base * (1 + self.tolerance)
            live = probe.metrics.get(metric)
            ok = live is not None and live <= limit
            metrics[metric] = {"baseline": base, "live": live, "limit": limit, "ok": ok}
            if not ok:
                worse.append(metric)
        if worse:
            summary = f"{ctx.host}: " + "; ".join(
                (f"{m} not measured" if metrics[m]["live"] is None else
                 f"{m} {metrics[m]['live']:g} > {metrics[m]['limit']:g}")
                + f" (baseline {metrics[m]['baseline']:g})" for m in worse)
        else:
            summary = (f"{ctx.host}: {len(metrics)} metrics within "
                       f"{self.tolerance:.0%} of baseline")
        return self.result(not worse, summary, host=ctx.host, tolerance=self.tolerance,
                           metrics=metrics, worse=worse)


_SIMPLE: dict[str, Callable[[], Check]] = {
    c.NAME: c for c in (Reachable, VersionIsTarget, GuestsRunning, NoGuestLost, ServicesHealthy)
}
assert {*_SIMPLE, PerformanceBaseline.NAME} == set(BUILTIN_CHECKS), "a built-in check is missing"


def builtin_checks(names: Iterable[str], *, tolerance: float) -> list[Check]:
    """The built-in checks named in ``names``, in that order (each once).

    ``tolerance`` is the performance baseline's (the policy's ``performance_tolerance``).
    Raises :class:`InputError` naming every unknown check.
    """
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in BUILTIN_CHECKS]
    if unknown:
        raise InputError("unknown regression checks", [
            Problem("checks", f"unknown {n!r} (expected any of {', '.join(BUILTIN_CHECKS)})")
            for n in unknown])
    checks: list[Check] = []
    for n in wanted:
        if n == PerformanceBaseline.NAME:
            checks.append(PerformanceBaseline(tolerance))
        else:
            checks.append(_SIMPLE[n]())
    return checks
