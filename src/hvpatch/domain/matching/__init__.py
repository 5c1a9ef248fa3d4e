"""Fleet x advisories -> findings, each with the evidence that produced it.

See :mod:`hvpatch.domain.matching.engine` for the order of preference between sources.
"""

from hvpatch.domain.matching.distro import Confidence
from hvpatch.domain.matching.engine import (
    Evidence,
    Finding,
    Verdict,
    assess_software,
    match_fleet,
)
from hvpatch.domain.matching.index import AdvisoryIndex, component_alias
from hvpatch.domain.matching.platform import Target, targets

__all__ = [
    "AdvisoryIndex",
    "Confidence",
    "Evidence",
    "Finding",
    "Target",
    "Verdict",
    "assess_software",
    "component_alias",
    "match_fleet",
    "targets",
]
