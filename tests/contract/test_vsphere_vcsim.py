"""The vSphere connector against a real peer: govmomi's vCenter simulator (vcsim).

The simulator's model (``tests/peers/vcsim/main.go``): datacenters DC0 and DC1, each with
clusters C0 and C1 of three hosts, one standalone host and two VMs per cluster and standalone
host; datastore ``DC0_C0_H0_local`` is mounted by host DC0_C0_H0 alone. The module's set-up adds,
through the vSphere API, what a user would have in vCenter: custom attributes for tenant and
criticality, an anti-affinity rule, a PCI passthrough device, a vGPU and a VM on the local
datastore. Every test puts back what it changes.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from hvpatch.adapters.connectors import inventory_source
from hvpatch.adapters.connectors.vsphere import (
    CommandPatchStep,
    VSphereDriver,
    VSphereInventory,
)
from hvpatch.adapters.store.db import Store
from hvpatch.domain.fleet import Criticality, Fleet, Guest, MigrationBlock, PowerState
from hvpatch.errors import DriverError, PermanentStepError
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import HypervisorDriver
from hvpatch.services.inventory import import_fleet, load_fleet
from vcsim_support import VcsimPeer, vcsim  # noqa: F401

BUILD = "5969303"   # what vcsim's ESXi hosts report (ESXi 6.5 U1)


def endpoint(peer: VcsimPeer, **kw: Any) -> Endpoint:
    args: dict[str, Any] = {"username": peer.username, "password": peer.password,
                            "ca_file": peer.ca_file, **kw}
    return Endpoint("vsphere", "vc-test", peer.url, **args)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _wait(task: Any) -> None:
    WaitForTask(task)   # raises the task's fault


class Admin:
    """A direct pyVmomi session for set-up and for changes made behind the connector's back."""

    def __init__(self, peer: VcsimPeer) -> None:
        u = urlsplit(peer.url)
        self.si = SmartConnect(host=u.hostname, port=u.port, path=u.path, user=peer.username,
                               pwd=peer.password,
                               sslContext=ssl.create_default_context(cafile=peer.ca_file))
        self.content = self.si.RetrieveContent()

    def find(self, kind: type, name: str) -> Any:
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [kind], True)
        try:
            return next(o for o in view.view if o.name == name)
        finally:
            view.DestroyView()

    def vm(self, name: str) -> Any:
        return self.find(vim.VirtualMachine, name)

    def add_device(self, vm: str, device: Any) -> None:
        change = vim.vm.device.VirtualDeviceSpec(operation="add", device=device)
        _wait(self.vm(vm).ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))

    def close(self) -> None:
        Disconnect(self.si)


@pytest.fixture(scope="module")
def admin(vcsim: VcsimPeer) -> Iterator[Admin]:  # noqa: F811
    """The simulator with tenants, criticality, a rule and unmigratable VMs set up."""
    a = Admin(vcsim)
    fields = a.content.customFieldsManager
    names = {f.name: f for f in fields.field}
    for name in ("hvpatch.tenant", "hvpatch.criticality", "owner"):
        if name not in names:
            names[name] = fields.AddCustomFieldDef(name, vim.VirtualMachine)
    for vm, tenant, crit in (("DC0_C0_RP0_VM0", "acme", "high"),
                             ("DC0_C0_RP0_VM1", "acme", "mission-critical"),
                             ("DC0_C1_RP0_VM0", "globex", "low")):
        fields.SetField(a.vm(vm), names["hvpatch.tenant"].key, tenant)
        fields.SetField(a.vm(vm), names["hvpatch.criticality"].key, crit)
    fields.SetField(a.vm("DC0_H0_VM0"), names["owner"].key, "initech")
    cluster = a.find(vim.ClusterComputeResource, "DC1_C1")
    rule = vim.cluster.AntiAffinityRuleSpec(
        name="db-pair", enabled=True, vm=[a.vm("DC1_C1_RP0_VM0"), a.vm("DC1_C1_RP0_VM1")])
    spec = vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="add", info=rule)])
    _wait(cluster.ReconfigureComputeResource_Task(spec, True))
    a.add_device("DC1_H0_VM0", vim.vm.device.VirtualPCIPassthrough(
        key=-1, backing=vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo(
            id="0000:3b:00.0", deviceId="1234", systemId="sys", vendorId=0x10de,
            deviceName="NVIDIA T4")))
    a.add_device("DC1_H0_VM1", vim.vm.device.VirtualPCIPassthrough(
        key=-2, backing=vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(
            vgpu="grid_t4-4q")))
    local = a.find(vim.Datastore, "DC0_C0_H0_local")
    _wait(a.vm("DC0_H0_VM1").RelocateVM_Task(vim.vm.RelocateSpec(datastore=local)))
    yield a
    a.close()


