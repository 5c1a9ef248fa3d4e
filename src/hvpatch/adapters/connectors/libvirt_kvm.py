"""KVM inventory through libvirt-python: hosts, their QEMU and libvirt versions, and domains.

One connection may name several libvirt URIs (a cluster of KVM hosts): ``Endpoint.url`` is a
comma-separated list, and ``options["uris"]`` adds more. Each URI is opened read-only, so reading
the inventory can change nothing on the host.

What is read, per URI (``docs/connectors.md`` has the full mapping):

* the host: ``getHostname`` (or ``options["hostname"]``, comma-separated per URI), physical cores
  (NUMA nodes x sockets x cores of ``getInfo``), memory (``getMemoryStats`` total, or
  ``getInfo``), QEMU (``getVersion``) and libvirt (``getLibVersion``);
* every domain: name, state, vCPUs, maximum memory, and from its XML the tenant and
  criticality (an ``<hvpatch:guest>`` element in ``<metadata>``, namespace :data:`NAMESPACE`)
  and what pins it to the host (``<hostdev>``, ``<cputune><vcpupin>``, local disks).

libvirt cannot tell the host's kernel or distribution; they come from ``options["kernel"]`` and
``options["distro"]`` (default ``0`` and ``unknown``: an unknown kernel is matched as the oldest,
so kernel advisories are reported rather than silently missed).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from hvpatch.adapters.connectors import _common
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
from hvpatch.domain.software import KvmSoftware
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.connector import Endpoint

try:
    import libvirt
except ImportError:  # pragma: no cover - depends on the installation (extra "kvm")
    libvirt = None

__all__ = ["NAMESPACE", "LibvirtInventory", "parse_domain_xml", "split_version"]

log = logging.getLogger(__name__)

#: XML namespace of hvpatch's element in a domain's ``<metadata>``
NAMESPACE = "https://hvpatch.dev/ns/1"
#: disk source protocols and pool types whose storage every host of a cluster reaches
SHARED_PROTOCOLS = frozenset({"rbd", "iscsi", "nbd", "gluster", "sheepdog", "vxhs", "nfs",
                              "http", "https"})
SHARED_POOLS = frozenset({"netfs", "rbd", "gluster", "iscsi", "iscsi-direct", "sheepdog",
                          "vstorage", "mpath"})
_STATES = {1: PowerState.RUNNING, 2: PowerState.RUNNING, 3: PowerState.SUSPENDED,
           4: PowerState.RUNNING, 5: PowerState.STOPPED, 6: PowerState.STOPPED,
           7: PowerState.SUSPENDED}   # blocked, running, paused, shutting down, shut off, ...


def split_version(number: int) -> str:
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + micro) as ``M.m.u``."""
    return f"{number // 1_000_000}.{number // 1_000 % 1_000}.{number % 1_000}"




