"""vSphere through vCenter (pyVmomi): the inventory source and the remediation driver.

:class:`VSphereInventory` reads datacenters (sites), clusters, ESXi hosts and VMs with one
PropertyCollector filter over a container view, and keeps that filter: the first
:meth:`~VSphereInventory.read` fetches everything, every later one asks ``WaitForUpdatesEx``
for what changed since the previous version, applies it to its cached view and returns the
whole fleet again. :class:`VSphereDriver` implements the driver port with the vSphere API's
tasks (maintenance mode, relocation, power, host reboot, cluster DRS); installing the patch is
the business of a pluggable :class:`PatchStep` (:class:`CommandPatchStep` runs a command the
user configures: an ``esxcli software profile update`` over SSH, an Ansible playbook, ...).

Endpoint options (all optional): ``tenant_attribute`` and ``criticality_attribute`` (the custom
attribute names, default ``hvpatch.tenant`` / ``hvpatch.criticality``), ``task_timeout_s``
(default 3600), ``shutdown_timeout_s`` (300), ``poll_interval_s`` (2). ``docs/vsphere.md`` has
the configuration and what was verified against govmomi's vCenter simulator.

Credentials never appear in a message, a log line or a ``repr``; TLS is verified unless the
endpoint says ``verify_tls=False`` (then a warning names the endpoint).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from hvpatch.domain.fleet import (
    Cluster,
    Criticality,
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
from hvpatch.domain.software import EsxiSoftware
from hvpatch.errors import (
    DriverError,
    InputError,
    PermanentStepError,
    Problem,
    TemporaryStepError,
)
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import Components, DriverCapabilities, GuestState, HostState, Probe

__all__ = [
    "CommandPatchStep", "PatchStep", "StagingPatchStep", "SyncStats", "VSphereDriver",
    "VSphereInventory", "connect",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# pyVmomi is untyped: its managed objects and data objects are ``Any`` here, on purpose.
MO = Any

DEFAULT_TENANT_ATTRIBUTE = "hvpatch.tenant"
DEFAULT_CRITICALITY_ATTRIBUTE = "hvpatch.criticality"
#: the tenant of VMs without the tenant attribute
UNASSIGNED_TENANT = "unassigned"

#: faults worth retrying later (a busy object, a passing loss of contact)
_TEMPORARY_FAULTS: tuple[type, ...] = tuple(t for t in (
    getattr(vim.fault, "TaskInProgress", None), getattr(vim.fault, "Timedout", None),
    getattr(vim.fault, "ResourceInUse", None), getattr(vim.fault, "ConcurrentAccess", None),
    getattr(vmodl.fault, "HostCommunication", None),
    getattr(vim.fault, "HostConnectFault", None)) if t is not None)
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


# --- connection ------------------------------------------------------------------------------

def _address(endpoint: Endpoint) -> tuple[str, int, str]:
    raw = endpoint.url if "://" in endpoint.url else f"https://{endpoint.url}"
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(f"vSphere connection {endpoint.name}: bad url", [Problem(
            "url", f"{endpoint.url!r}: expected https://vcenter.example[:443][/sdk]")])
    return parts.hostname, parts.port or 443, parts.path.rstrip("/") or "/sdk"


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext:
    if not endpoint.verify_tls:
        log.warning("TLS verification is OFF for vSphere connection %s (%s): anyone on the path "
                    "can read and change what hvpatch sends", endpoint.name, _address(endpoint)[0])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if endpoint.ca_file and not os.path.isfile(endpoint.ca_file):
        raise InputError(f"vSphere connection {endpoint.name}: CA file not found", [
            Problem("ca_file", f"{endpoint.ca_file!r} does not exist")])
    try:
        return ssl.create_default_context(cafile=endpoint.ca_file or None)
    except ssl.SSLError as exc:
        raise InputError(f"vSphere connection {endpoint.name}: unusable CA file", [
            Problem("ca_file", f"{endpoint.ca_file!r}: {exc.reason or exc}")]) from exc


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def connect(endpoint: Endpoint) -> MO:
    """Log in to vCenter (or an ESXi host) and return the ServiceInstance.

    Raises :class:`DriverError` with a message that names the endpoint (never the password):
    certificate not trusted, login refused, unreachable, not a vSphere API.
    """
    host, port, path = _address(endpoint)
    ctx = _ssl_context(endpoint)
    where = f"vSphere connection {endpoint.name} ({host}:{port})"
    try:
        return SmartConnect(host=host, port=port, path=path, user=endpoint.username,
                            pwd=endpoint.password, sslContext=ctx, httpConnectionTimeout=60)
    except vim.fault.InvalidLogin as exc:
        raise DriverError(f"{where}: login as {endpoint.username!r} refused (wrong user name or "
                          "password)") from exc
    except vmodl.MethodFault as exc:
        raise DriverError(f"{where}: {_fault_text(exc)}") from exc
    except Exception as exc:
        tls = _tls_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            raise DriverError(
                f"TLS certificate of {endpoint.name} ({host}:{port}) not trusted: "
                f"{tls.verify_message or tls.reason}; pass ca_file with the CA (PEM) that signed "
                "it, or (only on a lab) verify_tls=False") from exc
        if tls is not None:
            raise DriverError(f"{where}: TLS handshake failed: {tls.reason or tls}") from exc
        if isinstance(exc, _NETWORK_ERRORS):
            raise DriverError(f"{where}: unreachable: {exc}") from exc
        raise DriverError(f"{where}: not usable: {exc}") from exc


def _fault_text(fault: Any) -> str:
    name = getattr(fault, "_wsdlName", type(fault).__name__)
    msg = getattr(fault, "msg", "") or ""
    if not msg and getattr(fault, "faultMessage", None):
        msg = "; ".join(m.message for m in fault.faultMessage if getattr(m, "message", ""))
    return f"{name}: {msg}" if msg else str(name)


class _Session:
    """One logged-in ServiceInstance, re-established once when vCenter dropped the session."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._si: MO = None
        self._content: MO = None
        self.generation = 0

    @property
    def content(self) -> MO:
        with self._lock:
            if self._si is None:
                self._si = connect(self.endpoint)
                self._content = self._si.RetrieveContent()
                self.generation += 1
            return self._content

    def reset(self) -> None:
        with self._lock:
            self._si = None

    def call(self, fn: Callable[[MO], T]) -> T:
        """``fn(content)``; logs in again and retries once on NotAuthenticated."""
        try:
            return fn(self.content)
        except vim.fault.NotAuthenticated:
            log.info("vSphere session of %s expired; logging in again", self.endpoint.name)
            self.reset()
            return fn(self.content)

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            try:
                Disconnect(si)
            except (vmodl.MethodFault, *_NETWORK_ERRORS) as exc:
                log.info("logout from %s failed: %s", self.endpoint.name, exc)