def guests(fleet: Fleet) -> dict[str, tuple[str, Guest]]:
    return {g.name: (h.name, g) for h, g in fleet.guests()}


# --- inventory ---------------------------------------------------------------------------------

def test_reads_datacenters_clusters_hosts_and_guests(vcsim: VcsimPeer, admin: Admin) -> None:  # noqa: F811
    source = inventory_source(endpoint(vcsim))
    assert isinstance(source, VSphereInventory)
    try:
        fleet = source.read()
    finally:
        source.close()
    assert [s.name for s in fleet.sites] == ["DC0", "DC1"]
    clusters = {(c.site, c.name): c for c in fleet.clusters()}
    assert set(clusters) == {(dc, c) for dc in ("DC0", "DC1")
                             for c in (f"{dc}_C0", f"{dc}_C1", f"{dc}_H0")}
    assert [h.name for h in clusters[("DC0", "DC0_C1")].hosts] == \
        ["DC0_C1_H0", "DC0_C1_H1", "DC0_C1_H2"]
    assert clusters[("DC0", "DC0_H0")].ha_reserve_hosts == 0   # a standalone host
    hosts = list(fleet.hosts())
    assert len(hosts) == 14
    for h in hosts:
        assert h.software.components()[0].version == BUILD
        assert h.family.value == "esxi" and h.cores > 0 and h.memory_mb > 1000
    placed = guests(fleet)
    assert len(placed) == 12
    # each VM on the host vCenter says it runs on
    for name, (host, guest) in placed.items():
        assert admin.vm(name).runtime.host.name == host
        assert guest.vcpus >= 1 and guest.memory_mb > 0
        assert guest.power_state is PowerState.RUNNING


def test_tenant_and_criticality_come_from_custom_attributes(vcsim: VcsimPeer,  # noqa: F811
                                                           admin: Admin) -> None:
    inv = VSphereInventory(endpoint(vcsim))
    fleet = inv.read()
    inv.close()
    placed = guests(fleet)
    assert placed["DC0_C0_RP0_VM0"][1].tenant == "acme"
    assert placed["DC0_C0_RP0_VM0"][1].criticality is Criticality.HIGH
    assert placed["DC0_C0_RP0_VM1"][1].criticality is Criticality.MISSION_CRITICAL
    assert placed["DC0_C1_RP0_VM0"][1].tenant == "globex"
    assert placed["DC0_C1_RP0_VM0"][1].criticality is Criticality.LOW
    assert placed["DC1_C0_RP0_VM0"][1].tenant == "unassigned"
    assert placed["DC1_C0_RP0_VM0"][1].criticality is Criticality.MEDIUM
    assert {t.name for t in fleet.tenants} == {"acme", "globex", "unassigned"}
    # the attribute names are options of the connection
    other = VSphereInventory(endpoint(vcsim, options={"tenant_attribute": "owner"}))
    renamed = guests(other.read())
    other.close()
    assert renamed["DC0_H0_VM0"][1].tenant == "initech"
    assert renamed["DC0_C0_RP0_VM0"][1].tenant == "unassigned"


def test_anti_affinity_rules_and_migration_blocks(vcsim: VcsimPeer, admin: Admin) -> None:  # noqa: F811
    inv = VSphereInventory(endpoint(vcsim))
    placed = guests(inv.read())
    inv.close()
    assert placed["DC1_C1_RP0_VM0"][1].anti_affinity == ("db-pair",)
    assert placed["DC1_C1_RP0_VM1"][1].anti_affinity == ("db-pair",)
    assert placed["DC1_C0_RP0_VM0"][1].anti_affinity == ()
    pci = placed["DC1_H0_VM0"][1]
    assert pci.migration_block is MigrationBlock.PCI_PASSTHROUGH and not pci.live_migratable
    gpu = placed["DC1_H0_VM1"][1]
    assert gpu.migration_block is MigrationBlock.VGPU and "grid_t4-4q" in gpu.migration_note
    local = placed["DC0_H0_VM1"][1]
    assert local.migration_block is MigrationBlock.LOCAL_DISK
    assert "DC0_C0_H0_local" in local.migration_note
    assert placed["DC0_H0_VM0"][1].live_migratable   # on the shared datastore


