"""Risk scenarios on real records: what a user of ``hvpatch assess`` would see.

Records come from the snapshot bundled in ``hvpatch/data/feeds`` (NVD subsets and API records,
the CISA KEV catalog, EPSS scores for KEV entries) and the ESXi build table, read by the same
adapters ``hvpatch feeds import`` uses. The facts each scenario rests on are asserted in the
``test_fact_*`` tests, so a scenario cannot silently lose its meaning when the data changes.

1. The ESXi VM-escape chain of March 2025 (VMSA-2025-0004: CVE-2025-22224/22225/22226, all in
   KEV) on a shared, multi-tenant production host: Act, deadline the KEV due date, patch now.
2. A low-EPSS local denial of service on an isolated single-tenant test host: Track, not Act.
3. An exception that expired yesterday defers nothing: the finding is back.
4. A bad policy or override document is rejected naming the field and the reason, and the
   policy in force stays as it was.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from hvpatch.adapters.feeds.epss import iter_epss
from hvpatch.adapters.feeds.kev import iter_kev
from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.adapters.yamlfile import load_yaml
from hvpatch.domain.advisories import EpssScore, KevEntry, Vulnerability
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
    DEFAULT_POLICY,
    Candidate,
    Decision,
    ExposureRisk,
    FindingRisk,
    Grant,
    HostDecision,
    ImpactClass,
    Maturity,
    Outcome,
    Policy,
    blast_radius,
    classify,
    deadline,
    decide_host,
    exposure_risk,
    overrides_from_dict,
    patch_risk,
    policy_from_dict,
)
from hvpatch.domain.risk.impact import vector_of
from hvpatch.domain.software import EsxiSoftware, HyperVSoftware, KvmSoftware, Software
from hvpatch.domain.versions import esxi_release
from hvpatch.errors import InputError

FEEDS = Path(__file__).parents[2] / "src" / "hvpatch" / "data" / "feeds"
SUBSET_2025 = FEEDS / "nvd" / "nvdcve-1.1-2025-hypervisor-subset.json.gz"
CHAIN = ("CVE-2025-22224", "CVE-2025-22225", "CVE-2025-22226")
KEV_ADDED, KEV_DUE = date(2025, 3, 4), date(2025, 3, 25)


@functools.cache
def nvd() -> dict[str, Vulnerability]:
    out: dict[str, Vulnerability] = {}
    for path in sorted((FEEDS / "nvd").glob("*.json.gz")) + sorted(
            (FEEDS / "nvd" / "api").glob("*.json")):
        for v in iter_nvd(path):
            out.setdefault(v.cve_id, v)
    return out


@functools.cache
def subset_2025() -> dict[str, Vulnerability]:
    return {v.cve_id: v for v in iter_nvd(SUBSET_2025)}


@functools.cache
def kev() -> dict[str, KevEntry]:
    path = FEEDS / "kev" / "known_exploited_vulnerabilities.json.gz"
    return {k.cve_id: k for k in iter_kev(path)}


@functools.cache
def epss() -> dict[str, EpssScore]:
    return {e.cve_id: e for e in iter_epss(FEEDS / "epss" / "epss_kev.csv")}


def make_host(name: str, software: Software, *, guests: int, tenants: int, data: DataClass,
              criticality: Criticality, exposure: Exposure, ring: str) -> Host:
    vms = tuple(Guest(GuestName(f"{name}-vm{n:02d}"), TenantName(f"tenant-{n % tenants}"), 4,
                      16384, criticality, data) for n in range(guests))
    return Host(HostName(name), "dc1", "cl1", software, 64, 1048576, exposure=exposure,
                ring=ring, guests=vms)


# the host before the fix: ESXi 8.0 Update 3c, the release before 8.0 U3d in the build table
ESXI_80U3C = EsxiSoftware("24414501")


def shared_prod_host(name: str = "esx-prod-01") -> Host:
    return make_host(name, ESXI_80U3C, guests=20, tenants=4, data=DataClass.CONFIDENTIAL,
                     criticality=Criticality.HIGH, exposure=Exposure.INTERNAL, ring="prod")


def prod_cluster() -> Cluster:
    hosts = tuple(shared_prod_host(f"esx-prod-{n:02d}") for n in range(1, 4))
    return Cluster("cl1", "dc1", Family.ESXI, ring="prod", hosts=hosts)


def fix_candidate(build: int) -> Candidate:
    release = esxi_release(build)
    assert release is not None
    return Candidate(f"{release.name} ({release.build})", release.release_date,
                     release.withdrawn, "withdrawn by VMware" if release.withdrawn else "")


# --- facts --------------------------------------------------------------------------------------


def test_fact_the_chain_is_in_the_2025_subset_as_local_guest_attacks() -> None:
    records = subset_2025()
    for cve in CHAIN:
        vec = vector_of(records[cve])
        assert (vec.av, vec.scope_changed) == ("L", True), cve
    assert "execute code as the virtual machine's VMX process" in records[CHAIN[0]].description
    assert "escape of the sandbox" in records[CHAIN[1]].description
    assert "leak memory from the vmx process" in records[CHAIN[2]].description


def test_fact_the_chain_is_in_kev_added_2025_03_04_due_2025_03_25() -> None:
    for cve in CHAIN:
        entry = kev()[cve]
        assert (entry.date_added, entry.due_date) == (KEV_ADDED, KEV_DUE), cve
        assert entry.vendor_project == "VMware"
        assert cve in epss()  # the bundled EPSS file covers KEV entries


def test_fact_esxi_80u3d_is_the_fix_and_is_not_withdrawn() -> None:
    fixed = esxi_release(24585383)
    assert fixed is not None
    assert (fixed.name, fixed.release_date, fixed.withdrawn) == (
        "ESXi 8.0 Update 3d", KEV_ADDED, False)
    before = esxi_release(int(ESXI_80U3C.build))
    assert before is not None and before.name == "ESXi 8.0 Update 3c"


LOCAL_DOS = ("CVE-2025-29955", "CVE-2016-4453")


@pytest.mark.parametrize("cve", LOCAL_DOS)
def test_fact_the_local_dos_records_are_local_availability_only_and_not_known_exploited(
        cve: str) -> None:
    v = nvd()[cve]
    vec = vector_of(v)
    assert (vec.av, vec.c, vec.i, vec.a) == ("L", "N", "N", "H")
    assert "deny service locally" in v.description or "denial of service" in v.description
    assert cve not in kev()
    assert cve not in epss()  # hence the explicit low EPSS score in the scenario
    assert not v.ssvc


# --- 1. the ESXi VM-escape chain on a shared multi-tenant production host -----------------------


def chain_findings(host: Host, cluster: Cluster | None, first_seen: date,
                   policy: Policy = DEFAULT_POLICY) -> list[FindingRisk]:
    blast = blast_radius(host, cluster)
    out = []
    for cve in CHAIN:
        er = exposure_risk(subset_2025()[cve], blast, kev=kev()[cve], epss=epss()[cve])
        due, why = deadline(er.outcome, first_seen, policy.sla_days, kev()[cve])
        out.append(FindingRisk(cve, "esxi", er, due, why))
    return out


def test_chain_on_a_shared_prod_host_is_act_with_a_total_impact_and_high_mission() -> None:
    cluster = prod_cluster()
    host = cluster.hosts[0]
    findings = {f.cve: f.exposure for f in chain_findings(host, cluster, date(2025, 3, 24))}
    for cve in ("CVE-2025-22224", "CVE-2025-22225"):
        er = findings[cve]
        assert er.outcome is Outcome.ACT, (cve, er.ssvc)
        assert er.impact_class is ImpactClass.VM_ESCAPE
        assert dict(er.ssvc) == {"exploitation": "active", "automatable": "no",
                                 "technical_impact": "total", "mission_and_wellbeing": "high"}
        assert er.score >= 70.0
        assert {"kev", "epss", "guests", "tenants", "data_classification"} <= {
            f.name for f in er.factors}
    # the HGFS leak is the chain's disclosure step: at least Attend however it is classified
    assert findings["CVE-2025-22226"].outcome.rank >= Outcome.ATTEND.rank


def test_chain_deadline_is_the_kev_due_date_when_it_comes_before_the_sla() -> None:
    """Seen on 2025-03-24 (e.g. a host added to the inventory late): KEV due 03-25 < SLA 03-27."""
    acts = [f for f in chain_findings(shared_prod_host(), None, date(2025, 3, 24))
            if f.exposure.outcome is Outcome.ACT]
    assert len(acts) >= 2
    for f in acts:
        assert f.deadline == KEV_DUE
        assert f.deadline_reason == f"CISA KEV due date ({KEV_DUE})"


def test_chain_deadline_is_the_kev_due_date_under_a_longer_act_sla() -> None:
    policy = policy_from_dict({"sla_days": {"Act": 30, "Attend": 30}})
    for f in chain_findings(shared_prod_host(), None, KEV_ADDED, policy):
        assert f.deadline == KEV_DUE  # 2025-03-25 is before 2025-03-04 + 30 days


def test_chain_deadline_is_the_sla_when_it_comes_before_the_kev_due_date() -> None:
    """Seen the day KEV listed it: the default Act SLA (3 days) beats the 21-day KEV due date."""
    acts = [f for f in chain_findings(shared_prod_host(), None, KEV_ADDED)
            if f.exposure.outcome is Outcome.ACT]
    assert len(acts) >= 2
    for f in acts:
        assert f.deadline == date(2025, 3, 7)
        assert f.deadline_reason == "policy SLA Act: 3 days from 2025-03-04"


def chain_decision(today: date = date(2025, 3, 24),
                   mitigations: dict[str, str] | None = None) -> HostDecision:
    cluster = prod_cluster()
    host = cluster.hosts[0]
    patch = patch_risk(fix_candidate(24585383), Maturity("esxi", "8.0", 2.4, "supported", 3),
                       family="esxi", guests=len(host.guests), tenants=len(host.tenants),
                       ring=host.ring, can_evacuate=True, today=today)
    d = decide_host(host.name, chain_findings(host, cluster, today), patch, DEFAULT_POLICY,
                    mitigations=mitigations, today=today)
    assert d is not None
    return d


def test_chain_decision_is_patch_now_by_the_kev_due_date() -> None:
    d = chain_decision()
    assert d.decision is Decision.PATCH_NOW
    assert d.outcome is Outcome.ACT
    assert d.deadline == KEV_DUE
    assert d.patch.score < DEFAULT_POLICY.mitigate_when_patch_risk_over
    assert d.reasons[0].startswith("highest outcome Act (CVE-2025-2222")
    assert any("emergency path" in r for r in d.reasons)


def test_chain_decision_with_a_workaround_is_still_patch_now_when_the_patch_is_safe() -> None:
    d = chain_decision(mitigations={"CVE-2025-22224": "remove untrusted guest admins"})
    assert d.decision is Decision.PATCH_NOW


# --- 2. a low-EPSS local DoS on an isolated single-tenant test host -----------------------------


SOFTWARE: dict[str, Software] = {
    "CVE-2025-29955": HyperVSoftware("10.0.26100.3476"),
    "CVE-2016-4453": KvmSoftware("debian-8", "1:2.1+dfsg-12+deb8u6", "1.2.9-9+deb8u2",
                                 "3.16.0-4-amd64"),
}


def lab_host(cve: str) -> Host:
    return make_host("lab-01", SOFTWARE[cve], guests=3, tenants=1, data=DataClass.PUBLIC,
                     criticality=Criticality.LOW, exposure=Exposure.ISOLATED, ring="test")


@pytest.mark.parametrize("cve", LOCAL_DOS)
def test_low_epss_local_dos_on_an_isolated_test_host_is_track_not_act(cve: str) -> None:
    """Track, and why: SSVC exploitation none (not in KEV, EPSS 0.0004 < 0.1), not automatable
    (local vector), partial technical impact (host DoS, no escape), mission & well-being low
    (one tenant, low-criticality public guests): (none, no, partial) is Track at every level."""
    v = nvd()[cve]
    low = EpssScore(cve, 0.0004, 0.12, date(2025, 6, 1))
    er = exposure_risk(v, blast_radius(lab_host(cve)), epss=low)
    assert er.outcome is not Outcome.ACT
    assert er.outcome is Outcome.TRACK
    assert er.impact_class is ImpactClass.HOST_DOS
    assert dict(er.ssvc) == {"exploitation": "none", "automatable": "no",
                             "technical_impact": "partial", "mission_and_wellbeing": "low"}
    assert er.score < 10.0
    due, why = deadline(er.outcome, date(2025, 6, 1), DEFAULT_POLICY.sla_days, None)
    assert due == date(2025, 8, 30) and why.startswith("policy SLA Track: 90 days")


@pytest.mark.parametrize("cve", LOCAL_DOS)
def test_low_epss_local_dos_is_track_even_on_the_shared_prod_host(cve: str) -> None:
    """The host alone does not make a local DoS urgent: (none, no, partial) is Track throughout."""
    er = exposure_risk(nvd()[cve], blast_radius(shared_prod_host()),
                       epss=EpssScore(cve, 0.0004, 0.12, None))
    assert er.outcome is Outcome.TRACK
    lab = exposure_risk(nvd()[cve], blast_radius(lab_host(cve)),
                        epss=EpssScore(cve, 0.0004, 0.12, None))
    assert er.score > lab.score  # but the bigger blast radius does weigh in the score


def test_low_epss_local_dos_decision_goes_through_the_rings() -> None:
    cve = "CVE-2025-29955"
    host = lab_host(cve)
    er = exposure_risk(nvd()[cve], blast_radius(host), epss=EpssScore(cve, 0.0004, 0.1, None))
    due, why = deadline(er.outcome, date(2025, 6, 1), DEFAULT_POLICY.sla_days, None)
    patch = patch_risk(Candidate("latest cumulative update"), None, family="hyperv",
                       guests=3, tenants=1, ring="test", can_evacuate=False,
                       today=date(2025, 6, 1))
    d = decide_host(host.name, [FindingRisk(cve, "windows", er, due, why)], patch,
                    DEFAULT_POLICY, today=date(2025, 6, 1))
    assert d is not None
    assert d.decision is Decision.THROUGH_RINGS
    assert d.outcome is Outcome.TRACK


# --- 3. an expired exception defers nothing -----------------------------------------------------

NBD = "CVE-2024-7409"  # QEMU NBD server DoS; its NVD API record carries CISA's SSVC data
TODAY = date(2025, 3, 24)


def kvm_finding(host: Host) -> FindingRisk:
    er = exposure_risk(nvd()[NBD], blast_radius(host))
    due, why = deadline(er.outcome, date(2025, 1, 10), DEFAULT_POLICY.sla_days, None)
    return FindingRisk(NBD, "qemu-system-x86", er, due, why)


def kvm_host() -> Host:
    return make_host("kvm-prod-03", KvmSoftware("debian-12", "1:7.2+dfsg-7+deb12u6", "9.0.0-4",
                                                "6.1.0-26-amd64"), guests=12, tenants=3,
                     data=DataClass.INTERNAL, criticality=Criticality.MEDIUM,
                     exposure=Exposure.INTERNAL, ring="prod")


def kvm_decision(grants: list[Grant], policy: Policy = DEFAULT_POLICY,
                 today: date = TODAY) -> HostDecision:
    host = kvm_host()
    patch = patch_risk(Candidate("fixed versions: 1:7.2+dfsg-7+deb12u7"), None, family="kvm",
                       guests=12, tenants=3, ring="prod", can_evacuate=True, today=today)
    d = decide_host(host.name, [kvm_finding(host)], patch, policy, grants=grants, today=today)
    assert d is not None
    return d


def test_fact_the_nbd_record_says_automatable_partial() -> None:
    assert ("automatable", "yes") in nvd()[NBD].ssvc
    assert ("technicalImpact", "partial") in nvd()[NBD].ssvc


def test_an_exception_that_expired_yesterday_defers_nothing() -> None:
    expired = Grant(11, "kvm-prod-03", NBD, TODAY - timedelta(days=1), True,
                    "NBD server bound to localhost")
    d = kvm_decision([expired])
    assert d.decision is not Decision.DEFER
    assert d.defer_until is None
    assert [f.deferred_by for f in d.findings] == [None]
    finding = kvm_finding(kvm_host())
    assert d.deadline == finding.deadline  # back with its original deadline (already overdue)
    assert d.deadline is not None and d.deadline < TODAY
    assert d.outcome is finding.exposure.outcome
    assert not any("deferred" in r for r in d.reasons)


def test_a_valid_exception_defers_until_it_expires() -> None:
    until = TODAY + timedelta(days=30)
    d = kvm_decision([Grant(12, "kvm-prod-03", NBD, until, True, "NBD bound to localhost")])
    assert d.decision is Decision.DEFER
    assert d.defer_until == until
    assert d.deadline is None
    assert [f.deferred_by for f in d.findings] == [12]
    assert any(str(until) in r for r in d.reasons)


def test_a_deferred_finding_reappears_the_day_after_its_exception_expires() -> None:
    grant = Grant(14, "kvm-prod-03", NBD, TODAY, True, "NBD bound to localhost")
    on_expiry_day = kvm_decision([grant], today=TODAY)
    day_after = kvm_decision([grant], today=TODAY + timedelta(days=1))
    assert on_expiry_day.decision is Decision.DEFER and on_expiry_day.defer_until == TODAY
    assert day_after.decision is not Decision.DEFER
    assert day_after == kvm_decision([], today=TODAY + timedelta(days=1))


def test_an_unapproved_exception_defers_nothing_under_the_default_policy() -> None:
    pending = Grant(13, "kvm-prod-03", NBD, TODAY + timedelta(days=30), False, "requested")
    d = kvm_decision([pending])
    assert DEFAULT_POLICY.exception_needs_approval
    assert d.decision is not Decision.DEFER
    assert [f.deferred_by for f in d.findings] == [None]
    assert d == kvm_decision([])  # exactly as if it did not exist


# --- 4. a bad policy or override document changes nothing ---------------------------------------

GOOD_POLICY = """\
sla_days:
  Act: 2
  Attend: 10