def _key(obj: MO) -> str:
    return f"{obj._wsdlName}:{obj._moId}"


def _retrieve(content: MO, objs: Sequence[MO], props: Mapping[type, Sequence[str]],
              traverse: MO = None) -> dict[str, dict[str, Any]]:
    """Properties of ``objs`` (or of what ``traverse`` reaches from them), by object key."""
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=o, skip=traverse is not None,
                                 selectSet=[traverse] if traverse is not None else [])
                   for o in objs],
        propSet=[pc.PropertySpec(type=t, pathSet=list(paths)) for t, paths in props.items()])
    out: dict[str, dict[str, Any]] = {}
    result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
    while result is not None:
        for oc in result.objects:
            out[_key(oc.obj)] = {"_obj": oc.obj, **{p.name: p.val for p in oc.propSet}}
        if not result.token:
            break
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
    return out


def _view_traversal() -> MO:
    return vmodl.query.PropertyCollector.TraversalSpec(
        name="view", type=vim.view.ContainerView, path="view", skip=False)


# --- inventory ---------------------------------------------------------------------------------

_HOST_PROPS = ("name", "parent", "config.product.build", "config.product.version",
               "summary.hardware.numCpuCores", "summary.hardware.memorySize",
               "runtime.inMaintenanceMode", "runtime.connectionState")
_VM_PROPS = ("name", "runtime.host", "runtime.powerState", "config.hardware.numCPU",
             "config.hardware.memoryMB", "config.hardware.device", "config.template",
             "datastore", "customValue")