def test_second_read_fetches_only_the_changes(vcsim: VcsimPeer, admin: Admin) -> None:  # noqa: F811
    inv = VSphereInventory(endpoint(vcsim))
    try:
        first = inv.read()
        assert inv.last_sync.initial and inv.last_sync.object_updates > 40
        full = inv.last_sync.object_updates
        assert guests(first)["DC1_C0_RP0_VM1"][1].running
        _wait(admin.vm("DC1_C0_RP0_VM1").PowerOffVM_Task())
        try:
            second = inv.read()
            assert not inv.last_sync.initial
            assert 1 <= inv.last_sync.object_updates < full
            assert guests(second)["DC1_C0_RP0_VM1"][1].power_state is PowerState.STOPPED
            # everything else is still there
            assert len(list(second.hosts())) == 14 and len(guests(second)) == 12
            inv.read()
            assert inv.last_sync.object_updates == 0
        finally:
            _wait(admin.vm("DC1_C0_RP0_VM1").PowerOnVM_Task())
        third = inv.read()
        assert guests(third)["DC1_C0_RP0_VM1"][1].running
    finally:
        inv.close()


def test_imported_fleet_is_what_planning_loads(vcsim: VcsimPeer, admin: Admin,  # noqa: F811
                                               tmp_path: Path) -> None:
    inv = VSphereInventory(endpoint(vcsim))
    fleet = inv.read()
    inv.close()
    store = Store(f"sqlite:///{tmp_path}/x.db")
    try:
        summary = import_fleet(store, fleet, source=f"vsphere:{vcsim.url}", sha256="0" * 64)
        assert summary.added["hosts"] == 14 and summary.added["guests"] == 12
        again = import_fleet(store, fleet, source=f"vsphere:{vcsim.url}", sha256="0" * 64)
        assert not again.touched
        loaded = load_fleet(store)
        assert sorted(h.name for h in loaded.hosts()) == sorted(h.name for h in fleet.hosts())
        assert guests(loaded)["DC1_H0_VM0"][1].migration_block is MigrationBlock.PCI_PASSTHROUGH
        assert guests(loaded)["DC0_C0_RP0_VM0"][1].tenant == "acme"
    finally:
        store.close()


# --- connection ----------------------------------------------------------------------------------

def test_tls_is_verified_against_the_ca_file(vcsim: VcsimPeer, caplog: Any) -> None:  # noqa: F811
    untrusted = VSphereInventory(endpoint(vcsim, ca_file=""))
    with pytest.raises(DriverError) as err:
        untrusted.read()
    text = str(err.value)
    assert "TLS certificate of vc-test" in text and "not trusted" in text and "ca_file" in text
    assert vcsim.password not in text
    missing = VSphereInventory(endpoint(vcsim, ca_file="no-such-ca.pem"))
    with pytest.raises(Exception, match="ca_file"):
        missing.read()
    caplog.set_level(logging.WARNING, "hvpatch.adapters.connectors.vsphere")
    lab = VSphereInventory(endpoint(vcsim, ca_file="", verify_tls=False))
    assert len(list(lab.read().hosts())) == 14
    lab.close()
    warned = [r.getMessage() for r in caplog.records if "TLS verification is OFF" in
              r.getMessage()]
    assert warned and "vc-test" in warned[0] and vcsim.password not in warned[0]


def test_wrong_password_is_a_driver_error_without_the_password(vcsim: VcsimPeer) -> None:  # noqa: F811
    wrong = endpoint(vcsim, password="not-the-password-xyz")
    inv = VSphereInventory(wrong)
    with pytest.raises(DriverError) as err:
        inv.read()
    assert "login as 'hvpatch' refused" in str(err.value)
    assert "not-the-password-xyz" not in str(err.value)
    assert "not-the-password-xyz" not in repr(inv) + repr(VSphereDriver(wrong))
    with pytest.raises(PermanentStepError, match="refused"):
        run(VSphereDriver(wrong).host_state("DC0_C0_H0"))