emergency_outcome: Act
mitigate_when_patch_risk_over: 50
"""
BAD_POLICIES = [
    ("sla_days:\n  Act: 0\n", "sla_days.Act", "between 1 and 3650, got 0"),
    ("sla_days:\n  Act: 30\n", "sla_days", "Act <= Attend <= Track* <= Track"),
    ("mitigate_when_patch_risk_over: 150\n", "mitigate_when_patch_risk_over",
     "between 0 and 100, got 150"),
    ("emergency_outcome: Track\n", "emergency_outcome", "expected Act or Attend, got 'Track'"),
    ("exception_needs_approval: maybe\n", "exception_needs_approval", "true or false"),
    ("mitigate_when_patch_risk_above: 50\n", "mitigate_when_patch_risk_above", "unknown field"),
]


def load_policy_file(path: Path) -> Policy:
    """What ``hvpatch assess --policy FILE`` does with the file."""
    return policy_from_dict(load_yaml(path), str(path))


@pytest.mark.parametrize(("text", "field", "reason"), BAD_POLICIES,
                         ids=[b[1] for b in BAD_POLICIES])
def test_a_bad_policy_file_is_rejected_naming_the_field_and_nothing_changes(
        tmp_path: Path, text: str, field: str, reason: str) -> None:
    good_file = tmp_path / "policy.yaml"
    good_file.write_text(GOOD_POLICY, encoding="utf-8")
    in_force = load_policy_file(good_file)
    before = (in_force.as_dict(), DEFAULT_POLICY.as_dict(), chain_decision())
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_policy_file(bad_file)
    problems = {p.location: p.message for p in err.value.problems}
    assert f"{bad_file}: {field}" in problems, problems
    assert reason in problems[f"{bad_file}: {field}"]
    assert "nothing was changed" in str(err.value)
    assert (in_force.as_dict(), DEFAULT_POLICY.as_dict(), chain_decision()) == before


def test_the_good_policy_file_is_what_it_says() -> None:
    p = policy_from_dict(yaml.safe_load(GOOD_POLICY), "policy.yaml")
    assert p.sla_days == {"Act": 2, "Attend": 10, "Track*": 30, "Track": 90}
    assert p.mitigate_when_patch_risk_over == 50.0


def test_a_bad_override_file_is_rejected_naming_the_entry_and_nothing_applies(
        tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(
        "overrides:\n"
        "  CVE-2021-21974:\n"
        "    impact: management_plane\n"           # underscore: not a class name
        "    mitigation: Disable the SLP service\n"
        "  CVE-2024-37085:\n"
        "    impact: management-plane\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        overrides_from_dict(load_yaml(path), str(path))
    [problem] = err.value.problems
    assert problem.location == f"{path}: overrides.CVE-2021-21974.impact"
    assert "unknown impact class 'management_plane'" in problem.message
    assert "management-plane" in problem.message  # says what would have been right
    assert "nothing was changed" in str(err.value)
    # the record keeps its own classification: no override was applied
    assert classify(nvd()["CVE-2021-21974"])[1] != "per-CVE override file"


def test_a_valid_override_file_changes_the_class_and_supplies_the_workaround(
        tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("overrides:\n  CVE-2021-21974:\n    impact: management-plane\n"
                    "    mitigation: Disable the SLP service (VMware KB 76372)\n",
                    encoding="utf-8")
    o = overrides_from_dict(load_yaml(path), str(path))["CVE-2021-21974"]
    host = shared_prod_host()
    er: ExposureRisk = exposure_risk(nvd()["CVE-2021-21974"], blast_radius(host, prod_cluster()),
                                     impact_override=o.impact)
    assert er.impact_class is ImpactClass.MGMT_PLANE
    assert "cluster_wide" in {f.name for f in er.factors}
