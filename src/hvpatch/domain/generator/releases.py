"""Real software versions per hypervisor family, oldest first, for generated hosts.

Every table is a compact module constant with a one-line source note. Versions are real public
releases (or, where a field is noted as illustrative, real upstream versions with a plausible
packaging suffix), spread over old and current levels so that matching real advisories against a
generated fleet gives realistic findings. Each product line has a share of the family and its
levels a recency skew: most hosts run something recent, a long tail runs old builds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from hvpatch.domain.fleet import Family
from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    Package,
    ProxmoxSoftware,
    Software,
    XenSoftware,
)
from hvpatch.domain.versions import esxi_releases

# --- ESXi -------------------------------------------------------------------------------------
# Builds come from hvpatch/data/esxi_builds.csv (Broadcom KB 2143832) via esxi_releases().
ESXI_LINES: tuple[tuple[str, float], ...] = (("6.7", 0.12), ("7.0", 0.38), ("8.0", 0.50))

# --- Windows Server / Hyper-V -------------------------------------------------------------------
# (UBR, cumulative update KB) per release; Microsoft "update history" pages for each release.
WINDOWS_LINES: tuple[tuple[str, float, tuple[tuple[int, str], ...]], ...] = (
    ("10.0.14393", 0.15, (  # Windows Server 2016
        (4886, "KB5009546"), (5648, "KB5022289"), (6614, "KB5034119"), (6796, "KB5035855"),
        (6981, "KB5037763"), (7159, "KB5040434"), (7336, "KB5043051"), (7515, "KB5046612"),
        (7699, "KB5049993"), (7876, "KB5053594"))),
    ("10.0.17763", 0.33, (  # Windows Server 2019
        (2452, "KB5009557"), (3887, "KB5022286"), (5329, "KB5034127"), (5576, "KB5035849"),
        (5820, "KB5037765"), (6054, "KB5040430"), (6293, "KB5043050"), (6532, "KB5046615"),
        (6775, "KB5050008"), (7009, "KB5053596"), (8276, "KB5073723"))),
    ("10.0.20348", 0.40, (  # Windows Server 2022
        (469, "KB5009555"), (1487, "KB5022291"), (2227, "KB5034129"), (2340, "KB5035857"),
        (2461, "KB5037422"), (2582, "KB5040437"), (2700, "KB5042881"), (2762, "KB5044281"),
        (2849, "KB5046616"), (3091, "KB5049983"), (3328, "KB5053603"), (4405, "KB5068787"),
        (4648, "KB5073457"), (5139, "KB5087545"))),
    ("10.0.26100", 0.12, (  # Windows Server 2025
        (2314, "KB5046617"), (2605, "KB5048667"), (2894, "KB5050009"), (3194, "KB5051987"),
        (3476, "KB5053598"), (7171, "KB5068861"))),
)

# --- KVM on Linux distributions ------------------------------------------------------------------
# (qemu upstream, qemu package, libvirt upstream, libvirt package, kernel upstream, kernel package)
_KvmLevel = tuple[str, str, str, str, str, str]
# Debian 12: qemu from the bookworm changelog (deb12uN -> 7.2.x stable); libvirt and linux
# (upstream kernel = the linux package's upstream part) from the bookworm archive.
_DEBIAN_12: tuple[_KvmLevel, ...] = (
    ("7.2.5", "1:7.2+dfsg-7+deb12u2", "9.0.0", "9.0.0-4", "6.1.38", "6.1.38-4"),
    ("7.2.9", "1:7.2+dfsg-7+deb12u4", "9.0.0", "9.0.0-4", "6.1.76", "6.1.76-1"),
    ("7.2.11", "1:7.2+dfsg-7+deb12u6", "9.0.0", "9.0.0-4+deb12u1", "6.1.90", "6.1.90-1"),
    ("7.2.13", "1:7.2+dfsg-7+deb12u7", "9.0.0", "9.0.0-4+deb12u1", "6.1.99", "6.1.99-1"),
    ("7.2.15", "1:7.2+dfsg-7+deb12u9", "9.0.0", "9.0.0-4+deb12u2", "6.1.119", "6.1.119-1"),
    ("7.2.18", "1:7.2+dfsg-7+deb12u14", "9.0.0", "9.0.0-4+deb12u2", "6.1.140", "6.1.140-1"),
    ("7.2.22", "1:7.2+dfsg-7+deb12u18", "9.0.0", "9.0.0-4+deb12u2", "6.1.140", "6.1.140-1"),
)
# Debian 11: bullseye security archive.
_DEBIAN_11: tuple[_KvmLevel, ...] = (
    ("5.2.0", "1:5.2+dfsg-11+deb11u2", "7.0.0", "7.0.0-3", "5.10.191", "5.10.191-1"),
    ("5.2.0", "1:5.2+dfsg-11+deb11u3", "7.0.0", "7.0.0-3+deb11u2", "5.10.209", "5.10.209-2"),
    ("5.2.0", "1:5.2+dfsg-11+deb11u3", "7.0.0", "7.0.0-3+deb11u2", "5.10.223", "5.10.223-1"),
)
# Ubuntu 22.04 / 24.04: Ubuntu archive (jammy-updates, noble-updates). Ubuntu kernels name no
# upstream sublevel, so the kernel is given as the host reports it (uname -r).
_UBUNTU_2204: tuple[_KvmLevel, ...] = (
    ("6.2.0", "1:6.2+dfsg-2ubuntu6.15", "8.0.0", "8.0.0-1ubuntu7.5", "5.15.0-91-generic",
     "5.15.0-91.101"),
    ("6.2.0", "1:6.2+dfsg-2ubuntu6.19", "8.0.0", "8.0.0-1ubuntu7.8", "5.15.0-105-generic",
     "5.15.0-105.115"),
    ("6.2.0", "1:6.2+dfsg-2ubuntu6.22", "8.0.0", "8.0.0-1ubuntu7.10", "5.15.0-119-generic",
     "5.15.0-119.129"),
    ("6.2.0", "1:6.2+dfsg-2ubuntu6.24", "8.0.0", "8.0.0-1ubuntu7.10", "5.15.0-131-generic",
     "5.15.0-131.141"),
)
_UBUNTU_2404: tuple[_KvmLevel, ...] = (
    ("8.2.2", "1:8.2.2+ds-0ubuntu1", "10.0.0", "10.0.0-2ubuntu8", "6.8.0-31-generic",
     "6.8.0-31.31"),
    ("8.2.2", "1:8.2.2+ds-0ubuntu1.2", "10.0.0", "10.0.0-2ubuntu8.3", "6.8.0-45-generic",
     "6.8.0-45.45"),
    ("8.2.2", "1:8.2.2+ds-0ubuntu1.4", "10.0.0", "10.0.0-2ubuntu8.4", "6.8.0-51-generic",
     "6.8.0-51.52"),
    ("8.2.2", "1:8.2.2+ds-0ubuntu1.6", "10.0.0", "10.0.0-2ubuntu8.6", "6.8.0-57-generic",
     "6.8.0-57.59"),
)
# RHEL 9 / Rocky 9: RHEL NEVRs as in the OSV AlmaLinux and CIQ Rocky CSAF records (Alma's
# ".alma.N" rebuild suffix removed); kernels are RHEL 9.x kernels, given as uname -r shows them.
_EL9: tuple[_KvmLevel, ...] = (
    ("7.0.0", "17:7.0.0-13.el9", "8.5.0", "8.5.0-7.el9_1", "5.14.0-162.6.1.el9_1",
     "5.14.0-162.6.1.el9_1"),
    ("7.2.0", "17:7.2.0-14.el9_2", "9.0.0", "9.0.0-10.2.el9_2", "5.14.0-284.11.1.el9_2",
     "5.14.0-284.11.1.el9_2"),
    ("8.0.0", "17:8.0.0-16.el9_3", "9.5.0", "9.5.0-7.el9_3", "5.14.0-362.8.1.el9_3",
     "5.14.0-362.8.1.el9_3"),
    ("8.2.0", "17:8.2.0-11.el9_4", "10.0.0", "10.0.0-6.el9_4", "5.14.0-427.13.1.el9_4",
     "5.14.0-427.13.1.el9_4"),
    ("8.2.0", "17:8.2.0-11.el9_4.4", "10.0.0", "10.0.0-6.6.el9_4", "5.14.0-427.24.1.el9_4",
     "5.14.0-427.24.1.el9_4"),
    ("9.0.0", "17:9.0.0-10.el9_5", "10.5.0", "10.5.0-7.el9_5", "5.14.0-503.11.1.el9_5",
     "5.14.0-503.11.1.el9_5"),
    ("10.1.0", "17:10.1.0-17.el9_8", "11.10.0", "11.10.0-12.el9_8", "5.14.0-611.5.1.el9_7",
     "5.14.0-611.5.1.el9_7"),
)
# AlmaLinux 8 / 9: the exact OSV AlmaLinux advisory versions (ALSA-2021..2026); RHEL 8 and
# Rocky 8 module builds carry other hashes that our data does not show, so EL8 is Alma here.
_ALMA8: tuple[_KvmLevel, ...] = (
    ("4.2.0", "15:4.2.0-59.module_el8.5.0+2608+72063365.1", "6.0.0",
     "6.0.0-37.module_el8.5.0+2608+72063365", "4.18.0-348.el8", "4.18.0-348.el8"),
    ("6.2.0", "15:6.2.0-11.module_el8.6.0+2880+7d9e3703", "8.0.0",
     "8.0.0-5.module_el8.6.0+2880+7d9e3703", "4.18.0-372.9.1.el8", "4.18.0-372.9.1.el8"),
    ("6.2.0", "15:6.2.0-32.module_el8.8.0+3553+bd08596b", "8.0.0",
     "8.0.0-19.module_el8.8.0+3553+bd08596b", "4.18.0-477.10.1.el8_8", "4.18.0-477.10.1.el8_8"),
    ("6.2.0", "15:6.2.0-40.module_el8.9.0+3681+41cbbcc0.1.alma.1", "8.0.0",
     "8.0.0-22.module_el8.9.0+3662+ef5fc290", "4.18.0-513.5.1.el8_9", "4.18.0-513.5.1.el8_9"),
    ("6.2.0", "15:6.2.0-50.module_el8.10.0+3869+b8959270", "8.0.0",
     "8.0.0-23.2.module_el8.10.0+3869+b8959270", "4.18.0-553.el8_10", "4.18.0-553.el8_10"),
    ("6.2.0", "15:6.2.0-53.module_el8.10.0+4031+06966654.4", "8.0.0",
     "8.0.0-23.4.module_el8.10.0+4031+06966654", "4.18.0-553.8.1.el8_10",
     "4.18.0-553.8.1.el8_10"),
)
_ALMA9: tuple[_KvmLevel, ...] = (
    ("7.2.0", "17:7.2.0-14.el9_2.5.alma.1", "9.0.0", "9.0.0-10.2.el9_2", "5.14.0-284.11.1.el9_2",
     "5.14.0-284.11.1.el9_2"),
    ("8.0.0", "17:8.0.0-16.el9_3.alma.1", "9.5.0", "9.5.0-7.el9_3.alma.1",
     "5.14.0-362.8.1.el9_3", "5.14.0-362.8.1.el9_3"),
    ("8.2.0", "17:8.2.0-11.el9_4.4", "10.0.0", "10.0.0-6.6.el9_4.alma.1", "5.14.0-427.13.1.el9_4",
     "5.14.0-427.13.1.el9_4"),
    ("9.0.0", "17:9.0.0-10.el9_5", "10.5.0", "10.5.0-7.el9_5.alma.1", "5.14.0-503.11.1.el9_5",
     "5.14.0-503.11.1.el9_5"),
    ("10.1.0", "17:10.1.0-17.el9_8.4.alma.1", "11.10.0", "11.10.0-12.el9_8.alma.1",
     "5.14.0-611.5.1.el9_7", "5.14.0-611.5.1.el9_7"),
)
KVM_DISTROS: tuple[tuple[str, float, tuple[_KvmLevel, ...]], ...] = (
    ("debian-11", 0.07, _DEBIAN_11), ("debian-12", 0.18, _DEBIAN_12),
    ("ubuntu-22.04", 0.17, _UBUNTU_2204), ("ubuntu-24.04", 0.14, _UBUNTU_2404),
    ("rhel-9", 0.18, _EL9), ("rocky-9", 0.08, _EL9), ("alma-8", 0.08, _ALMA8),
    ("alma-9", 0.10, _ALMA9),
)

# --- Proxmox VE --------------------------------------------------------------------------------
# (pve-manager, pve-qemu-kvm, kernel as uname -r shows it); Proxmox VE release notes and the
# pve-no-subscription repository. The kernel package is pve-kernel-5.15 / proxmox-kernel-X.Y.
PROXMOX_LINES: tuple[tuple[str, float, tuple[tuple[str, str, str], ...]], ...] = (
    ("7.4", 0.25, (
        ("7.4-3", "7.2.0-8", "5.15.102-1-pve"),
        ("7.4-17", "7.2.0-8", "5.15.143-1-pve"),
        ("7.4-17", "7.2.0-8", "5.15.158-2-pve"))),
    ("8", 0.75, (
        ("8.0.4", "8.0.2-3", "6.2.16-10-pve"),
        ("8.1.4", "8.1.5-3", "6.5.13-1-pve"),
        ("8.2.4", "8.1.5-6", "6.8.8-2-pve"),
        ("8.2.7", "9.0.2-3", "6.8.12-2-pve"),
        ("8.3.5", "9.0.2-4", "6.8.12-8-pve"),
        ("8.4.1", "9.2.0-5", "6.8.12-11-pve"))),
)

# --- Xen family ----------------------------------------------------------------------------------
# (product, product_version, xen, distro, xen package version). Xen versions are real tags from
# xen-git-tags.csv; Debian packages from the xen changelog; the XCP-ng / XenServer rpm release
# suffixes are illustrative.
XEN_LEVELS: tuple[tuple[str, float, tuple[tuple[str, str, str, str, str], ...]], ...] = (
    ("xcp-ng-8.2", 0.25, (
        ("xcp-ng", "8.2.1", "4.13.4", "", "4.13.4-9.21.1.xcpng8.2"),
        ("xcp-ng", "8.2.1", "4.13.5", "", "4.13.5-9.36.1.xcpng8.2"),
        ("xcp-ng", "8.2.1", "4.13.5", "", "4.13.5-9.44.1.xcpng8.2"))),
    ("xcp-ng-8.3", 0.33, (
        ("xcp-ng", "8.3.0", "4.17.4", "", "4.17.4-3.xcpng8.3"),
        ("xcp-ng", "8.3.0", "4.17.5", "", "4.17.5-13.xcpng8.3"),
        ("xcp-ng", "8.3.0", "4.17.5", "", "4.17.5-20.xcpng8.3"))),
    ("xenserver-8", 0.15, (
        ("xenserver", "8.4.0", "4.17.3", "", "4.17.3-5.xs8"),
        ("xenserver", "8.4.0", "4.17.5", "", "4.17.5-3.xs8"))),
    ("citrix-hypervisor-8.2", 0.07, (
        ("citrix-hypervisor", "8.2.1", "4.13.4", "", "4.13.4-10.42.xs8.2"),)),
    ("debian-12", 0.13, (
        ("xen", "", "4.17.3", "debian-12", "4.17.3+10-g091466ba55-1~deb12u1"),
        ("xen", "", "4.17.5", "debian-12", "4.17.5+23-ga4e5191dc0-1+deb12u1"),
        ("xen", "", "4.17.7", "debian-12", "4.17.7-0+deb12u1"))),
    ("source", 0.07, (
        ("xen", "", "4.14.6", "", ""), ("xen", "", "4.15.5", "", ""),
        ("xen", "", "4.16.6", "", ""), ("xen", "", "4.18.3", "", ""),
        ("xen", "", "4.19.1", "", ""), ("xen", "", "4.19.3", "", ""))),
)

# --- Nutanix AHV ---------------------------------------------------------------------------------
# (AHV, AOS); AHV 20220304.x ships with AOS 6.5 LTS, 20230302.x with AOS 6.7+ (Nutanix release
# notes; 20230302.207 with AOS 6.7 per the Nutanix blog). AOS cycles from endoflife.date.
AHV_LINES: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    ("6.5", 0.35, (("20220304.242", "6.5.1"), ("20220304.336", "6.5.2"),
                   ("20220304.420", "6.5.3.6"), ("20220304.478", "6.5.5.7"))),
    ("6.7+", 0.65, (("20230302.207", "6.7.1"), ("20230302.100173", "6.8"),
                    ("20230302.101026", "6.8.1"), ("20230302.102001", "6.8.1.9"))),
)

# --- generic edge --------------------------------------------------------------------------------
# (vendor, product, versions). ACRN is a real edge hypervisor (Linux Foundation; tags v2.7-v3.3,
# CPE vendor "linuxfoundation"). The Siemens entry is illustrative, not a product version list.
GENERIC_LINES: tuple[tuple[str, float, tuple[tuple[str, str, str], ...]], ...] = (
    ("acrn", 0.7, (("linuxfoundation", "acrn", "2.7"), ("linuxfoundation", "acrn", "3.0"),
                   ("linuxfoundation", "acrn", "3.1"), ("linuxfoundation", "acrn", "3.2"),
                   ("linuxfoundation", "acrn", "3.3"))),
    ("siemens", 0.3, (("siemens", "industrial_edge_hypervisor", "1.2.0"),
                      ("siemens", "industrial_edge_hypervisor", "1.4.1"),
                      ("siemens", "industrial_edge_hypervisor", "2.0.0"))),
)

RECENCY_DECAY = 0.78  # weight of a level relative to the next newer one in its line


@dataclass(frozen=True, slots=True)
class ReleaseLine:
    """One product line of a family: its patch levels (oldest first) and their pick weights."""

    name: str
    share: float
    levels: tuple[Software, ...]
    cum: tuple[float, ...]

    @classmethod
    def of(cls, name: str, share: float, levels: tuple[Software, ...]) -> ReleaseLine:
        """Weights fall geometrically from the newest level back to the oldest."""
        n = len(levels)
        weights = [RECENCY_DECAY ** (n - 1 - i) for i in range(n)]
        return cls(name, share, levels, tuple(accumulate(weights)))

    def pick_level(self, rng: random.Random) -> int:
        """Index of a level, skewed toward recent ones."""
        return rng.choices(range(len(self.levels)), cum_weights=self.cum)[0]


def _kvm(distro: str, level: _KvmLevel) -> KvmSoftware:
    qemu, qemu_pkg, libvirt, libvirt_pkg, kernel, kernel_pkg = level
    if distro.startswith(("debian", "ubuntu")):
        kernel_name = ("linux-image-amd64" if distro.startswith("debian")
                       else f"linux-image-{kernel}")
        names = ("qemu-system-x86", "libvirt-daemon", kernel_name)
    else:
        names = ("qemu-kvm", "libvirt-daemon", "kernel")
    packages = tuple(Package(n, v) for n, v in zip(names, (qemu_pkg, libvirt_pkg, kernel_pkg),
                                                    strict=True))
    return KvmSoftware(distro, qemu, libvirt, kernel, packages)


def _proxmox(level: tuple[str, str, str]) -> ProxmoxSoftware:
    manager, qemu, kernel = level
    kernel_pkg = kernel.removesuffix("-pve")
    prefix = "pve-kernel" if kernel.startswith("5.") else "proxmox-kernel"
    packages = (Package("pve-qemu-kvm", qemu), Package(f"{prefix}-{kernel}", kernel_pkg))
    return ProxmoxSoftware(manager, qemu, kernel, packages)


def _xen(level: tuple[str, str, str, str, str]) -> XenSoftware:
    product, product_version, xen, distro, package = level
    if not package:
        return XenSoftware(xen, product, product_version, distro)
    name = "xen-hypervisor-4.17-amd64" if distro.startswith("debian") else "xen-hypervisor"
    return XenSoftware(xen, product, product_version, distro, (Package(name, package),))


@cache
def catalog() -> dict[Family, tuple[ReleaseLine, ...]]:
    """Every family's release lines, built once (ESXi builds are read from the bundled table)."""
    esxi = []
    for line, share in ESXI_LINES:
        releases = sorted((r for r in esxi_releases(line) if not r.withdrawn),
                          key=lambda r: (r.release_date, r.build))
        esxi.append(ReleaseLine.of(line, share, tuple(EsxiSoftware(str(r.build))
                                                       for r in releases)))
    return {
        Family.ESXI: tuple(esxi),
        Family.HYPERV: tuple(
            ReleaseLine.of(base, share, tuple(HyperVSoftware(f"{base}.{ubr}", (kb,))
                                              for ubr, kb in levels))
            for base, share, levels in WINDOWS_LINES),
        Family.KVM: tuple(
            ReleaseLine.of(distro, share, tuple(_kvm(distro, lv) for lv in levels))
            for distro, share, levels in KVM_DISTROS),
        Family.PROXMOX: tuple(
            ReleaseLine.of(name, share, tuple(_proxmox(lv) for lv in levels))
            for name, share, levels in PROXMOX_LINES),
        Family.XEN: tuple(
            ReleaseLine.of(name, share, tuple(_xen(lv) for lv in levels))
            for name, share, levels in XEN_LEVELS),
        Family.AHV: tuple(
            ReleaseLine.of(name, share, tuple(AhvSoftware(a, o) for a, o in levels))
            for name, share, levels in AHV_LINES),
        Family.GENERIC: tuple(
            ReleaseLine.of(name, share, tuple(GenericSoftware(*lv) for lv in levels))
            for name, share, levels in GENERIC_LINES),
    }


def withdrawn_esxi_builds() -> tuple[EsxiSoftware, ...]:
    """ESXi 7.0 Update 3 builds VMware withdrew in 2021; real fleets still have a few."""
    return tuple(EsxiSoftware(str(r.build)) for r in esxi_releases("7.0") if r.withdrawn)