_INVENTORY_PROPS: dict[type, tuple[str, ...]] = {
    vim.Datacenter: ("name", "parent"),
    vim.Folder: ("name", "parent"),
    vim.ComputeResource: ("name", "parent"),
    vim.ClusterComputeResource: ("name", "parent", "configurationEx"),
    vim.HostSystem: _HOST_PROPS,
    vim.VirtualMachine: _VM_PROPS,
    vim.Datastore: ("name", "summary.multipleHostAccess"),
}
_PATHS_BY_TYPE = {t.__name__.rsplit(".", 1)[-1]: set(p) for t, p in _INVENTORY_PROPS.items()}


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What the last read transferred: object updates received, and whether it was the first."""

    object_updates: int
    initial: bool


class VSphereInventory:
    """The inventory of one vCenter, kept current through a PropertyCollector filter."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.tenant_attribute = endpoint.options.get("tenant_attribute",
                                                     DEFAULT_TENANT_ATTRIBUTE)
        self.criticality_attribute = endpoint.options.get("criticality_attribute",
                                                          DEFAULT_CRITICALITY_ATTRIBUTE)
        self._session = _Session(endpoint)
        self._objects: dict[str, dict[str, Any]] = {}
        self._collector: MO = None
        self._version = ""
        self._generation = -1
        self.last_sync = SyncStats(0, True)

    def __repr__(self) -> str:
        return f"VSphereInventory({self.endpoint!r})"

    def read(self) -> Fleet:
        """The whole fleet; after the first read only the changes are fetched."""
        try:
            content = self._session.content
            if self._generation != self._session.generation:   # first read or new login
                self._start(content)
            try:
                self._sync(content)
            except vim.fault.NotAuthenticated:
                self._session.reset()
                content = self._session.content
                self._start(content)
                self._sync(content)
            fields = {f.key: f.name for f in content.customFieldsManager.field or ()}
        except vmodl.MethodFault as exc:
            raise DriverError(f"vSphere connection {self.endpoint.name}: reading the inventory "
                              f"failed: {_fault_text(exc)}") from exc
        except _NETWORK_ERRORS as exc:
            raise DriverError(f"vSphere connection {self.endpoint.name}: lost while reading "
                              f"the inventory: {exc}") from exc
        return build_fleet(self._objects, fields, self.tenant_attribute,
                           self.criticality_attribute)

    def _start(self, content: MO) -> None:
        pc = vmodl.query.PropertyCollector
        view = content.viewManager.CreateContainerView(
            content.rootFolder, list(_INVENTORY_PROPS), True)
        self._collector = content.propertyCollector.CreatePropertyCollector()
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[_view_traversal()])],
            propSet=[pc.PropertySpec(type=t, pathSet=list(p))
                     for t, p in _INVENTORY_PROPS.items()])
        self._collector.CreateFilter(spec, partialUpdates=False)
        self._objects, self._version = {}, ""
        self._generation = self._session.generation

    def _sync(self, content: MO) -> None:
        initial = self._version == ""
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
        received = 0
        stale: dict[str, MO] = {}
        while True:
            update = self._collector.WaitForUpdatesEx(self._version, options)
            if update is None:
                break
            for fs in update.filterSet or ():
                for ou in fs.objectSet or ():
                    received += 1
                    self._apply(ou, stale)
            self._version = update.version
            if not update.truncated:
                break
        if stale:   # changes below a property we asked for: fetch those objects again
            for key, props in _retrieve(content, list(stale.values()), _INVENTORY_PROPS).items():
                self._objects[key] = props
        self.last_sync = SyncStats(received, initial)

    def _apply(self, ou: MO, stale: dict[str, MO]) -> None:
        key = _key(ou.obj)
        if ou.kind == "leave":
            self._objects.pop(key, None)
            return
        props = self._objects.setdefault(key, {"_obj": ou.obj})
        wanted = _PATHS_BY_TYPE.get(ou.obj._wsdlName, set())
        for change in ou.changeSet or ():
            name = change.name
            if change.op in ("remove", "indirectRemove"):
                props.pop(name, None)
            elif name in wanted and change.op == "assign":
                props[name] = change.val
            elif any(w.startswith(name + ".") for w in wanted):   # a parent of what we asked
                for w in wanted:
                    if w.startswith(name + "."):
                        props[w] = _walk(change.val, w[len(name) + 1:])
            else:   # below a property we asked for (partial array change, ...)
                stale[key] = ou.obj

    def close(self) -> None:
        """Destroy the collector and log out (idempotent)."""
        if self._collector is not None:
            try:
                self._collector.DestroyPropertyCollector()
            except (vmodl.MethodFault, *_NETWORK_ERRORS) as exc:
                log.info("could not destroy the property collector on %s: %s",
                         self.endpoint.name, exc)
            self._collector = None
        self._session.close()
        self._generation = -1


