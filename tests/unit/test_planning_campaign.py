"""Campaign planning: targets per product line, ring gates and the plan policy, the campaign.

Hand-made small fleets make each rule visible; the example inventory (``examples/inventory.yaml``)
checks that a real-looking fleet of every family plans end to end. ESXi builds are real ones
from the bundled KB 2143832 table (7.0 U3, U3a and U3b are the builds VMware withdrew).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.domain.fleet import (
    DEFAULT_RINGS,
    Cluster,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    Site,
    TenantName,
)
from hvpatch.domain.planning.campaign import build_campaign
from hvpatch.domain.planning.gates import (
    DEFAULT_PLAN_POLICY,
    GateEvidence,
    PlanPolicy,
    RingRules,
    evaluate_gate,
    failure_allowance,
    plan_policy_from_dict,
)
from hvpatch.domain.planning.model import (
    CampaignPlan,
    Gate,
    MoveKind,
    PinnedPolicy,
    RingPlan,
)
from hvpatch.domain.planning.targets import (
    TargetedFinding,
    product_line,
    select_findings,
    select_targets,
)
from hvpatch.domain.planning.waves import InfeasiblePlan
from hvpatch.domain.planning.windows import fits
from hvpatch.domain.software import EsxiSoftware, HyperVSoftware, KvmSoftware, Package, Software
from hvpatch.domain.versions import esxi_releases
from hvpatch.errors import InputError, PlanError

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

U2D, U2E, U3, U3A, U3B, U3C, U3D = (18538813, 19290878, 18644231, 18825058, 18905247,
                                    19193900, 19482537)


def host(name: str, software: Software, *, ring: str = "", cluster: str = "c1",
         guests: tuple[Guest, ...] = (), memory_gb: int = 512) -> Host:
    return Host(HostName(name), "s1", cluster, software, 32, memory_gb * 1024, ring=ring,
                guests=guests)


def guest(name: str, memory_gb: int = 16, tenant: str = "acme", **kw: object) -> Guest:
    return Guest(GuestName(name), TenantName(tenant), 4, memory_gb * 1024, **kw)  # type: ignore[arg-type]


def fleet_of(*clusters: Cluster) -> Fleet:
    return Fleet(DEFAULT_RINGS, (), (Site("s1", "Europe/Berlin", clusters),))


def esxi_cluster(name: str, ring: str, builds: list[int], *, guests_per_host: int = 2) -> Cluster:
    hosts = tuple(
        host(f"{name}-h{i}", EsxiSoftware(str(b)), cluster=name,
             guests=tuple(guest(f"{name}-h{i}-vm{j}") for j in range(guests_per_host)))
        for i, b in enumerate(builds, 1))
    return Cluster(name, "s1", Family.ESXI, ring=ring, hosts=hosts)


def esxi_finding(h: str, cve: str, installed: int, fixed: str | None) -> TargetedFinding:
    return TargetedFinding(h, cve, "esxi", str(installed), fixed)


# --- targets ---------------------------------------------------------------------------------


def test_oldest_non_withdrawn_esxi_release_is_chosen_over_withdrawn_u3_u3a_u3b() -> None:
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D, U2D]))
    rows = [esxi_finding("c1-h1", "CVE-2021-22045", U2D, "ESXi70U3-18644231"),
            esxi_finding("c1-h2", "CVE-2021-22045", U2D, str(U3))]
    targets, skipped = select_targets(fleet, rows)
    choice = targets["c1-h1"]
    assert choice == targets["c1-h2"]
    assert (choice.line, choice.version) == ("esxi 7.0", str(U3C))
    assert choice.label == f"ESXi 7.0 Update 3c ({U3C})"
    for withdrawn in (U3, U3A, U3B):
        assert str(withdrawn) in choice.reason
    assert "passed over withdrawn" in choice.reason
    assert skipped == []


def test_esxi_target_never_goes_back_in_time_or_down_an_update_level() -> None:
    # 7.0 U2e (19290878) is newer code than U3c (19193900): a U2e host goes to U3d, not U3c
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D, U2E]))
    rows = [esxi_finding("c1-h1", "CVE-1", U2D, f"ESXi70U3c-{U3C}"),
            esxi_finding("c1-h2", "CVE-1", U2E, f"ESXi70U3c-{U3C}")]
    targets, _ = select_targets(fleet, rows)
    assert targets["c1-h1"].version == targets["c1-h2"].version == str(U3D)


def test_highest_fix_of_the_line_wins_and_lines_get_their_own_target() -> None:
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D, 23305546]))  # 7.0 U2d, 8.0 U2b
    rows = [esxi_finding("c1-h1", "CVE-1", U2D, f"ESXi70U3c-{U3C}"),
            esxi_finding("c1-h1", "CVE-2", U2D, f"ESXi70U3d-{U3D}"),
            esxi_finding("c1-h2", "CVE-2", 23305546, "ESXi80U2c-23825572")]
    targets, _ = select_targets(fleet, rows)
    assert targets["c1-h1"].version == str(U3D)
    assert (targets["c1-h2"].line, targets["c1-h2"].version) == ("esxi 8.0", "23825572")


def test_no_fix_on_the_line_skips_the_host_unless_the_user_overrides() -> None:
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D, U2D]))
    rows = [esxi_finding("c1-h1", "CVE-9", U2D, None),
            esxi_finding("c1-h2", "CVE-1", U2D, f"ESXi70U3c-{U3C}")]
    targets, skipped = select_targets(fleet, rows)
    assert set(targets) == {"c1-h2"}
    assert [s.host for s in skipped] == ["c1-h1"]
    assert "no fix on line esxi 7.0" in skipped[0].reason and "CVE-9" in skipped[0].reason
    newest = [r for r in esxi_releases("7.0") if not r.withdrawn][-1]
    targets, skipped = select_targets(fleet, rows, {"esxi 7.0": "latest"})
    assert targets["c1-h1"].version == targets["c1-h2"].version == str(newest.build)
    assert "override" in targets["c1-h1"].reason and skipped == []


def test_bad_overrides_are_refused_with_the_line_named() -> None:
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D]))
    rows = [esxi_finding("c1-h1", "CVE-1", U2D, f"ESXi70U3d-{U3D}")]
    cases = {"ESXi 7.0 Update 3a": "withdrawn", str(U3C): "does not fix CVE-1",
             "ESXi 8.0 Update 2b": "no listed ESXi 7.0 release"}
    for value, message in cases.items():
        with pytest.raises(InputError, match="overrides") as err:
            select_targets(fleet, rows, {"esxi 7.0": value})
        assert message in str(err.value), value
    with pytest.raises(InputError) as err:
        select_targets(fleet, rows, {"esxi 9.9": "latest"})
    assert "no host runs that product line" in str(err.value)


def test_hosts_that_need_nothing_are_skipped_with_the_reason() -> None:
    fleet = fleet_of(esxi_cluster("c1", "prod", [U2D, U3D, U3C]))
    # h2 already runs U3d; the finding on it is stale (fixed in U3c)
    rows = [esxi_finding("c1-h1", "CVE-1", U2D, f"ESXi70U3c-{U3C}"),
            esxi_finding("c1-h2", "CVE-1", U3D, f"ESXi70U3c-{U3C}")]
    targets, skipped = select_targets(fleet, rows)
    assert set(targets) == {"c1-h1"}
    reasons = {s.host: s.reason for s in skipped}
    assert reasons["c1-h3"] == "no targeted finding on this host"
    assert reasons["c1-h2"].startswith("already at or above the target ESXi 7.0 Update 3")


def test_windows_target_is_the_highest_fixed_build_of_the_same_release() -> None:
    hv = Cluster("hv", "s1", Family.HYPERV, ring="staging", hosts=(
        host("hv1", HyperVSoftware("10.0.20348.2340"), cluster="hv"),
        host("hv2", HyperVSoftware("10.0.20348.2340"), cluster="hv"),
        host("hv3", HyperVSoftware("10.0.17763.5576"), cluster="hv")))
    rows = [("hv1", "CVE-1", "windows", "10.0.20348.2340", "10.0.20348.2402"),
            ("hv2", "CVE-2", "windows", "10.0.20348.2340", "10.0.20348.2461"),
            ("hv3", "CVE-1", "windows", "10.0.17763.5576", "10.0.20348.2402")]
    targets, skipped = select_targets(fleet_of(hv), rows)
    assert targets["hv1"].version == targets["hv2"].version == "10.0.20348.2461"
    assert targets["hv1"].line == "windows-server 2022"
    assert targets["hv1"].label.startswith("Windows Server 2022 10.0.20348.2461")
    assert "another Windows release" in {s.host: s.reason for s in skipped}["hv3"]


def test_package_hosts_get_the_highest_fixed_version_per_package() -> None:
    def kvm(qemu: str, libvirt: str) -> KvmSoftware:
        return KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0-427.el9", (
            Package("qemu-kvm", qemu), Package("libvirt-daemon", libvirt)))

    c = Cluster("k", "s1", Family.KVM, ring="dev", hosts=(
        host("k1", kvm("17:8.2.0-11.el9_4.6", "10.0.0-6.7.el9_4"), cluster="k"),
        host("k2", kvm("17:8.2.0-11.el9_4.9", "10.0.0-6.7.el9_4"), cluster="k")))
    rows = [("k1", "CVE-1", "qemu-kvm", "17:8.2.0-11.el9_4.6", "17:8.2.0-11.el9_4.7"),
            ("k1", "CVE-2", "libvirt-daemon", "10.0.0-6.7.el9_4", "10.0.0-6.8.el9_4"),
            ("k2", "CVE-2", "libvirt-daemon", "10.0.0-6.7.el9_4", "10.0.0-6.8.el9_4"),
            ("k2", "CVE-3", "qemu-kvm", "17:8.2.0-11.el9_4.9", "17:8.2.0-11.el9_4.8")]
    targets, _ = select_targets(fleet_of(c), rows)
    assert targets["k1"].line == "kvm rocky-9"
    assert dict(targets["k1"].components) == {"qemu-kvm": "17:8.2.0-11.el9_4.8",
                                              "libvirt-daemon": "10.0.0-6.8.el9_4"}


def test_example_inventory_targets_and_skips() -> None:
    fleet = read_inventory(EXAMPLES / "inventory.yaml").fleet
    assert {h.name: product_line(h) for h in fleet.hosts()}["fra1-hv-01-h01"] == \
        "windows-server 2022"
    rows = [("fra1-esx-01-h01", "CVE-2024-37085", "esxi", "19193900", "ESXi70U3q-23794027"),
            ("ams2-ahv-01-h01", "CVE-X", "ahv", "20230302.100173", None)]
    targets, skipped = select_targets(fleet, rows)
    assert targets["fra1-esx-01-h01"].label == "ESXi 7.0 Update 3q (23794027)"
    reasons = {s.host: s.reason for s in skipped}
    assert "no fix on line ahv" in reasons["ams2-ahv-01-h01"]
    assert len(targets) + len(skipped) == len(list(fleet.hosts()))


def test_select_findings_by_cve() -> None:
    from hvpatch.domain.matching.distro import Confidence
    from hvpatch.domain.matching.engine import Finding, Verdict

    def finding(h: str, cve: str) -> Finding:
        return Finding(h, Verdict(cve, "esxi", "1", True, Confidence.HIGH, "vendor", "2", ()))

    rows = select_findings([finding("a", "CVE-1"), finding("b", "CVE-2")], cves=["cve-2"])
    assert rows == [TargetedFinding("b", "CVE-2", "esxi", "1", "2")]


# --- plan policy and gates -------------------------------------------------------------------


def test_default_gates_follow_the_ring_rules_and_approval_guards_entry_into_prod() -> None:
    p = DEFAULT_PLAN_POLICY
    assert [p.rules(r).soak_hours for r in ("test", "dev", "staging", "prod")] == [4, 24, 48, 0]
    staging = p.gate("staging", emergency=False, first=False, next_ring="prod")
    prod = p.gate("prod", emergency=False, first=False, next_ring=None)
    assert staging.approval and not prod.approval
    assert p.gate("test", emergency=False, first=True, next_ring="dev").approval is False


def test_emergency_compresses_soak_but_keeps_the_first_rings_regression_suite() -> None:
    p = replace(DEFAULT_PLAN_POLICY, rings={
        **DEFAULT_PLAN_POLICY.rings,
        "dev": RingRules(soak_hours=24, regression_suite=False),
        "staging": RingRules(soak_hours=48, emergency_soak_hours=2)})
    assert p.gate("test", emergency=True, first=True, next_ring="dev").soak_hours == 1.0
    assert p.gate("staging", emergency=True, first=False, next_ring="prod").soak_hours == 2.0
    # a campaign whose first ring is dev still runs dev's suite, whatever the policy says
    assert p.gate("dev", emergency=True, first=True, next_ring="prod").regression_suite
    assert not p.gate("dev", emergency=True, first=False, next_ring="prod").regression_suite


def _evidence(**kw: object) -> GateEvidence:
    base: dict[str, object] = dict(hosts=10, passed=10, failed=0, soak_hours_elapsed=48,
                                   open_incidents=0, approved_by="bob", requested_by="alice")
    base.update(kw)
    return GateEvidence(**base)  # type: ignore[arg-type]


def test_evaluate_gate_requires_an_approver_other_than_the_requester() -> None:
    gate = Gate(soak_hours=24, approval=True)
    assert evaluate_gate(gate, _evidence()).passed
    same = evaluate_gate(gate, _evidence(approved_by=" Alice "))
    assert not same.passed and "separation of duties" in same.reasons[0]
    assert not evaluate_gate(gate, _evidence(approved_by="")).passed
    unknown = evaluate_gate(gate, _evidence(requested_by=""))
    assert not unknown.passed and "requester is not recorded" in unknown.reasons[0]
    assert evaluate_gate(replace(gate, approval=False), _evidence(approved_by="alice")).passed


def test_evaluate_gate_lists_every_failing_condition() -> None:
    result = evaluate_gate(Gate(soak_hours=24, max_failures=1),
                           _evidence(passed=6, failed=2, soak_hours_elapsed=3,
                                     open_incidents=1))
    assert not result.passed
    text = " | ".join(result.reasons)
    for needle in ("2 of 10 host(s) have no result yet", "exceed the failure budget of 1",
                   "soaked 3 h of the required 24 h", "1 incident(s) still open"):
        assert needle in text


def test_failure_budget_by_count_percent_or_the_stricter_of_both() -> None:
    assert failure_allowance(Gate(), 50) == 0
    assert failure_allowance(Gate(max_failures=3), 50) == 3
    assert failure_allowance(Gate(max_failure_percent=10), 50) == 5
    assert failure_allowance(Gate(max_failures=3, max_failure_percent=10), 50) == 3
    assert failure_allowance(Gate(max_failures=9, max_failure_percent=10), 50) == 5


def test_plan_policy_from_dict_validates_and_names_fields() -> None:
    p = plan_policy_from_dict({"rings": {"dev": {"soak_hours": 12}, "canary": {"approval": True}},
                               "pinned_guests": "fail", "max_parallel_hosts": 2})
    assert p.rules("dev").soak_hours == 12 and p.rules("test").soak_hours == 4
    assert p.rules("canary").approval and p.pinned_guests is PinnedPolicy.FAIL
    with pytest.raises(InputError) as err:
        plan_policy_from_dict({
            "rings": {"test": {"regression_suite": False, "soak": 3},
                      "dev": {"soak_hours": 10, "emergency_soak_hours": 20}},
            "pinned_guests": "ignore", "max_parallel_hosts": 0, "emergency_soak_factor": 2,
            "migrate_back": "yes", "ring_slack": 1, "colour": 1,
            "windows": [{"weekly": {"days": ["sat"], "start": "22:00", "hours": 200}}]})
    text = str(err.value)
    for needle in ("rings.test.regression_suite: the test ring's regression suite cannot",
                   "rings.test.soak: unknown field", "rings.dev.emergency_soak_hours",
                   "pinned_guests: expected one of shutdown, skip-host, fail",
                   "max_parallel_hosts", "emergency_soak_factor", "migrate_back",
                   "ring_slack: expected true or false", "colour",
                   "windows[0].weekly.hours"):
        assert needle in text, needle


def test_example_plan_policy_parses() -> None:
    data = yaml.safe_load((EXAMPLES / "plan-policy.yaml").read_text(encoding="utf-8"))
    p = plan_policy_from_dict(data, "examples/plan-policy.yaml")
    assert isinstance(p, PlanPolicy)
    assert p.windows and p.blackouts
    assert p.rules("prod").approval


# --- the campaign ----------------------------------------------------------------------------

PINNED = {"migration_block": MigrationBlock.LOCAL_DISK, "migration_note": "local NVMe"}


def campaign_fleet(*, pinned_in: tuple[str, ...] = ()) -> Fleet:
    """test: lab (3 hosts); dev: dev1 (3); prod: prd1 (3) and prd2 (4). All on ESXi 7.0 U2d."""
    clusters = [esxi_cluster("lab", "test", [U2D] * 3), esxi_cluster("dev1", "dev", [U2D] * 3),
                esxi_cluster("prd1", "prod", [U2D] * 3), esxi_cluster("prd2", "prod", [U2D] * 4)]
    out = []
    for c in clusters:
        if c.name in pinned_in:
            first = c.hosts[0]
            pinned = guest(f"{c.name}-db", 64, "globex", **PINNED)
            c = replace(c, hosts=(replace(first, guests=(*first.guests, pinned)), *c.hosts[1:]))
        out.append(c)
    return fleet_of(*out)


def fix_everything(fleet: Fleet) -> list[TargetedFinding]:
    return [esxi_finding(h.name, "CVE-2021-22045", U2D, f"ESXi70U3c-{U3C}")
            for h in fleet.hosts()]


def plan_for(fleet: Fleet, policy: PlanPolicy = DEFAULT_PLAN_POLICY, *, emergency: bool = False,
             start: datetime | None = None) -> CampaignPlan:
    targets, skipped = select_targets(fleet, fix_everything(fleet))
    return build_campaign(fleet, targets, skipped, policy, name="c-1", created=NOW,
                          emergency=emergency, requester="alice", start=start)


def cluster_seconds(ring: RingPlan, cluster: str) -> float:
    return sum(w.seconds for w in ring.waves if w.cluster == cluster)


def test_rings_run_in_order_clusters_in_parallel_and_durations_add_up() -> None:
    plan = plan_for(campaign_fleet())
    assert [r.ring for r in plan.rings] == ["test", "dev", "prod"]
    assert any("staging" in n and "left out" in n for n in plan.notes)
    assert plan.targets == {"esxi 7.0": f"ESXi 7.0 Update 3c ({U3C})"}
    assert plan.requester == "alice" and not plan.emergency
    test, dev, prod = plan.rings
    assert {w.cluster for w in prod.waves} == {"prd1", "prd2"}
    assert test.seconds == pytest.approx(cluster_seconds(test, "lab") + 4 * 3600)
    assert dev.seconds == pytest.approx(cluster_seconds(dev, "dev1") + 24 * 3600)
    # two prod clusters in parallel: the longer one counts, prod soaks 0 h
    longest = max(cluster_seconds(prod, "prd1"), cluster_seconds(prod, "prd2"))
    assert cluster_seconds(prod, "prd2") != pytest.approx(cluster_seconds(prod, "prd1"))
    assert prod.seconds == pytest.approx(longest)
    assert plan.seconds == pytest.approx(test.seconds + dev.seconds + prod.seconds)
    assert [g.soak_hours for g in (test.gate, dev.gate, prod.gate)] == [4, 24, 0]
    assert dev.gate.approval and not test.gate.approval and not prod.gate.approval
    # waves of one cluster run one after the other
    for ring in plan.rings:
        for cluster in {w.cluster for w in ring.waves}:
            waves = [w for w in ring.waves if w.cluster == cluster]
            for a, b in pairwise(waves):
                assert b.start_offset == pytest.approx(a.start_offset + a.seconds)
    hosts = {step.host for w in plan.waves() for step in w.hosts}
    assert len(hosts) == 13


def test_plan_is_deterministic() -> None:
    assert plan_for(campaign_fleet()) == plan_for(campaign_fleet())


def test_skipped_hosts_carry_their_reasons_into_the_plan() -> None:
    fleet = campaign_fleet(pinned_in=("prd1",))
    rows = [r for r in fix_everything(fleet) if r.host != "dev1-h3"]
    targets, skipped = select_targets(fleet, rows)
    plan = build_campaign(fleet, targets, skipped, name="c", created=NOW, emergency=False,
                          requester="alice")
    reasons = {s.host: s.reason for s in plan.skipped}
    assert reasons["dev1-h3"] == "no targeted finding on this host"
    assert "prd1-db" in reasons["prd1-h1"] and "skip-host" in reasons["prd1-h1"]
    assert "prd1-h1" not in {s.host for w in plan.waves() for s in w.hosts}


def test_emergency_compresses_soak_and_keeps_the_test_rings_regression_suite() -> None:
    weak = replace(DEFAULT_PLAN_POLICY, rings={**DEFAULT_PLAN_POLICY.rings,
                                               "test": RingRules(4, regression_suite=False)})
    normal, urgent = plan_for(campaign_fleet(), weak), plan_for(campaign_fleet(), weak,
                                                              emergency=True)
    assert urgent.emergency
    assert [r.gate.soak_hours for r in urgent.rings] == [1, 6, 0]
    assert urgent.rings[0].gate.regression_suite and normal.rings[0].gate.regression_suite
    assert urgent.seconds == pytest.approx(normal.seconds - (3 + 18) * 3600)
    assert urgent.rings[1].gate.approval  # approvals are not compressed
    assert any(n.startswith("emergency: soak compressed") for n in urgent.notes)


def test_waves_are_scheduled_into_windows() -> None:
    policy = plan_policy_from_dict({"windows": [
        {"cluster": "lab", "timezone": "Europe/Berlin",
         "weekly": {"days": ["sat"], "start": "22:00", "hours": 6}}]})
    start = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)  # a Wednesday
    plan = plan_for(campaign_fleet(), policy, start=start)
    assert plan.start == start
    test = plan.rings[0]
    first, *rest = [w for w in test.waves if w.cluster == "lab"]
    assert start + timedelta(seconds=first.start_offset) == datetime(2026, 3, 7, 21, 0,
                                                                     tzinfo=UTC)
    assert first.window.startswith("lab: weekly sat 22:00")
    assert all(fits(policy.windows, start + timedelta(seconds=w.start_offset), w.seconds,
                    cluster="lab") for w in (first, *rest))
    assert test.fits_windows
    assert test.seconds == pytest.approx(first.start_offset + cluster_seconds(test, "lab")
                                         + 4 * 3600)
    # the other clusters have no window and run straight away after the ring before
    dev = plan.rings[1]
    assert min(w.start_offset for w in dev.waves) == 0


def test_a_ring_that_does_not_fit_its_windows_says_so() -> None:
    policy = plan_policy_from_dict({"windows": [
        {"cluster": "prd2", "timezone": "UTC",
         "weekly": {"days": ["sun"], "start": "02:00", "hours": 0.25}}]})
    plan = plan_for(campaign_fleet(), policy)
    assert [r.fits_windows for r in plan.rings] == [True, True, False]
    assert any("cluster prd2" in n and "longer than the longest maintenance window" in n
               for n in plan.notes)


def test_every_infeasible_cluster_is_explained_and_no_partial_plan_is_returned() -> None:
    fleet = campaign_fleet(pinned_in=("lab", "prd2"))
    policy = replace(DEFAULT_PLAN_POLICY, pinned_guests=PinnedPolicy.FAIL)
    with pytest.raises(PlanError) as err:
        plan_for(fleet, policy)
    assert isinstance(err.value, InfeasiblePlan)
    assert {i.cluster for i in err.value.infeasibilities} == {"lab", "prd2"}
    assert {i.guest for i in err.value.infeasibilities} == {"lab-db", "prd2-db"}
    assert "lab-db" in str(err.value) and "prd2-db" in str(err.value)


def loaded_cluster(name: str, hosts: int, guests_per_host: int) -> Cluster:
    """``hosts`` ESXi 7.0 U2d hosts of 100 GB, each with guests of 10 GB."""
    return Cluster(name, "s1", Family.ESXI, ring="prod", hosts=tuple(
        host(f"{name}-h{i}", EsxiSoftware(str(U2D)), cluster=name, memory_gb=100,
             guests=tuple(guest(f"{name}-h{i}-vm{j}", 10) for j in range(guests_per_host)))
        for i in range(1, hosts + 1)))


def evacuations(ring: RingPlan, cluster: str) -> int:
    return sum(m.kind is MoveKind.EVACUATE for w in ring.waves if w.cluster == cluster
               for m in w.moves)


def test_a_ring_spends_its_slack_on_fewer_double_moves_and_takes_no_longer() -> None:
    """prd-big (8 hosts at 70 %) needs 4 waves; prd-small (4 hosts at 50 %) could finish in 2,
    moving its first wave's 10 guests twice. With ring_slack (the default) it uses the time
    prd-big takes anyway: one host first, so only 5 of its 20 guests move twice."""
    fleet = fleet_of(loaded_cluster("prd-big", 8, 7), loaded_cluster("prd-small", 4, 5))
    policy = replace(DEFAULT_PLAN_POLICY, ha_reserve_hosts=0)
    slack, tight = plan_for(fleet, policy), plan_for(fleet, replace(policy, ring_slack=False))
    [ring], [before] = slack.rings, tight.rings
    assert ring.seconds == pytest.approx(before.seconds)
    assert cluster_seconds(ring, "prd-big") == pytest.approx(cluster_seconds(before, "prd-big"))
    assert cluster_seconds(ring, "prd-small") <= cluster_seconds(ring, "prd-big")
    assert (evacuations(before, "prd-small"), evacuations(ring, "prd-small")) == (30, 25)
    assert any(n.startswith("ring prod: its other clusters may take more, smaller waves within "
                            "the ") and "cluster prd-big takes" in n for n in slack.notes)
    assert not any("ring_slack" in n for n in tight.notes)
    # windows bind the ring: more waves would need more windows, so no slack is spent
    windowed = replace(policy, windows=plan_policy_from_dict({"windows": [
        {"timezone": "UTC", "weekly": {"days": ["sat"], "start": "00:00", "hours": 24}}]}).windows)
    assert evacuations(plan_for(fleet, windowed).rings[0], "prd-small") == 30


def test_hosts_patched_in_an_earlier_ring_receive_the_guests() -> None:
    lab = esxi_cluster("mixed", "prod", [U2D] * 3)
    hosts = (replace(lab.hosts[0], ring="test"), *lab.hosts[1:])
    fleet = fleet_of(replace(lab, hosts=hosts))
    plan = plan_for(fleet)
    assert [r.ring for r in plan.rings] == ["test", "prod"]
    first_prod = plan.rings[1].waves[0]
    assert {m.destination for m in first_prod.moves if m.kind is MoveKind.EVACUATE} == \
        {"mixed-h1"}


def test_unknown_hosts_and_a_missing_requester_are_refused() -> None:
    fleet = campaign_fleet()
    with pytest.raises(InputError, match="requester"):
        build_campaign(fleet, {}, name="c", created=NOW, emergency=False, requester=" ")
    with pytest.raises(InputError) as err:
        build_campaign(fleet, {"ghost": "x"}, name="c", created=NOW, emergency=False,
                       requester="alice")
    assert "ghost" in str(err.value)


def _example_rows() -> list[tuple[str, str, str, str, str]]:
    return [
        ("fra1-esx-01-h01", "CVE-2024-37085", "esxi", "19193900", "ESXi70U3q-23794027"),
        ("fra1-esx-01-h02", "CVE-2024-37085", "esxi", "23305546", "ESXi80U2c-23825572"),
        ("fra1-hv-01-h01", "CVE-2024-21407", "windows", "10.0.20348.2340", "10.0.20348.2340"),
        ("ams2-kvm-01-h01", "CVE-2024-1", "qemu-kvm", "17:8.2.0-11.el9_4.6",
         "17:8.2.0-11.el9_4.7"),
        ("ams2-pve-01-h01", "CVE-2024-2", "pve-qemu-kvm", "8.1.5-6", "8.1.5-7"),
        ("ams2-xcp-01-h01", "CVE-2024-3", "xen", "4.13.5", "4.13.6"),
    ]


def _example_policy() -> PlanPolicy:
    data = yaml.safe_load((EXAMPLES / "plan-policy.yaml").read_text(encoding="utf-8"))
    return plan_policy_from_dict(data, "examples/plan-policy.yaml")


def test_example_inventory_esxi_cluster_cannot_be_patched_and_says_why() -> None:
    # two hosts, N+1 reserve and an anti-affinity pair: no host of fra1-esx-01 may go down
    fleet = read_inventory(EXAMPLES / "inventory.yaml").fleet
    targets, skipped = select_targets(fleet, _example_rows())
    with pytest.raises(InfeasiblePlan) as err:
        build_campaign(fleet, targets, skipped, _example_policy(), name="example",
                       created=NOW, emergency=True, requester="alice")
    assert {i.cluster for i in err.value.infeasibilities} == {"fra1-esx-01"}
    text = str(err.value)
    assert "N+1 reserve" in text and "anti-affinity group acme-web" in text


def test_example_inventory_plans_end_to_end() -> None:
    fleet = read_inventory(EXAMPLES / "inventory.yaml").fleet
    rows = [r for r in _example_rows() if r[0] != "fra1-esx-01-h02"]
    targets, skipped = select_targets(fleet, rows)
    plan = build_campaign(fleet, targets, skipped, _example_policy(), name="example",
                          created=NOW, emergency=True, requester="alice")
    assert [r.ring for r in plan.rings] == ["test", "staging"]
    reasons = {s.host: s.reason for s in plan.skipped}
    assert reasons["fra1-hv-01-h01"].startswith("already at or above")
    assert reasons["fra1-esx-01-h02"] == "no targeted finding on this host"
    assert "globex-db-01" in reasons["fra1-esx-01-h01"]  # local-disk guest, skip-host
    assert "initech-ci-01" in reasons["ams2-kvm-01-h01"]  # its CI guest has a GPU passed through
    patched = {s.host for w in plan.waves() for s in w.hosts}
    assert patched == {"ams2-pve-01-h01", "ams2-xcp-01-h01"}
    assert plan.targets["xcp-ng 8.2"] == "xen 4.13.6"
    assert plan.rings[0].gate.soak_hours == 1  # emergency_soak_hours of the example policy
    assert plan.seconds > 0 and plan.start == NOW


def test_first_ring_approval_and_emergencies_that_ignore_windows() -> None:
    policy = plan_policy_from_dict({
        "rings": {"test": {"approval": True}}, "windows_in_emergency": False,
        "windows": [{"weekly": {"days": ["sun"], "start": "02:00", "hours": 4}}]})
    calm, urgent = plan_for(campaign_fleet(), policy), plan_for(campaign_fleet(), policy,
                                                               emergency=True)
    assert calm.rings[0].entry_approval and not calm.rings[1].entry_approval
    assert all(w.window for w in calm.waves())
    assert not any(w.window for w in urgent.waves())
    assert "emergency: maintenance windows ignored (windows_in_emergency: false)" in urgent.notes
