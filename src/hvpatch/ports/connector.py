"""The connector port: how hvpatch reaches a real platform to read its inventory.

A connector is an inventory source (this port) and, where the platform allows, a remediation
driver (:mod:`hvpatch.ports.driver`). Both are built from one :class:`Endpoint`: where the
platform's API is, who logs in, and how TLS is checked. The credentials in an endpoint are
already resolved (from the encrypted secrets store, an environment variable or a 0600 file, by
the services); an adapter never looks them up itself and never puts them in a message, a log
line or a ``repr``.

Contract for implementers:

* :meth:`InventorySource.read` returns the platform's whole current view as a domain
  :class:`~hvpatch.domain.fleet.Fleet` (sites, clusters, hosts with their exact software, guests
  with tenants); the services merge it into the store (an unchanged object writes nothing).
* Failures are :class:`~hvpatch.errors.DriverError` (unreachable, refused, TLS not trusted) or
  :class:`~hvpatch.errors.InputError` (a response that breaks the vendor's schema, naming the
  field); SDK exceptions are translated with ``raise ... from``.
* TLS verification is on unless the endpoint says ``verify_tls=False``, and then the adapter
  logs a warning naming the endpoint (never its credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hvpatch.domain.fleet import Fleet

__all__ = ["Endpoint", "InventorySource"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a platform's API is and how to log in to it."""

    kind: str                      # vsphere, libvirt, proxmox, hyperv, xapi, ...
    name: str                      # the connection's name in hvpatch (site name by default)
    url: str                       # e.g. https://vc1.example:443/sdk, qemu+ssh://root@kvm1/system
    username: str = ""
    password: str = field(default="", repr=False)
    verify_tls: bool = True
    ca_file: str = ""              # a PEM bundle to trust instead of the system's
    options: Mapping[str, str] = field(default_factory=dict)   # per-kind settings

    def __repr__(self) -> str:
        return (f"Endpoint(kind={self.kind!r}, name={self.name!r}, url={self.url!r}, "
                f"username={self.username!r}, verify_tls={self.verify_tls})")


@runtime_checkable
class InventorySource(Protocol):
    """Reads a platform's inventory."""

    def read(self) -> Fleet:
        """The platform's current hosts, guests, clusters and sites."""
        ...

    def close(self) -> None:
        """Log out and release connections (idempotent)."""
        ...
