"""Proxmox VE inventory through proxmoxer (the PVE REST API, ``/api2/json``).

Reads ``/version``, ``/cluster/status`` (the cluster's name), ``/nodes``, and per online node
``/nodes/{node}/status`` (pve-manager, kernel, CPU, memory), ``/nodes/{node}/apt/versions``
(pve-qemu-kvm and the other Proxmox packages), ``/nodes/{node}/qemu`` with each VM's
``/config`` (passthrough, pinning, local disks) and ``/nodes/{node}/lxc``.

Tenant and criticality come from PVE tags: ``tenant-<name>`` and ``crit-<level>`` (``crit-low``,
``crit-medium``, ``crit-high``, ``crit-mission-critical``), e.g. ``tenant-acme;crit-high``.

Authentication: an API token (``Endpoint.username`` = ``user@realm!tokenid``, the password is
the token's secret) or a user and password (``root@pam``). TLS is verified (against
``ca_file`` when given) unless the connection says otherwise, which is logged as a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
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
from hvpatch.domain.software import Package, ProxmoxSoftware
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.connector import Endpoint

__all__ = ["ProxmoxInventory", "fleet_from_api", "parse_tags"]

log = logging.getLogger(__name__)

#: the packages (besides pve-manager and pve-qemu-kvm) kept as the host's components
PACKAGES = re.compile(r"^(proxmox-ve|pve-kernel-.*|proxmox-kernel-.*|qemu-server|lxc-pve|"
                      r"pve-container|libpve-.*|corosync|ceph|ceph-common|zfsutils-linux|"
                      r"openssh-server|openssl|libssl3)$")
_LOCAL_STORAGE = re.compile(r"^(local|local-lvm|local-zfs)(:|$)")
_DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
_STATES = {"running": PowerState.RUNNING, "stopped": PowerState.STOPPED,
           "paused": PowerState.SUSPENDED, "suspended": PowerState.SUSPENDED}


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or data.get(key) in (None, ""):
        raise InputError("the Proxmox VE API answer breaks its schema",
                         [Problem(f"{where}.{key}", "required field is missing")])
    return data[key]


def parse_tags(tags: str, *, default_tenant: str, where: str) -> tuple[str, Criticality]:
    """Tenant and criticality from PVE tags (``tenant-acme;crit-high``)."""
    tenant, crit = default_tenant, Criticality.MEDIUM
    for tag in re.split(r"[;, ]+", tags or ""):
        if tag.startswith("tenant-") and tag[7:]:
            tenant = tag[7:]
        elif tag.startswith("crit-"):
            crit = _common.criticality(tag[5:], error=f"a guest's tags are not valid ({tag!r})",
                                       location=f"{where}.tags")
    return tenant, crit


def _block(config: Mapping[str, Any]) -> tuple[MigrationBlock | None, str]:
    pci = sorted(k for k in config if re.fullmatch(r"hostpci\d+", k))
    if pci:
        return MigrationBlock.PCI_PASSTHROUGH, f"{pci[0]}: {config[pci[0]]}"
    usb = sorted(k for k in config if re.fullmatch(r"usb\d+", k)
                 and "spice" not in str(config[k]))
    if usb:
        return MigrationBlock.OTHER, f"{usb[0]}: USB device {config[usb[0]]} passed through"
    if config.get("affinity"):
        return MigrationBlock.CPU_PINNING, f"affinity {config['affinity']}"
    for key in sorted(config):
        value = str(config[key])
        if _DISK_KEY.match(key) and "media=cdrom" not in value and _LOCAL_STORAGE.match(value):
            return MigrationBlock.LOCAL_DISK, f"{key} on local storage {value.split(',')[0]}"
    return None, ""


def _node(api: Any, name: str, opts: Mapping[str, str], site: str, cluster: str) -> Host:
    where = f"nodes/{name}"
    status = api.nodes(name).status.get()
    pveversion = str(_need(status, "pveversion", f"{where}/status"))
    manager = pveversion.split("/")[1] if pveversion.count("/") >= 1 else pveversion
    kernel = (status.get("current-kernel") or {}).get("release") or \
        str(_need(status, "kversion", f"{where}/status")).split()[1]
    cpuinfo = _need(status, "cpuinfo", f"{where}/status")
    cores = int(_need(cpuinfo, "cores", f"{where}/status.cpuinfo")) * int(
        cpuinfo.get("sockets") or 1)
    memory = int(_need(_need(status, "memory", f"{where}/status"), "total",
                       f"{where}/status.memory"))
    installed: dict[str, str] = {}
    for i, pkg in enumerate(api.nodes(name).apt.versions.get()):
        pname = str(_need(pkg, "Package", f"{where}/apt/versions[{i}]"))
        version = pkg.get("OldVersion") or pkg.get("Version")
        if version and pkg.get("CurrentState", "Installed") == "Installed":
            installed[pname] = str(version)
    if "pve-qemu-kvm" not in installed:
        raise InputError("the Proxmox VE API answer breaks its schema", [Problem(
            f"{where}/apt/versions", "no installed pve-qemu-kvm package listed")])
    software = ProxmoxSoftware(
        pve_manager=manager, pve_qemu_kvm=installed["pve-qemu-kvm"], kernel=kernel,
        packages=tuple(Package(n, v) for n, v in sorted(installed.items())
                       if PACKAGES.match(n)))
    problems = software.problems()
    if problems:
        raise InputError(f"{where}: software versions do not parse", problems)
    default_tenant = _common.default_tenant(opts)
    guests: list[Guest] = []
    for i, vm in enumerate(api.nodes(name).qemu.get()):
        vw = f"{where}/qemu[{i}]"
        vmid = _need(vm, "vmid", vw)
        if vm.get("template"):
            continue
        tenant, crit = parse_tags(vm.get("tags", ""), default_tenant=default_tenant, where=vw)
        block, note = _block(api.nodes(name).qemu(vmid).config.get())
        guests.append(Guest(
            GuestName(str(vm.get("name") or f"vm{vmid}")), TenantName(tenant),
            vcpus=int(_need(vm, "cpus", vw)), memory_mb=int(_need(vm, "maxmem", vw)) // 2**20,
            criticality=crit, power_state=_STATES.get(str(_need(vm, "status", vw)),
                                                      PowerState.STOPPED),
            migration_block=block, migration_note=note))
    for i, ct in enumerate(api.nodes(name).lxc.get()):
        cw = f"{where}/lxc[{i}]"
        vmid = _need(ct, "vmid", cw)
        if ct.get("template"):
            continue
        tenant, crit = parse_tags(ct.get("tags", ""), default_tenant=default_tenant, where=cw)
        guests.append(Guest(
            GuestName(str(ct.get("name") or f"ct{vmid}")), TenantName(tenant),
            vcpus=int(_need(ct, "cpus", cw)), memory_mb=int(_need(ct, "maxmem", cw)) // 2**20,
            criticality=crit, power_state=_STATES.get(str(_need(ct, "status", cw)),
                                                      PowerState.STOPPED),
            migration_block=MigrationBlock.OTHER,
            migration_note="LXC container: restarts to migrate (no live migration)"))
    return Host(HostName(name), site, cluster, software, cores=cores,
                memory_mb=memory // 2**20, ring=opts.get("ring", ""), guests=tuple(guests))


def fleet_from_api(api: Any, endpoint: Endpoint) -> Fleet:
    """Read a PVE cluster (or a single node) through ``api`` (a ``proxmoxer.ProxmoxAPI``)."""
    opts = endpoint.options
    _need(api.version.get(), "version", "version")
    cluster_name = ""
    for i, entry in enumerate(api.cluster.status.get()):
        if _need(entry, "type", f"cluster/status[{i}]") == "cluster":
            cluster_name = str(_need(entry, "name", f"cluster/status[{i}]"))
    nodes = sorted(api.nodes.get(), key=lambda n: str(n.get("node", "")))
    site = opts.get("site", endpoint.name)
    cluster = opts.get("cluster") or cluster_name or endpoint.name
    hosts = []
    for i, node in enumerate(nodes):
        name = str(_need(node, "node", f"nodes[{i}]"))
        if _need(node, "status", f"nodes[{i}]") != "online":
            log.warning("connection %s: node %s is %s; its guests are not read this time",
                        endpoint.name, name, node.get("status"))
            continue
        hosts.append(_node(api, name, opts, site, cluster))
    tenants = sorted({g.tenant for h in hosts for g in h.guests})
    return Fleet(tenants=tuple(Tenant(TenantName(t)) for t in tenants), sites=(Site(
        site, opts.get("timezone", "UTC"),
        (Cluster(cluster, site, Family.PROXMOX, ring=opts.get("ring", ""),
                 hosts=tuple(hosts)),)),))


class ProxmoxInventory:
    """The :class:`~hvpatch.ports.connector.InventorySource` of Proxmox VE (``kind: proxmox``)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint.url if "//" in endpoint.url else f"https://{endpoint.url}")
        if parts.scheme != "https" or not parts.hostname:
            raise InputError("not a Proxmox VE URL", [Problem(
                "url", f"{endpoint.url!r}: expected https://HOST[:8006]")])
        self.host, self.port = parts.hostname, parts.port or 8006
        self._api: Any = None

    def _connect(self) -> Any:
        from proxmoxer import ProxmoxAPI

        e = self.endpoint
        verify: bool | str = (e.ca_file or True) if e.verify_tls else False
        if not e.verify_tls:
            log.warning("connection %s: TLS certificate verification is OFF", e.name)
        kwargs: dict[str, Any] = {"port": self.port, "verify_ssl": verify,
                                  "timeout": int(e.options.get("timeout", "30"))}
        if "!" in e.username:
            user, _, token = e.username.partition("!")
            kwargs.update(user=user, token_name=token, token_value=e.password)
        else:
            kwargs.update(user=e.username, password=e.password)
        return ProxmoxAPI(self.host, backend="https", service="PVE", **kwargs)

    def read(self) -> Fleet:
        """The cluster's nodes (hosts) with their VMs and containers."""
        import requests
        from proxmoxer import AuthenticationError as PveAuthError
        from proxmoxer import ResourceException

        where = f"Proxmox VE connection {self.endpoint.name!r} ({self.host}:{self.port})"
        try:
            if self._api is None:
                self._api = self._connect()
            return fleet_from_api(self._api, self.endpoint)
        except PveAuthError as exc:
            raise DriverError(f"{where}: login refused (check the user, token and secret)"
                              ) from exc
        except ResourceException as exc:
            raise DriverError(f"{where}: the API refused a request: {exc}") from exc
        except requests.exceptions.SSLError as exc:
            raise DriverError(f"{where}: TLS certificate not trusted (give --ca-file, or "
                              "--insecure to skip verification)") from exc
        except requests.exceptions.RequestException as exc:
            raise DriverError(f"{where}: unreachable: {type(exc).__name__}") from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: the API answer breaks its schema",
                             [Problem("response", str(exc))]) from exc

    def close(self) -> None:
        """Forget the session (API tokens need no logout)."""
        self._api = None
