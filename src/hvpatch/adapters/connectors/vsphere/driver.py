"""The vSphere remediation driver: the driver port through vCenter's API and its tasks.

:class:`VSphereDriver` implements :class:`~hvpatch.ports.driver.HypervisorDriver` with the
vSphere API's tasks (maintenance mode, relocation, power, host reboot, cluster DRS and HA
admission control), starting each task and polling it until it ends. Installing the patch is
the business of a pluggable :class:`~hvpatch.adapters.connectors.patch_step.PatchStep`.

Endpoint options: ``task_timeout_s`` (default 3600), ``shutdown_timeout_s`` (300),
``poll_interval_s`` (2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from hvpatch.adapters.connectors.patch_step import PatchStep, staging_step
from hvpatch.adapters.connectors.vsphere.session import (
    _NETWORK_ERRORS,
    MO,
    _key,
    _retrieve,
    _Session,
    _step_error,
    _tls_error,
    _view_traversal,
)
from hvpatch.errors import DriverError, PermanentStepError, TemporaryStepError
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import Components, DriverCapabilities, GuestState, HostState, Probe

__all__ = ["VSphereDriver"]

log = logging.getLogger(__name__)
T = TypeVar("T")


#: hvpatch's names of DRS automation levels (as the rollout policy writes them) -> vSphere's
_DRS = {"manual": "manual", "partially-automated": "partiallyAutomated",
        "fully-automated": "fullyAutomated"}
_DRS_NAMES = {v: k for k, v in _DRS.items()}
_SETTINGS = ("drs_automation", "ha_admission_control")
_HOST_STATE_PROPS = ("name", "config.product.build", "runtime.inMaintenanceMode",
                     "runtime.connectionState", "runtime.bootTime", "summary.rebootRequired")
_GUEST_PROPS = ("name", "runtime.host", "runtime.powerState", "config.hardware.memoryMB",
                "config.template")


class VSphereDriver:
    """The remediation driver for ESXi hosts managed by one vCenter.

    Every blocking pyVmomi call runs in a worker thread; tasks are polled with ``asyncio.sleep``.
    Hosts, guests and clusters are named as in the inventory. Without a ``patch_step``,
    :meth:`apply_patch` refuses with a message that says how to configure one.
    """

    def __init__(self, endpoint: Endpoint, patch_step: PatchStep | None = None) -> None:
        self.endpoint = endpoint
        self.patch_step = patch_step
        opts = endpoint.options
        self.task_timeout_s = float(opts.get("task_timeout_s", 3600))
        self.shutdown_timeout_s = float(opts.get("shutdown_timeout_s", 300))
        self.poll_interval_s = float(opts.get("poll_interval_s", 2))
        self._session = _Session(endpoint)
        self._names: dict[type, tuple[int, dict[str, MO]]] = {}
        #: host -> (components applied, boot id when applied): pending until the next boot
        self._pending: dict[str, tuple[Components, str]] = {}
        #: host -> boot id before the reboot this driver started
        self._boot_before: dict[str, str] = {}
        #: host -> the patch step's evidence (its output) of the last apply
        self.evidence: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"VSphereDriver({self.endpoint!r})"

    @property
    def capabilities(self) -> DriverCapabilities:
        """Live migration (vMotion); staging only with a patch step that stages; no rollback."""
        stages = staging_step(self.patch_step) is not None
        return DriverCapabilities("vsphere", live_migration=True, stage=stages, rollback=False)

    # --- plumbing ---------------------------------------------------------------------------

    async def _run(self, what: str, fn: Callable[[MO], T]) -> T:
        try:
            return await asyncio.to_thread(self._session.call, fn)
        except DriverError as exc:
            if isinstance(exc, TemporaryStepError | PermanentStepError):
                raise
            if isinstance(exc.__cause__, _NETWORK_ERRORS) and _tls_error(exc) is None:
                raise TemporaryStepError(f"{what}: {exc}", delay=30.0) from exc
            raise PermanentStepError(f"{what}: {exc}") from exc
        except vmodl.MethodFault as exc:
            raise _step_error(what, exc) from exc
        except _NETWORK_ERRORS as exc:
            raise TemporaryStepError(f"{what}: vCenter {self.endpoint.name} unreachable: {exc}",
                                     delay=30.0) from exc

    def _find(self, content: MO, kind: type, name: str) -> MO:
        for refresh in (False, True):
            cached = self._names.get(kind)
            if refresh or cached is None or cached[0] != self._session.generation:
                view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
                try:
                    found = _retrieve(content, [view], {kind: ("name",)}, _view_traversal())
                finally:
                    view.DestroyView()
                cached = (self._session.generation,
                          {str(p["name"]): p["_obj"] for p in found.values()})
                self._names[kind] = cached
            if name in cached[1]:
                return cached[1][name]
        label = kind.__name__.rsplit(".", 1)[-1]
        raise PermanentStepError(f"vCenter {self.endpoint.name} has no {label} named {name!r}")

    def _props(self, content: MO, kind: type, name: str, paths: Sequence[str]
               ) -> tuple[MO, dict[str, Any]]:
        obj = self._find(content, kind, name)
        return obj, _retrieve(content, [obj], {kind: paths}).get(_key(obj), {"_obj": obj})

    async def _wait(self, task: MO, what: str, timeout_s: float | None = None) -> Any:
        timeout = self.task_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + timeout, 0.05
        while True:
            info = await self._run(what, lambda _c: task.info)
            if info.state == "success":
                return info.result
            if info.state == "error":
                raise _step_error(what, info.error)
            if loop.time() >= deadline:
                raise TemporaryStepError(f"{what}: vCenter task {task._moId} still {info.state} "
                                         f"after {timeout:g} s", delay=60.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_interval_s)

    async def _task(self, what: str, start: Callable[[MO], MO | None],
                    timeout_s: float | None = None) -> bool:
        """Start a task with ``start(content)`` (None: nothing to do) and wait for it."""
        task = await self._run(what, start)
        if task is None:
            return False
        await self._wait(task, what, timeout_s)
        return True

    # --- state --------------------------------------------------------------------------------

    def _host_state(self, content: MO, host: str) -> HostState:
        obj, p = self._props(content, vim.HostSystem, host, _HOST_STATE_PROPS)
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True)
        try:   # runtime.host is what vCenter keeps current through every migration
            vms = _retrieve(content, [view], {vim.VirtualMachine: _GUEST_PROPS},
                            _view_traversal())
        finally:
            view.DestroyView()
        here = _key(obj)
        guests = sorted(
            (GuestState(str(v["name"]), host, v.get("runtime.powerState") == "poweredOn",
                        int(v.get("config.hardware.memoryMB") or 0))
             for v in vms.values()
             if v.get("runtime.host") is not None and _key(v["runtime.host"]) == here
             and not v.get("config.template")), key=lambda g: g.name)
        build = str(p.get("config.product.build") or "")
        boot = p.get("runtime.bootTime")
        boot_id = boot.isoformat() if boot is not None else ""
        staged: Components = ()
        reboot_required = bool(p.get("summary.rebootRequired"))
        pending = self._pending.get(host)
        if pending is not None:
            if pending[1] == boot_id and dict(pending[0]).get("esxi", build) != build:
                staged, reboot_required = pending[0], True
            else:
                self._pending.pop(host, None)
        return HostState(
            name=host, reachable=p.get("runtime.connectionState") == "connected",
            maintenance=bool(p.get("runtime.inMaintenanceMode")),
            components=(("esxi", build),) if build else (), boot_id=boot_id,
            staged=staged, reboot_required=reboot_required, guests=tuple(guests))

    async def host_state(self, host: str) -> HostState:
        """Build, maintenance, connection, boot time and the VMs registered on ``host``."""
        return await self._run(f"reading host {host}", lambda c: self._host_state(c, host))

    # --- maintenance ----------------------------------------------------------------------------

    async def enter_maintenance(self, host: str) -> None:
        """Maintenance mode for an evacuated host (idempotent); refused while guests run on it,
        because the engine migrates them first and vCenter would otherwise move them itself."""
        state = await self.host_state(host)
        if state.maintenance:
            return
        running = state.running_guests()
        if running:
            raise PermanentStepError(f"cannot put {host} into maintenance mode: guests still "
                                     f"running on it: {', '.join(running)} (migrate or shut "
                                     "them down first)")
        await self._task(f"entering maintenance mode on {host}", lambda c: self._find(
            c, vim.HostSystem, host).EnterMaintenanceMode_Task(0, False))

    async def exit_maintenance(self, host: str) -> None:
        """Out of maintenance mode (idempotent)."""
        if not (await self.host_state(host)).maintenance:
            return
        await self._task(f"leaving maintenance mode on {host}", lambda c: self._find(
            c, vim.HostSystem, host).ExitMaintenanceMode_Task(0))

    # --- guests -------------------------------------------------------------------------------

    def _start_relocate(self, content: MO, guest: str, destination: str) -> MO | None:
        vm, p = self._props(content, vim.VirtualMachine, guest, ("runtime.host",))
        dest = self._find(content, vim.HostSystem, destination)
        source = p.get("runtime.host")
        if source is not None and _key(source) == _key(dest):
            return None
        parents = _retrieve(content, [dest] + ([source] if source is not None else []),
                            {vim.HostSystem: ("parent",)})
        dest_cr = parents[_key(dest)]["parent"]
        same = source is not None and _key(parents[_key(source)]["parent"]) == _key(dest_cr)
        # within a cluster the VM keeps its resource pool; across, it goes to the root pool
        pool = None if same else dest_cr.resourcePool
        spec = vim.vm.RelocateSpec(host=dest, pool=pool)
        return vm.RelocateVM_Task(spec, vim.VirtualMachine.MovePriority.defaultPriority)

    async def migrate_guest(self, guest: str, destination: str) -> None:
        """vMotion ``guest`` to ``destination`` (RelocateVM_Task; idempotent)."""
        what = f"migrating guest {guest} to {destination}"
        if not await self._task(what, lambda c: self._start_relocate(c, guest, destination)):
            return

        def where(c: MO) -> str:
            host = self._props(c, vim.VirtualMachine, guest, ("runtime.host",))[1].get(
                "runtime.host")
            return str(host.name) if host is not None else "(nowhere)"

        now = await self._run(what, where)
        if now != destination:
            raise PermanentStepError(f"{what}: vCenter finished the task but the guest runs on "
                                     f"{now}")

    def _power(self, content: MO, guest: str) -> tuple[MO, str, str]:
        vm, p = self._props(content, vim.VirtualMachine, guest,
                            ("runtime.powerState", "guest.toolsRunningStatus"))
        return vm, str(p.get("runtime.powerState")), str(p.get("guest.toolsRunningStatus"))

    async def shutdown_guest(self, guest: str) -> None:
        """A guest OS shutdown through VMware Tools, waited for up to ``shutdown_timeout_s``;
        a hard power-off only when Tools are not running (logged as a warning). Idempotent."""
        what = f"shutting down guest {guest}"
        vm, power, tools = await self._run(what, lambda c: self._power(c, guest))
        if power == "poweredOff":
            return
        if power == "poweredOn" and tools == "guestToolsRunning":
            await self._run(what, lambda _c: vm.ShutdownGuest())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.shutdown_timeout_s
            while (await self._run(what, lambda c: self._power(c, guest)))[1] != "poweredOff":
                if loop.time() >= deadline:
                    raise TemporaryStepError(f"{what}: still running {self.shutdown_timeout_s:g}"
                                             " s after the guest OS was asked to shut down",
                                             delay=60.0)
                await asyncio.sleep(self.poll_interval_s)
            return
        log.warning("guest %s has no running VMware Tools (%s): powering it off hard",
                    guest, tools)
        await self._task(what, lambda _c: vm.PowerOffVM_Task())

    async def start_guest(self, guest: str) -> None:
        """Power on where registered (idempotent)."""
        what = f"starting guest {guest}"
        vm, power, _ = await self._run(what, lambda c: self._power(c, guest))
        if power == "poweredOn":
            return
        await self._task(what, lambda _c: vm.PowerOnVM_Task())

    # --- patching -----------------------------------------------------------------------------

    async def stage_patch(self, host: str, components: Components) -> None:
        """The patch step's stage command, when it has one (otherwise nothing)."""
        step = staging_step(self.patch_step)
        if step is not None:
            await step.stage(host, components)

    async def apply_patch(self, host: str, components: Components) -> None:
        """Install through the patch step, on a host in maintenance mode; the host then reports
        the components staged and a reboot required until it has booted again."""
        if self.patch_step is None:
            raise PermanentStepError(
                f"no patch step is configured for vSphere connection {self.endpoint.name}: "
                "hvpatch does not call vLCM; give the driver a CommandPatchStep (a script that "
                "runs e.g. `esxcli software profile update` over SSH, or an Ansible playbook); "
                "see docs/vsphere.md")
        state = await self.host_state(host)
        if not state.maintenance:
            raise PermanentStepError(f"refusing to patch {host}: it is not in maintenance mode")
        self.evidence[host] = await self.patch_step.apply(host, components)
        self._pending[host] = (tuple(components), state.boot_id)

    async def reboot(self, host: str) -> None:
        """RebootHost_Task (not forced: vCenter refuses outside maintenance mode)."""
        before = (await self.host_state(host)).boot_id
        self._boot_before[host] = before
        await self._task(f"rebooting {host}", lambda c: self._find(
            c, vim.HostSystem, host).RebootHost_Task(False), timeout_s=600)

    async def wait_ready(self, host: str, timeout_s: float) -> None:
        """Connected again and, after a reboot this driver started, with a new boot time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        before = self._boot_before.get(host)
        last = "no answer"
        while True:
            try:
                state = await self.host_state(host)
                if state.reachable and (before is None or state.boot_id != before):
                    self._boot_before.pop(host, None)
                    return
                last = "connected, same boot" if state.reachable else "not connected"
            except TemporaryStepError as exc:
                last = str(exc)
            if loop.time() >= deadline:
                raise PermanentStepError(f"{host} is not back within {timeout_s:g} s ({last})")
            await asyncio.sleep(max(0.0, min(self.poll_interval_s, deadline - loop.time())))

    async def rollback(self, host: str) -> None:
        """Not supported: ESXi image rollback is a boot-bank switch hvpatch does not drive."""
        raise PermanentStepError(f"rollback of {host} is not supported by the vSphere driver "
                                 "(capabilities.rollback is False)")

    async def probe(self, host: str) -> Probe:
        """Connection state and vCenter's overall status; CPU, memory and uptime as metrics."""
        paths = ("runtime.connectionState", "overallStatus", "summary.quickStats")
        _, p = await self._run(f"probing {host}",
                               lambda c: self._props(c, vim.HostSystem, host, paths))
        connection, status = str(p.get("runtime.connectionState")), str(p.get("overallStatus"))
        stats = p.get("summary.quickStats")
        metrics = {name: float(getattr(stats, attr)) for name, attr in (
            ("cpu_usage_mhz", "overallCpuUsage"), ("memory_usage_mb", "overallMemoryUsage"),
            ("uptime_s", "uptime")) if getattr(stats, attr, None) is not None}
        return Probe(services_ok=connection == "connected" and status != "red",
                     services={"connection": connection, "overall_status": status},
                     metrics=metrics)

    # --- clusters -----------------------------------------------------------------------------

    def _settings(self, content: MO, cluster: str) -> dict[str, str]:
        try:
            _, p = self._props(content, vim.ClusterComputeResource, cluster, ("configurationEx",))
        except PermanentStepError:
            # a standalone host's compute resource, a cluster of its own in the inventory, has
            # no DRS or HA: nothing to hold (still an error if no compute resource has the name)
            self._find(content, vim.ComputeResource, cluster)
            return {}
        config = p.get("configurationEx")
        drs, das = getattr(config, "drsConfig", None), getattr(config, "dasConfig", None)
        if drs is None or not drs.enabled:
            automation = "disabled"
        else:   # vSphere's default behaviour when none is set
            automation = _DRS_NAMES.get(str(drs.defaultVmBehavior or "fullyAutomated"),
                                        str(drs.defaultVmBehavior))
        admission = das is not None and bool(das.enabled) and das.admissionControlEnabled \
            is not False
        return {"drs_automation": automation,
                "ha_admission_control": "enabled" if admission else "disabled"}

    async def cluster_settings(self, cluster: str) -> dict[str, str]:
        """``drs_automation`` (manual, partially-automated, fully-automated, disabled) and
        ``ha_admission_control`` (enabled, disabled); none for a standalone host."""
        return await self._run(f"reading cluster {cluster}",
                               lambda c: self._settings(c, cluster))

    async def set_cluster_settings(self, cluster: str, settings: Mapping[str, str]) -> None:
        """Change DRS automation and/or HA admission control; read back to prove it applied."""
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise PermanentStepError(f"cluster setting {', '.join(unknown)} is not known to the "
                                     f"vSphere driver (known: {', '.join(_SETTINGS)})")
        current = await self.cluster_settings(cluster)
        wanted = {k: v for k, v in settings.items() if current.get(k) != v}
        if not wanted:
            return
        if not current:
            raise PermanentStepError(f"{cluster} is a standalone host: it has no DRS or HA "
                                     "settings to change")
        spec = vim.cluster.ConfigSpecEx()
        drs = wanted.get("drs_automation")
        if drs is not None:
            if drs != "disabled" and drs not in _DRS:
                raise PermanentStepError(f"drs_automation {drs!r}: expected one of "
                                         f"{', '.join([*_DRS, 'disabled'])}")
            spec.drsConfig = vim.cluster.DrsConfigInfo(
                enabled=drs != "disabled", defaultVmBehavior=_DRS.get(drs))
        admission = wanted.get("ha_admission_control")
        if admission is not None:
            if admission not in ("enabled", "disabled"):
                raise PermanentStepError(f"ha_admission_control {admission!r}: expected enabled "
                                         "or disabled")
            spec.dasConfig = vim.cluster.DasConfigInfo(
                admissionControlEnabled=admission == "enabled")
        what = f"changing {', '.join(f'{k}={v}' for k, v in sorted(wanted.items()))} of " \
               f"cluster {cluster}"
        await self._task(what, lambda c: self._find(
            c, vim.ClusterComputeResource, cluster).ReconfigureComputeResource_Task(spec, True))
        after = await self.cluster_settings(cluster)
        missed = {k: after.get(k) for k, v in wanted.items() if after.get(k) != v}
        if missed:
            raise PermanentStepError(
                f"{what}: vCenter completed the task but still reports "
                f"{', '.join(f'{k}={v}' for k, v in sorted(missed.items()))}")

    async def close(self) -> None:
        """Log out (idempotent)."""
        await asyncio.to_thread(self._session.close)


