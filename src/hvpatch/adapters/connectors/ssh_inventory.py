"""KVM inventory over SSH (``kind: kvm-ssh``): what each Linux KVM host says about itself.

The same connection that remediates the hosts (:class:`~.ssh_linux.SshLinuxDriver`) reads them:
the SSH connections, host key policy, login, ``sudo`` and error translation are the driver's
(this module only adds what is read). Per host of ``options["hosts"]`` (or, without it, per
host of the connection's ``ssh://`` URLs), in one command plus the package queries:

* name: the connection's name for the host (the key in ``hosts``), so inventory and rollouts
  name it alike; the host's own ``uname -n`` is only logged when it differs;
* cores: physical cores (distinct ``physical id``/``core id`` pairs of ``/proc/cpuinfo``), else
  its processors, else ``nproc``; memory: ``MemTotal`` of ``/proc/meminfo``;
* distro: ``ID-VERSION_ID`` of ``/etc/os-release`` (normalised: ``debian-12``, ``rocky-9``);
  kernel: ``uname -r``;
* QEMU: ``qemu-system-x86_64 --version`` (or ``qemu-kvm``), else the upstream part of the
  installed QEMU package's version (``1:7.2+dfsg-7+deb12u5`` -> ``7.2``); libvirt likewise from
  ``libvirtd``/``virtqemud``/``virsh --version``, else its package; neither found: ``0`` (an
  unknown version compares as the oldest, so advisories are reported rather than missed);
* packages: the installed versions of the tracked packages (``options["packages"]``, the
  driver's list), as the driver reads them (dpkg-query or rpm);
* guests: through libvirt (:class:`~.libvirt_kvm.LibvirtInventory`, read-only) when
  ``options["libvirt_uri"]`` is set (``{host}``, ``{address}``, ``{port}`` filled in as for the
  driver), else none.

Site, cluster, ring, timezone and default tenant come from the options as for ``libvirt``
connections. Failures are the driver's :class:`~hvpatch.errors.DriverError` subclasses: an
untrusted host key or a refused login is permanent, an unreachable host temporary (the sync
retries it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hvpatch.adapters.connectors.ssh_linux import SshLinuxDriver
from hvpatch.domain.fleet import Cluster, Family, Fleet, Guest, Host, HostName, Site, Tenant
from hvpatch.domain.matching.platform import normalise_distro
from hvpatch.domain.software import KvmSoftware, Package
from hvpatch.errors import InputError, Problem
from hvpatch.ports.connector import Endpoint

__all__ = ["LIBVIRT_PACKAGES", "QEMU_PACKAGES", "SshInventory", "upstream_version"]

log = logging.getLogger(__name__)

#: packages whose version is QEMU's when no QEMU binary answers (Debian/Ubuntu, then RHEL-likes)
QEMU_PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-kvm", "qemu-kvm-core",
                 "qemu-system-x86-core")
#: packages whose version is libvirt's when no libvirt binary answers
LIBVIRT_PACKAGES = ("libvirt-daemon", "libvirt-daemon-system", "libvirt0", "libvirt-libs",
                    "libvirt-daemon-driver-qemu")
#: hosts read at the same time
PARALLEL = 8

_FACTS = r"""
echo @@name; uname -n
echo @@kernel; uname -r
echo @@os; cat /etc/os-release 2>/dev/null || true
echo @@cpu; grep -E '^(processor|physical id|core id)' /proc/cpuinfo 2>/dev/null || true
echo @@nproc; nproc 2>/dev/null || true
echo @@mem; grep '^MemTotal:' /proc/meminfo 2>/dev/null || true
echo @@qemu
for b in qemu-system-x86_64 /usr/libexec/qemu-kvm qemu-kvm; do
  if command -v "$b" >/dev/null 2>&1; then "$b" --version 2>/dev/null | head -n 1; break; fi
done
echo @@libvirt
for b in libvirtd virtqemud virsh; do
  if command -v "$b" >/dev/null 2>&1; then "$b" --version 2>/dev/null | head -n 1; break; fi
done
true
"""
_DOTTED = re.compile(r"\d+(?:\.\d+)+")
T = TypeVar("T")


def upstream_version(package_version: str) -> str:
    """The upstream part of a dpkg or rpm version: ``1:7.2+dfsg-7+deb12u5`` -> ``7.2``,
    ``17:8.2.0-11.el9_4`` -> ``8.2.0``; ``0`` when it has none."""
    text = package_version.split(":", 1)[-1]
    text = text.rsplit("-", 1)[0] if "-" in text else text
    m = re.match(r"\d+(?:\.\d+)*", text)
    return m.group(0) if m else "0"


def _sections(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            out[current] = []
        elif current:
            out[current].append(line)
    return out


def _os_release(lines: list[str]) -> str:
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    name = values.get("ID", "").lower()
    if not name:
        return "unknown"
    return normalise_distro(f"{name}-{values['VERSION_ID']}" if values.get("VERSION_ID")
                            else name)


def _cores(cpu: list[str], nproc: list[str]) -> int:
    processors, physical, pairs = 0, "", set()
    for line in cpu:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            physical = value
        elif key == "core id":
            pairs.add((physical, value))
    if pairs:
        return len(pairs)
    if processors:
        return processors
    text = "".join(nproc).strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _memory_mb(lines: list[str]) -> int:
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            return int(parts[1]) // 1024
    return 0


def _binary_version(lines: list[str]) -> str:
    found = _DOTTED.findall(" ".join(lines[:1]))
    return found[0] if found else ""


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end from synchronous code, also when this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _with_url_hosts(endpoint: Endpoint) -> Endpoint:
    """Without a ``hosts`` option, the hosts of the connection's ``ssh://`` URLs become it."""
    if endpoint.options.get("hosts", "").strip():
        return endpoint
    items = []
    for url in (u.strip() for u in endpoint.url.split(",") if u.strip()):
        split = urlsplit(url)
        if split.hostname:
            where = f"{split.hostname}:{split.port}" if split.port else split.hostname
            items.append(f"{split.hostname}={where}")
    if not items:
        raise InputError("no host to read", [Problem(
            "options.hosts", "name the hosts (hosts=kvm1=10.0.0.11,kvm2=10.0.0.12) or give "
            "ssh://HOST URLs")])
    return replace(endpoint, options={**endpoint.options, "hosts": ",".join(items)})


