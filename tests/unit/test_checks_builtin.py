"""The built-in host checks against a small scripted driver: pass, fail, and driver errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from hvpatch.adapters.checks.builtin import (
    GuestsRunning,
    NoGuestLost,
    PerformanceBaseline,
    Reachable,
    ServicesHealthy,
    VersionIsTarget,
    builtin_checks,
)
from hvpatch.domain.rollout import BUILTIN_CHECKS
from hvpatch.errors import InputError, PermanentStepError, TemporaryStepError
from hvpatch.ports.checks import Check, CheckContext, CheckResult
from hvpatch.ports.driver import (
    DriverCapabilities,
    GuestState,
    HostState,
    HypervisorDriver,
    Probe,
)


@dataclass
class ScriptedDriver:
    """Answers host_state and probe from dicts; a host mapped to an exception raises it."""

    states: dict[str, HostState | Exception] = field(default_factory=dict)
    probes: dict[str, Probe | Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    @property
    def capabilities(self) -> DriverCapabilities:
        return DriverCapabilities("scripted")

    async def host_state(self, host: str) -> HostState:
        self.calls.append(host)
        s = self.states[host]
        if isinstance(s, Exception):
            raise s
        return s

    async def probe(self, host: str) -> Probe:
        p = self.probes[host]
        if isinstance(p, Exception):
            raise p
        return p

    # every other operation: checks must not call them
    async def _unused(self, *args: Any) -> Any:
        raise AssertionError("a check changed the platform")

    enter_maintenance = exit_maintenance = migrate_guest = shutdown_guest = start_guest = _unused
    stage_patch = apply_patch = reboot = wait_ready = rollback = _unused
    cluster_settings = set_cluster_settings = close = _unused


def state(name: str, *guests: GuestState, reachable: bool = True,
          components: tuple[tuple[str, str], ...] = (("esxi", "24022510"),)) -> HostState:
    return HostState(name, reachable, False, components, "boot-1", guests=guests)


def g(name: str, host: str, running: bool = True) -> GuestState:
    return GuestState(name, host, running, 4096)


def ctx(host: str = "h1", *, hosts: tuple[str, ...] = ("h1", "h2", "h3"),
        target: tuple[tuple[str, str], ...] = (("esxi", "24022510"),),
        before: HostState | None = None, cluster: tuple[str, ...] = (),
        baseline: Mapping[str, Mapping[str, float]] | None = None) -> CheckContext:
    return CheckContext("r1", "canary", hosts, host, target, before, baseline or {}, cluster)


def run(check: Check, c: CheckContext, driver: ScriptedDriver) -> CheckResult:
    result = asyncio.run(check.run(c, driver))
    assert result.name == check.name
    json.dumps(result.evidence)  # evidence is kept as JSON: it must serialise as is
    return result


def test_the_scripted_driver_and_every_check_fit_their_ports() -> None:
    assert isinstance(ScriptedDriver(), HypervisorDriver)
    checks = builtin_checks(BUILTIN_CHECKS, tolerance=0.25)
    assert [c.name for c in checks] == list(BUILTIN_CHECKS)
    assert all(isinstance(c, Check) and c.scope == "host" for c in checks)


def test_factory_keeps_order_drops_duplicates_and_names_every_unknown_check() -> None:
    checks = builtin_checks(["services-healthy", "reachable", "reachable"], tolerance=0.1)
    assert [c.name for c in checks] == ["services-healthy", "reachable"]
    perf = builtin_checks(["performance-baseline"], tolerance=0.1)[0]
    assert isinstance(perf, PerformanceBaseline) and perf.tolerance == 0.1
    with pytest.raises(InputError) as err:
        builtin_checks(["reachable", "pings", "smoke"], tolerance=0.25)
    assert [p.message.split()[1] for p in err.value.problems] == ["'pings'", "'smoke'"]
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InputError):
            PerformanceBaseline(bad)


def test_reachable() -> None:
    d = ScriptedDriver({"h1": state("h1"), "h2": state("h2", reachable=False),
                        "h3": TemporaryStepError("connection refused", delay=5)})
    assert run(Reachable(), ctx("h1"), d).ok
    down = run(Reachable(), ctx("h2"), d)
    assert not down.ok and "NOT reachable" in down.summary
    err = run(Reachable(), ctx("h3"), d)
    assert not err.ok and err.evidence["error"] == "connection refused"
    assert err.evidence["error_type"] == "TemporaryStepError"
    assert not run(Reachable(), ctx(""), d).ok  # no host under test: no proof


def test_version_is_target_compares_every_component() -> None:
    comps = (("esxi", "24022510"), ("vsan", "8.0.3"))
    d = ScriptedDriver({"h1": state("h1", components=comps),
                        "h2": state("h2", components=(("esxi", "23305546"),)),
                        "h3": PermanentStepError("auth failed")})
    ok = run(VersionIsTarget(), ctx("h1", target=comps), d)
    assert ok.ok and ok.evidence["components"]["vsan"] == {"expected": "8.0.3", "live": "8.0.3"}
    bad = run(VersionIsTarget(), ctx("h2", target=comps), d)
    assert not bad.ok and bad.evidence["mismatched"] == ["esxi", "vsan"]
    assert bad.evidence["components"]["esxi"] == {"expected": "24022510", "live": "23305546"}
    assert "vsan is absent" in bad.summary
    err = run(VersionIsTarget(), ctx("h3", target=comps), d)
    assert not err.ok and err.evidence["error"] == "auth failed"
    assert not run(VersionIsTarget(), ctx("h1", target=()), d).ok  # nothing to prove


def _cluster() -> ScriptedDriver:
    # before the patch h1 ran a, b and had c powered off; a moved to h2, b to h3
    return ScriptedDriver({
        "h1": state("h1", g("c", "h1", running=False)),
        "h2": state("h2", g("a", "h2"), g("x", "h2")),
        "h3": state("h3", g("b", "h3"), g("y", "h3", running=False)),
    })


BEFORE = state("h1", g("a", "h1"), g("b", "h1"), g("c", "h1", running=False))


def test_guests_running_finds_guests_on_other_hosts() -> None:
    d = _cluster()
    r = run(GuestsRunning(), ctx(before=BEFORE, cluster=("x",)), d)
    assert r.ok, r.summary
    assert r.evidence["found"] == {"a": "h2", "b": "h3", "x": "h2"}
    assert sorted(d.calls) == ["h1", "h2", "h3"]  # each host read once, the host included
    # a cluster guest that is off now, and one that is nowhere, fail the check
    r = run(GuestsRunning(), ctx(before=BEFORE, cluster=("x", "y", "z")), _cluster())
    assert not r.ok and r.evidence["missing"] == ["y", "z"]
    assert "2 of 5 guests not running" in r.summary


def test_guests_running_on_an_unreachable_or_unreadable_host_do_not_count() -> None:
    d = _cluster()
    d.states["h3"] = state("h3", g("b", "h3"), reachable=False)
    r = run(GuestsRunning(), ctx(before=BEFORE), d)
    assert not r.ok and r.evidence["missing"] == ["b"]
    assert r.evidence["hosts_unreachable"] == ["h3"] and "could not see h3" in r.summary
    d = _cluster()
    d.states["h3"] = TemporaryStepError("timeout")
    r = run(GuestsRunning(), ctx(before=BEFORE), d)
    assert not r.ok and r.evidence["hosts_unreadable"]["h3"]["error"] == "timeout"
    # an unreadable host does not matter when every guest is found elsewhere
    d = _cluster()
    d.states["h2"] = state("h2", g("a", "h2"), g("b", "h2"))
    d.states["h3"] = PermanentStepError("gone")
    r = run(GuestsRunning(), ctx(before=BEFORE), d)
    assert r.ok and r.evidence["hosts_unreadable"]["h3"]["error"] == "gone"


def test_guest_checks_need_the_pre_patch_state() -> None:
    for check in (GuestsRunning(), NoGuestLost()):
        r = run(check, ctx(before=None), _cluster())
        assert not r.ok and "no pre-patch state" in r.summary


def test_no_guest_lost_counts_powered_off_guests_too() -> None:
    assert run(NoGuestLost(), ctx(before=BEFORE), _cluster()).ok
    lost = state("h1", *BEFORE.guests, g("d", "h1", running=False))
    r = run(NoGuestLost(), ctx(before=lost), _cluster())
    assert not r.ok and r.evidence["missing"] == ["d"]
    assert "not registered anywhere" in r.summary
    r = run(NoGuestLost(), ctx(before=state("h1")), _cluster())
    assert r.ok and r.summary == "no guests to check"


def test_services_healthy() -> None:
    d = ScriptedDriver(probes={
        "h1": Probe(True, {"hostd": "running", "vpxa": "running"}),
        "h2": Probe(False, {"hostd": "running", "vpxa": "stopped"}),
        "h3": TemporaryStepError("probe timed out"),
    })
    ok = run(ServicesHealthy(), ctx("h1"), d)
    assert ok.ok and ok.evidence["services"] == {"hostd": "running", "vpxa": "running"}
    bad = run(ServicesHealthy(), ctx("h2"), d)
    assert not bad.ok and "vpxa stopped" in bad.summary
    err = run(ServicesHealthy(), ctx("h3"), d)
    assert not err.ok and err.evidence["error"] == "probe timed out"


def test_performance_baseline() -> None:
    base = {"h1": {"guest_boot_s": 20.0, "io_latency_ms": 2.0}}
    d = ScriptedDriver(probes={"h1": Probe(True, metrics={"guest_boot_s": 25.0,
                                                          "io_latency_ms": 1.0})})
    ok = run(PerformanceBaseline(0.25), ctx(baseline=base), d)  # 25.0 is exactly the limit
    assert ok.ok and ok.evidence["metrics"]["guest_boot_s"]["limit"] == 25.0
    d.probes["h1"] = Probe(True, metrics={"guest_boot_s": 25.1, "io_latency_ms": 1.0})
    slow = run(PerformanceBaseline(0.25), ctx(baseline=base), d)
    assert not slow.ok and slow.evidence["worse"] == ["guest_boot_s"]
    assert "guest_boot_s 25.1 > 25" in slow.summary
    assert run(PerformanceBaseline(0.5), ctx(baseline=base), d).ok  # a looser tolerance
    d.probes["h1"] = Probe(True, metrics={"guest_boot_s": 10.0})
    gone = run(PerformanceBaseline(0.25), ctx(baseline=base), d)
    assert not gone.ok and gone.evidence["metrics"]["io_latency_ms"]["live"] is None
    none = run(PerformanceBaseline(0.25), ctx(baseline={"h2": {"x": 1.0}}), d)
    assert none.ok and none.summary == "no baseline recorded"
    d.probes["h1"] = PermanentStepError("no probe")
    err = run(PerformanceBaseline(0.25), ctx(baseline=base), d)
    assert not err.ok and err.evidence["error"] == "no probe"


def test_a_bug_in_the_driver_is_not_swallowed() -> None:
    d = ScriptedDriver({"h1": state("h1"), "h2": ValueError("bug"), "h3": state("h3")})
    with pytest.raises(ValueError, match="bug"):
        asyncio.run(GuestsRunning().run(ctx(before=BEFORE), d))
