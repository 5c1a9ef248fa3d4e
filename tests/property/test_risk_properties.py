"""Hypothesis properties of the risk domain, each tied to a promise the risk model makes.

* a bigger blast radius (more guests, more tenants) never lowers the exposure score or outcome;
* a KEV listing (or a higher EPSS) never lowers them;
* a withdrawn release always has the maximal patch risk and is never a patch target;
* results do not depend on the order of inputs (factors, findings, grants);
* every score is reproducible from its listed factors with ``combine``;
* ``policy_from_dict`` accepts what ``Policy.as_dict`` produces (also through YAML), and a bad
  document only ever fails with ``InputError``.

Vulnerabilities are drawn from the real bundled NVD records and from synthetic records that mix
CVSS 3.1/4.0 vectors, description words, weaknesses and SSVC data.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.domain.advisories import (
    AnalysisStatus,
    CvssMetric,
    EpssScore,
    KevEntry,
    Vulnerability,
)
from hvpatch.domain.fleet import (
    Cluster,
    Criticality,
    DataClass,
    Exposure,
    Family,
    Guest,
    GuestName,
    Host,
    HostName,
    TenantName,
)
from hvpatch.domain.risk import (
    BlastRadius,
    Candidate,
    Decision,
    Factor,
    FindingRisk,
    Grant,
    HostDecision,
    ImpactClass,
    Maturity,
    Outcome,
    Policy,
    RingEvidence,
    blast_radius,
    combine,
    decide_host,
    exposure_risk,
    patch_risk,
    policy_from_dict,
)
from hvpatch.domain.risk.exposure import _TREE, ExposureRisk
from hvpatch.domain.risk.patch import PatchRisk
from hvpatch.domain.software import EsxiSoftware
from hvpatch.errors import InputError

FEEDS = Path(__file__).parents[2] / "src" / "hvpatch" / "data" / "feeds"
REAL: list[Vulnerability] = [
    v for path in sorted((FEEDS / "nvd").glob("*.json.gz"))
    + sorted((FEEDS / "nvd" / "api").glob("*.json")) for v in iter_nvd(path)]
TODAY = date(2025, 3, 24)
FAST = settings(max_examples=150, deadline=None)

# --- strategies ---------------------------------------------------------------------------------

DESCRIPTIONS = (
    "A flaw was found.",
    "A malicious actor with local administrative privileges on a virtual machine may execute "
    "code as the virtual machine's VMX process running on the host.",
    "allows guest OS users to cause a denial of service (host OS crash).",
    "OpenSLP heap overflow reachable on port 427.",
    "An information disclosure vulnerability that may leak memory.",
    "Windows Hyper-V Remote Code Execution Vulnerability",
)
CWES = ("CWE-787", "CWE-416", "CWE-400", "CWE-835", "CWE-200", "CWE-20", "NVD-CWE-noinfo")


@st.composite
def synthetic_vulns(draw: st.DrawFn) -> Vulnerability:
    pick = draw
    av = pick(st.sampled_from("NALP"))
    ac, pr, ui = pick(st.sampled_from("LH")), pick(st.sampled_from("NLH")), pick(st.booleans())
    c, i, a = (pick(st.sampled_from("NLH")) for _ in range(3))
    if pick(st.booleans()):
        s = pick(st.sampled_from("UC"))
        vector = (f"CVSS:3.1/AV:{av}/AC:{ac}/PR:{pr}/UI:{'R' if ui else 'N'}/S:{s}"
                  f"/C:{c}/I:{i}/A:{a}")
        metric = CvssMetric("3.1", vector, 7.0, "HIGH")
    else:
        sc = pick(st.sampled_from("NLH"))
        vector = (f"CVSS:4.0/AV:{av}/AC:{ac}/AT:N/PR:{pr}/UI:{'P' if ui else 'N'}"
                  f"/VC:{c}/VI:{i}/VA:{a}/SC:{sc}/SI:N/SA:N")
        metric = CvssMetric("4.0", vector, 7.0, "HIGH")
    ssvc: list[tuple[str, str]] = []
    if pick(st.booleans()):
        ssvc.append(("Exploitation", pick(st.sampled_from(["none", "poc", "active"]))))
    if pick(st.booleans()):
        ssvc.append(("Automatable", pick(st.sampled_from(["yes", "no"]))))
    if pick(st.booleans()):
        ssvc.append((pick(st.sampled_from(["technicalImpact", "Technical Impact"])),
                     pick(st.sampled_from(["partial", "total"]))))
    return Vulnerability(
        "CVE-2099-0001", None, None, pick(st.sampled_from(DESCRIPTIONS)),
        AnalysisStatus.ANALYSED, "test",
        cvss=(metric,) if pick(st.booleans()) else (metric, CvssMetric(
            "2.0", "AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, "HIGH")),
        cwes=tuple(pick(st.lists(st.sampled_from(CWES), max_size=2, unique=True))),
        ssvc=tuple(ssvc))


vulns = st.one_of(st.sampled_from(REAL), synthetic_vulns())
overrides = st.none() | st.sampled_from(list(ImpactClass))
confidences = st.sampled_from(["high", "medium", "low", "unknown"])
exposures = st.sampled_from(list(Exposure))
guest_specs = st.tuples(st.sampled_from([f"tenant-{n}" for n in range(6)]),
                        st.sampled_from(list(Criticality)), st.sampled_from(list(DataClass)))


def epss_for(v: Vulnerability) -> st.SearchStrategy[EpssScore | None]:
    return st.none() | st.builds(
        EpssScore, st.just(v.cve_id), st.floats(0, 1), st.floats(0, 1),
        st.none() | st.just(date(2025, 3, 20)))


def kev_entry(cve: str) -> st.SearchStrategy[KevEntry]:
    return st.builds(KevEntry, st.just(cve), st.just("VMware"), st.just("ESXi"), st.just("x"),
                     st.just(date(2025, 3, 4)), st.none() | st.just(date(2025, 3, 25)),
                     st.just("Apply updates"), st.booleans())


def host_with(name: str, specs: list[tuple[str, Criticality, DataClass]],
              exposure: Exposure = Exposure.INTERNAL) -> Host:
    guests = tuple(Guest(GuestName(f"{name}-vm{n}"), TenantName(t), 2, 4096, crit, data)
                   for n, (t, crit, data) in enumerate(specs))
    return Host(HostName(name), "site", "cluster", EsxiSoftware("24585383"), 32, 524288,
                exposure=exposure, ring="prod", guests=guests)


def cluster_of(*hosts: Host) -> Cluster:
    return Cluster("cluster", "site", Family.ESXI, hosts=hosts)


blasts = st.builds(
    BlastRadius, st.integers(0, 200), st.integers(0, 20), st.integers(0, 3), st.integers(0, 3),
    exposures, st.integers(0, 2000), st.integers(0, 50))


def no_lower(before: ExposureRisk, after: ExposureRisk) -> None:
    assert after.score >= before.score, (before.factors, after.factors)
    assert after.outcome.rank >= before.outcome.rank, (before.ssvc, after.ssvc)


# --- more guests / tenants never lower the exposure ---------------------------------------------


@FAST
@given(data=st.data(), v=vulns, override=overrides, confidence=confidences, exposure=exposures,
       guests=st.lists(guest_specs, max_size=12), extra=st.lists(guest_specs, min_size=1,
                                                                 max_size=6),
       peer=st.lists(guest_specs, max_size=12), kev=st.booleans())
def test_more_guests_or_tenants_on_a_host_never_lower_its_exposure(
        data: st.DataObject, v: Vulnerability, override: ImpactClass | None, confidence: str,
        exposure: Exposure, guests: list[Any], extra: list[Any], peer: list[Any],
        kev: bool) -> None:
    epss = data.draw(epss_for(v))
    k = data.draw(kev_entry(v.cve_id)) if kev else None
    other = host_with("esx02", peer)
    small = host_with("esx01", guests, exposure)
    big = host_with("esx01", guests + extra, exposure)

    def score(h: Host) -> ExposureRisk:
        return exposure_risk(v, blast_radius(h, cluster_of(h, other)), kev=k, epss=epss,
                             confidence=confidence, impact_override=override)

    no_lower(score(small), score(big))


@FAST
@given(v=vulns, override=overrides, b=blasts, more=st.tuples(*(st.integers(0, 50),) * 4))
def test_a_larger_blast_radius_never_lowers_the_exposure(
        v: Vulnerability, override: ImpactClass | None, b: BlastRadius,
        more: tuple[int, int, int, int]) -> None:
    g, t, cg, ct = more
    bigger = BlastRadius(b.guests + g, b.tenants + t, b.max_data_class, b.max_criticality,
                         b.exposure, b.cluster_guests + cg, b.cluster_tenants + ct)
    no_lower(exposure_risk(v, b, impact_override=override),
             exposure_risk(v, bigger, impact_override=override))


# --- a KEV listing / higher EPSS never lowers the exposure --------------------------------------


@FAST
@given(data=st.data(), v=vulns, override=overrides, b=blasts, confidence=confidences)
def test_adding_a_kev_listing_never_lowers_the_exposure(
        data: st.DataObject, v: Vulnerability, override: ImpactClass | None, b: BlastRadius,
        confidence: str) -> None:
    epss = data.draw(epss_for(v))
    kev = data.draw(kev_entry(v.cve_id))
    without = exposure_risk(v, b, epss=epss, confidence=confidence, impact_override=override)
    listed = exposure_risk(v, b, kev=kev, epss=epss, confidence=confidence,
                           impact_override=override)
    no_lower(without, listed)
    assert dict(listed.ssvc)["exploitation"] == "active"


@FAST
@given(v=vulns, b=blasts, low=st.floats(0, 1), high=st.floats(0, 1))
def test_a_higher_epss_never_lowers_the_exposure(v: Vulnerability, b: BlastRadius, low: float,
                                                 high: float) -> None:
    low, high = sorted((low, high))
    no_lower(exposure_risk(v, b, epss=EpssScore(v.cve_id, low, 0.5, None)),
             exposure_risk(v, b, epss=EpssScore(v.cve_id, high, 0.5, None)))


def test_the_ssvc_tree_is_monotone_in_every_decision_point() -> None:
    """What the properties above rest on: more of any SSVC input never lowers the outcome."""
    exploitation = ("none", "poc", "active")
    for (e, auto, total), outcomes in _TREE.items():
        ranks = [o.rank for o in outcomes]
        assert ranks == sorted(ranks), (e, auto, total)  # low <= medium <= high mission
        for nxt in exploitation[exploitation.index(e) + 1:]:
            assert all(a.rank <= b.rank for a, b in zip(outcomes, _TREE[(nxt, auto, total)],
                                                        strict=True))
        if not auto:
            assert all(a.rank <= b.rank for a, b in zip(outcomes, _TREE[(e, True, total)],
                                                        strict=True))
        if not total:
            assert all(a.rank <= b.rank for a, b in zip(outcomes, _TREE[(e, auto, True)],
                                                        strict=True))
    assert len(_TREE) == 12


# --- findings, grants, patch risks --------------------------------------------------------------

CVES = [f"CVE-2025-{n:05d}" for n in range(1, 7)]
outcomes = st.sampled_from(list(Outcome))
scores = st.floats(0, 100).map(lambda x: round(x, 1))


@st.composite
def finding_lists(draw: st.DrawFn) -> list[FindingRisk]:
    keys = draw(st.lists(st.tuples(st.sampled_from(CVES), st.sampled_from(["esxi", "vmx"])),
                         min_size=1, max_size=6, unique=True))
    out = []
    for cve, component in keys:
        e = ExposureRisk(draw(scores), 0.5, 0.5, draw(outcomes), ImpactClass.OTHER, (), ())
        due = TODAY + timedelta(days=draw(st.integers(-5, 90)))
        out.append(FindingRisk(cve, component, e, due, f"reason for {cve}"))
    return out


@st.composite
def grant_lists(draw: st.DrawFn) -> list[Grant]:
    n = draw(st.integers(0, 4))
    return [Grant(i, draw(st.sampled_from(["esx01", "esx01", "esx02"])),
                  draw(st.none() | st.sampled_from(CVES)),
                  TODAY + timedelta(days=draw(st.integers(-3, 60))), draw(st.booleans()),
                  "compensating control") for i in range(1, n + 1)]


policies = st.builds(
    Policy, st.just({"Act": 3, "Attend": 14, "Track*": 30, "Track": 90}),
    st.sampled_from(["Act", "Attend"]), st.floats(0, 100), st.floats(1, 100),
    st.integers(1, 3650), st.booleans())
mitigation_maps = st.dictionaries(st.sampled_from(CVES), st.sampled_from(["disable slpd",
                                                                          "power off"]))
patches = st.builds(PatchRisk, scores, st.floats(0, 1), st.floats(0, 1), st.just(False),
                    st.just(()))


@st.composite
def candidates(draw: st.DrawFn, withdrawn: bool) -> Candidate:
    return Candidate("candidate", draw(st.none() | st.dates(date(2020, 1, 1), date(2025, 6, 1))),
                     withdrawn, draw(st.sampled_from(["", "PSOD on some NICs"])))


@st.composite
def patch_inputs(draw: st.DrawFn, withdrawn: bool) -> dict[str, Any]:
    return {
        "candidate": draw(candidates(withdrawn)),
        "maturity": draw(st.none() | st.builds(
            Maturity, st.just("esxi"), st.just("8.0"), st.none() | st.floats(0, 20),
            st.just("supported"), st.integers(0, 6))),
        "family": draw(st.sampled_from([f.value for f in Family])),
        "guests": draw(st.integers(0, 200)), "tenants": draw(st.integers(0, 20)),
        "ring": draw(st.sampled_from(["test", "dev", "staging", "prod", ""])),
        "can_evacuate": draw(st.booleans()),
        "evidence": tuple(draw(st.lists(st.builds(
            RingEvidence, st.sampled_from(["test", "dev"]), st.integers(0, 5),
            st.integers(0, 3), st.floats(0, 200)), max_size=3))),
    }


def run_patch(inputs: dict[str, Any]) -> PatchRisk:
    args = dict(inputs)
    return patch_risk(args.pop("candidate"), args.pop("maturity"), today=TODAY, **args)


# --- a withdrawn release is never a target ------------------------------------------------------


@FAST
@given(inputs=patch_inputs(withdrawn=True), findings=finding_lists(), grants=grant_lists(),
       policy=policies, mitigations=mitigation_maps)
def test_a_withdrawn_release_has_maximal_patch_risk_and_is_never_patched(
        inputs: dict[str, Any], findings: list[FindingRisk], grants: list[Grant], policy: Policy,
        mitigations: dict[str, str]) -> None:
    patch = run_patch(inputs)
    assert patch.score == 100.0 and patch.withdrawn
    d = decide_host("esx01", findings, patch, policy, grants=grants, mitigations=mitigations,
                    today=TODAY)
    assert d is not None
    assert d.decision not in (Decision.PATCH_NOW, Decision.THROUGH_RINGS)
    assert d.decision in (Decision.MITIGATE_FIRST, Decision.DEFER)


@FAST
@given(inputs=patch_inputs(withdrawn=False))
def test_a_release_that_is_not_withdrawn_never_claims_to_be(inputs: dict[str, Any]) -> None:
    patch = run_patch(inputs)
    assert not patch.withdrawn
    assert 0.0 <= patch.score < 100.0


# --- order of inputs does not matter ------------------------------------------------------------

factor_lists = st.lists(st.builds(
    Factor, st.sampled_from(["a", "b", "c", "d"]), st.just(""), st.floats(-0.5, 1.5),
    st.sampled_from(["likelihood", "impact", "scale", "other"])), max_size=7)


@FAST
@given(factors=factor_lists, data=st.data())
def test_combine_does_not_depend_on_the_order_of_factors(factors: list[Factor],
                                                         data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(factors))
    a, b = combine(factors), combine(shuffled)
    assert a[2] == b[2]
    assert abs(a[0] - b[0]) < 1e-12 and abs(a[1] - b[1]) < 1e-12


def _essence(d: HostDecision | None) -> tuple[Any, ...]:
    """What a user acts on; findings compared as a set, reasons excluded (tie wording)."""
    assert d is not None
    return (d.decision, d.outcome, d.exposure_score, d.deadline, d.mitigation, d.suggest_defer,
            d.defer_until, d.patch,
            tuple(sorted((f.cve, f.component, f.deadline, f.exposure.score, f.deferred_by)
                         for f in d.findings)))


@FAST
@given(findings=finding_lists(), grants=grant_lists(), patch=patches, policy=policies,
       mitigations=mitigation_maps, data=st.data())
def test_decision_does_not_depend_on_the_order_of_findings(
        findings: list[FindingRisk], grants: list[Grant], patch: PatchRisk, policy: Policy,
        mitigations: dict[str, str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(findings))
    a = decide_host("esx01", findings, patch, policy, grants=grants, mitigations=mitigations,
                    today=TODAY)
    b = decide_host("esx01", shuffled, patch, policy, grants=grants, mitigations=mitigations,
                    today=TODAY)
    assert _essence(a) == _essence(b)


def _live_cover(grants: list[Grant], f: FindingRisk, policy: Policy) -> int:
    return sum(1 for g in grants if g.covers("esx01", f.cve) and g.expires_on >= TODAY
               and (g.approved or not policy.exception_needs_approval))


@FAST
@given(findings=finding_lists(), grants=grant_lists(), patch=patches, policy=policies,
       data=st.data())
def test_which_findings_are_deferred_does_not_depend_on_the_order_of_grants(
        findings: list[FindingRisk], grants: list[Grant], patch: PatchRisk, policy: Policy,
        data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(grants))
    a = decide_host("esx01", findings, patch, policy, grants=grants, today=TODAY)
    b = decide_host("esx01", findings, patch, policy, grants=shuffled, today=TODAY)
    assert a is not None and b is not None
    assert (a.decision, a.outcome, a.exposure_score, a.deadline) == (
        b.decision, b.outcome, b.exposure_score, b.deadline)
    deferred = {(f.cve, f.component) for f in a.findings if f.deferred_by is not None}
    assert deferred == {(f.cve, f.component) for f in b.findings if f.deferred_by is not None}
    assert deferred == {(f.cve, f.component) for f in findings
                        if _live_cover(grants, f, policy)}


@FAST
@given(findings=finding_lists(), grants=grant_lists(), patch=patches, policy=policies,
       data=st.data())
def test_decision_does_not_depend_on_the_order_of_non_overlapping_grants(
        findings: list[FindingRisk], grants: list[Grant], patch: PatchRisk, policy: Policy,
        data: st.DataObject) -> None:
    # overlapping live grants (two covering one finding) are the known bug shown in
    # tests/unit/test_risk.py::test_defer_until_does_not_depend_on_the_order_of_overlapping_grants
    assume(all(_live_cover(grants, f, policy) <= 1 for f in findings))
    shuffled = data.draw(st.permutations(grants))
    a = decide_host("esx01", findings, patch, policy, grants=grants, today=TODAY)
    b = decide_host("esx01", findings, patch, policy, grants=shuffled, today=TODAY)
    assert a == b


# --- every score is reproducible from its factors -----------------------------------------------


@FAST
@given(data=st.data(), v=vulns, b=blasts, override=overrides, confidence=confidences,
       kev=st.booleans())
def test_every_exposure_score_is_reproducible_from_its_factors(
        data: st.DataObject, v: Vulnerability, b: BlastRadius, override: ImpactClass | None,
        confidence: str, kev: bool) -> None:
    er = exposure_risk(v, b, kev=data.draw(kev_entry(v.cve_id)) if kev else None,
                       epss=data.draw(epss_for(v)), confidence=confidence,
                       impact_override=override)
    assert combine(er.factors) == (er.likelihood, er.impact, er.score)
    assert 0.0 <= er.score <= 100.0
    assert next(f.value for f in er.factors if f.name == "impact_class") == er.impact_class.value


@FAST
@given(inputs=patch_inputs(withdrawn=False))
def test_every_patch_score_is_reproducible_from_its_factors(inputs: dict[str, Any]) -> None:
    pr = run_patch(inputs)
    assert combine(pr.factors) == (pr.likelihood, pr.impact, pr.score)


@FAST
@given(inputs=patch_inputs(withdrawn=True))
def test_a_withdrawn_patch_score_is_reproducible_from_its_factors(inputs: dict[str, Any]) -> None:
    # the maximum comes from the listed factors (likelihood and impact 1.0), not an override
    pr = run_patch(inputs)
    assert combine(pr.factors) == (pr.likelihood, pr.impact, pr.score) == (1.0, 1.0, 100.0)


# --- policy documents ---------------------------------------------------------------------------


@st.composite
def valid_policies(draw: st.DrawFn) -> Policy:
    days = sorted(draw(st.lists(st.integers(1, 3650), min_size=4, max_size=4)))
    return Policy(sla_days=dict(zip(("Act", "Attend", "Track*", "Track"), days, strict=True)),
                  emergency_outcome=draw(st.sampled_from(["Act", "Attend"])),
                  mitigate_when_patch_risk_over=draw(st.floats(0, 100)),
                  suggest_defer_ratio=draw(st.floats(1, 100)),
                  max_exception_days=draw(st.integers(1, 3650)),
                  exception_needs_approval=draw(st.booleans()))


@FAST
@given(policy=valid_policies())
def test_policy_from_dict_accepts_what_as_dict_produces(policy: Policy) -> None:
    assert policy_from_dict(policy.as_dict()) == policy
    text = yaml.safe_dump(policy.as_dict(), sort_keys=False)
    assert policy_from_dict(yaml.safe_load(text), "policy.yaml") == policy


json_scalars = st.none() | st.booleans() | st.integers(-10, 5000) | st.floats(-1, 5000) | \
    st.sampled_from(["Act", "Attend", "Track", "Track*", "yes", ""])
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["Act", "Attend", "Track*", "Track",
                                                              "Urgent"]), inner, max_size=4),
                           max_leaves=8)
policy_keys = st.sampled_from(["sla_days", "emergency_outcome", "mitigate_when_patch_risk_over",
                               "suggest_defer_ratio", "max_exception_days",
                               "exception_needs_approval", "sla_day"])


@FAST
@given(doc=st.dictionaries(policy_keys, json_values, max_size=6))
def test_a_policy_document_either_validates_and_round_trips_or_is_an_input_error(
        doc: dict[str, Any]) -> None:
    try:
        policy = policy_from_dict(doc, "policy.yaml")
    except InputError as err:
        assert err.problems
        assert all(p.location.startswith("policy.yaml") for p in err.problems)
        return
    assert policy_from_dict(policy.as_dict()) == policy


def test_the_order_of_grants_and_findings_covers_every_permutation_of_a_small_case() -> None:
    """Exhaustive companion to the properties: three findings, every order, same essence."""
    es = [ExposureRisk(s, 0.5, 0.5, o, ImpactClass.OTHER, (), ())
          for s, o in ((40.0, Outcome.ATTEND), (70.0, Outcome.ACT), (5.0, Outcome.TRACK))]
    fs = [FindingRisk(c, "esxi", e, TODAY + timedelta(days=n), "r")
          for n, (c, e) in enumerate(zip(CVES, es, strict=False))]
    patch = PatchRisk(20.0, 0.2, 0.2, False, ())
    seen = {_essence(decide_host("esx01", list(p), patch, Policy(), today=TODAY))
            for p in itertools.permutations(fs)}
    assert len(seen) == 1