# --- the driver ----------------------------------------------------------------------------------

def test_evacuate_maintenance_and_back(vcsim: VcsimPeer, admin: Admin) -> None:  # noqa: F811
    async def scenario() -> None:
        d = VSphereDriver(endpoint(vcsim, options={"poll_interval_s": "0.1"}))
        assert isinstance(d, HypervisorDriver) and d.capabilities.rollback is False
        host, spare = "DC0_C1_H0", "DC0_C1_H1"
        try:
            state = await d.host_state(host)
            assert state.reachable and not state.maintenance
            assert state.components == (("esxi", BUILD),) and state.boot_id
            moved = state.running_guests()
            assert moved, "the model puts a VM on DC0_C1_H0"
            with pytest.raises(PermanentStepError, match=f"still running on it: {moved[0]}"):
                await d.enter_maintenance(host)
            for g in moved:
                await d.migrate_guest(g, spare)
                await d.migrate_guest(g, spare)   # idempotent
                assert admin.vm(g).runtime.host.name == spare
            assert (await d.host_state(host)).guests == ()
            assert set(moved) <= {g.name for g in (await d.host_state(spare)).guests}
            await d.enter_maintenance(host)
            await d.enter_maintenance(host)   # idempotent
            assert (await d.host_state(host)).maintenance
            assert admin.find(vim.HostSystem, host).runtime.inMaintenanceMode
            await d.exit_maintenance(host)
            await d.exit_maintenance(host)
            assert not (await d.host_state(host)).maintenance
            for g in moved:
                await d.migrate_guest(g, host)
            assert (await d.host_state(host)).running_guests() == moved
            with pytest.raises(PermanentStepError, match="no HostSystem named 'nope'"):
                await d.migrate_guest(moved[0], "nope")
        finally:
            await d.close()

    run(scenario())


def test_power_off_and_on(vcsim: VcsimPeer, admin: Admin) -> None:  # noqa: F811
    async def scenario() -> None:
        d = VSphereDriver(endpoint(vcsim))
        try:
            vm = "DC1_C0_RP0_VM0"
            host = admin.vm(vm).runtime.host.name
            await d.shutdown_guest(vm)   # vcsim runs no VMware Tools: a power-off
            assert admin.vm(vm).runtime.powerState == "poweredOff"
            assert vm not in (await d.host_state(host)).running_guests()
            await d.shutdown_guest(vm)   # idempotent
            await d.start_guest(vm)
            await d.start_guest(vm)
            assert admin.vm(vm).runtime.powerState == "poweredOn"
            assert vm in (await d.host_state(host)).running_guests()
        finally:
            await d.close()

    run(scenario())


def test_reboot_probe_and_wait_ready(vcsim: VcsimPeer) -> None:  # noqa: F811
    async def scenario() -> None:
        d = VSphereDriver(endpoint(vcsim, options={"poll_interval_s": "0.1"}))
        try:
            probe = await d.probe("DC1_C1_H2")
            assert probe.services_ok and probe.services["connection"] == "connected"
            assert "uptime_s" in probe.metrics
            await d.wait_ready("DC1_C1_H2", 5)   # connected, no reboot started
            # vcsim does not implement RebootHost_Task: the fault comes back clearly
            with pytest.raises(PermanentStepError, match=r"rebooting DC1_C1_H2 failed: .*Reboot"):
                await d.reboot("DC1_C1_H2")
            # a reboot was asked for, the boot time never changes: not back in time
            with pytest.raises(PermanentStepError, match="not back within"):
                await d.wait_ready("DC1_C1_H2", 0.5)
            with pytest.raises(PermanentStepError, match="not supported"):
                await d.rollback("DC1_C1_H2")
        finally:
            await d.close()

    run(scenario())


