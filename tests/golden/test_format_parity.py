"""The same CVEs from the NVD 2.0 and the legacy 1.1 feed give the same findings.

The 110 hypervisor CVEs of 2015 are bundled twice: ``nvdcve-2.0-2015-hypervisor-subset.json.gz``
(NVD API 2.0 shape, snapshot 2026-04) and ``nvdcve-1.1-2015-hypervisor-subset.json.gz`` (legacy
1.1 shape, snapshot 2021-09). An index is built from each and the same fleet -- a generated one
plus hand-made hosts running 2015-era versions, so that the old records actually match -- is
matched against both. Findings must be identical except for the CVEs whose configurations NVD
itself changed between the two snapshots (checked by hand by the parser's author, see
``tests/contract/test_feed_nvd.py``); those are excluded, by name, with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.domain.fleet import Cluster, Family, Fleet, Host, HostName, Site
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.matching import AdvisoryIndex, Finding, match_fleet
from hvpatch.domain.software import (
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    Package,
    ProxmoxSoftware,
    Software,
    XenSoftware,
)
from hvpatch.services.bundled import bundled_feeds_dir

NVD = bundled_feeds_dir() / "nvd"
API_2015 = NVD / "nvdcve-2.0-2015-hypervisor-subset.json.gz"
LEGACY_2015 = NVD / "nvdcve-1.1-2015-hypervisor-subset.json.gz"

# NVD changed these records' configurations between the 1.1 (2021-09) and 2.0 (2026-04)
# snapshots -- data, not format (the same list as CONFIGURATIONS_CHANGED in the contract test).
CONFIGURATIONS_CHANGED = {
    "CVE-2015-0235": "PHP ranges added, an Oracle CPE removed",
    "CVE-2015-3209": "Arista EOS CPEs added",
    "CVE-2015-3214": "Red Hat OpenStack, Arista and other CPEs added",
    "CVE-2015-5165": "Red Hat, SUSE and other CPEs added",
    "CVE-2015-5239": "Arista EOS CPEs added",
    "CVE-2015-5278": "Arista EOS CPEs added",
    "CVE-2015-5745": "Arista EOS CPEs added",
    "CVE-2015-6815": "SUSE SDK CPEs moved from part o to part a; Arista added",
    "CVE-2015-6855": "Arista EOS CPE added",
}

Key = tuple[str, str, str, bool]


def _kvm(distro: str, qemu: str, libvirt: str, kernel: str) -> KvmSoftware:
    return KvmSoftware(distro, qemu, libvirt, kernel)


# Versions people ran in 2015: QEMU 2.0-2.5 (Fedora 22 shipped 2.3.0, Debian 8 2.1, Ubuntu
# 14.04 2.0, RHEL 7 1.5.3), Xen 4.4-4.6, XenServer 6.5 (Xen 4.4), ESXi 5.1-6.0, Windows Server
# 2012 (R2), Proxmox VE 3.4/4.0, VirtualBox 4.3/5.0 and VMware Workstation 11.
ERA_2015: list[Software] = [
    *(_kvm(d, q, lv, "3.19.0") for d in ("fedora-22", "debian-8", "ubuntu-14.04", "rhel-7")
      for q, lv in (("2.0.0", "1.2.2"), ("2.1.2", "1.2.9"), ("2.2.0", "1.2.12"),
                    ("2.3.0", "1.2.13"), ("2.3.1", "1.2.17"), ("2.4.0", "1.2.18"),
                    ("2.4.1", "1.2.21"), ("2.5.0", "1.3.0"))),
    _kvm("rhel-7", "1.5.3", "1.2.8", "3.10.0-229.el7"),
    *(XenSoftware(x) for x in ("4.4.0", "4.4.1", "4.4.2", "4.5.0", "4.5.1", "4.5.2", "4.6.0")),
    XenSoftware("4.4.1", distro="debian-8",
                packages=(Package("xen-hypervisor-4.4-amd64", "4.4.1-9+deb8u1"),)),
    XenSoftware("4.4.1", product="xenserver", product_version="6.5.0"),
    XenSoftware("4.1.5", product="xenserver", product_version="6.2.0"),
    *(EsxiSoftware(b) for b in ("1331820", "2403361", "2494585", "2615704", "2809209",
                                "3029758", "2323236", "1065491")),
    HyperVSoftware("6.3.9600.17031"),
    HyperVSoftware("6.2.9200.16384"),
    ProxmoxSoftware("3.4", "2.2-8", "2.6.32-37-pve"),
    ProxmoxSoftware("4.0", "2.4-9", "4.2.2-1-pve"),
    GenericSoftware("oracle", "vm_virtualbox", "4.3.28"),
    GenericSoftware("oracle", "vm_virtualbox", "5.0.0"),
    GenericSoftware("vmware", "workstation", "11.1.0"),
]


def _era_fleet() -> Fleet:
    hosts = [Host(HostName(f"era2015-h{i:03d}"), "lab1", f"lab1-{sw.family}", sw, 16, 65536)
             for i, sw in enumerate(ERA_2015)]
    families = sorted({h.software.family for h in hosts})
    clusters = tuple(Cluster(f"lab1-{f}", "lab1", Family(f),
                             hosts=tuple(h for h in hosts if h.software.family == f))
                     for f in families)
    return Fleet(sites=(Site("lab1", clusters=clusters),))


def _keys(findings: Iterable[Finding]) -> Counter[Key]:
    return Counter((f.host, f.verdict.cve_id, f.verdict.component, f.verdict.affected)
                   for f in findings)


_INDEXES: dict[str, AdvisoryIndex] = {}


@pytest.fixture(scope="module")
def indexes() -> tuple[AdvisoryIndex, AdvisoryIndex]:
    if not _INDEXES:
        _INDEXES["api"] = AdvisoryIndex.build(iter_nvd(API_2015))
        _INDEXES["legacy"] = AdvisoryIndex.build(iter_nvd(LEGACY_2015))
    return _INDEXES["api"], _INDEXES["legacy"]


def test_both_snapshots_hold_the_same_110_cves(
        indexes: tuple[AdvisoryIndex, AdvisoryIndex]) -> None:
    api, legacy = indexes
    assert api.vulns.keys() == legacy.vulns.keys() and len(api.vulns) == 110
    assert CONFIGURATIONS_CHANGED.keys() <= api.vulns.keys()
    assert not api.skipped and not legacy.skipped


@pytest.mark.parametrize("fleet_name", ["generated-300-seed-2015", "generated-300-seed-7",
                                        "hand-made-2015-era"])
def test_findings_identical_from_both_formats(
        fleet_name: str, indexes: tuple[AdvisoryIndex, AdvisoryIndex]) -> None:
    api, legacy = indexes
    if fleet_name == "hand-made-2015-era":
        fleet = _era_fleet()
    else:
        fleet = generate_fleet(300, seed=int(fleet_name.rsplit("-", 1)[1]))
    from_api, from_legacy = _keys(match_fleet(fleet, api)), _keys(match_fleet(fleet, legacy))
    differing = {k[1] for k in (from_api - from_legacy) + (from_legacy - from_api)}
    assert differing <= CONFIGURATIONS_CHANGED.keys(), sorted(differing)

    def kept(c: Counter[Key]) -> Counter[Key]:
        return Counter({k: n for k, n in c.items() if k[1] not in CONFIGURATIONS_CHANGED})

    assert kept(from_api) == kept(from_legacy)
    assert sum(kept(from_api).values()) > 0  # the comparison is not vacuous


def test_the_era_fleet_exercises_every_family(
        indexes: tuple[AdvisoryIndex, AdvisoryIndex]) -> None:
    """The hand-made hosts make the 2015 records match broadly, so parity means something."""
    api, _ = indexes
    fleet = _era_fleet()
    family = {str(h.name): h.software.family for h in fleet.hosts()}
    found = [f for f in match_fleet(fleet, api) if f.verdict.cve_id not in CONFIGURATIONS_CHANGED]
    by_family = Counter(family[f.host] for f in found)
    assert {"kvm", "xen", "esxi", "hyperv", "proxmox", "generic"} <= by_family.keys(), by_family
    assert len({f.verdict.cve_id for f in found}) >= 40
