"""Exposure risk of one finding: likelihood of exploitation x impact on this host, and SSVC.

Likelihood reads KEV (and known ransomware use), EPSS with its score date, exploitation and
automatability from the record's SSVC data, and the CVSS attack vector. Impact reads the
technical impact class and the *blast radius*: a compromised hypervisor owns every guest on it,
so the number of guests, the number of tenants sharing the host, the highest data classification
and criticality among the guests, and the management plane's exposure all weigh in; a
management-plane weakness reaches the whole cluster, so there the cluster's guests and tenants
count. The outcome follows CISA's SSVC decision tree (Track, Track*, Attend, Act).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from hvpatch.domain.advisories import EpssScore, KevEntry, Vulnerability
from hvpatch.domain.fleet import Cluster, Exposure, Host
from hvpatch.domain.risk.factors import IMPACT, LIKELIHOOD, SCALE, Factor, combine
from hvpatch.domain.risk.impact import ImpactClass, classify, vector_of


class Outcome(StrEnum):
    """SSVC outcomes, in increasing urgency."""

    TRACK = "Track"
    TRACK_STAR = "Track*"
    ATTEND = "Attend"
    ACT = "Act"

    @property
    def rank(self) -> int:
        """0 (Track) to 3 (Act)."""
        return list(Outcome).index(self)


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """What a compromise of one host reaches (host and, for shared planes, cluster)."""

    guests: int
    tenants: int
    max_data_class: int
    max_criticality: int
    exposure: Exposure
    cluster_guests: int
    cluster_tenants: int
    ring: str = ""


def blast_radius(host: Host, cluster: Cluster | None = None) -> BlastRadius:
    """The blast radius of ``host`` (its cluster's totals when given)."""
    guests = host.guests
    peers = cluster.hosts if cluster else (host,)
    cluster_tenants = {g.tenant for h in peers for g in h.guests}
    return BlastRadius(
        guests=len(guests), tenants=len(host.tenants),
        max_data_class=max((g.data_classification.rank for g in guests), default=0),
        max_criticality=max((g.criticality.rank for g in guests), default=0),
        exposure=host.exposure,
        cluster_guests=sum(len(h.guests) for h in peers),
        cluster_tenants=len(cluster_tenants), ring=host.ring)


@dataclass(frozen=True, slots=True)
class ExposureRisk:
    """The exposure score of one finding, its SSVC outcome, and every factor behind them."""

    score: float
    likelihood: float
    impact: float
    outcome: Outcome
    impact_class: ImpactClass
    ssvc: tuple[tuple[str, str], ...]
    factors: tuple[Factor, ...]


_AV = {"N": 0.15, "A": 0.08, "L": 0.04, "P": 0.01}
_CLASS = {ImpactClass.VM_ESCAPE: 0.6, ImpactClass.MGMT_PLANE: 0.5,
          ImpactClass.INFO_DISCLOSURE: 0.3, ImpactClass.HOST_DOS: 0.25, ImpactClass.OTHER: 0.1}
_RANK_WEIGHTS = (0.0, 0.05, 0.15, 0.3)
_CONFIDENCE = {"high": 1.0, "medium": 0.8, "low": 0.5}

# CISA SSVC (2022) decision tree, keyed by (exploitation, automatable, total impact),
# giving the outcome for mission & well-being low / medium / high.
_TREE: dict[tuple[str, bool, bool], tuple[Outcome, Outcome, Outcome]] = {
    ("none", False, False): (Outcome.TRACK, Outcome.TRACK, Outcome.TRACK),
    ("none", False, True): (Outcome.TRACK, Outcome.TRACK, Outcome.TRACK_STAR),
    ("none", True, False): (Outcome.TRACK, Outcome.TRACK, Outcome.ATTEND),
    ("none", True, True): (Outcome.TRACK, Outcome.TRACK, Outcome.ATTEND),
    ("poc", False, False): (Outcome.TRACK, Outcome.TRACK, Outcome.TRACK_STAR),
    ("poc", False, True): (Outcome.TRACK, Outcome.TRACK_STAR, Outcome.ATTEND),
    ("poc", True, False): (Outcome.TRACK, Outcome.TRACK, Outcome.ATTEND),
    ("poc", True, True): (Outcome.TRACK, Outcome.TRACK_STAR, Outcome.ATTEND),
    ("active", False, False): (Outcome.TRACK, Outcome.TRACK, Outcome.ATTEND),
    ("active", False, True): (Outcome.TRACK, Outcome.ATTEND, Outcome.ACT),
    ("active", True, False): (Outcome.ATTEND, Outcome.ATTEND, Outcome.ACT),
    ("active", True, True): (Outcome.ATTEND, Outcome.ACT, Outcome.ACT),
}
EPSS_POC_THRESHOLD = 0.1


def _norm(key: str) -> str:
    return key.lower().replace(" ", "").replace("_", "")


def _ssvc_value(v: Vulnerability, name: str) -> str | None:
    """An SSVC decision point of the record, whatever its spelling (technicalImpact, ...)."""
    want = _norm(name)
    for key, value in v.ssvc:
        if _norm(key) == want:
            return value.lower()
    return None


def mission_and_wellbeing(b: BlastRadius, cluster_wide: bool) -> str:
    """SSVC 'mission & well-being' computed from the inventory: low, medium or high.

    High: three or more tenants reachable, or a guest of high criticality or confidential data.
    Medium: any guest, with a second tenant, some criticality or data class, or an
    internet-reachable management plane. Low: an empty or single-tenant, unremarkable host.
    """
    tenants = b.cluster_tenants if cluster_wide else b.tenants
    guests = b.cluster_guests if cluster_wide else b.guests
    if tenants >= 3 or b.max_criticality >= 2 or b.max_data_class >= 2:
        return "high"
    if guests >= 1 and (tenants >= 2 or b.max_criticality >= 1 or b.max_data_class >= 1
                        or b.exposure is Exposure.INTERNET):
        return "medium"
    return "low"


def exposure_risk(v: Vulnerability, blast: BlastRadius, *, kev: KevEntry | None = None,
                  epss: EpssScore | None = None, confidence: str = "high",
                  impact_override: ImpactClass | None = None,
                  component: str = "") -> ExposureRisk:
    """Score one finding; see the module docstring."""
    factors: list[Factor] = []
    vec = vector_of(v)
    if kev is not None:
        factors.append(Factor("kev", f"listed {kev.date_added}", 0.9, LIKELIHOOD,
                              "known exploited"))
        if kev.known_ransomware:
            factors.append(Factor("ransomware", "known use", 0.5, LIKELIHOOD))
    if epss is not None:
        factors.append(Factor("epss", f"{epss.epss:.5f} on {epss.score_date or 'unknown date'}",
                              epss.epss, LIKELIHOOD))
    exploitation = _ssvc_value(v, "exploitation") or "none"
    if exploitation == "active":
        factors.append(Factor("ssvc_exploitation", "active", 0.8, LIKELIHOOD))
    elif exploitation == "poc":
        factors.append(Factor("ssvc_exploitation", "poc", 0.3, LIKELIHOOD))
    if vec.av:
        factors.append(Factor("attack_vector", vec.av, _AV.get(vec.av, 0.0), LIKELIHOOD))
    ssvc_auto = _ssvc_value(v, "automatable")
    automatable = ssvc_auto == "yes" if ssvc_auto else vec.automatable
    if automatable:
        factors.append(Factor("automatable", "yes", 0.1, LIKELIHOOD,
                              "SSVC" if ssvc_auto else "AV:N/AC:L/PR:N/UI:N"))
    cls, why = classify(v, impact_override, component)
    factors.append(Factor("impact_class", cls.value, _CLASS[cls], IMPACT, why))
    cluster_wide = cls is ImpactClass.MGMT_PLANE
    guests = blast.cluster_guests if cluster_wide else blast.guests
    tenants = blast.cluster_tenants if cluster_wide else blast.tenants
    scope = "cluster" if cluster_wide else "host"
    factors.append(Factor("guests", f"{guests} on the {scope}",
                          0.3 * min(1.0, math.log2(1 + guests) / 6.0), IMPACT))
    factors.append(Factor("tenants", f"{tenants} on the {scope}",
                          0.4 * min(1.0, max(0, tenants - 1) / 4.0), IMPACT))
    factors.append(Factor("data_classification", f"rank {blast.max_data_class}",
                          _RANK_WEIGHTS[blast.max_data_class], IMPACT))
    factors.append(Factor("criticality", f"rank {blast.max_criticality}",
                          _RANK_WEIGHTS[blast.max_criticality], IMPACT))
    network = cls is ImpactClass.MGMT_PLANE or vec.av == "N"
    exposure_w = (0.0, 0.1, 0.4)[blast.exposure.rank] if network else (
        0.0, 0.02, 0.05)[blast.exposure.rank]
    factors.append(Factor("management_exposure", blast.exposure.value, exposure_w, IMPACT))
    if cluster_wide:
        factors.append(Factor("cluster_wide", "shared management plane", 0.2, IMPACT))
    factors.append(Factor("confidence", confidence, _CONFIDENCE.get(confidence, 0.5), SCALE,
                          "how sure the finding is"))
    likelihood, impact, score = combine(factors)
    if kev is not None:
        exploitation = "active"
    elif exploitation == "none" and epss is not None and epss.epss >= EPSS_POC_THRESHOLD:
        exploitation = "poc"
    technical = _ssvc_value(v, "technical impact")
    total = technical == "total" if technical else cls.total
    mw = mission_and_wellbeing(blast, cluster_wide)
    outcome = _TREE[(exploitation, automatable, total)][("low", "medium", "high").index(mw)]
    ssvc = (("exploitation", exploitation), ("automatable", "yes" if automatable else "no"),
            ("technical_impact", "total" if total else "partial"),
            ("mission_and_wellbeing", mw))
    return ExposureRisk(score, likelihood, impact, outcome, cls, ssvc, tuple(factors))


def deadline(outcome: Outcome, first_seen: date, sla_days: dict[str, int],
             kev: KevEntry | None) -> tuple[date, str]:
    """The earliest of the KEV due date and the policy SLA for the outcome, and which one."""
    sla = first_seen + timedelta(days=sla_days[outcome.value])
    if kev is not None and kev.due_date is not None and kev.due_date <= sla:
        return kev.due_date, f"CISA KEV due date ({kev.due_date})"
    return sla, f"policy SLA {outcome.value}: {sla_days[outcome.value]} days from {first_seen}"
