"""vSphere through vCenter (pyVmomi): the inventory source and the remediation driver.

:class:`VSphereInventory` reads datacenters (sites), clusters, ESXi hosts and VMs with one
PropertyCollector filter over a container view, and keeps that filter: the first
:meth:`~VSphereInventory.read` fetches everything, every later one asks ``WaitForUpdatesEx``
for what changed since the previous version, applies it to its cached view and returns the
whole fleet again. :class:`VSphereDriver` implements the driver port with the vSphere API's
tasks (maintenance mode, relocation, power, host reboot, cluster DRS); installing the patch is
the business of a pluggable :class:`PatchStep` (:class:`CommandPatchStep` runs a command the
user configures: an ``esxcli software profile update`` over SSH, an Ansible playbook, ...).

The modules:

==============  ==================================================================================
``session``     :func:`connect` (address, TLS, login, errors that name the endpoint), the session
                that logs in again when vCenter dropped it, property reads, fault translation
``inventory``   :class:`VSphereInventory`, :class:`SyncStats` and :func:`build_fleet` (vSphere
                properties -> the domain fleet)
``driver``      :class:`VSphereDriver`: the driver port's operations and waiting for tasks
==============  ==================================================================================

The patch step protocols and :class:`CommandPatchStep` are platform-neutral and live in
:mod:`hvpatch.adapters.connectors.patch_step`; they are re-exported here.

Endpoint options (all optional): ``tenant_attribute`` and ``criticality_attribute`` (the custom
attribute names, default ``hvpatch.tenant`` / ``hvpatch.criticality``), ``task_timeout_s``
(default 3600), ``shutdown_timeout_s`` (300), ``poll_interval_s`` (2). ``docs/vsphere.md`` has
the configuration and what was verified against govmomi's vCenter simulator.

Credentials never appear in a message, a log line or a ``repr``; TLS is verified unless the
endpoint says ``verify_tls=False`` (then a warning names the endpoint). pyVmomi is untyped: its
managed objects and data objects are ``Any`` in these modules, on purpose.
"""

from __future__ import annotations

from hvpatch.adapters.connectors.patch_step import (
    CommandPatchStep,
    PatchStep,
    StagingPatchStep,
)
from hvpatch.adapters.connectors.vsphere.driver import VSphereDriver
from hvpatch.adapters.connectors.vsphere.inventory import (
    DEFAULT_CRITICALITY_ATTRIBUTE as DEFAULT_CRITICALITY_ATTRIBUTE,
)
from hvpatch.adapters.connectors.vsphere.inventory import (
    DEFAULT_TENANT_ATTRIBUTE as DEFAULT_TENANT_ATTRIBUTE,
)
from hvpatch.adapters.connectors.vsphere.inventory import (
    UNASSIGNED_TENANT as UNASSIGNED_TENANT,
)
from hvpatch.adapters.connectors.vsphere.inventory import (
    SyncStats,
    VSphereInventory,
)
from hvpatch.adapters.connectors.vsphere.inventory import build_fleet as build_fleet
from hvpatch.adapters.connectors.vsphere.session import connect

__all__ = [
    "CommandPatchStep", "PatchStep", "StagingPatchStep", "SyncStats", "VSphereDriver",
    "VSphereInventory", "connect",
]