def test_cluster_settings_read_and_restore(vcsim: VcsimPeer) -> None:  # noqa: F811
    async def scenario() -> None:
        d = VSphereDriver(endpoint(vcsim))
        try:
            before = await d.cluster_settings("DC0_C0")
            assert before == {"drs_automation": "fully-automated",
                              "ha_admission_control": "disabled"}
            await d.set_cluster_settings("DC0_C0", before)   # a restore: nothing to change
            # vcsim accepts the reconfigure task but ignores drsConfig; the driver reads back
            with pytest.raises(PermanentStepError, match="still reports drs_automation=fully"):
                await d.set_cluster_settings("DC0_C0", {"drs_automation": "manual"})
            with pytest.raises(PermanentStepError, match="not known"):
                await d.set_cluster_settings("DC0_C0", {"evc": "off"})
            with pytest.raises(PermanentStepError, match="expected one of"):
                await d.set_cluster_settings("DC0_C0", {"drs_automation": "sometimes"})
            assert await d.cluster_settings("DC0_C0") == before
        finally:
            await d.close()

    run(scenario())


def test_session_expiry_logs_in_again(vcsim: VcsimPeer) -> None:  # noqa: F811
    async def scenario() -> None:
        d = VSphereDriver(endpoint(vcsim))
        try:
            assert (await d.host_state("DC0_C0_H1")).reachable
            si = d._session._si
            si.content.sessionManager.Logout()   # vCenter drops the session
            assert (await d.host_state("DC0_C0_H1")).reachable
            assert d._session._si is not si
        finally:
            await d.close()

    run(scenario())


# --- patching ----------------------------------------------------------------------------------

SCRIPT = """\
import os, sys
print("action", os.environ["HVPATCH_ACTION"], "host", os.environ["HVPATCH_HOST"])
print("build", os.environ["HVPATCH_ESXI_BUILD"], "args", " ".join(sys.argv[1:]))
sys.exit(int(os.environ.get("FAIL", "0")))
"""


def test_command_patch_step_passes_host_and_targets(tmp_path: Path) -> None:
    script = tmp_path / "patch.py"
    script.write_text(SCRIPT)
    step = CommandPatchStep([sys.executable, str(script)])
    out = run(step.apply("esx1", (("esxi", "24022510"),)))
    assert "action apply host esx1" in out and "build 24022510 args esx1 esxi=24022510" in out
    assert step.evidence["esx1"] == out and not step.stages
    failing = CommandPatchStep([sys.executable, str(script)], env={"FAIL": "3"})
    with pytest.raises(PermanentStepError, match=r"exited with 3; output ends with:\n.*esx1"):
        run(failing.apply("esx1", (("esxi", "24022510"),)))
    staging = CommandPatchStep([sys.executable, str(script)],
                               stage_argv=[sys.executable, str(script)])
    assert staging.stages and run(staging.stage("esx2", ())).startswith("action stage host esx2")
    ep = Endpoint("vsphere", "unused", "https://vc.invalid/sdk")
    assert VSphereDriver(ep, staging).capabilities.stage
    assert not VSphereDriver(ep, step).capabilities.stage
    with pytest.raises(PermanentStepError, match="cannot be started"):
        run(CommandPatchStep([str(tmp_path / "missing")]).apply("esx1", ()))
    slow = CommandPatchStep([sys.executable, "-c", "import time; time.sleep(30)"],
                            timeout_s=0.3)
    with pytest.raises(PermanentStepError, match=r"did not finish within 0\.3 s"):
        run(slow.apply("esx1", ()))


def test_apply_patch_through_the_patch_step(vcsim: VcsimPeer, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / "patch.py"
    script.write_text(SCRIPT)
    target = (("esxi", "24022510"),)

    async def scenario() -> None:
        bare = VSphereDriver(endpoint(vcsim))
        with pytest.raises(PermanentStepError, match=r"no patch step is configured.*vLCM"):
            await bare.apply_patch("DC0_C0_H2", target)
        await bare.close()
        d = VSphereDriver(endpoint(vcsim), CommandPatchStep([sys.executable, str(script)]))
        host = "DC0_C0_H2"   # the model leaves it without VMs
        try:
            with pytest.raises(PermanentStepError, match="not in maintenance mode"):
                await d.apply_patch(host, target)
            await d.enter_maintenance(host)
            await d.stage_patch(host, target)   # no stage command: nothing to do
            await d.apply_patch(host, target)
            assert "host DC0_C0_H2" in d.evidence[host]
            state = await d.host_state(host)
            assert state.reboot_required and state.staged == target
            assert state.version("esxi") == BUILD   # until the host boots the new build
        finally:
            await d.exit_maintenance(host)
            await d.close()

    run(scenario())