def _walk(value: Any, path: str) -> Any:
    for part in path.split("."):
        if value is None:
            return None
        value = getattr(value, part, None)
    return value


def _datacenter(objects: Mapping[str, Mapping[str, Any]], key: str) -> str | None:
    seen = 0
    while key in objects and seen < 64:
        if key.startswith("Datacenter:"):
            return str(objects[key]["name"])
        parent = objects[key].get("parent")
        if parent is None:
            return None
        key, seen = _key(parent), seen + 1
    return None


def _ha_reserve(config: Any) -> int:
    das = getattr(config, "dasConfig", None)
    if das is None or not das.enabled or das.admissionControlEnabled is False:
        return 0
    policy = das.admissionControlPolicy
    if isinstance(policy, vim.cluster.FailoverLevelAdmissionControlPolicy):
        return int(policy.failoverLevel)
    if isinstance(policy, vim.cluster.FailoverHostAdmissionControlPolicy):
        return len(policy.failoverHosts or ())
    return 1


def _anti_affinity(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key, props in objects.items():
        if not key.startswith("ClusterComputeResource:"):
            continue
        for rule in getattr(props.get("configurationEx"), "rule", None) or ():
            if isinstance(rule, vim.cluster.AntiAffinityRuleSpec) and rule.enabled is not False:
                for vm in rule.vm or ():
                    groups.setdefault(_key(vm), []).append(str(rule.name))
    return groups


def _migration_block(props: Mapping[str, Any], objects: Mapping[str, Mapping[str, Any]]
                     ) -> tuple[MigrationBlock | None, str]:
    devices = props.get("config.hardware.device") or ()
    for dev in devices:
        if isinstance(dev, vim.vm.device.VirtualPCIPassthrough) and isinstance(
                dev.backing, vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo):
            return MigrationBlock.VGPU, f"vGPU profile {dev.backing.vgpu} (vMotion not assumed)"
    for dev in devices:
        if isinstance(dev, vim.vm.device.VirtualPCIPassthrough | vim.vm.device.
                      VirtualSriovEthernetCard):
            label = getattr(dev.deviceInfo, "label", "") or type(dev).__name__
            return MigrationBlock.PCI_PASSTHROUGH, f"PCI passthrough device {label!r}"
    for ds in props.get("datastore") or ():
        info = objects.get(_key(ds), {})
        if info.get("summary.multipleHostAccess") is False:
            return MigrationBlock.LOCAL_DISK, \
                f"disk on datastore {info.get('name', ds._moId)!r}, which only one host mounts"
    return None, ""


def _custom_values(props: Mapping[str, Any], fields: Mapping[int, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in props.get("customValue") or ():   # the last value of a key wins
        name = fields.get(value.key)
        if name is not None:
            out[name] = str(getattr(value, "value", "") or "").strip()
    return out


_POWER = {"poweredOn": PowerState.RUNNING, "poweredOff": PowerState.STOPPED,
          "suspended": PowerState.SUSPENDED}


def build_fleet(objects: Mapping[str, Mapping[str, Any]], fields: Mapping[int, str],
                tenant_attribute: str = DEFAULT_TENANT_ATTRIBUTE,
                criticality_attribute: str = DEFAULT_CRITICALITY_ATTRIBUTE) -> Fleet:
    """The domain fleet from collected vSphere properties (object key -> property path ->
    value); ``fields`` are the custom attribute definitions (key -> name)."""
    problems: list[Problem] = []
    groups = _anti_affinity(objects)
    guests: dict[str, list[Guest]] = {}
    vm_seen: dict[str, str] = {}
    tenants: set[str] = set()
    for key, p in sorted(objects.items()):
        if not key.startswith("VirtualMachine:") or p.get("config.template") \
                or p.get("runtime.host") is None:
            continue
        name = str(p["name"])
        if name in vm_seen:
            problems.append(Problem(f"vm {name}", f"the name is used twice ({vm_seen[name]} and "
                                    f"{key}); hvpatch needs unique VM names"))
            continue
        vm_seen[name] = key
        values = _custom_values(p, fields)
        tenant = values.get(tenant_attribute) or UNASSIGNED_TENANT
        raw = values.get(criticality_attribute, "").lower().replace("_", "-")
        try:
            criticality = Criticality(raw) if raw else Criticality.MEDIUM
        except ValueError:
            problems.append(Problem(f"vm {name}: custom attribute {criticality_attribute}",
                                    f"{raw!r}: expected one of "
                                    f"{', '.join(c.value for c in Criticality)}"))
            continue
        block, note = _migration_block(p, objects)
        tenants.add(tenant)
        guests.setdefault(_key(p["runtime.host"]), []).append(Guest(
            name=GuestName(name), tenant=TenantName(tenant),
            vcpus=int(p.get("config.hardware.numCPU") or 0),
            memory_mb=int(p.get("config.hardware.memoryMB") or 0),
            criticality=criticality,
            power_state=_POWER.get(str(p.get("runtime.powerState")), PowerState.STOPPED),
            anti_affinity=tuple(sorted(set(groups.get(key, ())))),
            migration_block=block, migration_note=note))
    hosts: dict[str, list[Host]] = {}
    for key, p in sorted(objects.items()):
        if not key.startswith("HostSystem:") or p.get("parent") is None:
            continue
        name, parent = str(p["name"]), _key(p["parent"])
        site = _datacenter(objects, parent)
        build = str(p.get("config.product.build") or "")
        if site is None or not build:
            problems.append(Problem(f"host {name}", "no datacenter or no ESXi build reported "
                                    "(disconnected host?)"))
            continue
        hosts.setdefault(parent, []).append(Host(
            name=HostName(name), site=site, cluster=str(objects[parent]["name"]),
            software=EsxiSoftware(build), cores=int(p.get("summary.hardware.numCpuCores") or 0),
            memory_mb=int(p.get("summary.hardware.memorySize") or 0) // 2**20,
            guests=tuple(sorted(guests.get(key, ()), key=lambda g: g.name))))
    sites: dict[str, list[Cluster]] = {}
    for key, members in sorted(hosts.items()):
        p = objects[key]
        clustered = key.startswith("ClusterComputeResource:")
        site = members[0].site
        sites.setdefault(site, []).append(Cluster(
            name=str(p["name"]), site=site, family=Family.ESXI,
            ha_reserve_hosts=_ha_reserve(p.get("configurationEx")) if clustered else 0,
            hosts=tuple(members)))
    if problems:
        raise InputError("the vSphere inventory cannot be used as it is", problems)
    return Fleet(
        tenants=tuple(Tenant(TenantName(t)) for t in sorted(tenants)),
        sites=tuple(Site(name, clusters=tuple(sorted(cs, key=lambda c: c.name)))
                    for name, cs in sorted(sites.items())))


# --- the patch step ----------------------------------------------------------------------------

class PatchStep(Protocol):
    """How the ESXi software is installed: the driver calls it with the host in maintenance.

    The same shape as the other connectors' patch steps (``apply`` returning evidence), so one
    step (e.g. an Ansible one) serves every platform."""

    async def apply(self, host: str, components: Components) -> str:
        """Install ``components`` on ``host``; returns evidence; PermanentStepError on failure."""
        ...


class StagingPatchStep(PatchStep, Protocol):
    """A patch step that can also stage (download) ahead of the maintenance window."""

    @property
    def stages(self) -> bool:
        """True when :meth:`stage` does something."""
        ...

    async def stage(self, host: str, components: Components) -> str:
        """Download/stage ``components`` on ``host``; returns evidence."""
        ...


def _staging(step: PatchStep | None) -> StagingPatchStep | None:
    if step is not None and getattr(step, "stages", False) and hasattr(step, "stage"):
        return step  # type: ignore[return-value]  # checked just above
    return None


class CommandPatchStep:
    """Runs a user-configured local command (an argv list, no shell) per host.

    The command gets the host name and each target as ``component=version`` as extra
    arguments, and the environment ``HVPATCH_ACTION`` (``stage``/``apply``), ``HVPATCH_HOST``,
    ``HVPATCH_COMPONENTS`` (space-separated ``component=version``) and, for ESXi,
    ``HVPATCH_ESXI_BUILD``. Exit status 0 is success; anything else fails the step with the
    end of the output as evidence.
    """

    def __init__(self, argv: Sequence[str], *, stage_argv: Sequence[str] | None = None,
                 timeout_s: float = 3600.0, env: Mapping[str, str] | None = None) -> None:
        if not argv:
            raise InputError("patch command", [Problem("argv", "an empty command")])
        self.argv = tuple(argv)
        self.stage_argv = tuple(stage_argv) if stage_argv else None
        self.timeout_s = timeout_s
        self.env = dict(env or {})
        #: host -> output of the last run, kept as evidence
        self.evidence: dict[str, str] = {}

    @property
    def stages(self) -> bool:
        """True when a stage command is configured."""
        return self.stage_argv is not None

    async def stage(self, host: str, components: Components) -> str:
        """Run the stage command (nothing without one)."""
        if self.stage_argv is None:
            return ""
        return await self._run("stage", self.stage_argv, host, components)

    async def apply(self, host: str, components: Components) -> str:
        """Run the apply command."""
        return await self._run("apply", self.argv, host, components)

    async def _run(self, action: str, argv: Sequence[str], host: str,
                   components: Components) -> str:
        targets = [f"{c}={v}" for c, v in components]
        env = {**os.environ, **self.env, "HVPATCH_ACTION": action, "HVPATCH_HOST": host,
               "HVPATCH_COMPONENTS": " ".join(targets),
               "HVPATCH_ESXI_BUILD": dict(components).get("esxi", "")}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, host, *targets, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            raise PermanentStepError(f"patch command {argv[0]!r} for {host} cannot be started: "
                                     f"{exc.strerror or exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise PermanentStepError(f"patch command {argv[0]!r} ({action}) for {host} did not "
                                     f"finish within {self.timeout_s:g} s and was killed; the "
                                     "host's software state is unknown") from exc
        text = out.decode(errors="replace")
        self.evidence[host] = text
        if proc.returncode != 0:
            raise PermanentStepError(f"patch command {argv[0]!r} ({action}) for {host} exited "
                                     f"with {proc.returncode}; output ends with:\n"
                                     f"{text[-2000:]}")
        log.info("patch command (%s) for %s succeeded", action, host)
        return text


# --- the driver --------------------------------------------------------------------------------

#: hvpatch's names of DRS automation levels (as the rollout policy writes them) -> vSphere's
_DRS = {"manual": "manual", "partially-automated": "partiallyAutomated",
        "fully-automated": "fullyAutomated"}
_DRS_NAMES = {v: k for k, v in _DRS.items()}
_SETTINGS = ("drs_automation", "ha_admission_control")
_HOST_STATE_PROPS = ("name", "config.product.build", "runtime.inMaintenanceMode",
                     "runtime.connectionState", "runtime.bootTime", "summary.rebootRequired")
_GUEST_PROPS = ("name", "runtime.host", "runtime.powerState", "config.hardware.memoryMB",
                "config.template")


def _step_error(what: str, fault: Any) -> DriverError:
    text = f"{what} failed: {_fault_text(fault)}"
    if isinstance(fault, _TEMPORARY_FAULTS):
        return TemporaryStepError(text, delay=30.0)
    return PermanentStepError(text)


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
        stages = _staging(self.patch_step) is not None
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
        step = _staging(self.patch_step)
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
        _, p = self._props(content, vim.ClusterComputeResource, cluster, ("configurationEx",))
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
        ``ha_admission_control`` (enabled, disabled)."""
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


