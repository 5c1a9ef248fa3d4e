"""Weight tables that shape a generated fleet, each with where it comes from.

The sizes follow public research traces, *summarised* here into a few weighted rows (the traces
themselves are research data and are not shipped). Everything else (sites, rings, criticality,
exposure, migration blocks) is an illustrative assumption, kept here in one place so it can be
read, argued about and changed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Generic, TypeVar

from hvpatch.domain.fleet import Criticality, DataClass, Exposure, Family, MigrationBlock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Weighted(Generic[T]):
    """Items with cumulative weights, so one draw is a single bisect (``rng.choices``)."""

    items: tuple[T, ...]
    cum: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[T, float]]) -> Weighted[T]:
        """Build from ``(item, weight)`` pairs; weights need not sum to one."""
        return cls(tuple(p[0] for p in pairs), tuple(accumulate(float(p[1]) for p in pairs)))

    def pick(self, rng: random.Random) -> T:
        """One item."""
        return rng.choices(self.items, cum_weights=self.cum)[0]

    def picks(self, rng: random.Random, k: int) -> list[T]:
        """``k`` items, with replacement, in one call (the fast path for guests)."""
        return rng.choices(self.items, cum_weights=self.cum, k=k)


# --- vendor mix -------------------------------------------------------------------------------
# Share of hosts per family: an assumption for a large enterprise estate (VMware still the
# majority, Hyper-V and KVM next, Proxmox/XCP-ng growing since 2024, Nutanix AHV, a few edge boxes).
FAMILY_MIX: tuple[tuple[Family, float], ...] = (
    (Family.ESXI, 0.40), (Family.HYPERV, 0.15), (Family.KVM, 0.15), (Family.PROXMOX, 0.10),
    (Family.XEN, 0.10), (Family.AHV, 0.07), (Family.GENERIC, 0.03),
)

# Cluster sizes per family (hosts, weight): vSphere clusters are large (up to the 32 we allow),
# Hyper-V failover clusters and Xen pools mid-sized, Nutanix starts at 3 nodes, edge sites tiny.
CLUSTER_SIZES: dict[Family, Weighted[int]] = {
    Family.ESXI: Weighted.of([(4, 1), (6, 2), (8, 4), (12, 4), (16, 4), (24, 2), (32, 1)]),
    Family.HYPERV: Weighted.of([(4, 3), (6, 3), (8, 4), (12, 2), (16, 1)]),
    Family.KVM: Weighted.of([(4, 2), (6, 3), (8, 3), (12, 3), (16, 2), (24, 1)]),
    Family.PROXMOX: Weighted.of([(3, 3), (4, 3), (5, 2), (8, 2), (12, 1)]),
    Family.XEN: Weighted.of([(3, 2), (4, 3), (6, 3), (8, 2), (12, 1), (16, 1)]),
    Family.AHV: Weighted.of([(3, 3), (4, 3), (6, 2), (8, 2), (12, 1), (16, 1)]),
    Family.GENERIC: Weighted.of([(3, 5), (4, 2)]),
}

# --- sites ------------------------------------------------------------------------------------
# City codes (airport style, as operators name data centres) with their IANA time zones.
CITIES: tuple[tuple[str, str], ...] = (
    ("fra", "Europe/Berlin"), ("ams", "Europe/Amsterdam"), ("nyc", "America/New_York"),
    ("lon", "Europe/London"), ("sgp", "Asia/Singapore"), ("dfw", "America/Chicago"),
    ("par", "Europe/Paris"), ("sfo", "America/Los_Angeles"), ("tyo", "Asia/Tokyo"),
    ("iad", "America/New_York"), ("syd", "Australia/Sydney"), ("zrh", "Europe/Zurich"),
    ("dub", "Europe/Dublin"), ("waw", "Europe/Warsaw"), ("yyz", "America/Toronto"),
    ("gru", "America/Sao_Paulo"), ("bom", "Asia/Kolkata"), ("sto", "Europe/Stockholm"),
    ("mad", "Europe/Madrid"), ("mil", "Europe/Rome"), ("chi", "America/Chicago"),
    ("sea", "America/Los_Angeles"), ("den", "America/Denver"), ("jnb", "Africa/Johannesburg"),
    ("dxb", "Asia/Dubai"), ("hkg", "Asia/Hong_Kong"), ("sel", "Asia/Seoul"),
    ("vie", "Europe/Vienna"),
)

# --- rings ------------------------------------------------------------------------------------
# Share of a family's clusters per ring (test, dev, staging, prod): few test, most prod.
RING_SHARES: tuple[tuple[str, float], ...] = (
    ("test", 0.07), ("dev", 0.13), ("staging", 0.15), ("prod", 0.65),
)

# --- hosts ------------------------------------------------------------------------------------
# Host shapes (cores, memory GiB, weight). Summarised from two real host mixes:
# * Alibaba "openb" 2023 node list (1,523 nodes): 96c/384G 40 %, 104c/512G 27 %, 32c/256G 9 %,
#   96c/512G 5 %, 128c/768G 3 %, 64c/256G and 64c/512G 2 % each, 96c/768G 2 %; and
# * Google 2011 machine configs (12,583 machines): 92 % mid-size machines whose memory is 1/4 to
#   3/4 of the largest, 6 % full-size, so memory per core varies by about 3x within one fleet.
# Rounded to the shapes enterprise virtualisation hosts are bought in (32-128 cores, 256 GiB-2 TiB)
# and re-weighted toward the Alibaba mix, with a thin big-memory tail from the Google mix.
HOST_SHAPES: Weighted[tuple[int, int]] = Weighted.of([
    ((32, 256), 12), ((48, 384), 6), ((64, 512), 16), ((64, 768), 8), ((96, 384), 20),
    ((96, 768), 12), ((104, 512), 14), ((128, 1024), 9), ((128, 2048), 3),
])
# Edge boxes (generic family): small industrial / branch servers (assumption).
EDGE_SHAPES: Weighted[tuple[int, int]] = Weighted.of([
    ((16, 64), 3), ((16, 128), 4), ((24, 192), 2), ((32, 256), 1),
])
# CPU generation per core count, used as the host cpu_group (live migration needs one group).
CPU_GROUPS: dict[int, tuple[str, ...]] = {
    16: ("intel-icelake-d", "amd-epyc-embedded"),
    24: ("intel-icelake-d", "amd-epyc-embedded"),
    32: ("intel-skylake", "intel-cascadelake"),
    48: ("intel-cascadelake", "intel-icelake"),
    64: ("intel-icelake", "intel-sapphirerapids", "amd-rome"),
    96: ("amd-milan", "amd-genoa", "intel-sapphirerapids"),
    104: ("intel-sapphirerapids", "intel-emeraldrapids"),
    128: ("amd-milan", "amd-genoa"),
}
MIXED_CLUSTER_SHARE = 0.12  # clusters that grew with a second hardware generation

# Guest memory fill per cluster (share of host memory taken by guests), and per-host jitter.
FILL_RANGE = (0.50, 0.85)
FILL_JITTER = 0.04

# --- guests -----------------------------------------------------------------------------------
# Guest shapes (vCPUs, memory GiB, weight per mille). Summarised from two real VM-size mixes,
# each bucketed to power-of-two memory and averaged with equal weight:
# * Azure 2017 VM flavours (16 sizes, 1.87 M VM arrivals): 1/1.75G 48 %, 2/3.5G 25 %,
#   4/7G 11 %, 8/14G 11 %, 8/56G 4 %, 1/0.75G 2 %; and
# * Bitbrains GWA-T-12 "Rnd" (500 enterprise VMs x 3 months, rows with >= 1 vCPU and >= 0.5 GiB):
#   1/4G 13 %, 2/8G 12 %, 4/16G 15 %, 1/2G 11 %, 2/4G 8 %, 4/4G 8 %, 8/32G 7 %, ... 32/512G 0.3 %.
# Rare buckets (< 0.4 %) were folded into their nearest neighbour. Mean 2.9 vCPU / 8.7 GiB.
# The generator scales these shapes by one factor per fleet so that the requested guests per
# host fill hosts to FILL_RANGE: the traces give the *mix*, the host size gives the *scale*.
GUEST_SHAPES: tuple[tuple[int, float, int], ...] = (
    (1, 1, 59), (1, 2, 294), (1, 4, 64), (2, 2, 13), (2, 4, 164), (2, 8, 62), (2, 16, 4),
    (4, 4, 54), (4, 8, 65), (4, 16, 75), (4, 32, 4), (8, 8, 8), (8, 16, 69), (8, 32, 37),
    (8, 64, 22), (16, 64, 3), (16, 128, 1), (32, 512, 1),
)
DEFAULT_GUESTS_PER_HOST = 20.0

# Guest roles, only used to give guests readable names (assumption).
GUEST_ROLES: Weighted[str] = Weighted.of([
    ("app", 22), ("web", 18), ("db", 10), ("k8s", 12), ("svc", 10), ("file", 4), ("ad", 2),
    ("ci", 6), ("vdi", 5), ("mq", 3), ("cache", 4), ("mon", 4),
])
HA_ROLES: tuple[str, ...] = ("web", "db", "dns", "lb", "app", "mq", "ad", "k8s-cp")

# Criticality and data classification per ring (assumption; no public data set describes these).
CRITICALITY: dict[str, Weighted[Criticality]] = {
    "prod": Weighted.of([(Criticality.LOW, 10), (Criticality.MEDIUM, 45),
                         (Criticality.HIGH, 33), (Criticality.MISSION_CRITICAL, 12)]),
    "staging": Weighted.of([(Criticality.LOW, 30), (Criticality.MEDIUM, 50),
                            (Criticality.HIGH, 17), (Criticality.MISSION_CRITICAL, 3)]),
    "dev": Weighted.of([(Criticality.LOW, 60), (Criticality.MEDIUM, 35), (Criticality.HIGH, 5)]),
    "test": Weighted.of([(Criticality.LOW, 80), (Criticality.MEDIUM, 20)]),
}
DATA_CLASS: dict[str, Weighted[DataClass]] = {
    "prod": Weighted.of([(DataClass.PUBLIC, 8), (DataClass.INTERNAL, 47),
                         (DataClass.CONFIDENTIAL, 33), (DataClass.RESTRICTED, 12)]),
    "staging": Weighted.of([(DataClass.PUBLIC, 10), (DataClass.INTERNAL, 55),
                            (DataClass.CONFIDENTIAL, 30), (DataClass.RESTRICTED, 5)]),
    "dev": Weighted.of([(DataClass.PUBLIC, 20), (DataClass.INTERNAL, 65),
                        (DataClass.CONFIDENTIAL, 14), (DataClass.RESTRICTED, 1)]),
    "test": Weighted.of([(DataClass.PUBLIC, 35), (DataClass.INTERNAL, 60),
                         (DataClass.CONFIDENTIAL, 5)]),
}
# Share of guests powered off per ring (about 5 % overall), and of suspended ones.
STOPPED_SHARE: dict[str, float] = {"prod": 0.04, "staging": 0.06, "dev": 0.08, "test": 0.12}
SUSPENDED_SHARE = 0.003

# Guests that cannot live-migrate (about 4 %), why, and the kind of note an operator leaves.
PINNED_SHARE = 0.04
PIN_REASONS: Weighted[tuple[MigrationBlock, tuple[str, ...]]] = Weighted.of([
    ((MigrationBlock.LOCAL_DISK, ("data on local NVMe datastore", "local scratch disk for builds",
                                  "licence dongle data on host-local disk")), 40),
    ((MigrationBlock.CPU_PINNING, ("latency-sensitive pinned vCPUs", "NFV router, dedicated cores",
                                   "real-time control loop, isolated cores")), 25),
    ((MigrationBlock.PCI_PASSTHROUGH, ("SR-IOV NIC for packet capture", "HBA passthrough for tape",
                                       "USB/PCIe licence card passthrough")), 20),
    ((MigrationBlock.VGPU, ("NVIDIA vGPU profile for CAD VDI", "GPU inference worker",
                            "vGPU for video transcoding")), 15),
])

# Anti-affinity: share of a cluster's guests that sit in a pair or triple kept on distinct hosts.
ANTI_AFFINITY_SHARE = 0.03
SINGLE_TENANT_CLUSTER_SHARE = 0.07  # clusters dedicated to one tenant (a few one-tenant hosts)

# Management-plane exposure per cluster; a few hosts of internal clusters leak to the internet.
CLUSTER_EXPOSURE: Weighted[Exposure] = Weighted.of([
    (Exposure.INTERNAL, 88), (Exposure.ISOLATED, 10), (Exposure.INTERNET, 2),
])
EDGE_EXPOSURE: Weighted[Exposure] = Weighted.of([
    (Exposure.INTERNAL, 70), (Exposure.ISOLATED, 15), (Exposure.INTERNET, 15),
])
HOST_INTERNET_LEAK = 0.005

# Tenant descriptions (illustrative business units), cycled over tenant-NNN names.
TENANT_UNITS: tuple[str, ...] = (
    "Payments", "Online shop", "ERP", "HR portal", "Data platform", "Logistics", "CRM",
    "Identity", "Billing", "Analytics", "Customer support", "Manufacturing MES", "Research",
    "Marketing", "Treasury", "Mobile backend", "Document management", "Security operations",
    "Build and CI", "Partner API",
)
