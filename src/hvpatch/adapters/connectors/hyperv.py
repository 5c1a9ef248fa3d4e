"""Hyper-V inventory over WinRM (pywinrm) with PowerShell answering in JSON.

One connection names one or more Hyper-V hosts (``Endpoint.url``: comma-separated WinRM URLs,
``https://hv1.example:5986/wsman``); each node of a failover cluster is queried directly (no
second hop), and a node of the cluster that the connection does not name is logged.

Two scripts run per host, each ending in ``ConvertTo-Json -Depth 4``: :data:`HOST_SCRIPT`
(``Get-VMHost``, ``Get-CimInstance Win32_OperatingSystem``, the UBR from the registry,
``Get-HotFix``, ``Get-Cluster``/``Get-ClusterNode`` when clustered) and :data:`VMS_SCRIPT`
(``Get-VM`` with assigned PCI devices). Tenant and criticality are lines ``hvpatch:tenant=NAME``
and ``hvpatch:criticality=LEVEL`` in the VM's Notes.

The PowerShell runner is a seam (:data:`Runner`): the default runs the scripts through
``winrm.Session`` (HTTPS with certificate validation unless the connection says otherwise;
NTLM by default, ``options["transport"]`` = ``kerberos``, ``credssp`` or ``ntlm``; ``basic``
for servers with Basic authentication enabled (local accounts only) and for the tests' WinRM
replay, accepted over HTTPS only).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
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
from hvpatch.domain.software import HyperVSoftware
from hvpatch.errors import DriverError, InputError, Problem
from hvpatch.ports.connector import Endpoint

__all__ = ["HOST_SCRIPT", "TRANSPORTS", "VMS_SCRIPT", "HyperVInventory", "Runner", "WinRmRunner",
           "parse_notes"]

log = logging.getLogger(__name__)

#: (WinRM URL, PowerShell script) -> the script's standard output
Runner = Callable[[str, str], str]

HOST_SCRIPT = r"""$ErrorActionPreference = 'Stop'
$cv = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$cluster = $null
if (Get-Command Get-Cluster -ErrorAction SilentlyContinue) {
  $c = Get-Cluster -ErrorAction SilentlyContinue
  if ($c) {
    $cluster = [pscustomobject]@{ Name = $c.Name; Nodes = @(Get-ClusterNode |
      Select-Object Name, @{n='State';e={[string]$_.State}}) }
  }
}
[pscustomobject]@{
  VMHost = Get-VMHost | Select-Object ComputerName, LogicalProcessorCount, MemoryCapacity
  OperatingSystem = Get-CimInstance Win32_OperatingSystem |
    Select-Object CSName, Caption, Version, BuildNumber
  UBR = $cv.UBR
  Cores = (Get-CimInstance Win32_Processor | Measure-Object NumberOfCores -Sum).Sum
  HotFix = @(Get-HotFix | Select-Object HotFixID, Description,
    @{n='InstalledOn';e={ if ($_.InstalledOn) { $_.InstalledOn.ToString('yyyy-MM-dd') } }})
  Cluster = $cluster
} | ConvertTo-Json -Depth 4"""

VMS_SCRIPT = r"""$ErrorActionPreference = 'Stop'
@(Get-VM | ForEach-Object {
  [pscustomobject]@{
    Name = $_.Name; Id = [string]$_.Id; State = [string]$_.State
    ProcessorCount = $_.ProcessorCount; MemoryStartup = $_.MemoryStartup
    MemoryMaximum = $_.MemoryMaximum; DynamicMemoryEnabled = $_.DynamicMemoryEnabled
    IsClustered = $_.IsClustered; Notes = $_.Notes
    AssignedDevices = @(Get-VMAssignableDevice -VMName $_.Name -ErrorAction SilentlyContinue |
      Select-Object InstanceID, LocationPath)
    PassthroughDisks = @(Get-VMHardDiskDrive -VM $_ | Where-Object { $_.DiskNumber -ne $null } |
      Select-Object ControllerType, DiskNumber)
  }
}) | ConvertTo-Json -Depth 4"""

#: ``options["transport"]`` values (pywinrm's auth methods that hvpatch accepts)
TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic")

_STATES = {"Running": PowerState.RUNNING, "Off": PowerState.STOPPED,
           "Saved": PowerState.SUSPENDED, "Paused": PowerState.SUSPENDED}
_NOTE = re.compile(r"^\s*hvpatch:(tenant|criticality)\s*=\s*(\S+)\s*$", re.M | re.I)


def _schema(where: str, message: str = "required field is missing") -> InputError:
    return InputError("the Hyper-V PowerShell output breaks its schema",
                      [Problem(where, message)])


def _need(data: Any, key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or data.get(key) in (None, ""):
        raise _schema(f"{where}.{key}")
    return data[key]


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise _schema(where, f"not JSON: {exc}") from exc


def _list(value: Any) -> list[Any]:
    """ConvertTo-Json writes a one-element array as the element itself."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_notes(notes: str, *, default_tenant: str, where: str) -> tuple[str, Criticality]:
    """Tenant and criticality from ``hvpatch:tenant=`` / ``hvpatch:criticality=`` lines."""
    tenant, crit = default_tenant, Criticality.MEDIUM
    for key, value in _NOTE.findall(notes or ""):
        if key.lower() == "tenant":
            tenant = value
        else:
            crit = _common.criticality(value, error="a VM's hvpatch notes are not valid",
                                       location=f"{where}.Notes")
    return tenant, crit


