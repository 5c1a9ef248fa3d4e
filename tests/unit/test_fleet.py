"""The fleet model: what a host, guest and fleet tell a user about themselves."""

from __future__ import annotations

import pytest

from hvpatch.domain.fleet import (
    Cluster,
    Criticality,
    DataClass,
    Exposure,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    PowerState,
    Site,
    TenantName,
)
from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    Package,
    ProxmoxSoftware,
    XenSoftware,
    software_from_dict,
    software_to_dict,
)


def guest(name: str, tenant: str = "t1", mem: int = 1024, **kw: object) -> Guest:
    return Guest(GuestName(name), TenantName(tenant), 2, mem, **kw)  # type: ignore[arg-type]


def test_host_demand_counts_running_guests_only() -> None:
    h = Host(HostName("h1"), "s", "c", EsxiSoftware("19193900"), 32, 65536, guests=(
        guest("a", mem=4096), guest("b", mem=8192, power_state=PowerState.STOPPED),
        guest("c", tenant="t2", mem=2048)))
    assert h.memory_demand_mb == 4096 + 2048
    assert h.vcpu_demand == 4
    assert h.tenants == {"t1", "t2"}
    assert h.family is Family.ESXI


def test_migration_block_makes_guest_pinned() -> None:
    assert guest("a").live_migratable
    pinned = guest("b", migration_block=MigrationBlock.VGPU, migration_note="A100")
    assert not pinned.live_migratable


def test_ordered_enums_rank_as_documented() -> None:
    assert Exposure.ISOLATED.rank < Exposure.INTERNAL.rank < Exposure.INTERNET.rank
    assert Criticality.LOW.rank < Criticality.MISSION_CRITICAL.rank
    assert DataClass.PUBLIC.rank < DataClass.RESTRICTED.rank


def test_fleet_iterates_sites_clusters_hosts_guests() -> None:
    h1 = Host(HostName("h1"), "s", "c1", EsxiSoftware("19193900"), 8, 8192, guests=(guest("a"),))
    h2 = Host(HostName("h2"), "s", "c2", HyperVSoftware("10.0.20348.2340"), 8, 8192,
              guests=(guest("b"), guest("c")))
    fleet = Fleet(sites=(Site("s", clusters=(
        Cluster("c1", "s", Family.ESXI, hosts=(h1,)),
        Cluster("c2", "s", Family.HYPERV, hosts=(h2,)))),))
    assert [h.name for h in fleet.hosts()] == ["h1", "h2"]
    assert [(h.name, g.name) for h, g in fleet.guests()] == [("h1", "a"), ("h2", "b"), ("h2", "c")]


@pytest.mark.parametrize("software, names", [
    (EsxiSoftware("19193900"), ["esxi"]),
    (HyperVSoftware("10.0.20348.2340", ("KB5035857",)), ["windows", "KB5035857"]),
    (KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0-427.13.1.el9_4.x86_64",
                 (Package("qemu-kvm", "17:8.2.0-11.el9_4.6"),)),
     ["qemu", "libvirt", "linux_kernel", "qemu-kvm"]),
    (ProxmoxSoftware("8.2.4", "8.1.5-6", "6.8.8-4-pve"),
     ["proxmox_ve", "qemu", "pve-qemu-kvm", "linux_kernel"]),
    (XenSoftware("4.13.5", "xcp-ng", "8.2.1"), ["xen", "xcp-ng"]),
    (AhvSoftware("20230302.100173", "6.8"), ["ahv", "aos"]),
    (GenericSoftware("acme_embedded", "edgevisor", "2.4.1"), ["acme_embedded:edgevisor"]),
])
def test_each_family_lists_its_components_and_round_trips(software, names) -> None:
    assert [c.name for c in software.components()] == names
    assert software.problems() == []
    assert software_from_dict(software.family, software_to_dict(software)) == software
    assert software.label


def test_package_scheme_follows_distribution() -> None:
    rpm = KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0", (Package("qemu-kvm", "17:8.2.0-11"),))
    deb = KvmSoftware("debian-12", "7.2.0", "9.0.0", "6.1.0-18-amd64",
                      (Package("qemu-system-x86", "1:7.2+dfsg-7+deb12u5"),))
    assert rpm.components()[-1].scheme == "rpm"
    assert deb.components()[-1].scheme == "deb"
    assert XenSoftware("4.13.5", "xcp-ng", "8.2.1").package_scheme == "rpm"


def test_bad_versions_are_reported_per_field() -> None:
    problems = KvmSoftware("debian-12", "eight", "9.0.0", "6.1.0",
                           (Package("qemu-system-x86", "::bad::"),)).problems()
    fields = [p.location for p in problems]
    assert "qemu" in fields and "packages[0].version" in fields
    assert [p.location for p in EsxiSoftware("not-a-build").problems()] == ["build"]
    assert [p.location for p in XenSoftware("4.17.3", "xcpng").problems()] == ["product"]
