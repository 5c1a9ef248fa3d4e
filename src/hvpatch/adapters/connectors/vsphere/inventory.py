"""The vSphere inventory source: one PropertyCollector filter, synced incrementally.

:class:`VSphereInventory` reads datacenters (sites), clusters, ESXi hosts and VMs with one
PropertyCollector filter over a container view, and keeps that filter: the first
:meth:`~VSphereInventory.read` fetches everything, every later one asks ``WaitForUpdatesEx``
for what changed since the previous version, applies it to its cached view and returns the
whole fleet again. :func:`build_fleet` maps the collected properties to the domain
:class:`~hvpatch.domain.fleet.Fleet` (tenant and criticality from custom attributes,
anti-affinity rules, what blocks a live migration, HA reserve).

Endpoint options: ``tenant_attribute`` and ``criticality_attribute`` (the custom attribute
names, default ``hvpatch.tenant`` / ``hvpatch.criticality``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from hvpatch.adapters.connectors import _common
from hvpatch.adapters.connectors.vsphere.session import (
    _NETWORK_ERRORS,
    MO,
    _fault_text,
    _key,
    _retrieve,
    _Session,
    _view_traversal,
)
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
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.connector import Endpoint

__all__ = ["SyncStats", "VSphereInventory", "build_fleet"]

log = logging.getLogger(__name__)

DEFAULT_TENANT_ATTRIBUTE = "hvpatch.tenant"
DEFAULT_CRITICALITY_ATTRIBUTE = "hvpatch.criticality"
#: the tenant of VMs without the tenant attribute
UNASSIGNED_TENANT = _common.DEFAULT_TENANT

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
            criticality = _common.criticality(
                raw, error="", location=f"vm {name}: custom attribute {criticality_attribute}"
            ) if raw else Criticality.MEDIUM
        except InputError as exc:
            problems.extend(exc.problems)
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

