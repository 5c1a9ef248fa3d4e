"""XCP-ng / XenServer / Citrix Hypervisor inventory through the XenAPI SDK (XML-RPC).

One connection is one pool (``Endpoint.url`` is the pool master, ``https://xcp1.example``). Reads
``pool``, ``host`` (``software_version``: product brand and version, Xen; ``cpu_info``; API
version), ``host_metrics`` (memory), ``VM`` (skipping templates, snapshots and control domains)
and, for migratability, ``VBD``/``VDI``/``SR`` (a disk on an SR that is not ``shared``), the
VM's vGPUs and ``other_config:pci`` passthrough and ``VCPUs_params:mask`` pinning.

Tenant and criticality are the VM's ``other_config`` keys ``hvpatch-tenant`` and
``hvpatch-criticality`` (set with ``xe vm-param-set uuid=... other-config:hvpatch-tenant=acme``).
"""

from __future__ import annotations

import logging
import ssl
import xmlrpc.client
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hvpatch.adapters.connectors import _common
from hvpatch.domain.fleet import (
    Cluster,
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
from hvpatch.domain.software import XenSoftware
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.connector import Endpoint

__all__ = ["CRITICALITY_KEY", "TENANT_KEY", "XapiInventory", "fleet_from_records"]

log = logging.getLogger(__name__)

TENANT_KEY = "hvpatch-tenant"
CRITICALITY_KEY = "hvpatch-criticality"
NULL = "OpaqueRef:NULL"
_BRANDS = {"xcp-ng": "xcp-ng", "xenserver": "xenserver", "citrix hypervisor": "citrix-hypervisor"}
_STATES = {"Running": PowerState.RUNNING, "Halted": PowerState.STOPPED,
           "Paused": PowerState.SUSPENDED, "Suspended": PowerState.SUSPENDED}


def _need(record: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(record, Mapping) or key not in record:
        raise InputError("the XenAPI answer breaks its schema",
                         [Problem(f"{where}.{key}", "required field is missing")])
    return record[key]


def _software(rec: Mapping[str, Any], where: str) -> XenSoftware:
    sv = _need(rec, "software_version", where)
    brand = str(sv.get("product_brand", "")).lower()
    product = _BRANDS.get(brand, "xen")
    sw = XenSoftware(xen=str(_need(sv, "xen", f"{where}.software_version")), product=product,
                     product_version=str(sv.get("product_version", "")) if product != "xen"
                     else "")
    problems = sw.problems()
    if problems:
        raise InputError(f"{where}: software versions do not parse", problems)
    return sw


def _guest(rec: Mapping[str, Any], where: str, default_tenant: str,
           local_disk: str) -> Guest:
    other = rec.get("other_config") or {}
    crit = _common.criticality(str(other.get(CRITICALITY_KEY, "medium")),
                               error="a VM's hvpatch keys are not valid",
                               location=f"{where}.other_config.{CRITICALITY_KEY}")
    block: MigrationBlock | None = None
    note = ""
    if rec.get("VGPUs"):
        block, note = MigrationBlock.VGPU, f"{len(rec['VGPUs'])} vGPU(s)"
    elif other.get("pci"):
        block, note = MigrationBlock.PCI_PASSTHROUGH, f"PCI passthrough {other['pci']}"
    elif (rec.get("VCPUs_params") or {}).get("mask"):
        block = MigrationBlock.CPU_PINNING
        note = f"vCPUs pinned to {rec['VCPUs_params']['mask']}"
    elif local_disk:
        block, note = MigrationBlock.LOCAL_DISK, local_disk
    return Guest(
        GuestName(str(_need(rec, "name_label", where))),
        TenantName(str(other.get(TENANT_KEY, "")).strip() or default_tenant),
        vcpus=int(_need(rec, "VCPUs_max", where)),
        memory_mb=int(_need(rec, "memory_static_max", where)) // 2**20, criticality=crit,
        power_state=_STATES.get(str(_need(rec, "power_state", where)), PowerState.STOPPED),
        migration_block=block, migration_note=note)


def _local_disks(records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """VM ref -> a note naming a disk on a non-shared SR."""
    vdis, srs = records.get("VDI", {}), records.get("SR", {})
    out: dict[str, str] = {}
    for vbd in records.get("VBD", {}).values():
        if vbd.get("type") != "Disk" or vbd.get("VDI", NULL) == NULL:
            continue
        vdi = vdis.get(vbd["VDI"], {})
        sr = srs.get(vdi.get("SR", NULL), {})
        if sr and not sr.get("shared", False) and vbd.get("VM") not in out:
            out[vbd["VM"]] = (f"disk {vdi.get('name_label', '?')} on local SR "
                              f"{sr.get('name_label', '?')} ({sr.get('type', '?')})")
    return out


def fleet_from_records(records: Mapping[str, Mapping[str, Any]], endpoint: Endpoint) -> Fleet:
    """A pool's fleet from ``{class: get_all_records()}`` (pool, host, host_metrics, VM, ...)."""
    opts = endpoint.options
    pools = list(records.get("pool", {}).values())
    if len(pools) != 1:
        raise InputError("the XenAPI answer breaks its schema",
                         [Problem("pool", f"expected one pool record, got {len(pools)}")])
    pool = pools[0]
    master = _need(pool, "master", "pool")
    site = opts.get("site", endpoint.name)
    cluster = opts.get("cluster") or str(pool.get("name_label") or "") or endpoint.name
    default_tenant = _common.default_tenant(opts)
    metrics = records.get("host_metrics", {})
    hosts_by_ref = records.get("host", {})
    local = _local_disks(records)
    guests: dict[str, list[Guest]] = {ref: [] for ref in hosts_by_ref}
    for ref, vm in sorted(records.get("VM", {}).items()):
        where = f"VM[{vm.get('uuid', ref)}]"
        if vm.get("is_a_template") or vm.get("is_control_domain") or vm.get("is_a_snapshot") \
                or vm.get("is_snapshot_from_vmpp"):
            continue
        home = vm.get("resident_on", NULL)
        if home == NULL:
            home = vm.get("affinity", NULL)
        guests.setdefault(home if home in hosts_by_ref else master, []).append(
            _guest(vm, where, default_tenant, local.get(ref, "")))
    hosts = []
    for ref, rec in sorted(hosts_by_ref.items(), key=lambda kv: str(kv[1].get("name_label"))):
        where = f"host[{rec.get('uuid', ref)}]"
        name = str(_need(rec, "name_label", where))
        cpu = _need(rec, "cpu_info", where)
        threads = int(cpu.get("threads_per_core") or 1)
        cores = max(1, int(_need(cpu, "cpu_count", f"{where}.cpu_info")) // threads)
        mref = rec.get("metrics", NULL)
        memory = int(_need(metrics[mref], "memory_total", f"host_metrics[{mref}]")) \
            if mref in metrics else 0
        if not memory:
            raise InputError("the XenAPI answer breaks its schema",
                             [Problem(f"{where}.metrics", "no host_metrics with memory_total")])
        hosts.append(Host(HostName(name), site, cluster, _software(rec, where), cores=cores,
                          memory_mb=memory // 2**20, ring=opts.get("ring", ""),
                          coordinator=ref == master, guests=tuple(guests.get(ref, []))))
    tenants = sorted({g.tenant for h in hosts for g in h.guests})
    return Fleet(tenants=tuple(Tenant(TenantName(t)) for t in tenants), sites=(Site(
        site, opts.get("timezone", "UTC"),
        (Cluster(cluster, site, Family.XEN, ring=opts.get("ring", ""), hosts=tuple(hosts)),)),))


class XapiInventory:
    """The :class:`~hvpatch.ports.connector.InventorySource` of XAPI pools (``kind: xapi``)."""

    CLASSES = ("pool", "host", "host_metrics", "VM", "VBD", "VDI", "SR")

    def __init__(self, endpoint: Endpoint) -> None:
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise InputError("not a XAPI URL", [Problem(
                "url", f"{endpoint.url!r}: expected https://POOL-MASTER")])
        self.endpoint = endpoint
        self._session: Any = None

    def _login(self) -> Any:
        import XenAPI

        e = self.endpoint
        transport: xmlrpc.client.Transport | None = None
        if e.url.startswith("https"):
            if not e.verify_tls:
                log.warning("connection %s: TLS certificate verification is OFF", e.name)
                transport = xmlrpc.client.SafeTransport(context=ssl._create_unverified_context())
            else:
                transport = xmlrpc.client.SafeTransport(
                    context=ssl.create_default_context(cafile=e.ca_file or None))
        else:
            log.warning("connection %s: plain http: the password crosses the network in clear",
                        e.name)
        session = XenAPI.Session(e.url, transport=transport)
        session.xenapi.login_with_password(e.username, e.password, "2.20", "hvpatch")
        return session

    def read(self) -> Fleet:
        """The pool's hosts and VMs."""
        import XenAPI

        where = f"XAPI connection {self.endpoint.name!r} ({urlsplit(self.endpoint.url).netloc})"
        try:
            if self._session is None:
                self._session = self._login()
            api = self._session.xenapi
            records = {cls: getattr(api, cls).get_all_records() for cls in self.CLASSES}
        except XenAPI.Failure as exc:
            code = exc.details[0] if exc.details else "?"
            if code == "SESSION_AUTHENTICATION_FAILED":
                raise DriverError(f"{where}: login refused (check the user and password)"
                                  ) from exc
            if code == "HOST_IS_SLAVE":
                raise DriverError(f"{where}: this host is not the pool master; connect to "
                                  f"{exc.details[1] if len(exc.details) > 1 else 'the master'}"
                                  ) from exc
            raise DriverError(f"{where}: XAPI refused a call: {code}") from exc
        except ssl.SSLError as exc:
            raise DriverError(f"{where}: TLS certificate not trusted (give --ca-file, or "
                              "--insecure to skip verification)") from exc
        except (OSError, xmlrpc.client.ProtocolError, xmlrpc.client.Fault) as exc:
            raise DriverError(f"{where}: unreachable or not XAPI: {type(exc).__name__}: "
                              f"{getattr(exc, 'strerror', None) or getattr(exc, 'errmsg', '')}"
                              ) from exc
        return fleet_from_records(records, self.endpoint)

    def close(self) -> None:
        """Log the session out (idempotent; a failed logout is only logged)."""
        import XenAPI

        session, self._session = self._session, None
        if session is not None:
            try:
                session.xenapi.session.logout()
            except (OSError, xmlrpc.client.Error, XenAPI.Failure) as exc:
                log.debug("XAPI logout of %s failed: %s", self.endpoint.name,
                          type(exc).__name__)
