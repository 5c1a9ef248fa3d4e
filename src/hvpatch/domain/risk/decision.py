"""The decision for a host: patch now, patch through the rings, mitigate first, or defer.

Weighs the host's findings (their exposure and deadlines) against the patch risk of its
candidate fix, under the policy, and respects approved, unexpired exceptions. Every rule that
fired is written into ``reasons``. Rules, in order:

1. findings covered by an approved exception that has not expired are deferred (until it
   lapses: an expired exception changes nothing, so the finding is back);
2. a withdrawn candidate is never a target: mitigate first;
3. an outcome at or above the policy's emergency outcome (Act by default): patch now -- unless
   the patch risk is over the policy's threshold and a vendor workaround exists: mitigate first;
4. otherwise a patch risk over the threshold with a workaround known: mitigate first;
5. otherwise: patch through the rings. When the patch risk exceeds the exposure by the policy's
   ratio and the outcome is Track or Track*, hvpatch *suggests* a defer -- which only takes
   effect as an approved exception with a compensating control and an expiry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from hvpatch.domain.risk.exposure import ExposureRisk, Outcome
from hvpatch.domain.risk.impact import ImpactClass
from hvpatch.domain.risk.patch import PatchRisk
from hvpatch.domain.risk.policy import Policy
from hvpatch.errors import InputError, Problem


class Decision(StrEnum):
    """What to do about a host."""

    PATCH_NOW = "patch-now"
    THROUGH_RINGS = "patch-through-rings"
    MITIGATE_FIRST = "mitigate-first"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Grant:
    """An exception: defer ``cve`` (every CVE when None) on ``host`` until ``expires_on``."""

    id: int
    host: str
    cve: str | None
    expires_on: date
    approved: bool
    compensating_control: str

    def covers(self, host: str, cve: str) -> bool:
        """Whether this exception is about that host and CVE."""
        return self.host == host and (self.cve is None or self.cve == cve)


@dataclass(frozen=True, slots=True)
class FindingRisk:
    """One finding's exposure, deadline, and the exception that defers it (if any)."""

    cve: str
    component: str
    exposure: ExposureRisk
    deadline: date
    deadline_reason: str
    deferred_by: int | None = None


@dataclass(frozen=True, slots=True)
class HostDecision:
    """The decision for one host, with what it was weighed from."""

    host: str
    decision: Decision
    outcome: Outcome
    exposure_score: float
    patch: PatchRisk
    deadline: date | None
    reasons: tuple[str, ...]
    findings: tuple[FindingRisk, ...]
    mitigation: str = ""
    suggest_defer: bool = False
    defer_until: date | None = None


@dataclass(frozen=True, slots=True)
class Override:
    """A per-CVE correction: the impact class the data gets wrong, and a vendor workaround."""

    impact: ImpactClass | None = None
    mitigation: str = ""


def overrides_from_dict(data: Any, where: str = "overrides") -> dict[str, Override]:
    """Validate a parsed override document ``{overrides: {CVE-ID: {impact, mitigation}}}``."""
    if data is None:
        return {}
    items = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(items, dict):
        raise InputError(f"{where} is not an override file",
                         [Problem(where, "expected a mapping with 'overrides' at the top")])
    problems: list[Problem] = []
    out: dict[str, Override] = {}
    for cve, spec in items.items():
        loc = f"{where}: overrides.{cve}"
        if not isinstance(cve, str) or not cve.upper().startswith("CVE-"):
            problems.append(Problem(loc, "keys must be CVE ids such as CVE-2021-21974"))
            continue
        if not isinstance(spec, dict) or set(spec) - {"impact", "mitigation"}:
            problems.append(Problem(loc, "expected a mapping with 'impact' and/or 'mitigation'"))
            continue
        impact = spec.get("impact")
        if impact is not None and (not isinstance(impact, str)
                                   or impact not in {c.value for c in ImpactClass}):
            problems.append(Problem(f"{loc}.impact", f"unknown impact class {impact!r} (expected "
                                    f"{', '.join(c.value for c in ImpactClass)})"))
            continue
        mitigation = spec.get("mitigation", "")
        if not isinstance(mitigation, str):
            problems.append(Problem(f"{loc}.mitigation", "expected text"))
            continue
        out[cve.upper()] = Override(ImpactClass(impact) if impact else None, mitigation)
    if problems:
        raise InputError(f"{where} has {len(problems)} problem(s); nothing was changed", problems)
    return out