def _host(data: Any, vms: Any, url: str, opts: Mapping[str, str], site: str,
          cluster_default: str) -> tuple[Host, list[str]]:
    where = f"{urlsplit(url).hostname or url}"
    vmhost = _need(data, "VMHost", where)
    osinfo = _need(data, "OperatingSystem", where)
    version = str(_need(osinfo, "Version", f"{where}.OperatingSystem"))
    ubr = _need(data, "UBR", where)
    kbs = sorted({str(_need(h, "HotFixID", f"{where}.HotFix[{i}]")).upper()
                  for i, h in enumerate(_list(data.get("HotFix")))})
    software = HyperVSoftware(build=f"{version}.{int(ubr)}", kbs=tuple(kbs))
    problems = software.problems()
    if problems:
        raise InputError(f"{where}: software versions do not parse", problems)
    name = str(_need(vmhost, "ComputerName", f"{where}.VMHost"))
    cluster_info = data.get("Cluster") or {}
    cluster = opts.get("cluster") or str(cluster_info.get("Name") or "") or cluster_default
    peers = [str(n.get("Name")) for n in _list(cluster_info.get("Nodes"))]
    clustered = bool(cluster_info)
    guests = []
    default_tenant = _common.default_tenant(opts)
    for i, vm in enumerate(_list(vms)):
        vw = f"{name}.VM[{i}]"
        vm_name = str(_need(vm, "Name", vw))
        tenant, crit = parse_notes(str(vm.get("Notes") or ""), default_tenant=default_tenant,
                                   where=f"{name}/{vm_name}")
        memory = int(vm.get("MemoryMaximum") if vm.get("DynamicMemoryEnabled")
                     else _need(vm, "MemoryStartup", vw))
        block: MigrationBlock | None = None
        note = ""
        devices, disks = _list(vm.get("AssignedDevices")), _list(vm.get("PassthroughDisks"))
        if devices:
            block = MigrationBlock.PCI_PASSTHROUGH
            note = f"DDA device {devices[0].get('LocationPath') or devices[0].get('InstanceID')}"
        elif disks:
            block = MigrationBlock.LOCAL_DISK
            note = f"pass-through physical disk {disks[0].get('DiskNumber')}"
        elif clustered and not vm.get("IsClustered"):
            block = MigrationBlock.LOCAL_DISK
            note = "not a clustered role: its storage is local to the node"
        guests.append(Guest(
            GuestName(vm_name), TenantName(tenant),
            vcpus=int(_need(vm, "ProcessorCount", vw)), memory_mb=memory // 2**20,
            criticality=crit, power_state=_STATES.get(str(_need(vm, "State", vw)),
                                                      PowerState.STOPPED),
            migration_block=block, migration_note=note))
    cores = int(data.get("Cores") or _need(vmhost, "LogicalProcessorCount", f"{where}.VMHost"))
    host = Host(HostName(name), site, cluster, software, cores=cores,
                memory_mb=int(_need(vmhost, "MemoryCapacity", f"{where}.VMHost")) // 2**20,
                ring=opts.get("ring", ""), guests=tuple(guests))
    return host, peers


