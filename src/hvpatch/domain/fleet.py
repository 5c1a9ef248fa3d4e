"""The fleet: sites, clusters, hosts, guests, tenants and rings, as frozen values.

A fleet is what hvpatch *knows*. Every later stage (matching, risk, planning, rollout) reads these
values; none of them changes one in place. Names are the natural keys: a site, a tenant, a ring and
a host are unique by name across the fleet, a cluster by (site, name), a guest by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from hvpatch.domain.software import Software

HostName = NewType("HostName", str)
GuestName = NewType("GuestName", str)
TenantName = NewType("TenantName", str)


class Family(StrEnum):
    """Hypervisor product family; decides which software fields a host carries."""

    ESXI = "esxi"
    HYPERV = "hyperv"
    KVM = "kvm"
    PROXMOX = "proxmox"
    XEN = "xen"
    AHV = "ahv"
    GENERIC = "generic"


class Exposure(StrEnum):
    """How reachable the host's management plane (vCenter/XAPI/WinRM/SSH/SLP/CIM) is."""

    ISOLATED = "isolated"
    INTERNAL = "internal"
    INTERNET = "internet"

    @property
    def rank(self) -> int:
        """0 for isolated up to 2 for internet-reachable."""
        return _EXPOSURE_ORDER.index(self)


_EXPOSURE_ORDER = (Exposure.ISOLATED, Exposure.INTERNAL, Exposure.INTERNET)


class Criticality(StrEnum):
    """How much the business depends on a guest."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    MISSION_CRITICAL = "mission-critical"

    @property
    def rank(self) -> int:
        """0 (low) to 3 (mission-critical)."""
        return _CRITICALITY_ORDER.index(self)


_CRITICALITY_ORDER = (
    Criticality.LOW,
    Criticality.MEDIUM,
    Criticality.HIGH,
    Criticality.MISSION_CRITICAL,
)


class DataClass(StrEnum):
    """Classification of the data a guest holds."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        """0 (public) to 3 (restricted)."""
        return _DATA_CLASS_ORDER.index(self)


_DATA_CLASS_ORDER = (
    DataClass.PUBLIC,
    DataClass.INTERNAL,
    DataClass.CONFIDENTIAL,
    DataClass.RESTRICTED,
)


class PowerState(StrEnum):
    """Power state of a guest."""

    RUNNING = "running"
    STOPPED = "stopped"
    SUSPENDED = "suspended"


class MigrationBlock(StrEnum):
    """Why a guest cannot be live-migrated off its host."""

    LOCAL_DISK = "local-disk"
    PCI_PASSTHROUGH = "pci-passthrough"
    VGPU = "vgpu"
    CPU_PINNING = "cpu-pinning"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Ring:
    """An environment in the promotion order (test -> dev -> staging -> prod)."""

    name: str
    position: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class Tenant:
    """An owner of guests; several tenants may share one host."""

    name: TenantName
    description: str = ""


@dataclass(frozen=True, slots=True)
class Guest:
    """A virtual machine with its demand and placement constraints."""

    name: GuestName
    tenant: TenantName
    vcpus: int
    memory_mb: int
    criticality: Criticality = Criticality.MEDIUM
    data_classification: DataClass = DataClass.INTERNAL
    power_state: PowerState = PowerState.RUNNING
    anti_affinity: tuple[str, ...] = ()
    migration_block: MigrationBlock | None = None
    migration_note: str = ""

    @property
    def live_migratable(self) -> bool:
        """True when nothing pins the guest to its host."""
        return self.migration_block is None

    @property
    def running(self) -> bool:
        """True when the guest is powered on."""
        return self.power_state is PowerState.RUNNING


@dataclass(frozen=True, slots=True)
class Host:
    """A hypervisor host: its exact software, capacity, exposure and guests."""

    name: HostName
    site: str
    cluster: str
    software: Software
    cores: int
    memory_mb: int
    exposure: Exposure = Exposure.INTERNAL
    ring: str = ""
    cpu_group: str = ""
    coordinator: bool = False
    guests: tuple[Guest, ...] = ()

    @property
    def family(self) -> Family:
        """The hypervisor product family, taken from the software."""
        return Family(self.software.family)

    @property
    def tenants(self) -> frozenset[TenantName]:
        """Distinct tenants with a guest on this host."""
        return frozenset(g.tenant for g in self.guests)

    @property
    def memory_demand_mb(self) -> int:
        """Memory of the running guests."""
        return sum(g.memory_mb for g in self.guests if g.running)

    @property
    def vcpu_demand(self) -> int:
        """vCPUs of the running guests."""
        return sum(g.vcpus for g in self.guests if g.running)


@dataclass(frozen=True, slots=True)
class Cluster:
    """Hosts that share a management plane and among which guests can move."""

    name: str
    site: str
    family: Family
    ring: str = ""
    memory_overcommit: float = 1.0
    cpu_overcommit: float = 4.0
    ha_reserve_hosts: int = 1
    hosts: tuple[Host, ...] = ()


@dataclass(frozen=True, slots=True)
class Site:
    """A location (data centre, edge site) with its time zone."""

    name: str
    timezone: str = "UTC"
    clusters: tuple[Cluster, ...] = ()


@dataclass(frozen=True, slots=True)
class Fleet:
    """Everything hvpatch knows about: rings in order, tenants and sites."""

    rings: tuple[Ring, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    sites: tuple[Site, ...] = field(default=())

    def clusters(self) -> Iterator[Cluster]:
        """Every cluster, site by site."""
        for site in self.sites:
            yield from site.clusters

    def hosts(self) -> Iterator[Host]:
        """Every host, cluster by cluster."""
        for cluster in self.clusters():
            yield from cluster.hosts

    def guests(self) -> Iterator[tuple[Host, Guest]]:
        """Every guest with the host it runs on."""
        for host in self.hosts():
            for guest in host.guests:
                yield host, guest

    def ring_order(self) -> dict[str, int]:
        """Ring name -> position (0 = first ring to patch)."""
        return {r.name: r.position for r in self.rings}


DEFAULT_RINGS: tuple[Ring, ...] = (
    Ring("test", 0, "lab hosts that run nothing anyone depends on"),
    Ring("dev", 1, "development workloads"),
    Ring("staging", 2, "pre-production copies of production"),
    Ring("prod", 3, "production"),
)
