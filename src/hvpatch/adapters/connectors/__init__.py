"""Connectors to real platforms: inventory sources and remediation drivers per kind.

Each kind's module is imported only when a connection of that kind is used, so a missing
optional SDK (libvirt-python, say) affects only its own kind. A remediation driver installs the
patch through its platform's own means, or through a patch step the connection names in its
options: ``patch_command`` (a command run per host, :class:`~.patch_step.CommandPatchStep`) or
``patch_playbook`` (an Ansible playbook, :class:`~.ansible_step.AnsiblePatchStep`).
"""

from __future__ import annotations

import importlib
import shlex
from typing import Any

from hvpatch.errors import InputError, Problem
from hvpatch.ports.connector import Endpoint, InventorySource
from hvpatch.ports.driver import HypervisorDriver

__all__ = ["DRIVERS", "INVENTORY", "KINDS", "inventory_source", "remediation_driver"]

#: kind -> "module:class" of its inventory source (the class takes the Endpoint)
INVENTORY: dict[str, str] = {
    "vsphere": "hvpatch.adapters.connectors.vsphere:VSphereInventory",
    "libvirt": "hvpatch.adapters.connectors.libvirt_kvm:LibvirtInventory",
    "proxmox": "hvpatch.adapters.connectors.proxmox:ProxmoxInventory",
    "hyperv": "hvpatch.adapters.connectors.hyperv:HyperVInventory",
    "xapi": "hvpatch.adapters.connectors.xapi:XapiInventory",
    "kvm-ssh": "hvpatch.adapters.connectors.ssh_inventory:SshInventory",
}
#: kind -> "module:class" of its remediation driver (the class takes the Endpoint and a patch
#: step); kvm-ssh reaches Linux KVM hosts over SSH (its inventory too; libvirt connections read
#: guests and QEMU versions through libvirt instead)
DRIVERS: dict[str, str] = {
    "vsphere": "hvpatch.adapters.connectors.vsphere:VSphereDriver",
    "kvm-ssh": "hvpatch.adapters.connectors.ssh_linux:SshLinuxDriver",
}
#: every kind a connection may have
KINDS = tuple(sorted(set(INVENTORY) | set(DRIVERS)))


def _load(target: str) -> Any:
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def inventory_source(endpoint: Endpoint) -> InventorySource:
    """The inventory source for ``endpoint``'s kind."""
    target = INVENTORY.get(endpoint.kind)
    if target is None:
        raise InputError("no inventory for this kind of connection", [Problem(
            "kind", f"{endpoint.kind!r}: inventory comes from "
            f"{', '.join(sorted(INVENTORY))} connections")])
    source: InventorySource = _load(target)(endpoint)
    return source


def remediation_driver(endpoint: Endpoint) -> HypervisorDriver:
    """The remediation driver for ``endpoint``'s kind, with the patch step its options name."""
    target = DRIVERS.get(endpoint.kind)
    if target is None:
        raise InputError("no remediation driver for this kind of connection", [Problem(
            "kind", f"{endpoint.kind!r}: rollouts run on {', '.join(sorted(DRIVERS))} "
            "connections (or the simulator)")])
    opts = endpoint.options
    step: Any = None
    if opts.get("patch_command") and opts.get("patch_playbook"):
        raise InputError("two patch steps", [Problem(
            "options", "give patch_command or patch_playbook, not both")])
    if opts.get("patch_command"):
        from hvpatch.adapters.connectors.patch_step import CommandPatchStep
        stage = opts.get("stage_command")
        step = CommandPatchStep(shlex.split(opts["patch_command"]),
                                stage_argv=shlex.split(stage) if stage else None)
    elif opts.get("patch_playbook"):
        from hvpatch.adapters.connectors.ansible_step import AnsiblePatchStep
        step = AnsiblePatchStep.for_endpoint(endpoint, opts["patch_playbook"])
    driver: HypervisorDriver = _load(target)(endpoint, patch_step=step)
    return driver
