"""What a host looks like to advisories: CPE names for its components, and its distribution.

NVD names products by CPE; a host reports versions. This module turns one software record into
the concrete CPE names NVD rules are evaluated against (:class:`Target`), each tied back to the
component it stands for. Names of the distribution itself (``debian_linux:12.0``) are *context*:
they take part in "running on" logic but a finding never names them as the vulnerable part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hvpatch.domain.cpe import Cpe
from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    ProxmoxSoftware,
    Software,
    XenSoftware,
)
from hvpatch.domain.versions import EsxiBuild, EsxiRelease, WindowsBuild

_NUMERIC = re.compile(r"^\d+(?:\.\d+)*")


@dataclass(frozen=True, slots=True)
class Target:
    """A concrete CPE name standing for one component of a host (or for context)."""

    cpe: Cpe
    component: str
    installed: str
    upstream_of_package: bool = False
    context: bool = False
    legacy_windows: bool = False


def upstream(version: str) -> str:
    """The leading numeric part: ``5.14.0-427.13.1.el9_4.x86_64`` -> ``5.14.0``."""
    m = _NUMERIC.match(version)
    return m.group(0) if m else version


def _cpe(part: str, vendor: str, product: str, version: str, update: str = "*",
         target_hw: str = "*") -> Cpe:
    return Cpe(part=part, vendor=vendor, product=product, version=version or "-",
               update=update, target_hw=target_hw)


def normalise_distro(distro: str) -> str:
    """``Rocky-9.4`` -> ``rocky-9``; ``alma-9`` -> ``almalinux-9``; ``ubuntu-22.04`` stays."""
    d = distro.strip().lower().replace("_", "-").replace(" ", "-")
    name, _, ver = d.partition("-")
    name = {"alma": "almalinux", "centos-stream": "centos", "redhat": "rhel",
            "oracle": "ol", "oraclelinux": "ol", "rocky-linux": "rocky"}.get(name, name)
    if name != "ubuntu":
        ver = ver.split(".")[0]
    return f"{name}-{ver}" if ver else name


RHEL_FAMILY = ("rhel", "rocky", "almalinux", "centos", "ol")
_PVE_DEBIAN = {"6": "debian-10", "7": "debian-11", "8": "debian-12", "9": "debian-13"}


def host_distro(software: Software) -> str:
    """The distribution whose packages the host runs ('' when not a package-based host)."""
    if isinstance(software, KvmSoftware):
        return normalise_distro(software.distro)
    if isinstance(software, ProxmoxSoftware):
        return _PVE_DEBIAN.get(software.pve_manager.split(".")[0], "debian")
    if isinstance(software, XenSoftware):
        if software.product in ("xcp-ng", "xenserver", "citrix-hypervisor"):
            return ""
        return normalise_distro(software.distro) if software.distro else ""
    return ""


def _distro_context(distro: str) -> list[Target]:
    name, _, ver = distro.partition("-")
    vendor_product = {"debian": ("debian", "debian_linux"), "ubuntu": ("canonical", "ubuntu_linux"),
                      "rhel": ("redhat", "enterprise_linux"), "rocky": ("rocky", "rocky_linux"),
                      "almalinux": ("almalinux", "almalinux")}.get(name)
    if not vendor_product or not ver:
        return []
    version = ver if "." in ver else f"{ver}.0"
    return [Target(_cpe("o", *vendor_product, version), distro, version, context=True)]


WINDOWS_PRODUCTS = {
    9200: ("windows_server_2012", "-"),
    9600: ("windows_server_2012_r2", "r2"),
    14393: ("windows_server_2016", "-"),
    17763: ("windows_server_2019", "-"),
    20348: ("windows_server_2022", "-"),
    25398: ("windows_server_2022_23h2", "-"),
    26100: ("windows_server_2025", "-"),
}


def _windows(sw: HyperVSoftware) -> list[Target]:
    build = WindowsBuild.parse(sw.build)
    product = WINDOWS_PRODUCTS.get(build.build)
    if product is None:
        return []
    name, legacy = product
    full = str(build)
    # Older NVD records name the product for every build ("windows_server_2019:-", and
    # "windows_server_2012:r2" for 2012 R2): no build range to compare, so such matches are
    # judged by the cumulative-update rule or kept at low confidence.
    legacy_cpe = (_cpe("o", "microsoft", "windows_server_2012", "r2", "-", "x64")
                  if legacy == "r2" else _cpe("o", "microsoft", name, "-", "-", "x64"))
    return [
        Target(_cpe("o", "microsoft", name, full, "*", "x64"), "windows", full),
        Target(legacy_cpe, "windows", full, legacy_windows=True),
    ]


_UPDATE_NAME = re.compile(r"(?i)update (\d+)([a-z]?)\b")


def esxi_updates(release: EsxiRelease) -> list[str]:
    """Every spelling of the release's update level that NVD uses (``update_3c``, ``u3c``).

    The build table gives NVD's usual spelling; some records write ``u1``/``u1a`` (with the
    version as ``7.0.0``), older ones ``update03``. Where the table has none, it is derived from
    the release name (``ESXi 6.7 Update 3`` -> ``update_3``).
    """
    out = [release.update] if release.update else []
    m = re.fullmatch(r"update_(\d+)([a-z]?)", release.update or "")
    n = letter = ""
    if m:
        n, letter = m.group(1), m.group(2)
    elif not release.update:
        named = _UPDATE_NAME.search(release.name)
        if named:
            n, letter = named.group(1), named.group(2).lower()
            out.append(f"update_{n}{letter}")
    if n:
        out += [f"u{n}{letter}", f"update{int(n):02d}{letter}"]
    major, minor = release.version.split(".")[:2]
    if int(major) < 7:
        # 6.x records enumerate patch bulletins (670-201908101: security, 670-201908401: bug
        # fixes) of the release's month; a release row may name its rollup (670-201908001)
        month = f"{release.release_date:%Y%m}"
        stem = f"{major}{minor}0-{month}"
        out += [f"{stem}{kind}01" for kind in "0124"]
    return list(dict.fromkeys(out))


def _esxi(sw: EsxiSoftware) -> list[Target]:
    build = EsxiBuild.parse(sw.build)
    release = build.release
    if release is None:
        return []
    line = ".".join(release.version.split(".")[:2])
    updates = esxi_updates(release) or ["*"]
    out = []
    for version in dict.fromkeys((line, f"{line}.0")):
        for update in updates:
            if version != line and not update.startswith("u"):
                continue  # "7.0.0" only appears with the short "u1" spelling
            for part in ("o", "a"):  # some records name ESXi as an application
                out.append(Target(_cpe(part, "vmware", "esxi", version, update), "esxi",
                                  str(build)))
    return out


def targets(software: Software) -> list[Target]:
    """Every CPE name of a host with this software (components first, then context)."""
    out: list[Target] = []
    if isinstance(software, EsxiSoftware):
        out = _esxi(software)
    elif isinstance(software, HyperVSoftware):
        out = _windows(software)
    elif isinstance(software, KvmSoftware):
        out = [
            Target(_cpe("a", "qemu", "qemu", upstream(software.qemu)), "qemu", software.qemu, True),
            Target(_cpe("a", "redhat", "libvirt", upstream(software.libvirt)), "libvirt",
                   software.libvirt, True),
            Target(_cpe("a", "libvirt", "libvirt", upstream(software.libvirt)), "libvirt",
                   software.libvirt, True),
            Target(_cpe("o", "linux", "linux_kernel", upstream(software.kernel)), "linux_kernel",
                   software.kernel, True),
        ]
    elif isinstance(software, ProxmoxSoftware):
        qemu = upstream(software.pve_qemu_kvm)
        out = [
            Target(_cpe("a", "proxmox", "virtual_environment", upstream(software.pve_manager)),
                   "proxmox_ve", software.pve_manager),
            Target(_cpe("a", "qemu", "qemu", qemu), "qemu", software.pve_qemu_kvm, True),
            Target(_cpe("o", "linux", "linux_kernel", upstream(software.kernel)), "linux_kernel",
                   software.kernel, True),
        ]
    elif isinstance(software, XenSoftware):
        packaged = software.product != "xen" or bool(software.packages)
        out = [Target(_cpe("o", "xen", "xen", upstream(software.xen)), "xen", software.xen,
                      packaged)]
        if software.product in ("xenserver", "citrix-hypervisor") and software.product_version:
            for product in ("xenserver", "hypervisor"):
                out.append(Target(_cpe("a", "citrix", product, software.product_version),
                                  software.product, software.product_version))
        elif software.product == "xcp-ng" and software.product_version:
            out.append(Target(_cpe("o", "xcp-ng", "xcp-ng", software.product_version), "xcp-ng",
                              software.product_version))
    elif isinstance(software, AhvSoftware):
        out = [Target(_cpe("o", "nutanix", "ahv", software.ahv), "ahv", software.ahv)]
        if software.aos:
            out.append(Target(_cpe("o", "nutanix", "acropolis_operating_system", software.aos),
                              "aos", software.aos))
    elif isinstance(software, GenericSoftware):
        name = f"{software.vendor}:{software.product}"
        out = [Target(_cpe(part, software.vendor, software.product, software.version), name,
                      software.version) for part in ("o", "a")]
    distro = host_distro(software)
    return out + (_distro_context(distro) if distro else [])


# Distribution source packages and the binary packages built from them, with the upstream
# component they carry. Fix data names either; it applies to a host package only when both come
# from the same source package -- Debian's qemu fixes say nothing about Proxmox's pve-qemu-kvm.
SOURCE_PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "qemu": ("qemu", ("qemu", "qemu-system-x86", "qemu-system-common", "qemu-system-data",
                      "qemu-utils", "qemu-system-x86-64", "qemu-system-gui", "qemu-block-extra")),
    "qemu-kvm": ("qemu", ("qemu-kvm", "qemu-kvm-core", "qemu-kvm-common", "qemu-img",
                          "qemu-kvm-ev", "qemu-kvm-rhev")),
    "pve-qemu-kvm": ("qemu", ("pve-qemu-kvm",)),
    "libvirt": ("libvirt", ("libvirt", "libvirt-daemon", "libvirt-daemon-system",
                            "libvirt-libs", "libvirt-daemon-driver-qemu", "libvirt0",
                            "libvirt-clients", "libvirt-daemon-kvm")),
    "xen": ("xen", ("xen", "xen-hypervisor", "xen-utils-common", "xen-system-amd64",
                    "xen-libs", "xen-hypervisor-common", "xen-utils")),
    "linux": ("linux_kernel", ("linux-image", "linux-image-amd64")),
    "kernel": ("linux_kernel", ("kernel", "kernel-core", "kernel-modules")),
    "pve-kernel": ("linux_kernel", ("pve-kernel", "proxmox-kernel")),
}
_PREFIXED = ("xen-hypervisor-", "xen-utils-", "linux-image-", "pve-kernel-", "proxmox-kernel-",
             "libxen-")


def source_package(name: str) -> str | None:
    """The source package a binary package comes from (``qemu-system-x86`` -> ``qemu``)."""
    n = name.lower()
    for source, (_family, binaries) in SOURCE_PACKAGES.items():
        if n == source or n in binaries:
            return source
    for prefix in _PREFIXED:
        if n.startswith(prefix):
            return next(s for s, (_f, b) in SOURCE_PACKAGES.items()
                        if any(x.startswith(prefix.rstrip("-")) for x in b))
    return None


def package_family(name: str) -> str | None:
    """The upstream component a distribution package carries (``qemu-kvm`` -> ``qemu``)."""
    source = source_package(name)
    return SOURCE_PACKAGES[source][0] if source else None


def host_packages(software: Software) -> list[tuple[str, str, str, str]]:
    """(family, package, version, scheme) for every distribution package on the host."""
    out: list[tuple[str, str, str, str]] = []
    if isinstance(software, KvmSoftware | XenSoftware):
        scheme = software.package_scheme
        pkgs = software.packages
    elif isinstance(software, ProxmoxSoftware):
        scheme = "deb"
        pkgs = software.packages
        out.append(("qemu", "pve-qemu-kvm", software.pve_qemu_kvm, "deb"))
    else:
        return out
    for p in pkgs:
        family = package_family(p.name)
        if family:
            out.append((family, p.name, p.version, scheme))
    return out
