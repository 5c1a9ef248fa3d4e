"""Unit tests of the risk domain: factors, impact class, exposure, deadline, patch risk, policy,
overrides and the decision rules of ``decide_host``.

Impact classes are checked on real records from the bundled NVD snapshot (``hvpatch/data/feeds``);
the facts each case rests on (vector, description words, KEV listing) are asserted first, so a
case cannot silently lose its meaning when the data changes. Decision rules are checked one at a
time on exposures built here, so each test names the rule it exercises.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from hvpatch.adapters.feeds.kev import iter_kev
from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.domain.advisories import (
    AnalysisStatus,
    CvssMetric,
    EpssScore,
    KevEntry,
    Vulnerability,
)
from hvpatch.domain.fleet import Exposure
from hvpatch.domain.risk import (
    DEFAULT_POLICY,
    BlastRadius,
    Candidate,
    Decision,
    Factor,
    FindingRisk,
    Grant,
    ImpactClass,
    Maturity,
    Outcome,
    Override,
    Policy,
    RingEvidence,
    classify,
    combine,
    deadline,
    decide_host,
    exposure_risk,
    overrides_from_dict,
    patch_risk,
    policy_from_dict,
)
from hvpatch.domain.risk.exposure import ExposureRisk, mission_and_wellbeing
from hvpatch.domain.risk.impact import parse_vector, vector_of
from hvpatch.domain.risk.patch import PatchRisk
from hvpatch.errors import InputError

FEEDS = Path(__file__).parents[2] / "src" / "hvpatch" / "data" / "feeds"
TODAY = date(2025, 3, 24)


@functools.cache
def _records(name: str) -> dict[str, Vulnerability]:
    path = FEEDS / "nvd" / name
    return {v.cve_id: v for v in iter_nvd(path)}


def record(cve: str, name: str) -> Vulnerability:
    return _records(name)[cve]


@functools.cache
def _kev() -> dict[str, KevEntry]:
    path = FEEDS / "kev" / "known_exploited_vulnerabilities.json.gz"
    return {k.cve_id: k for k in iter_kev(path)}


SUB_2025 = "nvdcve-1.1-2025-hypervisor-subset.json.gz"
SUB_2021 = "nvdcve-1.1-2021-hypervisor-subset.json.gz"
SUB_2018 = "nvdcve-1.1-2018-hypervisor-subset.json.gz"
SUB_2016 = "nvdcve-1.1-2016-hypervisor-subset.json.gz"


def synthetic(vector: str, *, description: str = "A flaw.", version: str = "3.1",
              cwes: tuple[str, ...] = (), ssvc: tuple[tuple[str, str], ...] = (),
              extra: tuple[CvssMetric, ...] = ()) -> Vulnerability:
    metric = CvssMetric(version, vector, 7.0, "HIGH")
    return Vulnerability("CVE-2099-0001", None, None, description, AnalysisStatus.ANALYSED,
                         "test", cvss=(metric, *extra), cwes=cwes, ssvc=ssvc)


def blast(guests: int = 5, tenants: int = 1, data: int = 0, crit: int = 0,
          exposure: Exposure = Exposure.INTERNAL, cluster_guests: int | None = None,
          cluster_tenants: int | None = None) -> BlastRadius:
    return BlastRadius(guests, tenants, data, crit, exposure,
                       guests if cluster_guests is None else cluster_guests,
                       tenants if cluster_tenants is None else cluster_tenants)


# --- factors: noisy-OR, scale, rounding ---------------------------------------------------------


def test_combine_is_noisy_or_per_side_times_scale() -> None:
    fs = [Factor("a", "", 0.5, "likelihood"), Factor("b", "", 0.5, "likelihood"),
          Factor("c", "", 0.4, "impact"), Factor("conf", "medium", 0.5, "scale")]
    likelihood, impact, score = combine(fs)
    assert likelihood == pytest.approx(0.75)
    assert impact == pytest.approx(0.4)
    assert score == 15.0  # 100 * 0.75 * 0.4 * 0.5


def test_combine_clamps_weights_and_an_empty_side_scores_zero() -> None:
    fs = [Factor("a", "", 1.7, "likelihood"), Factor("b", "", -3.0, "impact"),
          Factor("c", "", 0.5, "impact"), Factor("s", "", 2.0, "scale")]
    assert combine(fs) == (1.0, 0.5, 50.0)  # no weight outside [0, 1], scale included
    assert combine([*fs, Factor("t", "", -1.0, "scale")])[2] == 0.0
    assert combine([Factor("a", "", 0.9, "likelihood")])[2] == 0.0  # no impact: nothing at risk


def test_combine_rounds_the_score_to_one_decimal() -> None:
    _, _, score = combine([Factor("a", "", 1 / 3, "likelihood"), Factor("b", "", 1.0, "impact")])
    assert score == 33.3


def test_factor_renders_part_name_value_weight_and_note() -> None:
    f = Factor("kev", "listed 2025-03-04", 0.9, "likelihood", "known exploited")
    assert str(f) == "likelihood/kev = listed 2025-03-04: weight 0.900 (known exploited)"


# --- impact class on real records ---------------------------------------------------------------


def test_esxi_vmx_escape_cve_2025_22224_is_vm_escape() -> None:
    v = record("CVE-2025-22224", SUB_2025)
    assert "VMX process running on the host" in v.description
    assert vector_of(v).av == "L" and vector_of(v).scope_changed
    cls, why = classify(v)
    assert cls is ImpactClass.VM_ESCAPE
    assert "VMX" in why
    assert cls.total


def test_esxi_xhci_escape_api_record_cve_2024_22252_is_vm_escape() -> None:
    v = record("CVE-2024-22252", "api/CVE-2024-22252.json")
    assert classify(v)[0] is ImpactClass.VM_ESCAPE


def test_openslp_cve_2021_21974_facts() -> None:
    """The record: OpenSLP heap overflow, reached on port 427 from the same network segment."""
    v = record("CVE-2021-21974", SUB_2021)
    assert "OpenSLP" in v.description and "port 427" in v.description
    vec = vector_of(v)
    assert (vec.av, vec.pr, vec.ui, vec.scope_changed) == ("A", "N", "N", False)
    assert "CWE-787" in v.cwes


def test_openslp_cve_2021_21974_is_management_plane() -> None:
    cls, why = classify(record("CVE-2021-21974", SUB_2021))
    assert cls is ImpactClass.MGMT_PLANE, why


def test_openslp_cve_2021_21974_override_makes_it_management_plane_and_cluster_wide() -> None:
    """What the bundled examples/overrides.yaml does for this CVE until the classifier knows."""
    v = record("CVE-2021-21974", SUB_2021)
    assert classify(v, ImpactClass.MGMT_PLANE) == (ImpactClass.MGMT_PLANE, "per-CVE override file")
    b = blast(guests=4, tenants=1, cluster_guests=40, cluster_tenants=6)
    er = exposure_risk(v, b, impact_override=ImpactClass.MGMT_PLANE)
    names = {f.name: f for f in er.factors}
    assert names["guests"].value == "40 on the cluster"
    assert names["tenants"].value == "6 on the cluster"
    assert "cluster_wide" in names
    assert dict(er.ssvc)["mission_and_wellbeing"] == "high"  # six tenants reachable via the plane


def test_qemu_vmsvga_dos_cve_2016_4453_is_host_dos() -> None:
    v = record("CVE-2016-4453", SUB_2016)
    assert "QEMU" in v.description and "denial of service" in v.description
    assert classify(v) == (ImpactClass.HOST_DOS, "CVSS impact on availability only")


def test_qemu_nbd_dos_cve_2024_7409_is_host_dos() -> None:
    assert classify(record("CVE-2024-7409", "api/CVE-2024-7409.json"))[0] is ImpactClass.HOST_DOS


def test_vcenter_network_rce_cve_2021_22005_is_management_plane() -> None:
    cls, why = classify(record("CVE-2021-22005", "api/CVE-2021-22005.json"))
    assert cls is ImpactClass.MGMT_PLANE
    assert "vCenter" in why


@pytest.mark.parametrize(("cve", "subset"), [("CVE-2018-19964", SUB_2018),
                                             ("CVE-2021-3416", SUB_2021)])
def test_availability_only_dos_mentioning_the_host_is_host_dos(cve: str, subset: str) -> None:
    v = record(cve, subset)
    vec = vector_of(v)
    assert (vec.c, vec.i, vec.a) == ("N", "N", "H")
    assert classify(v)[0] is ImpactClass.HOST_DOS


def test_esxi_hgfs_leak_cve_2025_22226_is_info_disclosure() -> None:
    v = record("CVE-2025-22226", SUB_2025)
    assert "information disclosure" in v.description
    assert classify(v)[0] is ImpactClass.INFO_DISCLOSURE


def test_override_wins_over_the_data() -> None:
    v = record("CVE-2025-22224", SUB_2025)
    assert classify(v, ImpactClass.OTHER) == (ImpactClass.OTHER, "per-CVE override file")


# --- CVSS vectors -------------------------------------------------------------------------------


def test_cvss_31_vector() -> None:
    vec = parse_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:L/A:N")
    assert (vec.av, vec.ac, vec.pr, vec.ui, vec.c, vec.i, vec.a) == ("N", "L", "N", "N", "H",
                                                                     "L", "N")
    assert vec.scope_changed and vec.automatable


def test_cvss_40_vector_reads_vulnerable_system_impacts() -> None:
    # the example vector of the CVSS v4.0 specification (FIRST), base metrics only
    vec = parse_vector("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
    assert (vec.av, vec.ac, vec.pr, vec.ui) == ("N", "L", "N", "N")
    assert (vec.c, vec.i, vec.a) == ("H", "H", "H")
    assert not vec.scope_changed
    assert vec.automatable


@pytest.mark.parametrize(("sub", "changed"), [("SC:N/SI:N/SA:N", False), ("SC:L/SI:N/SA:N", True),
                                              ("SC:N/SI:H/SA:N", True), ("SC:N/SI:N/SA:H", True)])
def test_cvss_40_subsequent_system_impact_is_a_scope_change(sub: str, changed: bool) -> None:
    vec = parse_vector(f"CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/{sub}")
    assert vec.scope_changed is changed


@pytest.mark.parametrize(("ui", "expected"), [("N", "N"), ("P", "R"), ("A", "R")])
def test_cvss_40_user_interaction_passive_or_active_is_required(ui: str, expected: str) -> None:
    vec = parse_vector(f"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:{ui}/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N")
    assert vec.ui == expected
    assert vec.automatable is (expected == "N")


def test_cvss_40_threat_and_supplemental_metrics_are_ignored() -> None:
    base = "CVSS:4.0/AV:A/AC:H/AT:P/PR:H/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"
    assert parse_vector(base + "/E:A/S:P/AU:Y/R:U") == parse_vector(base)


def test_cvss_40_only_record_classifies_through_its_scope_change() -> None:
    v = synthetic("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H",
                  version="4.0")
    assert classify(v) == (ImpactClass.VM_ESCAPE,
                           "CVSS scope change from a local/adjacent attacker (S:C)")


def test_vector_of_prefers_primary_then_newest_and_ignores_v2() -> None:
    v3 = CvssMetric("3.1", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", 5.5, "MEDIUM")
    v4 = CvssMetric("4.0", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                    9.3, "CRITICAL")
    v4_secondary = CvssMetric(v4.version, v4.vector, 9.3, "CRITICAL", primary=False)
    v2 = CvssMetric("2.0", "AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, "HIGH")
    base = synthetic("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H")
    assert vector_of(base).av == "L"
    assert vector_of(replace(base, cvss=(v3, v4))).av == "N"
    assert vector_of(replace(base, cvss=(v4_secondary, v3))).av == "L"
    assert vector_of(replace(base, cvss=(v2,))).av == ""


# --- exposure -----------------------------------------------------------------------------------


def test_outcomes_are_ordered_track_to_act() -> None:
    assert [o.rank for o in (Outcome.TRACK, Outcome.TRACK_STAR, Outcome.ATTEND, Outcome.ACT)] \
        == [0, 1, 2, 3]


@pytest.mark.parametrize(("b", "expected"), [
    (blast(guests=0, tenants=0), "low"),
    (blast(guests=0, tenants=0, exposure=Exposure.INTERNET), "low"),   # empty host
    (blast(guests=5, tenants=1), "low"),
    (blast(guests=5, tenants=1, exposure=Exposure.INTERNET), "medium"),
    (blast(guests=5, tenants=2), "medium"),
    (blast(guests=5, tenants=1, crit=1), "medium"),
    (blast(guests=5, tenants=1, data=1), "medium"),
    (blast(guests=5, tenants=3), "high"),
    (blast(guests=5, tenants=1, crit=2), "high"),
    (blast(guests=5, tenants=1, data=2), "high"),
])
def test_mission_and_wellbeing_thresholds(b: BlastRadius, expected: str) -> None:
    assert mission_and_wellbeing(b, cluster_wide=False) == expected


def test_mission_and_wellbeing_counts_the_cluster_for_a_shared_plane() -> None:
    b = blast(guests=5, tenants=1, cluster_guests=50, cluster_tenants=3)
    assert mission_and_wellbeing(b, cluster_wide=False) == "low"
    assert mission_and_wellbeing(b, cluster_wide=True) == "high"


def test_exposure_lists_kev_epss_and_confidence_and_scales_by_confidence() -> None:
    v = record("CVE-2025-22224", SUB_2025)
    kev = _kev()["CVE-2025-22224"]
    epss = EpssScore("CVE-2025-22224", 0.01561, 0.73, date(2025, 3, 20))
    b = blast(guests=10, tenants=2, data=2, crit=1)
    high = exposure_risk(v, b, kev=kev, epss=epss, confidence="high")
    low = exposure_risk(v, b, kev=kev, epss=epss, confidence="low")
    names = [f.name for f in high.factors]
    assert {"kev", "epss", "attack_vector", "impact_class", "guests", "tenants",
            "data_classification", "criticality", "management_exposure", "confidence"} <= set(names)
    assert "ransomware" not in names  # KEV says known_ransomware = Unknown for this one
    assert next(f for f in high.factors if f.name == "epss").value == "0.01561 on 2025-03-20"
    assert low.score == pytest.approx(high.score * 0.5, abs=0.1)
    assert low.outcome is high.outcome  # confidence scales the score, not the SSVC outcome


def test_epss_at_the_threshold_counts_as_proof_of_concept() -> None:
    v = synthetic("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H")
    b = blast(guests=5, tenants=4)
    below = exposure_risk(v, b, epss=EpssScore(v.cve_id, 0.0999, 0.9, None))
    at = exposure_risk(v, b, epss=EpssScore(v.cve_id, 0.1, 0.9, None))
    assert dict(below.ssvc)["exploitation"] == "none"
    assert dict(at.ssvc)["exploitation"] == "poc"
    assert next(f for f in at.factors if f.name == "epss").value == "0.10000 on unknown date"


def test_record_ssvc_exploitation_and_automatable_are_read() -> None:
    v = synthetic("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H",
                  ssvc=(("Exploitation", "active"), ("Automatable", "yes")))
    er = exposure_risk(v, blast(guests=5, tenants=4))
    assert dict(er.ssvc)["exploitation"] == "active"
    assert dict(er.ssvc)["automatable"] == "yes"
    assert next(f for f in er.factors if f.name == "automatable").note == "SSVC"


def test_record_ssvc_technical_impact_is_read_from_nvd_api_records() -> None:
    v = record("CVE-2024-7409", "api/CVE-2024-7409.json")
    assert ("technicalImpact", "partial") in v.ssvc
    er = exposure_risk(v, blast(), impact_override=ImpactClass.VM_ESCAPE)
    assert dict(er.ssvc)["technical_impact"] == "partial"


def test_network_vector_weighs_management_exposure_more() -> None:
    local = synthetic("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H")
    network = synthetic("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")

    def weight(v: Vulnerability) -> float:
        er = exposure_risk(v, blast(exposure=Exposure.INTERNET))
        return next(f.weight for f in er.factors if f.name == "management_exposure")

    assert weight(local) == 0.05
    assert weight(network) == 0.4


# --- deadline -----------------------------------------------------------------------------------


def _kev_due(due: date | None) -> KevEntry:
    return KevEntry("CVE-2025-22224", "VMware", "ESXi", "x", date(2025, 3, 4), due, "patch", False)


def test_deadline_is_the_kev_due_date_when_earlier_than_the_sla() -> None:
    sla = {"Act": 30, "Attend": 30, "Track*": 30, "Track": 90}
    due, why = deadline(Outcome.ACT, date(2025, 3, 4), sla, _kev_due(date(2025, 3, 25)))
    assert due == date(2025, 3, 25)
    assert "KEV" in why


def test_deadline_is_the_sla_when_earlier_than_the_kev_due_date() -> None:
    due, why = deadline(Outcome.ACT, date(2025, 3, 4), DEFAULT_POLICY.sla_days,
                        _kev_due(date(2025, 3, 25)))
    assert due == date(2025, 3, 7)
    assert why == "policy SLA Act: 3 days from 2025-03-04"


def test_deadline_tie_names_the_kev_due_date() -> None:
    due, why = deadline(Outcome.ACT, date(2025, 3, 22), DEFAULT_POLICY.sla_days,
                        _kev_due(date(2025, 3, 25)))
    assert due == date(2025, 3, 25) and "KEV" in why


@pytest.mark.parametrize("kev", [None, _kev_due(None)])
def test_deadline_without_a_kev_due_date_is_the_sla_of_the_outcome(kev: KevEntry | None) -> None:
    for outcome, days in (("Act", 3), ("Attend", 14), ("Track*", 30), ("Track", 90)):
        due, _ = deadline(Outcome(outcome), TODAY, DEFAULT_POLICY.sla_days, kev)
        assert due == TODAY + timedelta(days=days)


# --- patch risk ---------------------------------------------------------------------------------


def _patch(candidate: Candidate, *, family: str = "esxi", guests: int = 10, tenants: int = 2,
           ring: str = "prod", can_evacuate: bool = True,
           evidence: tuple[RingEvidence, ...] = ()) -> PatchRisk:
    return patch_risk(candidate, None, family=family, guests=guests, tenants=tenants, ring=ring,
                      can_evacuate=can_evacuate, today=TODAY, evidence=evidence)


@pytest.mark.parametrize(("age", "weight"), [(0, 0.25), (6, 0.25), (7, 0.12), (29, 0.12),
                                             (30, 0.05), (89, 0.05), (90, 0.02), (400, 0.02)])
def test_patch_maturity_weight_by_days_since_release(age: int, weight: float) -> None:
    pr = _patch(Candidate("x", TODAY - timedelta(days=age)))
    assert next(f.weight for f in pr.factors if f.name == "maturity") == weight


def test_withdrawn_candidate_scores_the_maximum() -> None:
    pr = _patch(Candidate("ESXi 7.0 Update 3 (18644231)", date(2021, 10, 5), True,
                          "withdrawn by VMware"), ring="test", guests=0, tenants=0)
    assert pr.score == 100.0 and pr.withdrawn
    assert pr.factors[0].name == "withdrawn"


def test_newer_and_proven_patches_score_lower() -> None:
    fresh = _patch(Candidate("x", TODAY))
    old = _patch(Candidate("x", TODAY - timedelta(days=120)))
    proven = _patch(Candidate("x", TODAY - timedelta(days=120)),
                    evidence=(RingEvidence("test", 3, 0, 48.0),))
    failed = _patch(Candidate("x", TODAY - timedelta(days=120)),
                    evidence=(RingEvidence("test", 2, 1, 48.0),))
    assert fresh.score > old.score > proven.score
    assert failed.score > old.score
    assert "no_regression_evidence" in {f.name for f in old.factors}
    assert "no_regression_evidence" not in {f.name for f in proven.factors}


def test_patch_harm_reads_headroom_rollback_ring_and_product_history() -> None:
    c = Candidate("x", TODAY - timedelta(days=120))
    base = _patch(c)
    assert _patch(c, can_evacuate=False).score > base.score
    assert _patch(c, can_evacuate=False, guests=0).factors == _patch(c, guests=0).factors
    assert _patch(c, family="ahv").score > base.score
    assert _patch(c, ring="test").score < base.score
    young = patch_risk(c, Maturity("esxi", "9.0", 0.5, "supported", 2), family="esxi",
                       guests=10, tenants=2, ring="prod", can_evacuate=True, today=TODAY)
    assert {"bad_patch_history", "young_product_line"} <= {f.name for f in young.factors}
    assert young.score > base.score


def test_known_issue_on_a_release_adds_likelihood() -> None:
    c = Candidate("x", TODAY - timedelta(days=120))
    flagged = Candidate("x", c.release_date, False, "PSOD with some NICs")
    assert _patch(flagged).score > _patch(c).score


# --- policy -------------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert policy_from_dict(None) is DEFAULT_POLICY
    assert policy_from_dict({}) == DEFAULT_POLICY
    assert DEFAULT_POLICY.sla_days == {"Act": 3, "Attend": 14, "Track*": 30, "Track": 90}


def test_policy_partial_document_keeps_the_other_defaults() -> None:
    p = policy_from_dict({"sla_days": {"Act": 1}, "mitigate_when_patch_risk_over": 40})
    assert p.sla_days == {"Act": 1, "Attend": 14, "Track*": 30, "Track": 90}
    assert p.mitigate_when_patch_risk_over == 40.0
    assert p.suggest_defer_ratio == DEFAULT_POLICY.suggest_defer_ratio


@pytest.mark.parametrize(("doc", "location", "words"), [
    ({"sla_day": {}}, "p.yaml: sla_day", "unknown field"),
    ({"sla_days": [3, 14]}, "p.yaml: sla_days", "mapping"),
    ({"sla_days": {"Act": 0}}, "p.yaml: sla_days.Act", "between 1 and 3650"),
    ({"sla_days": {"Act": True}}, "p.yaml: sla_days.Act", "whole days"),
    ({"sla_days": {"Act": 2.5}}, "p.yaml: sla_days.Act", "whole days"),
    ({"sla_days": {"Urgent": 1}}, "p.yaml: sla_days.Urgent", "unknown outcome"),
    ({"sla_days": {"Act": 20}}, "p.yaml: sla_days", "Act <= Attend"),
    ({"mitigate_when_patch_risk_over": 101}, "p.yaml: mitigate_when_patch_risk_over", "0 and 100"),
    ({"mitigate_when_patch_risk_over": "60"}, "p.yaml: mitigate_when_patch_risk_over", "number"),
    ({"suggest_defer_ratio": 0.5}, "p.yaml: suggest_defer_ratio", "between 1 and 100"),
    ({"max_exception_days": 30.5}, "p.yaml: max_exception_days", "between 1 and 3650"),
    ({"max_exception_days": False}, "p.yaml: max_exception_days", "number"),
    ({"emergency_outcome": "Track"}, "p.yaml: emergency_outcome", "Act or Attend"),
    ({"exception_needs_approval": "yes"}, "p.yaml: exception_needs_approval", "true or false"),
    ([1, 2], "p.yaml", "mapping"),
])
def test_policy_rejects_a_bad_field_naming_it(doc: object, location: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        policy_from_dict(doc, "p.yaml")
    assert any(p.location == location and words in p.message for p in err.value.problems), \
        err.value.problems


def test_policy_reports_every_problem_at_once() -> None:
    with pytest.raises(InputError) as err:
        policy_from_dict({"sla_days": {"Act": -1}, "suggest_defer_ratio": 0,
                          "emergency_outcome": "Now"}, "p.yaml")
    assert {p.location for p in err.value.problems} == {
        "p.yaml: sla_days.Act", "p.yaml: suggest_defer_ratio", "p.yaml: emergency_outcome"}
    assert "nothing was changed" in str(err.value)


def test_policy_with_mixed_type_unknown_keys_is_an_input_error() -> None:
    with pytest.raises(InputError):
        policy_from_dict({1: 2, "foo": 3}, "p.yaml")


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_read_impact_and_mitigation_and_normalise_the_id() -> None:
    got = overrides_from_dict({"overrides": {
        "cve-2021-21974": {"impact": "management-plane", "mitigation": "disable slpd"},
        "CVE-2024-37085": {"mitigation": "unset ESX Admins"}}})
    assert got == {"CVE-2021-21974": Override(ImpactClass.MGMT_PLANE, "disable slpd"),
                   "CVE-2024-37085": Override(None, "unset ESX Admins")}
    assert overrides_from_dict(None) == {}


@pytest.mark.parametrize(("doc", "location", "words"), [
    ({"override": {}}, "o.yaml", "'overrides' at the top"),
    ({"overrides": {"21974": {}}}, "o.yaml: overrides.21974", "CVE ids"),
    ({"overrides": {"CVE-2021-21974": "mgmt"}}, "o.yaml: overrides.CVE-2021-21974", "mapping"),
    ({"overrides": {"CVE-2021-21974": {"impact": "mgmt", "why": "x"}}},
     "o.yaml: overrides.CVE-2021-21974", "mapping"),
    ({"overrides": {"CVE-2021-21974": {"impact": "vm_escape"}}},
     "o.yaml: overrides.CVE-2021-21974.impact", "unknown impact class"),
    ({"overrides": {"CVE-2021-21974": {"mitigation": 42}}},
     "o.yaml: overrides.CVE-2021-21974.mitigation", "text"),
])
def test_overrides_reject_a_bad_entry_naming_it(doc: object, location: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        overrides_from_dict(doc, "o.yaml")
    assert any(p.location == location and words in p.message for p in err.value.problems), \
        err.value.problems


def test_overrides_with_a_list_as_impact_is_an_input_error() -> None:
    with pytest.raises(InputError):
        overrides_from_dict({"overrides": {"CVE-2021-21974": {"impact": ["vm-escape"]}}})


# --- decide_host: one rule at a time ------------------------------------------------------------


def exposure(outcome: Outcome, score: float) -> ExposureRisk:
    return ExposureRisk(score, 0.5, 0.5, outcome, ImpactClass.OTHER, (), ())


def finding(cve: str, outcome: Outcome, score: float, due: date = date(2025, 4, 1),
            why: str = "policy SLA") -> FindingRisk:
    return FindingRisk(cve, "esxi", exposure(outcome, score), due, why)


def prisk(score: float, withdrawn: bool = False) -> PatchRisk:
    return PatchRisk(score, 0.5, 0.5, withdrawn, ())


ACT = finding("CVE-2025-22224", Outcome.ACT, 75.0, date(2025, 3, 25), "CISA KEV due date")
ATTEND = finding("CVE-2021-21974", Outcome.ATTEND, 40.0)
TRACK = finding("CVE-2016-4453", Outcome.TRACK, 5.0, date(2025, 6, 22))


def test_no_findings_no_decision() -> None:
    assert decide_host("esx01", [], prisk(10), DEFAULT_POLICY, today=TODAY) is None


def test_rule1_approved_unexpired_exception_defers_until_it_lapses() -> None:
    g = Grant(7, "esx01", "CVE-2016-4453", TODAY + timedelta(days=10), True, "port disabled")
    d = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[g], today=TODAY)
    assert d is not None
    assert d.decision is Decision.DEFER
    assert d.defer_until == TODAY + timedelta(days=10)
    assert d.findings[0].deferred_by == 7
    assert d.deadline is None


def test_rule1_exception_is_live_on_its_expiry_day_and_gone_the_day_after() -> None:
    g = Grant(7, "esx01", None, TODAY, True, "port disabled")
    on = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[g], today=TODAY)
    after = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[g],
                        today=TODAY + timedelta(days=1))
    assert on is not None and on.decision is Decision.DEFER
    assert after is not None and after.decision is Decision.THROUGH_RINGS
    assert after.findings[0].deferred_by is None


def test_rule1_exception_for_another_host_or_cve_defers_nothing() -> None:
    grants = [Grant(1, "esx02", None, TODAY + timedelta(days=9), True, "x"),
              Grant(2, "esx01", "CVE-2016-0001", TODAY + timedelta(days=9), True, "x")]
    d = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=grants, today=TODAY)
    assert d is not None and d.decision is not Decision.DEFER


def test_rule1_partial_defer_decides_on_the_rest() -> None:
    g = Grant(3, "esx01", "CVE-2025-22224", TODAY + timedelta(days=5), True, "VMs isolated")
    d = decide_host("esx01", [ACT, TRACK], prisk(10), DEFAULT_POLICY, grants=[g], today=TODAY)
    assert d is not None
    assert d.decision is Decision.THROUGH_RINGS
    assert d.outcome is Outcome.TRACK
    assert d.deadline == TRACK.deadline
    assert any("deferred by approved exception(s) [3]" in r for r in d.reasons)


def test_rule1_unapproved_exception_defers_only_when_the_policy_needs_no_approval() -> None:
    g = Grant(4, "esx01", None, TODAY + timedelta(days=5), False, "pending")
    strict = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[g], today=TODAY)
    lax = decide_host("esx01", [TRACK], prisk(10), Policy(exception_needs_approval=False),
                      grants=[g], today=TODAY)
    assert strict is not None and strict.decision is Decision.THROUGH_RINGS
    assert lax is not None and lax.decision is Decision.DEFER


def test_rule2_withdrawn_candidate_is_never_a_target_even_for_act() -> None:
    d = decide_host("esx01", [ACT], prisk(100, withdrawn=True), DEFAULT_POLICY, today=TODAY)
    assert d is not None
    assert d.decision is Decision.MITIGATE_FIRST
    assert any("withdrawn" in r for r in d.reasons)


def test_rule3_act_is_patch_now_with_the_earliest_deadline() -> None:
    d = decide_host("esx01", [TRACK, ACT, ATTEND], prisk(20), DEFAULT_POLICY, today=TODAY)
    assert d is not None
    assert d.decision is Decision.PATCH_NOW
    assert (d.outcome, d.exposure_score, d.deadline) == (Outcome.ACT, 75.0, date(2025, 3, 25))
    assert "CISA KEV due date (CVE-2025-22224)" in d.reasons[1]


def test_rule3_risky_patch_without_a_workaround_is_still_patch_now() -> None:
    d = decide_host("esx01", [ACT], prisk(85), DEFAULT_POLICY, today=TODAY)
    assert d is not None and d.decision is Decision.PATCH_NOW


def test_rule3_risky_patch_with_a_workaround_mitigates_first_even_for_act() -> None:
    d = decide_host("esx01", [ACT], prisk(85), DEFAULT_POLICY,
                    mitigations={"CVE-2025-22224": "power off VMs with untrusted admins"},
                    today=TODAY)
    assert d is not None
    assert d.decision is Decision.MITIGATE_FIRST
    assert d.mitigation == "power off VMs with untrusted admins"


def test_rule3_emergency_outcome_attend_puts_attend_on_the_emergency_path() -> None:
    d = decide_host("esx01", [ATTEND], prisk(20), Policy(emergency_outcome="Attend"), today=TODAY)
    assert d is not None and d.decision is Decision.PATCH_NOW
    d = decide_host("esx01", [ATTEND], prisk(20), DEFAULT_POLICY, today=TODAY)
    assert d is not None and d.decision is Decision.THROUGH_RINGS


def test_rule4_risky_patch_with_a_workaround_mitigates_first() -> None:
    d = decide_host("esx01", [ATTEND], prisk(70), DEFAULT_POLICY,
                    mitigations={"CVE-2021-21974": "disable slpd"}, today=TODAY)
    assert d is not None
    assert d.decision is Decision.MITIGATE_FIRST
    assert d.mitigation == "disable slpd"
    assert "disable slpd" in d.reasons[-1]


def test_rule4_workaround_for_a_deferred_or_absent_cve_does_not_count() -> None:
    d = decide_host("esx01", [ATTEND], prisk(70), DEFAULT_POLICY,
                    mitigations={"CVE-2099-0001": "unrelated"}, today=TODAY)
    assert d is not None and d.decision is Decision.THROUGH_RINGS and d.mitigation == ""
    g = Grant(5, "esx01", "CVE-2025-22224", TODAY + timedelta(days=5), True, "VMs isolated")
    d = decide_host("esx01", [ACT, ATTEND], prisk(70), DEFAULT_POLICY, grants=[g],
                    mitigations={"CVE-2025-22224": "remove guest admins"}, today=TODAY)
    assert d is not None and d.decision is Decision.THROUGH_RINGS and d.mitigation == ""


def test_rule4_threshold_comes_from_the_policy() -> None:
    m = {"CVE-2021-21974": "disable slpd"}
    default = decide_host("esx01", [ATTEND], prisk(40), DEFAULT_POLICY, mitigations=m, today=TODAY)
    lower = decide_host("esx01", [ATTEND], prisk(40), Policy(mitigate_when_patch_risk_over=30.0),
                        mitigations=m, today=TODAY)
    assert default is not None and default.decision is Decision.THROUGH_RINGS
    assert lower is not None and lower.decision is Decision.MITIGATE_FIRST


def test_rule4_patch_risk_equal_to_the_threshold_is_not_over_it() -> None:
    d = decide_host("esx01", [ATTEND], prisk(60.0), DEFAULT_POLICY,
                    mitigations={"CVE-2021-21974": "disable slpd"}, today=TODAY)
    assert d is not None and d.decision is Decision.THROUGH_RINGS


def test_rule5_standard_path_through_the_rings() -> None:
    d = decide_host("esx01", [ATTEND], prisk(20), DEFAULT_POLICY, today=TODAY)
    assert d is not None
    assert d.decision is Decision.THROUGH_RINGS
    assert not d.suggest_defer
    assert "test -> dev -> staging -> prod" in d.reasons[-1]


def test_rule5_suggests_a_defer_for_track_when_the_patch_is_much_riskier() -> None:
    d = decide_host("esx01", [TRACK], prisk(10.1), DEFAULT_POLICY, today=TODAY)  # > 2 x 5.0
    assert d is not None
    assert d.decision is Decision.THROUGH_RINGS  # a suggestion, not a defer
    assert d.suggest_defer
    assert "approved exception" in d.reasons[-1]
    at_ratio = decide_host("esx01", [TRACK], prisk(10.0), DEFAULT_POLICY, today=TODAY)
    assert at_ratio is not None and not at_ratio.suggest_defer


def test_rule5_never_suggests_a_defer_for_attend() -> None:
    low_attend = finding("CVE-2021-21974", Outcome.ATTEND, 10.0)
    d = decide_host("esx01", [low_attend], prisk(50), DEFAULT_POLICY, today=TODAY)  # 50 > 2 x 10
    assert d is not None and d.decision is Decision.THROUGH_RINGS and not d.suggest_defer
    star = finding("CVE-2021-21974", Outcome.TRACK_STAR, 10.0)
    d = decide_host("esx01", [star], prisk(50), DEFAULT_POLICY, today=TODAY)
    assert d is not None and d.suggest_defer


def test_defer_until_does_not_depend_on_the_order_of_overlapping_grants() -> None:
    specific = Grant(1, "esx01", "CVE-2016-4453", date(2025, 4, 1), True, "port disabled")
    wide = Grant(2, "esx01", None, date(2025, 5, 1), True, "host isolated")
    a = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[specific, wide],
                    today=TODAY)
    b = decide_host("esx01", [TRACK], prisk(10), DEFAULT_POLICY, grants=[wide, specific],
                    today=TODAY)
    assert a is not None and b is not None
    assert a.defer_until == b.defer_until == date(2025, 5, 1)


def test_reasons_do_not_depend_on_the_order_of_tied_findings() -> None:
    a = finding("CVE-2025-22224", Outcome.ACT, 75.0, date(2025, 3, 25), "KEV")
    b = finding("CVE-2025-22225", Outcome.ACT, 75.0, date(2025, 3, 25), "KEV")
    one = decide_host("esx01", [a, b], prisk(10), DEFAULT_POLICY, today=TODAY)
    two = decide_host("esx01", [b, a], prisk(10), DEFAULT_POLICY, today=TODAY)
    assert one is not None and two is not None
    assert one.reasons == two.reasons
