"""The simulator driver (digital twin) on SQLite and PostgreSQL: strict rules, durable state,
every fault kind, and concurrent operations."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from hvpatch.adapters.clock import FakeClock
from hvpatch.adapters.drivers.faults import FaultPlan
from hvpatch.adapters.drivers.simulator import SimulatorDriver, simulation_clock
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import SimStateRow, WithdrawnReleaseRow
from hvpatch.domain.fleet import (
    DEFAULT_RINGS,
    Cluster,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    PowerState,
    Site,
    Tenant,
    TenantName,
)
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.domain.software import EsxiSoftware, KvmSoftware, Package
from hvpatch.errors import PermanentStepError, TemporaryStepError
from hvpatch.ports.driver import HypervisorDriver
from hvpatch.services.inventory import import_fleet

T = TypeVar("T")
START = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
ESXI_OLD, ESXI_NEW = "19193900", "24022510"
TARGET = (("esxi", ESXI_NEW),)
KVM_TARGET = (("qemu", "8.2.1"), ("qemu-kvm", "17:8.2.1-1.el9_4"))
TENANT = TenantName("t")


def _guest(name: str, mb: int, *, running: bool = True,
           block: MigrationBlock | None = None) -> Guest:
    return Guest(GuestName(name), TENANT, 2, mb,
                 power_state=PowerState.RUNNING if running else PowerState.STOPPED,
                 migration_block=block)


def _esxi(name: str, cluster: str, mb: int, guests: tuple[Guest, ...] = ()) -> Host:
    return Host(HostName(name), "s1", cluster, EsxiSoftware(ESXI_OLD), 32, mb, guests=guests)


def fleet() -> Fleet:
    kvm = KvmSoftware("rhel-9.4", "8.2.0", "10.0.0", "5.14.0-427.13.1.el9_4",
                      (Package("qemu-kvm", "17:8.2.0-11.el9_4"),))
    c1 = Cluster("c1", "s1", Family.ESXI, "test", hosts=(
        _esxi("h1", "c1", 65536, (_guest("g1", 16384),
                                  _guest("g2", 16384, block=MigrationBlock.LOCAL_DISK),
                                  _guest("g3", 8192, running=False))),
        _esxi("h2", "c1", 65536, (_guest("g4", 50000),)),
        _esxi("h3", "c1", 65536),
    ))
    c2 = Cluster("c2", "s1", Family.KVM, "prod", memory_overcommit=1.5, hosts=(
        Host(HostName("k1"), "s1", "c2", kvm, 16, 32768, guests=(_guest("g5", 4096),)),
        Host(HostName("k2"), "s1", "c2", kvm, 16, 32768),
    ))
    big = Cluster("big", "s1", Family.ESXI, "dev", hosts=(
        _esxi("src", "big", 65536, tuple(_guest(f"v{i:02d}", 1024) for i in range(50))),
        _esxi("dst", "big", 40 * 1024),
    ))
    return Fleet(DEFAULT_RINGS, (Tenant(TENANT),), (Site("s1", "UTC", (c1, c2, big)),))


@pytest.fixture
def twin(store: Store) -> Store:
    import_fleet(store, fleet(), source="test", sha256="")
    return store


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro
    return asyncio.run(go())


def driver(store: Store, clock: FakeClock | None = None, **kw: Any) -> SimulatorDriver:
    return SimulatorDriver(store, clock or FakeClock(START), **kw)


def plan(*faults: dict[str, Any], seed: int = 1) -> FaultPlan:
    return FaultPlan.from_dict({"seed": seed, "faults": list(faults)})


def fresh(store: Store) -> None:
    """Start the twin again from the inventory (cheaper than a new store)."""
    d = SimulatorDriver(store, FakeClock(START), initialize=False)
    d.reset()
    d.initialize()


async def patch(d: SimulatorDriver, host: str, components: Any = TARGET) -> None:
    """The host steps of a rollout on an empty host."""
    await d.enter_maintenance(host)
    await d.stage_patch(host, components)
    await d.apply_patch(host, components)
    await d.reboot(host)
    await d.wait_ready(host, 1800)
    await d.exit_maintenance(host)


# --- the copy of the inventory ------------------------------------------------------------------


def test_initialize_copies_the_inventory_once(twin: Store) -> None:
    d = driver(twin)
    assert isinstance(d, HypervisorDriver)
    snap = d.snapshot()
    assert len(snap["hosts"]) == 7 and len(snap["guests"]) == 55
    h1 = snap["hosts"]["h1"]
    assert h1["components"] == {"esxi": ESXI_OLD} and h1["family"] == "esxi"
    assert h1["capacity_mb"] == 65536 and h1["cluster"] == "c1" and h1["up"]
    k1 = snap["hosts"]["k1"]
    assert k1["capacity_mb"] == 49152  # 32 GiB x overcommit 1.5
    assert k1["components"] == {"qemu": "8.2.0", "libvirt": "10.0.0",
                                "linux_kernel": "5.14.0-427.13.1.el9_4",
                                "qemu-kvm": "17:8.2.0-11.el9_4"}
    assert snap["guests"]["g2"] == {"host": "h1", "running": True, "memory_mb": 16384,
                                    "blocked": "local-disk", "migrations": 0}
    assert snap["guests"]["g3"]["running"] is False
    assert run(d.cluster_settings("c1")) == {"drs_automation": "fully-automated",
                                             "ha_admission_control": "enabled"}
    # idempotent: a second initialisation adds nothing and keeps the twin's own state
    run(d.migrate_guest("g1", "h3"))
    assert d.initialize() == {"hosts": 0, "guests": 0, "clusters": 0}
    assert driver(twin).snapshot()["guests"]["g1"]["host"] == "h3"
    d.reset()
    assert d.snapshot() == {"hosts": {}, "guests": {}}
    assert d.initialize() == {"hosts": 7, "guests": 55, "clusters": 3}
    assert d.snapshot()["guests"]["g1"]["host"] == "h1"


def test_host_state_and_unknown_names(twin: Store) -> None:
    d = driver(twin)
    state = run(d.host_state("h1"))
    assert state.reachable and not state.maintenance and state.boot_id == "1"
    assert state.components == (("esxi", ESXI_OLD),) and state.version("esxi") == ESXI_OLD
    assert state.running_guests() == ("g1", "g2")
    assert {g.name: g.memory_mb for g in state.guests} == {"g1": 16384, "g2": 16384, "g3": 8192}
    for call in (d.host_state("nope"), d.enter_maintenance("nope"), d.reboot("nope"),
                 d.migrate_guest("g1", "nope"), d.probe("nope")):
        with pytest.raises(PermanentStepError, match="unknown host 'nope'"):
            run(call)
    for call in (d.migrate_guest("ghost", "h2"), d.start_guest("ghost"),
                 d.shutdown_guest("ghost")):
        with pytest.raises(PermanentStepError, match="unknown guest 'ghost'"):
            run(call)
    with pytest.raises(PermanentStepError, match="unknown cluster 'c9'"):
        run(d.cluster_settings("c9"))
    with pytest.raises(PermanentStepError, match="unknown cluster 'c9'"):
        run(d.set_cluster_settings("c9", {"drs_automation": "manual"}))
    run(d.set_cluster_settings("c1", {"drs_automation": "manual"}))
    assert run(driver(twin).cluster_settings("c1")) == {"drs_automation": "manual",
                                                        "ha_admission_control": "enabled"}
    assert d.capabilities.name == "simulator" and d.capabilities.rollback
    run(d.close())


# --- the strict platform ------------------------------------------------------------------------


def test_migration_rules(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock)
    with pytest.raises(PermanentStepError, match=r"g2 cannot be live-migrated \(local-disk"):
        run(d.migrate_guest("g2", "h3"))
    with pytest.raises(PermanentStepError, match=r"g1 \(16384 MiB\) does not fit on h2: "
                       r"50000 of 65536 MiB used, 15536 free"):
        run(d.migrate_guest("g1", "h2"))
    with pytest.raises(PermanentStepError, match="cluster c2"):
        run(d.migrate_guest("g1", "k2"))
    run(d.enter_maintenance("h3"))
    with pytest.raises(PermanentStepError, match="h3: the host is in maintenance mode"):
        run(d.migrate_guest("g1", "h3"))
    run(d.exit_maintenance("h3"))
    before = clock.slept
    run(d.migrate_guest("g1", "h3"))
    assert clock.slept - before == pytest.approx(TimeModel().migration_seconds(16384))
    run(d.migrate_guest("g1", "h3"))  # already there: nothing happens, no time passes
    assert clock.slept - before == pytest.approx(TimeModel().migration_seconds(16384))
    # a stopped guest moves cold and takes no capacity
    run(d.migrate_guest("g3", "h2"))
    snap = d.snapshot()["guests"]
    assert snap["g1"] == {**snap["g1"], "host": "h3", "migrations": 1, "running": True}
    assert snap["g3"]["host"] == "h2" and not snap["g3"]["running"]
    # a rebooting host does not answer, and takes no guests
    run(d.enter_maintenance("k2"))
    run(d.reboot("k2"))
    with pytest.raises(TemporaryStepError, match="not reachable"):
        run(d.exit_maintenance("k2"))
    with pytest.raises(PermanentStepError, match="k2: the host is down"):
        run(d.migrate_guest("g5", "k2"))
    run(d.wait_ready("k2", 600))
    run(d.exit_maintenance("k2"))
    run(d.migrate_guest("g5", "k2"))
    assert d.snapshot()["guests"]["g5"]["host"] == "k2"


def test_maintenance_guests_and_reboot_rules(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock)
    with pytest.raises(PermanentStepError, match=r"h1: 2 guest\(s\) still running on it: g1, g2"):
        run(d.enter_maintenance("h1"))
    with pytest.raises(PermanentStepError, match="cannot reboot host h1"):
        run(d.reboot("h1"))
    with pytest.raises(PermanentStepError, match="not in maintenance"):
        run(d.apply_patch("h1", TARGET))
    run(d.migrate_guest("g1", "h3"))
    run(d.shutdown_guest("g2"))
    run(d.shutdown_guest("g2"))  # idempotent
    run(d.enter_maintenance("h1"))
    slept = clock.slept
    run(d.enter_maintenance("h1"))  # idempotent and instant
    assert clock.slept == slept
    assert run(d.host_state("h1")).maintenance
    with pytest.raises(PermanentStepError, match="cannot start guest g2: its host h1 is in "
                       "maintenance"):
        run(d.start_guest("g2"))
    run(d.exit_maintenance("h1"))
    run(d.start_guest("g2"))
    run(d.start_guest("g2"))  # idempotent
    assert d.snapshot()["guests"]["g2"]["running"]


def test_apply_reboot_and_rollback(twin: Store) -> None:
    """Apply, reboot, rollback; then (fresh twin) a boot longer than the wait times out."""
    _apply_reboot_and_rollback(twin)
    fresh(twin)
    _wait_ready_times_out_and_host_comes_back_lazily(twin)


def _apply_reboot_and_rollback(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock)
    timing = TimeModel()
    run(d.enter_maintenance("h3"))
    run(d.stage_patch("h3", TARGET))
    assert run(d.host_state("h3")).staged == TARGET
    t0 = clock.slept
    run(d.apply_patch("h3", TARGET))
    assert clock.slept - t0 == timing.install("esxi")
    run(d.apply_patch("h3", TARGET))  # pending already: not installed again, not counted
    assert clock.slept - t0 == timing.install("esxi")
    state = run(d.host_state("h3"))
    assert state.reboot_required and state.version("esxi") == ESXI_OLD and state.staged == ()
    assert d.snapshot()["hosts"]["h3"]["applies"] == 1
    run(d.reboot("h3"))
    state = run(d.host_state("h3"))
    assert not state.reachable and state.boot_id == "2" and not state.reboot_required
    with pytest.raises(TemporaryStepError, match="rebooting") as err:
        run(d.probe("h3"))
    assert err.value.delay == pytest.approx(timing.reboot("esxi"))
    t1 = clock.now()
    run(d.wait_ready("h3", 1800))
    assert clock.now() - t1 == timedelta(seconds=timing.reboot("esxi"))
    state = run(d.host_state("h3"))
    assert state.reachable and state.version("esxi") == ESXI_NEW and state.boot_id == "2"
    run(d.apply_patch("h3", TARGET))  # installed already: nothing
    assert d.snapshot()["hosts"]["h3"]["applies"] == 1
    # rollback: the previous software, after a reboot
    run(d.rollback("h3"))
    assert not run(d.host_state("h3")).reachable
    run(d.wait_ready("h3", 1800))
    state = run(d.host_state("h3"))
    assert state.version("esxi") == ESXI_OLD and state.boot_id == "3"
    snap = d.snapshot()["hosts"]["h3"]
    assert snap["rollbacks"] == 1 and snap["applies"] == 1 and snap["pending"] == {}
    # a rollback before the reboot drops the pending install
    run(d.apply_patch("h3", TARGET))
    run(d.rollback("h3"))
    run(d.wait_ready("h3", 1800))
    state = run(d.host_state("h3"))
    assert state.version("esxi") == ESXI_OLD and not state.reboot_required


def _wait_ready_times_out_and_host_comes_back_lazily(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock)
    run(d.enter_maintenance("h3"))
    run(d.reboot("h3"))
    t0 = clock.now()
    with pytest.raises(PermanentStepError, match="h3 did not come back within 100 s"):
        run(d.wait_ready("h3", 100))
    assert clock.now() - t0 == timedelta(seconds=100)
    clock.advance(600)
    state = run(d.host_state("h3"))
    assert state.reachable and d.snapshot()["hosts"]["h3"]["up"]
    run(d.wait_ready("h3", 0))


def test_kvm_patch_with_several_components(twin: Store) -> None:
    d = driver(twin)
    run(d.migrate_guest("g5", "k2"))
    run(patch(d, "k1", KVM_TARGET))
    state = run(d.host_state("k1"))
    assert state.version("qemu") == "8.2.1" and state.version("qemu-kvm") == "17:8.2.1-1.el9_4"
    assert state.version("libvirt") == "10.0.0"
    probe = run(d.probe("k1"))
    assert probe.services_ok and set(probe.services) == {"libvirtd", "virtlogd", "sshd"}


def test_state_survives_a_new_driver(twin: Store) -> None:
    d = driver(twin)
    run(d.migrate_guest("g1", "h3"))
    run(d.shutdown_guest("g2"))
    run(d.enter_maintenance("h1"))
    run(d.apply_patch("h1", TARGET))
    before = d.snapshot()
    # the engine is killed; a new one builds a new driver on the same store
    again = driver(twin, FakeClock(START + timedelta(hours=1)))
    assert again.snapshot() == before
    state = run(again.host_state("h1"))
    assert state.maintenance and state.reboot_required
    run(again.reboot("h1"))
    run(again.wait_ready("h1", 1800))
    assert run(again.host_state("h1")).version("esxi") == ESXI_NEW


def _probe_is_deterministic(twin: Store) -> None:
    d = driver(twin)
    p1, p2 = run(d.probe("h1")), run(driver(twin).probe("h1"))
    assert p1 == p2 and p1.services_ok
    assert set(p1.services) == {"hostd", "vpxa", "fdm"}
    assert 20 <= p1.metrics["guest_boot_s"] <= 40 and 0.5 <= p1.metrics["io_latency_ms"] <= 3.5
    assert run(d.probe("h2")).metrics != p1.metrics
    run(patch(d, "h3"))
    assert run(d.probe("h3")) == run(driver(twin).probe("h3"))  # patching alone changes nothing


# --- faults -------------------------------------------------------------------------------------


def test_install_fails_times_across_instances(twin: Store) -> None:
    faults = plan({"kind": "install-fails", "hosts": ["h3"], "times": 2, "delay_s": 7})
    d = driver(twin, faults=faults)
    run(d.enter_maintenance("h3"))
    with pytest.raises(TemporaryStepError, match="install of esxi 24022510 on host h3 failed") \
            as err:
        run(d.apply_patch("h3", TARGET))
    assert err.value.delay == 7.0
    # a restarted engine: the count survives
    d2 = driver(twin, faults=faults)
    with pytest.raises(TemporaryStepError):
        run(d2.apply_patch("h3", TARGET))
    assert d2.snapshot()["hosts"]["h3"]["applies"] == 0
    run(driver(twin, faults=faults).apply_patch("h3", TARGET))
    assert d2.snapshot()["hosts"]["h3"]["applies"] == 1
    # other hosts are not affected
    run(d.enter_maintenance("k2"))
    run(d.apply_patch("k2", KVM_TARGET))
    # "always": a permanent error, every time
    d = driver(twin, faults=plan({"kind": "install-fails", "clusters": ["big"],
                                  "times": "always"}))
    run(d.enter_maintenance("dst"))
    for _ in range(3):
        with pytest.raises(PermanentStepError, match="every time"):
            run(d.apply_patch("dst", TARGET))
    assert d.snapshot()["hosts"]["dst"]["applies"] == 0


def test_no_boot_then_rollback_recovers(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock, faults=plan({"kind": "no-boot", "hosts": ["h3"]}))
    run(d.enter_maintenance("h3"))
    run(d.apply_patch("h3", TARGET))
    run(d.reboot("h3"))
    t0 = clock.now()
    with pytest.raises(PermanentStepError, match="h3 did not come back within 1800 s"):
        run(d.wait_ready("h3", 1800))
    assert clock.now() - t0 == timedelta(seconds=1800)
    clock.advance(86400)
    assert not run(d.host_state("h3")).reachable  # hung for good
    with pytest.raises(TemporaryStepError, match="does not come back"):
        run(d.probe("h3"))
    # the fault fired once: the rollback's reboot comes back, on the old build
    run(driver(twin, clock, faults=d.faults).rollback("h3"))
    run(d.wait_ready("h3", 1800))
    state = run(d.host_state("h3"))
    assert state.reachable and state.version("esxi") == ESXI_OLD
    # "always": the host never boots again, not even after a rollback
    d = driver(twin, clock, faults=plan({"kind": "no-boot", "hosts": ["dst"],
                                         "times": "always"}))
    run(d.enter_maintenance("dst"))
    run(d.reboot("dst"))
    with pytest.raises(PermanentStepError):
        run(d.wait_ready("dst", 60))
    run(d.rollback("dst"))
    with pytest.raises(PermanentStepError):
        run(d.wait_ready("dst", 60))


def test_migration_fails_for_the_named_guest(twin: Store) -> None:
    """migration-fails, then (fresh twin) migration-timeout."""
    _migration_fails_for_the_named_guest(twin)
    fresh(twin)
    _migration_timeout(twin)


def _migration_fails_for_the_named_guest(twin: Store) -> None:
    d = driver(twin, faults=plan({"kind": "migration-fails", "guests": ["g5"], "delay_s": 3}))
    run(d.migrate_guest("g1", "h3"))  # not the named guest
    with pytest.raises(TemporaryStepError, match="migration of guest g5 from k1 to k2 failed"):
        run(d.migrate_guest("g5", "k2"))
    assert d.snapshot()["guests"]["g5"]["host"] == "k1"
    run(d.migrate_guest("g5", "k2"))
    assert d.snapshot()["guests"]["g5"] == {"host": "k2", "running": True, "memory_mb": 4096,
                                            "blocked": "", "migrations": 1}


def _migration_timeout(twin: Store) -> None:
    clock = FakeClock(START)
    d = driver(twin, clock, faults=plan({"kind": "migration-timeout", "rings": ["prod"],
                                         "timeout_s": 240}))
    with pytest.raises(TemporaryStepError, match="timed out after 240 s"):
        run(d.migrate_guest("g5", "k2"))
    assert clock.sleeps[-1] == 240
    assert d.snapshot()["guests"]["g5"]["host"] == "k1"
    run(d.migrate_guest("g1", "h3"))  # ring test: not affected
    run(d.migrate_guest("g5", "k2"))  # fired once already
    assert d.snapshot()["guests"]["g5"]["host"] == "k2"


def test_guest_crash_on_the_patched_host(twin: Store) -> None:
    d = driver(twin, faults=plan({"kind": "guest-crash", "hosts": ["h3"], "times": 2}))
    run(d.migrate_guest("g1", "h3"))  # h3 is not patched yet: fine
    assert d.snapshot()["guests"]["g1"]["running"]
    run(d.migrate_guest("g1", "h1"))
    run(patch(d, "h3"))
    run(d.migrate_guest("g1", "h3"))
    assert d.snapshot()["guests"]["g1"] == {**d.snapshot()["guests"]["g1"], "host": "h3",
                                            "running": False}
    run(d.start_guest("g1"))  # crashes again: the second firing
    assert not d.snapshot()["guests"]["g1"]["running"]
    run(d.start_guest("g1"))  # both firings used
    assert d.snapshot()["guests"]["g1"]["running"]


def test_perf_regression_and_unhealthy_services(twin: Store) -> None:
    """perf-regression and services-unhealthy; then (fresh twin) probes without faults."""
    _perf_regression_and_unhealthy_services(twin)
    fresh(twin)
    _probe_is_deterministic(twin)


def _perf_regression_and_unhealthy_services(twin: Store) -> None:
    d = driver(twin, faults=plan({"kind": "perf-regression", "hosts": ["h3"]},
                                 {"kind": "services-unhealthy", "hosts": ["h3"]},
                                 {"kind": "perf-regression", "hosts": ["k2"], "factor": 3,
                                  "metrics": ["io_latency_ms"]}))
    before = run(d.probe("h3"))
    assert before.services_ok
    run(patch(d, "h3"))
    after = run(d.probe("h3"))
    assert not after.services_ok and after.services["hostd"] == "failed"
    for m in before.metrics:
        assert after.metrics[m] == pytest.approx(before.metrics[m] * 1.6)
    k_before = run(d.probe("k2"))
    run(patch(d, "k2", KVM_TARGET))
    k_after = run(d.probe("k2"))
    assert k_after.services_ok
    assert k_after.metrics["io_latency_ms"] == pytest.approx(k_before.metrics["io_latency_ms"] * 3)
    assert k_after.metrics["guest_boot_s"] == k_before.metrics["guest_boot_s"]
    # after a rollback the host no longer runs the patch
    run(d.enter_maintenance("h3"))
    run(d.rollback("h3"))
    run(d.wait_ready("h3", 1800))
    assert run(d.probe("h3")) == before


def test_withdraw_release_after_n_applies(twin: Store) -> None:
    d = driver(twin, faults=plan({"kind": "withdraw-release", "clusters": ["c1"],
                                  "after_applies": 2}))

    def withdrawn() -> list[tuple[str, str, str]]:
        with twin.session() as s:
            return [(r.component, r.version, r.reason)
                    for r in s.scalars(select(WithdrawnReleaseRow))]

    run(patch(d, "h3"))
    assert withdrawn() == []
    run(d.migrate_guest("g4", "h3"))
    run(d.enter_maintenance("h2"))
    run(d.apply_patch("h2", TARGET))
    assert withdrawn() == [("esxi", ESXI_NEW, "withdrawn by the vendor (simulated)")]
    # the engine checks the withdrawn list; the driver still installs what it is told to
    run(d.reboot("h2"))
    run(d.wait_ready("h2", 1800))
    run(d.exit_maintenance("h2"))
    run(d.migrate_guest("g1", "h2"))
    run(d.shutdown_guest("g2"))
    run(driver(twin, faults=d.faults).enter_maintenance("h1"))
    run(driver(twin, faults=d.faults).apply_patch("h1", TARGET))
    assert len(withdrawn()) == 1


def test_driver_unresponsive(twin: Store) -> None:
    d = driver(twin, faults=plan({"kind": "driver-unresponsive", "hosts": ["h2"], "times": 2,
                                  "delay_s": 15}))
    with pytest.raises(TemporaryStepError, match="host h2 did not answer") as err:
        run(d.host_state("h2"))
    assert err.value.delay == 15
    with pytest.raises(TemporaryStepError, match="did not answer"):
        run(driver(twin, faults=d.faults).migrate_guest("g4", "h3"))  # source h2
    assert run(d.host_state("h2")).reachable
    run(d.migrate_guest("g4", "h3"))
    run(d.host_state("h1"))  # never affected
    with twin.session() as s:
        keys = sorted(s.scalars(select(SimStateRow.key).where(SimStateRow.key.like("fault:%"))))
    assert keys == ["fault:0:driver-unresponsive:h2"]


def test_probability_faults_pick_hosts_by_hash_not_by_order(twin: Store) -> None:
    faults = plan({"kind": "install-fails", "probability": 0.5, "times": "always"}, seed=11)
    hosts = ["h3", "k2", "dst"]
    expected = {h for h in hosts if faults.matching("install-fails", h)}

    async def attempt(d: SimulatorDriver, host: str) -> bool:
        await d.enter_maintenance(host)
        comps = KVM_TARGET if host.startswith("k") else TARGET
        try:
            await d.apply_patch(host, comps)
        except PermanentStepError:
            return True
        return False

    d = driver(twin, faults=faults)

    async def all_at_once() -> list[bool]:
        return await asyncio.gather(*(attempt(d, h) for h in reversed(hosts)))

    failed = run(all_at_once())
    assert {h for h, f in zip(reversed(hosts), failed, strict=True) if f} == expected


# --- concurrency --------------------------------------------------------------------------------


def _outcomes(results: list[Any]) -> tuple[int, list[BaseException]]:
    ok = sum(1 for r in results if r is None)
    errors = [r for r in results if isinstance(r, BaseException)]
    return ok, errors


def test_fifty_concurrent_migrations_respect_capacity(twin: Store) -> None:
    d = driver(twin)

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(d.migrate_guest(f"v{i:02d}", "dst") for i in range(50)),
                                    return_exceptions=True)

    ok, errors = _outcomes(run(all_at_once()))
    assert ok == 40 and len(errors) == 10
    assert all(isinstance(e, PermanentStepError) and "does not fit on dst" in str(e)
               for e in errors)
    guests = d.snapshot()["guests"]
    assert sum(1 for g in guests.values() if g["host"] == "dst") == 40
    assert sum(g["migrations"] for g in guests.values()) == 40


def test_concurrent_engines_in_threads(twin: Store) -> None:
    """Engines in threads: capacity, then (fresh twin) fault counters, under real concurrency."""
    _concurrent_engines_in_threads(twin)
    fresh(twin)
    _concurrent_fault_counters_in_threads(twin)


def _concurrent_engines_in_threads(twin: Store) -> None:
    """Four engines (threads, each with its own driver and event loop) migrate at once: the
    capacity check and the counters hold across real concurrent transactions."""
    driver(twin)  # initialise once
    results: list[Any] = []
    lock = threading.Lock()

    def engine(part: int) -> None:
        d = SimulatorDriver(twin, FakeClock(START), initialize=part % 2 == 0)

        async def go() -> list[Any]:
            return await asyncio.gather(*(d.migrate_guest(f"v{i:02d}", "dst")
                                          for i in range(part, 50, 4)), return_exceptions=True)

        out = asyncio.run(go())
        with lock:
            results.extend(out)

    threads = [threading.Thread(target=engine, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok, errors = _outcomes(results)
    assert ok == 40 and len(errors) == 10, errors
    assert all(isinstance(e, PermanentStepError) for e in errors), errors
    guests = driver(twin).snapshot()["guests"]
    assert sum(g["memory_mb"] for g in guests.values() if g["host"] == "dst") == 40 * 1024


def _concurrent_fault_counters_in_threads(twin: Store) -> None:
    """``times`` holds when several engines hit the same counter at once."""
    faults = plan({"kind": "driver-unresponsive", "hosts": ["src"], "times": 5})
    driver(twin)
    failures: list[int] = []
    lock = threading.Lock()

    def engine() -> None:
        d = SimulatorDriver(twin, FakeClock(START), faults=faults, initialize=False)

        async def go() -> int:
            n = 0
            for _ in range(5):
                try:
                    await d.host_state("src")
                except TemporaryStepError:
                    n += 1
            return n

        n = asyncio.run(go())
        with lock:
            failures.append(n)

    threads = [threading.Thread(target=engine) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(failures) == 5


def test_simulation_clock_is_shared(twin: Store) -> None:
    """The stored shared clock; then (fresh twin) a rollout on it takes little wall time."""
    _simulation_clock_is_shared(twin)
    fresh(twin)
    _accelerated_clock_rollout_takes_little_wall_time(twin)


def _simulation_clock_is_shared(twin: Store) -> None:
    wall = [datetime(2030, 1, 1, tzinfo=UTC)]

    def now() -> datetime:
        return wall[0]

    first = simulation_clock(twin, factor=60, origin_sim=START, wall=now)
    wall[0] += timedelta(seconds=10)
    second = simulation_clock(twin, factor=5, origin_sim=START + timedelta(days=9), wall=now)
    assert second.to_dict() == first.to_dict()
    assert second.now() == START + timedelta(seconds=600)
    SimulatorDriver(twin, first, initialize=False).reset()
    third = simulation_clock(twin, factor=5, origin_sim=START, wall=now)
    assert third.factor == 5



def _accelerated_clock_rollout_takes_little_wall_time(twin: Store) -> None:
    """With an AcceleratedClock the durations are real sleeps, divided by the factor."""
    clock = simulation_clock(twin, factor=20_000)
    d = SimulatorDriver(twin, clock)
    t0, s0 = time.perf_counter(), clock.now()
    run(patch(d, "h3"))  # 30 + 60 + 900 + 600 + 30 simulated seconds
    wall = time.perf_counter() - t0
    assert run(d.host_state("h3")).version("esxi") == ESXI_NEW
    assert (clock.now() - s0).total_seconds() >= 1620
    assert wall < 5