class SshInventory:
    """The :class:`~hvpatch.ports.connector.InventorySource` of ``kind: kvm-ssh``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = _with_url_hosts(endpoint)
        probe = SshLinuxDriver(self.endpoint)
        self.hosts = list(probe.addresses)
        self.libvirt_uri = probe.libvirt_uri

    async def _read_host(self, driver: SshLinuxDriver, name: str) -> Host:
        facts = _sections(await driver.run_command(name, _FACTS, what="read the host's facts",
                                                   timeout_s=60))
        own = "".join(facts.get("name", [])).strip()
        if own and own != name:
            log.info("kvm-ssh connection %s: host %s calls itself %s", self.endpoint.name,
                     name, own)
        packages = await driver.installed(name)
        qemu = _binary_version(facts.get("qemu", []))
        libvirt = _binary_version(facts.get("libvirt", []))
        if not qemu or not libvirt:
            # only the first installed package of each list counts, in the order listed
            found = dict(await driver.installed(name, QEMU_PACKAGES + LIBVIRT_PACKAGES))
            if not qemu:
                qemu = next((upstream_version(found[p]) for p in QEMU_PACKAGES if p in found),
                            "0")
            if not libvirt:
                libvirt = next((upstream_version(found[p]) for p in LIBVIRT_PACKAGES
                                if p in found), "0")
        software = KvmSoftware(distro=_os_release(facts.get("os", [])), qemu=qemu,
                               libvirt=libvirt,
                               kernel="".join(facts.get("kernel", [])).strip() or "0",
                               packages=tuple(Package(n, v) for n, v in packages))
        problems = software.problems()
        if problems:
            raise InputError(f"host {name}: software versions do not parse", problems)
        opts = self.endpoint.options
        host = Host(HostName(name), opts.get("site", self.endpoint.name),
                    opts.get("cluster", self.endpoint.name), software,
                    cores=_cores(facts.get("cpu", []), facts.get("nproc", [])),
                    memory_mb=_memory_mb(facts.get("mem", [])), ring=opts.get("ring", ""))
        return host

    async def _read_all(self) -> list[Host]:
        driver = SshLinuxDriver(self.endpoint)
        gate = asyncio.Semaphore(PARALLEL)

        async def one(name: str) -> Host:
            async with gate:
                return await self._read_host(driver, name)

        try:
            return list(await asyncio.gather(*(one(n) for n in self.hosts)))
        finally:
            await driver.close()

    def _guests(self, host: str, driver: SshLinuxDriver) -> tuple[Guest, ...]:
        """The host's domains, read-only through libvirt (``libvirt_uri``)."""
        from hvpatch.adapters.connectors.libvirt_kvm import LibvirtInventory

        address, port = driver.address(host)
        opts = self.endpoint.options
        source = LibvirtInventory(Endpoint(
            "libvirt", self.endpoint.name,
            self.libvirt_uri.format(host=host, address=address, port=port),
            verify_tls=self.endpoint.verify_tls,
            options={"hostname": host, **{k: opts[k] for k in ("default_tenant", "shared_paths")
                                          if k in opts}}))
        try:
            return next(iter(source.read().hosts())).guests
        finally:
            source.close()

    def read(self) -> Fleet:
        """Every host of the connection, as one site and cluster."""
        hosts = _run_sync(self._read_all())
        if self.libvirt_uri:
            driver = SshLinuxDriver(self.endpoint)
            hosts = [replace(h, guests=self._guests(h.name, driver)) for h in hosts]
        opts = self.endpoint.options
        site = opts.get("site", self.endpoint.name)
        cluster = Cluster(opts.get("cluster", self.endpoint.name), site, Family.KVM,
                          ring=opts.get("ring", ""), hosts=tuple(hosts))
        tenants = sorted({g.tenant for h in hosts for g in h.guests})
        return Fleet(tenants=tuple(Tenant(t) for t in tenants),
                     sites=(Site(site, opts.get("timezone", "UTC"), (cluster,)),))

    def close(self) -> None:
        """Nothing stays open between reads (each read closes its SSH connections)."""