def decide_host(host: str, findings: Iterable[FindingRisk], patch: PatchRisk, policy: Policy,
                *, grants: Iterable[Grant] = (), mitigations: dict[str, str] | None = None,
                today: date) -> HostDecision | None:
    """The decision for ``host`` (None when it has no findings); see the module docstring."""
    mitigations = mitigations or {}
    live = [g for g in grants if g.host == host and g.expires_on >= today
            and (g.approved or not policy.exception_needs_approval)]
    reasons: list[str] = []
    marked: list[FindingRisk] = []
    for f in sorted(findings, key=lambda f: (f.cve, f.component)):
        # of several exceptions covering a finding, the one lasting longest defers it
        grant = max((g for g in live if g.covers(host, f.cve)),
                    key=lambda g: (g.expires_on, g.id), default=None)
        marked.append(FindingRisk(f.cve, f.component, f.exposure, f.deadline, f.deadline_reason,
                                  grant.id if grant else None))
    if not marked:
        return None
    active = [f for f in marked if f.deferred_by is None]
    deferred = [f for f in marked if f.deferred_by is not None]
    if deferred:
        reasons.append(f"{len(deferred)} finding(s) deferred by approved exception(s) "
                       f"{sorted({f.deferred_by for f in deferred if f.deferred_by is not None})}")
    if not active:
        until = min(g.expires_on for g in live if any(f.deferred_by == g.id for f in deferred))
        top = max(deferred, key=lambda f: (f.exposure.outcome.rank, f.exposure.score))
        return HostDecision(host, Decision.DEFER, top.exposure.outcome, top.exposure.score,
                            patch, None, (*reasons, f"every finding is deferred until {until}"),
                            tuple(marked), defer_until=until)
    top = max(active, key=lambda f: (f.exposure.outcome.rank, f.exposure.score))
    outcome, score = top.exposure.outcome, top.exposure.score
    due = min(active, key=lambda f: f.deadline)
    reasons.append(f"highest outcome {outcome.value} ({top.cve}, exposure {score})")
    reasons.append(f"deadline {due.deadline}: {due.deadline_reason} ({due.cve})")
    mitigation = next((mitigations[f.cve] for f in sorted(active, key=lambda f: f.cve)
                       if f.cve in mitigations), "")
    emergency = outcome.rank >= Outcome(policy.emergency_outcome).rank
    risky = patch.score > policy.mitigate_when_patch_risk_over
    suggest = False
    if patch.withdrawn:
        decision = Decision.MITIGATE_FIRST
        reasons.append("the candidate release is withdrawn by its vendor: never a target; "
                       "mitigate and wait for a replacement")
    elif emergency and not (risky and mitigation):
        decision = Decision.PATCH_NOW
        reasons.append(f"{outcome.value} is at or above the emergency outcome "
                       f"{policy.emergency_outcome}: emergency path with compressed soak")
    elif risky and mitigation:
        decision = Decision.MITIGATE_FIRST
        reasons.append(f"patch risk {patch.score} is over {policy.mitigate_when_patch_risk_over} "
                       f"and a workaround exists: {mitigation}")
    else:
        decision = Decision.THROUGH_RINGS
        reasons.append("standard path: test -> dev -> staging -> prod with regression gates")
        if outcome.rank <= Outcome.TRACK_STAR.rank and patch.score > (
                policy.suggest_defer_ratio * score):
            suggest = True
            reasons.append(f"patch risk {patch.score} exceeds {policy.suggest_defer_ratio}x the "
                           f"exposure {score}: consider a defer with a compensating control "
                           "(needs an approved exception)")
    return HostDecision(host, decision, outcome, score, patch, due.deadline, tuple(reasons),
                        tuple(marked), mitigation, suggest)
