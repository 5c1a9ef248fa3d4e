"""Risk and decisions: exposure (likelihood x blast radius) against patch risk, with reasons.

* :mod:`.factors` -- scores as noisy-OR combinations of listed factors (reproducible);
* :mod:`.impact` -- technical impact class (VM escape, management plane, DoS, disclosure);
* :mod:`.exposure` -- exposure score, SSVC outcome and deadline of a finding;
* :mod:`.patch` -- patch risk of a candidate fix on a host;
* :mod:`.policy` -- SLAs and thresholds (YAML, validated);
* :mod:`.decision` -- patch now / through the rings / mitigate first / defer.
"""

from hvpatch.domain.risk.decision import (
    Decision,
    FindingRisk,
    Grant,
    HostDecision,
    Override,
    decide_host,
    overrides_from_dict,
)
from hvpatch.domain.risk.exposure import (
    BlastRadius,
    ExposureRisk,
    Outcome,
    blast_radius,
    deadline,
    exposure_risk,
)
from hvpatch.domain.risk.factors import Factor, combine
from hvpatch.domain.risk.impact import ImpactClass, classify
from hvpatch.domain.risk.patch import Candidate, Maturity, PatchRisk, RingEvidence, patch_risk
from hvpatch.domain.risk.policy import DEFAULT_POLICY, Policy, policy_from_dict

__all__ = [
    "DEFAULT_POLICY",
    "BlastRadius",
    "Candidate",
    "Decision",
    "ExposureRisk",
    "Factor",
    "FindingRisk",
    "Grant",
    "HostDecision",
    "ImpactClass",
    "Maturity",
    "Outcome",
    "Override",
    "PatchRisk",
    "Policy",
    "RingEvidence",
    "blast_radius",
    "classify",
    "combine",
    "deadline",
    "decide_host",
    "exposure_risk",
    "overrides_from_dict",
    "patch_risk",
    "policy_from_dict",
]
