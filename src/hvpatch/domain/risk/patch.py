"""Patch risk: how likely a candidate fix is to hurt, and how much it would hurt here.

The other side of the scale. Likelihood of a bad patch reads the fix's maturity (days since
release), whether the vendor withdrew or re-issued it, the product line's maturity and its
history of bad patches, and regression evidence from lower rings once rollouts record it.
The harm reads what would be down at once (guests and tenants on the host), whether the
cluster has room to evacuate it first, whether the platform can roll back, and the ring.
A withdrawn release always scores the maximum: it is never a target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from hvpatch.domain.risk.factors import IMPACT, LIKELIHOOD, Factor, combine

ROLLBACK = {
    "esxi": (True, "ESXi keeps the previous image in the standby bootbank"),
    "hyperv": (True, "cumulative updates can be uninstalled (wusa /uninstall)"),
    "kvm": (True, "previous kernel stays bootable; packages can be downgraded"),
    "proxmox": (True, "previous kernel stays bootable; packages can be downgraded"),
    "xen": (True, "previous Xen/kernel stays in the boot menu; packages can be downgraded"),
    "ahv": (False, "AHV upgrades through LCM have no supported rollback"),
    "generic": (False, "unknown platform: no rollback assumed"),
}
_RING_HARM = {"test": 0.0, "dev": 0.05, "staging": 0.1, "prod": 0.25}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A fix the host could move to: its name, release date, and the vendor's word on it."""

    label: str
    release_date: date | None = None
    withdrawn: bool = False
    known_issue: str = ""


@dataclass(frozen=True, slots=True)
class Maturity:
    """The product line's maturity: age, support status, history of bad patches."""

    product: str
    line: str
    age_years: float | None
    status: str
    bad_patches: int = 0


@dataclass(frozen=True, slots=True)
class RingEvidence:
    """What lower rings showed for this candidate: hosts passed, failed, hours soaked."""

    ring: str
    passed: int
    failed: int
    soak_hours: float


@dataclass(frozen=True, slots=True)
class PatchRisk:
    """The patch risk score of a candidate on a host, and every factor behind it."""

    score: float
    likelihood: float
    impact: float
    withdrawn: bool
    factors: tuple[Factor, ...]


def patch_risk(candidate: Candidate, maturity: Maturity | None, *, family: str, guests: int,
               tenants: int, ring: str, can_evacuate: bool, today: date,
               evidence: tuple[RingEvidence, ...] = ()) -> PatchRisk:
    """Score ``candidate``; see the module docstring."""
    factors: list[Factor] = []
    if candidate.withdrawn:  # certain to be wrong, and the worst harm: the maximum score
        factors.append(Factor("withdrawn", candidate.label, 1.0, LIKELIHOOD,
                              candidate.known_issue or "withdrawn by the vendor"))
        factors.append(Factor("withdrawn_release", "never a target", 1.0, IMPACT,
                              "a withdrawn release is not installed, whatever else holds"))
    if candidate.known_issue and not candidate.withdrawn:
        factors.append(Factor("known_issue", candidate.known_issue, 0.3, LIKELIHOOD))
    if candidate.release_date is None:
        factors.append(Factor("maturity", "release date unknown", 0.05, LIKELIHOOD))
    else:
        days = (today - candidate.release_date).days
        weight = 0.25 if days < 7 else 0.12 if days < 30 else 0.05 if days < 90 else 0.02
        factors.append(Factor("maturity", f"{days} days since {candidate.release_date}", weight,
                              LIKELIHOOD))
    if maturity is not None:
        if maturity.bad_patches:
            factors.append(Factor("bad_patch_history", f"{maturity.bad_patches} withdrawn or "
                                  f"regressing {maturity.product} releases",
                                  min(0.2, 0.05 * maturity.bad_patches), LIKELIHOOD))
        if maturity.status == "end-of-life":
            factors.append(Factor("line_end_of_life", f"{maturity.product} {maturity.line}",
                                  0.1, LIKELIHOOD, "no more fixes on this line: the fix may "
                                  "mean moving to a supported line, a bigger change"))
        if maturity.age_years is not None and maturity.age_years < 2:
            factors.append(Factor("young_product_line", f"{maturity.product} {maturity.line}: "
                                  f"{maturity.age_years:.1f} years",
                                  0.1 if maturity.age_years < 1 else 0.05, LIKELIHOOD))
    passed = sum(e.passed for e in evidence)
    failed = sum(e.failed for e in evidence)
    if failed:
        factors.append(Factor("lower_ring_failures", f"{failed} failed, {passed} passed",
                              min(0.9, 0.3 * failed), LIKELIHOOD))
    elif not passed:
        factors.append(Factor("no_regression_evidence", "no lower ring has run it yet", 0.05,
                              LIKELIHOOD))
    factors.append(Factor("guests_down", str(guests),
                          0.3 * min(1.0, math.log2(1 + guests) / 6.0), IMPACT))
    factors.append(Factor("tenants_down", str(tenants), 0.3 * min(1.0, tenants / 5.0), IMPACT))
    if not can_evacuate and guests:
        factors.append(Factor("no_headroom", "the cluster cannot take this host's guests", 0.3,
                              IMPACT, "guests go down with the host"))
    rollback, how = ROLLBACK.get(family, ROLLBACK["generic"])
    if not rollback:
        factors.append(Factor("no_rollback", family, 0.3, IMPACT, how))
    factors.append(Factor("ring", ring or "(none)", _RING_HARM.get(ring, 0.25), IMPACT))
    likelihood, impact, score = combine(factors)
    return PatchRisk(score, likelihood, impact, candidate.withdrawn, tuple(factors))
