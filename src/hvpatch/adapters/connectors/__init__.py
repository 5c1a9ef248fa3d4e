"""Connectors to real platforms: inventory sources (and remediation drivers) per kind.

Each kind's module is imported only when a connection of that kind is used, so a missing
optional SDK (libvirt-python, say) affects only its own kind.
"""

from __future__ import annotations

import importlib

from hvpatch.errors import InputError, Problem
from hvpatch.ports.connector import Endpoint, InventorySource

__all__ = ["INVENTORY", "inventory_source"]

#: kind -> "module:class" of its inventory source (the class takes the Endpoint)
INVENTORY: dict[str, str] = {
    "vsphere": "hvpatch.adapters.connectors.vsphere:VSphereInventory",
    "libvirt": "hvpatch.adapters.connectors.libvirt_kvm:LibvirtInventory",
    "proxmox": "hvpatch.adapters.connectors.proxmox:ProxmoxInventory",
    "hyperv": "hvpatch.adapters.connectors.hyperv:HyperVInventory",
    "xapi": "hvpatch.adapters.connectors.xapi:XapiInventory",
}


def inventory_source(endpoint: Endpoint) -> InventorySource:
    """The inventory source for ``endpoint``'s kind."""
    target = INVENTORY.get(endpoint.kind)
    if target is None:
        raise InputError("unknown connection kind", [Problem(
            "kind", f"{endpoint.kind!r}: expected one of {', '.join(sorted(INVENTORY))}")])
    module, _, cls = target.partition(":")
    source: InventorySource = getattr(importlib.import_module(module), cls)(endpoint)
    return source