class WinRmRunner:
    """Runs PowerShell through ``winrm.Session`` (one session per URL, reused)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._sessions: dict[str, Any] = {}

    def __call__(self, url: str, script: str) -> str:
        import winrm

        e = self.endpoint
        session = self._sessions.get(url)
        if session is None:
            kwargs: dict[str, Any] = {
                "auth": (e.username, e.password),
                "transport": e.options.get("transport", "ntlm"),
                "server_cert_validation": "validate" if e.verify_tls else "ignore",
                "operation_timeout_sec": int(e.options.get("timeout", "60")),
                "read_timeout_sec": int(e.options.get("timeout", "60")) + 10,
            }
            if e.ca_file:
                kwargs["ca_trust_path"] = e.ca_file
            session = self._sessions[url] = winrm.Session(url, **kwargs)
        result = session.run_ps(script)
        if result.status_code != 0:
            err = result.std_err.decode("utf-8", "replace").strip().splitlines()
            raise DriverError(f"PowerShell on {urlsplit(url).hostname} failed (exit "
                              f"{result.status_code}): {err[0][:300] if err else 'no message'}")
        return str(result.std_out.decode("utf-8", "replace"))


class HyperVInventory:
    """The :class:`~hvpatch.ports.connector.InventorySource` of Hyper-V (``kind: hyperv``)."""

    def __init__(self, endpoint: Endpoint, runner: Runner | None = None) -> None:
        self.endpoint = endpoint
        self.urls = [u.strip() for u in endpoint.url.split(",") if u.strip()]
        bad = [u for u in self.urls if urlsplit(u).scheme not in ("https", "http")
               or not urlsplit(u).hostname]
        if not self.urls or bad:
            raise InputError("not a WinRM URL", [Problem(
                "url", f"{(bad or [endpoint.url])[0]!r}: expected https://HOST:5986/wsman")])
        transport = endpoint.options.get("transport", "ntlm")
        if transport not in TRANSPORTS:
            raise InputError("not a WinRM transport", [Problem(
                "options.transport", f"{transport!r}: expected one of {', '.join(TRANSPORTS)}")])
        if transport == "basic" and any(urlsplit(u).scheme != "https" for u in self.urls):
            raise InputError("Basic authentication over plain HTTP would send the password in "
                             "clear", [Problem("url", "use https:// with transport=basic")])
        if not endpoint.verify_tls:
            log.warning("connection %s: TLS certificate verification is OFF", endpoint.name)
        self.runner: Runner = runner or WinRmRunner(endpoint)

    def _run(self, url: str, script: str, what: str) -> Any:
        import requests
        from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError

        host = urlsplit(url).hostname
        try:
            return _json(self.runner(url, script), f"{host}.{what}")
        except InvalidCredentialsError as exc:
            raise DriverError(f"Hyper-V connection {self.endpoint.name!r}: login to {host} "
                              "refused (check the user and password)") from exc
        except requests.exceptions.SSLError as exc:
            raise DriverError(f"Hyper-V connection {self.endpoint.name!r}: TLS certificate of "
                              f"{host} not trusted (give --ca-file, or --insecure)") from exc
        except (WinRMError, WinRMTransportError, requests.exceptions.RequestException) as exc:
            raise DriverError(f"Hyper-V connection {self.endpoint.name!r}: {host} unreachable "
                              f"or refused: {type(exc).__name__}") from exc

    def read(self) -> Fleet:
        """Every named host with its VMs."""
        opts = self.endpoint.options
        site = opts.get("site", self.endpoint.name)
        hosts: list[Host] = []
        peers: set[str] = set()
        for url in self.urls:
            data = self._run(url, HOST_SCRIPT, "host")
            vms = self._run(url, VMS_SCRIPT, "vms")
            host, nodes = _host(data, vms, url, opts, site, self.endpoint.name)
            hosts.append(host)
            peers.update(nodes)
        missing = sorted({p.lower() for p in peers} - {h.name.lower() for h in hosts})
        if missing:
            log.warning("connection %s: cluster node(s) %s are not in the connection's URLs; "
                        "their VMs are not read", self.endpoint.name, ", ".join(missing))
        clusters: dict[str, list[Host]] = {}
        for h in hosts:
            clusters.setdefault(h.cluster, []).append(h)
        tenants = sorted({g.tenant for h in hosts for g in h.guests})
        return Fleet(tenants=tuple(Tenant(TenantName(t)) for t in tenants), sites=(Site(
            site, opts.get("timezone", "UTC"), tuple(
                Cluster(name, site, Family.HYPERV, ring=opts.get("ring", ""), hosts=tuple(hs))
                for name, hs in sorted(clusters.items()))),))

    def close(self) -> None:
        """WinRM shells are closed after each script; nothing stays open."""