def parse_domain_xml(xml: str, *, default_tenant: str,
                     disk_is_shared: Callable[[str], bool] = lambda _path: False,
                     where: str = "domain") -> dict[str, Any]:
    """Tenant, criticality and migration block of a domain, from its XML description."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError("libvirt returned unreadable domain XML",
                         [Problem(where, str(exc))]) from exc
    out: dict[str, Any] = {"tenant": default_tenant, "criticality": Criticality.MEDIUM,
                           "block": None, "note": ""}
    meta = root.find(f"metadata/{{{NAMESPACE}}}guest")
    if meta is not None:
        out["tenant"] = (meta.get("tenant") or "").strip() or default_tenant
        if meta.get("criticality"):
            out["criticality"] = _common.criticality(
                meta.get("criticality", ""), error="a domain's hvpatch metadata is not valid",
                location=f"{where}.metadata.criticality")
    hostdev = root.find("devices/hostdev")
    if hostdev is not None:
        addr = hostdev.find("source/address")
        shown = ":".join((addr.get(k) or "?").removeprefix("0x")
                         for k in ("domain", "bus", "slot")) if addr is not None else "?"
        out["block"] = MigrationBlock.PCI_PASSTHROUGH
        out["note"] = f"{hostdev.get('type', 'pci')} host device {shown} passed through"
    elif root.find("cputune/vcpupin") is not None:
        pins = root.findall("cputune/vcpupin")
        out["block"] = MigrationBlock.CPU_PINNING
        out["note"] = f"{len(pins)} vCPU(s) pinned to host CPUs " + ",".join(
            p.get("cpuset", "?") for p in pins)
    else:
        for disk in root.findall("devices/disk"):
            if disk.get("device", "disk") not in ("disk", "lun"):
                continue   # cdrom and floppy images can be ejected before a migration
            if disk.find("shareable") is not None:
                continue
            source = disk.find("source")
            if source is None:
                continue
            kind = disk.get("type", "file")
            if kind == "network" or source.get("protocol") in SHARED_PROTOCOLS:
                continue
            path = source.get("file") or source.get("dev") or source.get("dir") or ""
            if kind == "volume" or not path or disk_is_shared(path):
                continue
            out["block"] = MigrationBlock.LOCAL_DISK
            out["note"] = f"local disk {path} (not on shared storage)"
            break
    return out


def _uris(endpoint: Endpoint) -> list[str]:
    raw = ",".join(x for x in (endpoint.url, endpoint.options.get("uris", "")) if x)
    uris = [u.strip() for u in raw.split(",") if u.strip()]
    if not uris:
        raise InputError("no libvirt URI", [Problem("url", "e.g. qemu+ssh://root@kvm1/system")])
    if not endpoint.verify_tls:
        log.warning("connection %s: TLS certificate verification is OFF (no_verify=1)",
                    endpoint.name)
        uris = [u + ("&" if "?" in u else "?") + "no_verify=1"
                if urlsplit(u).scheme.endswith("+tls") else u for u in uris]
    return uris


class LibvirtInventory:
    """The :class:`~hvpatch.ports.connector.InventorySource` of libvirt (``kind: libvirt``)."""

    def __init__(self, endpoint: Endpoint) -> None:
        if libvirt is None:
            raise DriverError("libvirt-python is not installed: install hvpatch[kvm] "
                              "(it needs the libvirt library and its headers to build)")
        self.endpoint = endpoint
        self.uris = _uris(endpoint)
        names = [n.strip() for n in endpoint.options.get("hostname", "").split(",")]
        self.hostnames = names if any(names) else []
        if self.hostnames and len(self.hostnames) != len(self.uris):
            raise InputError("hostname option does not fit the URIs", [Problem(
                "options.hostname", f"{len(self.hostnames)} names for {len(self.uris)} URIs")])
        self._conns: list[Any] = []
        # libvirt prints every error on stderr by default; ours become DriverErrors instead
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

    def _open(self, uri: str) -> Any:
        flags = libvirt.VIR_CONNECT_RO
        try:
            if self.endpoint.username or self.endpoint.password:
                user, secret = self.endpoint.username, self.endpoint.password

                def answer(creds: list[list[Any]], _data: object) -> int:
                    for cred in creds:
                        if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                            cred[4] = user
                        elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                            cred[4] = secret
                    return 0

                auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
                return libvirt.openAuth(uri, auth, flags)
            return libvirt.openReadOnly(uri)
        except libvirt.libvirtError as exc:
            raise DriverError(f"libvirt connection {self.endpoint.name!r} cannot open {uri}: "
                              f"{exc.get_error_message() or exc}") from exc

    def _host(self, conn: Any, uri: str, hostname: str) -> Host:
        opts = self.endpoint.options
        try:
            name = hostname or conn.getHostname()
            info = conn.getInfo()   # model, memory MiB, cpus, MHz, nodes, sockets, cores, threads
            memory_mb = int(info[1])
            try:
                total = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS).get("total")
                memory_mb = int(total) // 1024 if total else memory_mb
            except libvirt.libvirtError:
                pass   # not every driver reports it (the test driver does not)
            software = KvmSoftware(distro=opts.get("distro", "unknown"),
                                   qemu=split_version(conn.getVersion()),
                                   libvirt=split_version(conn.getLibVersion()),
                                   kernel=opts.get("kernel", "0"))
            guests = list(self._guests(conn, name))
        except libvirt.libvirtError as exc:
            raise DriverError(f"libvirt connection {self.endpoint.name!r} failed reading {uri}: "
                              f"{exc.get_error_message() or exc}") from exc
        problems = software.problems()
        if problems:
            raise InputError(f"host {name}: software versions do not parse", problems)
        return Host(HostName(name), opts.get("site", self.endpoint.name),
                    opts.get("cluster", self.endpoint.name), software,
                    cores=max(1, int(info[4]) * int(info[5]) * int(info[6])),
                    memory_mb=memory_mb, ring=opts.get("ring", ""),
                    guests=tuple(guests))

    def _shared_check(self, conn: Any) -> Callable[[str], bool]:
        prefixes = tuple(p.strip() for p in self.endpoint.options.get("shared_paths", "")
                         .split(",") if p.strip())

        def shared(path: str) -> bool:
            if prefixes and path.startswith(prefixes):
                return True
            try:
                pool = conn.storageVolLookupByPath(path).storagePoolLookupByVolume()
                return ET.fromstring(pool.XMLDesc(0)).get("type", "") in SHARED_POOLS
            except libvirt.libvirtError:
                return False   # not in a pool libvirt knows: assume local

        return shared

    def _guests(self, conn: Any, host: str) -> Iterator[Guest]:
        default_tenant = _common.default_tenant(self.endpoint.options)
        shared = self._shared_check(conn)
        for dom in conn.listAllDomains(0):
            state, max_mem_kib, _mem, vcpus, _cpu_time = dom.info()
            name = dom.name()
            meta = parse_domain_xml(dom.XMLDesc(0), default_tenant=default_tenant,
                                    disk_is_shared=shared, where=f"{host}/{name}")
            yield Guest(GuestName(name), TenantName(meta["tenant"]), vcpus=int(vcpus),
                        memory_mb=int(max_mem_kib) // 1024, criticality=meta["criticality"],
                        power_state=_STATES.get(int(state), PowerState.STOPPED),
                        migration_block=meta["block"], migration_note=meta["note"])

    def read(self) -> Fleet:
        """Every host of the connection with its domains, as one site and cluster."""
        hosts: list[Host] = []
        for i, uri in enumerate(self.uris):
            conn = self._open(uri)
            self._conns.append(conn)
            hosts.append(self._host(conn, uri, self.hostnames[i] if self.hostnames else ""))
        names = [h.name for h in hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError("two URIs reach the same host", [Problem(
                "url", f"host {', '.join(dupes)} appears twice; set options.hostname")])
        return _fleet(self.endpoint, _dedupe_guests(hosts))

    def close(self) -> None:
        """Close every libvirt connection (idempotent)."""
        while self._conns:
            conn = self._conns.pop()
            try:
                conn.close()
            except libvirt.libvirtError:
                log.debug("closing a libvirt connection of %s failed", self.endpoint.name)


def _dedupe_guests(hosts: list[Host]) -> list[Host]:
    """A domain defined on several hosts (inactive copies for migration) is kept where it runs."""
    owner: dict[str, Host] = {}
    for h in hosts:
        for g in h.guests:
            prev = owner.get(g.name)
            if prev is None or (g.running and not next(
                    x for x in prev.guests if x.name == g.name).running):
                owner[g.name] = h
    return [Host(h.name, h.site, h.cluster, h.software, h.cores, h.memory_mb, h.exposure, h.ring,
                 h.cpu_group, h.coordinator,
                 tuple(g for g in h.guests if owner[g.name] is h)) for h in hosts]


def _fleet(endpoint: Endpoint, hosts: list[Host]) -> Fleet:
    site = endpoint.options.get("site", endpoint.name)
    cluster = Cluster(endpoint.options.get("cluster", endpoint.name), site, Family.KVM,
                      ring=endpoint.options.get("ring", ""), hosts=tuple(hosts))
    tenants = sorted({g.tenant for h in hosts for g in h.guests})
    return Fleet(tenants=tuple(Tenant(TenantName(t)) for t in tenants),
                 sites=(Site(site, endpoint.options.get("timezone", "UTC"), (cluster,)),))
