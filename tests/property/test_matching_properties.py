"""Laws of matching (Hypothesis): what must hold whatever the records and hosts are.

* the verdicts do not depend on the order in which records reach ``AdvisoryIndex.build``, nor on
  the order of hosts in the fleet;
* a record about a product no host runs changes no verdict;
* a single QEMU range record and its complement split every version: exactly one matches;
* a host whose QEMU moves outside every range loses those findings;
* hosts with equal software get equal verdicts.

Real records (the bundled snapshot) are used where the law is about interference between them;
generated single-criterion records where it is about range arithmetic, with an oracle that
compares version tuples directly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.adapters.feeds.csaf import iter_csaf
from hvpatch.adapters.feeds.debian_changelog import iter_debian_changelog
from hvpatch.adapters.feeds.kev import iter_kev
from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.adapters.feeds.osv import iter_osv
from hvpatch.domain.advisories import (
    AnalysisStatus,
    ConfigNode,
    Configuration,
    CpeMatchRule,
    FixStatus,
    KevEntry,
    PackageFix,
    VendorAffected,
    Vulnerability,
)
from hvpatch.domain.fleet import Cluster, Family, Fleet, Host, HostName, Site
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.matching import AdvisoryIndex, Verdict, assess_software, match_fleet, targets
from hvpatch.domain.software import (
    EsxiSoftware,
    HyperVSoftware,
    KvmSoftware,
    Package,
    Software,
    XenSoftware,
    software_from_dict,
    software_to_dict,
)
from hvpatch.domain.versions import esxi_releases
from hvpatch.services.bundled import bundled_feeds_dir

FEEDS = bundled_feeds_dir()
T = TypeVar("T")


# --- the real pool, loaded once ------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    vulns: list[Vulnerability]
    fixes: list[PackageFix]
    kev: list[KevEntry]
    index: AdvisoryIndex


def _newest(records: Iterable[Vulnerability]) -> list[Vulnerability]:
    """One record per CVE, the most recently modified: ``AdvisoryIndex.add`` lets a later record
    replace an earlier one with the same id, so with duplicates the order would matter by design
    (CVE-2021-29657 is both in the 2021 1.1 subset and, newer, among the API records)."""
    out: dict[str, Vulnerability] = {}
    for v in records:
        old = out.get(v.cve_id)
        if old is None or (v.last_modified and old.last_modified
                           and v.last_modified > old.last_modified):
            out[v.cve_id] = v
    return list(out.values())


def _load_pool() -> Pool:
    paths = [*sorted((FEEDS / "nvd").glob("*.json.gz")),
             *sorted((FEEDS / "nvd" / "api").glob("*.json"))]
    vulns = _newest(v for path in paths for v in iter_nvd(path))
    fixes = [*iter_osv(FEEDS / "osv"), *iter_csaf(FEEDS / "csaf")]
    for changelog in sorted((FEEDS / "debian").glob("*/changelog.Debian.gz")):
        fixes += iter_debian_changelog(changelog, package=changelog.parent.name, distro="debian")
    kev = list(iter_kev(FEEDS / "kev" / "known_exploited_vulnerabilities.json.gz"))
    return Pool(vulns, fixes, kev, AdvisoryIndex.build(vulns, fixes, kev))


POOL = _load_pool()

# Software that many records disagree about: hosts of every family from a generated fleet, and
# RHEL-family hosts for which several distributions' records give the same fix.
_GENERATED = sorted({h.software for h in generate_fleet(120, seed=11).hosts()}, key=repr)
SOFTWARE: list[Software] = [
    *_GENERATED[::3],
    KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0",
                (Package("qemu-kvm", "17:8.2.0-11.el9_4.4"),)),
    KvmSoftware("rhel-9", "9.0.0", "10.5.0", "5.14.0",
                (Package("qemu-kvm", "17:9.0.0-10.el9_5"),)),
    KvmSoftware("centos-7", "1.5.3", "4.5.0", "3.10.0",
                (Package("qemu-kvm", "10:1.5.3-175.el7_9.6"),)),
    XenSoftware("4.17.5", distro="debian-12",
                packages=(Package("xen-utils-common", "4.17.5+72-g01140da4e8-1"),)),
    HyperVSoftware("10.0.20348.2332"),
    EsxiSoftware("22348816"),
]
BASELINE = {sw: assess_software(sw, POOL.index) for sw in SOFTWARE}
HOST_PRODUCTS = {(t.cpe.vendor, t.cpe.product) for sw in SOFTWARE + _GENERATED
                 for t in targets(sw)}


def decision(v: Verdict) -> tuple[str, str, str, bool, str, str | None]:
    """What a verdict decides: its confidence and evidence wording are left out, and a fixed-in
    version's RPM epoch (CIQ's VEX documents omit it) -- see the two xfail tests below."""
    fixed = v.fixed_in.split(":", 1)[-1] if v.fixed_in and v.source == "distro" else v.fixed_in
    return (v.cve_id, v.component, v.installed, v.affected, v.source, fixed)


def decisions(verdicts: Iterable[Verdict]) -> list[tuple[str, str, str, bool, str, str | None]]:
    return sorted(decision(v) for v in verdicts)


# --- order of records and of hosts ---------------------------------------------------------------


# Shuffles use a drawn seed: Hypothesis' own Random would draw thousands of choices per list.
_seeds = st.integers(0, 2**32 - 1).map(random.Random)


@settings(max_examples=5, deadline=None)
@given(_seeds)
def test_record_order_does_not_change_decisions(rnd: random.Random) -> None:
    vulns, fixes, kev = list(POOL.vulns), list(POOL.fixes), list(POOL.kev)
    for records in (vulns, fixes, kev):
        rnd.shuffle(records)
    shuffled = AdvisoryIndex.build(vulns, fixes, kev)
    for sw, verdicts in BASELINE.items():
        assert decisions(assess_software(sw, shuffled)) == decisions(verdicts), sw


# Real records that tie: CVE-2021-3507 is fixed in qemu-kvm 17:7.0.0-13.el9 both by Rocky's
# CRLSA-2022:7967 (the host's own distribution: high) and by AlmaLinux's ALSA-2022:7967
# (a rebuild of the same RHEL release: medium).
_TIED = [f for f in POOL.fixes if "CVE-2021-3507" in f.cves and f.package == "qemu-kvm"
         and f.advisory_id in ("CRLSA-2022:7967", "ALSA-2022:7967")]
_ROCKY_HOST = KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0",
                          (Package("qemu-kvm", "17:8.2.0-11.el9_4.4"),))


def test_tied_fix_records_exist() -> None:
    assert sorted((f.distro, f.fixed) for f in _TIED) == [
        ("almalinux-9", "17:7.0.0-13.el9"), ("rocky-9", "17:7.0.0-13.el9")]


def _rocky_verdict(fixes: list[PackageFix]) -> Verdict:
    (v,) = assess_software(_ROCKY_HOST, AdvisoryIndex.build((), fixes), only=["CVE-2021-3507"])
    return v


def test_tied_records_give_the_same_verdict_in_any_order() -> None:
    forward, backward = _rocky_verdict(_TIED), _rocky_verdict(_TIED[::-1])
    assert forward.confidence == backward.confidence == "high"
    assert forward == backward


# CVE-2021-3682 on CentOS 7: CIQSA-CBR-7-9-2026:0082 says fixed in 10:1.5.3-176.el7_9.ciqcbr.1,
# CIQ's VEX document CVE-2021-3682 says 1.5.3-176.el7_9.ciqcbr.1 (no epoch): the same version.
_SPELLINGS = [f for f in POOL.fixes if "CVE-2021-3682" in f.cves and f.package == "qemu-kvm"
              and f.distro == "centos-7"]
_CENTOS_HOST = KvmSoftware("centos-7", "1.5.3", "4.5.0", "3.10.0",
                           (Package("qemu-kvm", "10:1.5.3-175.el7_9.6"),))


def test_tied_records_report_the_installable_fixed_in_in_any_order() -> None:
    assert sorted(f.fixed or "" for f in _SPELLINGS) == [
        "1.5.3-176.el7_9.ciqcbr.1", "10:1.5.3-176.el7_9.ciqcbr.1"]
    for fixes in (_SPELLINGS, _SPELLINGS[::-1]):
        (v,) = assess_software(_CENTOS_HOST, AdvisoryIndex.build((), fixes),
                               only=["CVE-2021-3682"])
        assert v.affected and v.fixed_in == "10:1.5.3-176.el7_9.ciqcbr.1"


def _reassemble(hosts: list[Host], rnd: random.Random) -> Fleet:
    """The same hosts in a different order, spread over other clusters and sites."""
    rnd.shuffle(hosts)
    cut = sorted(rnd.sample(range(1, len(hosts)), 3))
    parts = [hosts[a:b] for a, b in zip([0, *cut], [*cut, len(hosts)], strict=True)]
    sites = tuple(Site(f"s{i}", clusters=(Cluster(f"s{i}-c", f"s{i}", part[0].family,
                                                  hosts=tuple(part)),))
                  for i, part in enumerate(parts))
    return Fleet(sites=sites)


_FLEET = generate_fleet(60, seed=5)
_FLEET_FINDINGS = Counter((f.host, f.verdict) for f in match_fleet(_FLEET, POOL.index))


@settings(max_examples=8, deadline=None)
@given(_seeds)
def test_host_order_does_not_change_findings(rnd: random.Random) -> None:
    fleet = _reassemble(list(_FLEET.hosts()), rnd)
    assert Counter((f.host, f.verdict) for f in match_fleet(fleet, POOL.index)) == _FLEET_FINDINGS
    assert len(_FLEET_FINDINGS) > 50


# --- unrelated records ---------------------------------------------------------------------------

_UNRELATED_PRODUCTS = [p for p in [("oracle", "vm_virtualbox"), ("vmware", "workstation"),
                                   ("vmware", "fusion"), ("apple", "macos"),
                                   ("php", "php"), ("acme", "widget_hypervisor_manager")]
                       if p not in HOST_PRODUCTS]
_numbers = st.integers(0, 30)
_versions = st.tuples(_numbers, _numbers, _numbers).map(lambda t: ".".join(map(str, t)))


def _vuln(cve: str, rules: Iterable[CpeMatchRule], **kw: object) -> Vulnerability:
    config = Configuration("OR", False, (ConfigNode("OR", False, tuple(rules)),))
    return Vulnerability(cve, None, None, "generated", AnalysisStatus.ANALYSED, "test",
                         configurations=(config,), **kw)  # type: ignore[arg-type]


@st.composite
def unrelated_records(draw: st.DrawFn) -> tuple[list[Vulnerability], list[PackageFix],
                                                  list[KevEntry]]:
    cve = f"CVE-2099-{draw(st.integers(10000, 99999))}"
    vendor, product = draw(st.sampled_from(_UNRELATED_PRODUCTS))
    part = draw(st.sampled_from("aoh"))
    rules = [CpeMatchRule(f"cpe:2.3:{part}:{vendor}:{product}:*:*:*:*:*:*:*:*", True,
                          version_start_including=draw(st.none() | _versions),
                          version_end_excluding=draw(st.none() | _versions))]
    blocks = (VendorAffected(vendor.title(), product.replace("_", " ").title(),
                             (("affected", "0", draw(_versions), None, "semver"),)),)
    kind = draw(st.sampled_from(["nvd", "fix", "kev"]))
    if kind == "nvd":
        return [_vuln(cve, rules, vendor_affected=blocks)], [], []
    if kind == "fix":
        fix = PackageFix("osv", f"TEST-{cve}", draw(st.sampled_from(
            ["opensuse-15", "fedora-40", "alpine-3"])), draw(st.sampled_from(
                ["qemu-kvm", "libvirt", "xen", "openssl"])), "rpm", (cve,), FixStatus.FIXED,
            draw(_versions))
        return [], [fix], []
    entry = KevEntry(cve, vendor.title(), product.replace("_", " ").title(), "generated",
                     date(2099, 1, 1), None, "Apply updates.", False)
    return [], [], [entry]


def _insert(pool: list[T], new: list[T], rnd: random.Random) -> list[T]:
    """``pool`` with ``new`` inserted at random places."""
    out = list(pool)
    for record in new:
        out.insert(rnd.randrange(len(out) + 1), record)
    return out


@settings(max_examples=6, deadline=None)
@given(unrelated_records(), _seeds)
def test_an_unrelated_record_changes_no_verdict(
        extra: tuple[list[Vulnerability], list[PackageFix], list[KevEntry]],
        rnd: random.Random) -> None:
    vulns, fixes, kev = extra
    index = AdvisoryIndex.build(_insert(POOL.vulns, vulns, rnd), _insert(POOL.fixes, fixes, rnd),
                                _insert(POOL.kev, kev, rnd))
    for sw, verdicts in BASELINE.items():
        assert assess_software(sw, index) == verdicts, sw


# --- generated QEMU range records ----------------------------------------------------------------

Version = tuple[int, int, int]
_small = st.integers(0, 6)
_qemu_versions = st.tuples(_small, _small, _small)


def _text(v: Version) -> str:
    return ".".join(map(str, v))


@dataclass(frozen=True)
class Range:
    """[start, end] with inclusive/exclusive ends; None = unbounded. The oracle of these tests."""

    start: Version | None
    start_incl: bool
    end: Version | None
    end_incl: bool

    def contains(self, v: Version) -> bool:
        above = self.start is None or v > self.start or (self.start_incl and v == self.start)
        below = self.end is None or v < self.end or (self.end_incl and v == self.end)
        return above and below

    def rule(self) -> CpeMatchRule:
        s = None if self.start is None else _text(self.start)
        e = None if self.end is None else _text(self.end)
        return CpeMatchRule("cpe:2.3:a:qemu:qemu:*:*:*:*:*:*:*:*", True,
                            version_start_including=s if self.start_incl else None,
                            version_start_excluding=None if self.start_incl else s,
                            version_end_including=e if self.end_incl else None,
                            version_end_excluding=None if self.end_incl else e)

    def complement(self) -> list[CpeMatchRule]:
        """Criteria for every version outside the range (none when it is unbounded)."""
        out = []
        if self.start is not None:
            out.append(Range(None, False, self.start, not self.start_incl).rule())
        if self.end is not None:
            out.append(Range(self.end, not self.end_incl, None, False).rule())
        return out


@st.composite
def ranges(draw: st.DrawFn, bounded: bool = False) -> Range:
    a, b = sorted((draw(_qemu_versions), draw(_qemu_versions)))
    start = a if bounded else draw(st.none() | st.just(a))
    end = b if bounded else draw(st.none() | st.just(b))
    return Range(start, draw(st.booleans()), end, draw(st.booleans()))


# A distribution without fix data, or a QEMU built from source: the upstream range decides.
_qemu_hosts = st.sampled_from(["", "ubuntu-24.04", "fedora-40"])


def _host(distro: str, qemu: Version) -> KvmSoftware:
    return KvmSoftware(distro, _text(qemu), "10.0.0", "6.8.0")


def _hit(sw: Software, index: AdvisoryIndex, cve: str) -> bool:
    return any(v.affected for v in assess_software(sw, index, only=[cve]))


@settings(max_examples=300, deadline=None)
@given(ranges(), _qemu_versions, _qemu_hosts)
def test_a_range_and_its_complement_split_every_version(
        rng: Range, qemu: Version, distro: str) -> None:
    records = [_vuln("CVE-2099-0001", [rng.rule()])]
    if rng.complement():
        records.append(_vuln("CVE-2099-0002", rng.complement()))
    index = AdvisoryIndex.build(records)
    host = _host(distro, qemu)
    inside = _hit(host, index, "CVE-2099-0001")
    outside = _hit(host, index, "CVE-2099-0002")
    assert not (inside and outside)
    assert inside == rng.contains(qemu)
    assert outside == (not rng.contains(qemu))


@settings(max_examples=150, deadline=None)
@given(st.lists(ranges(bounded=True), min_size=1, max_size=5), _qemu_hosts, st.data())
def test_moving_outside_every_range_loses_the_findings(
        rngs: list[Range], distro: str, data: st.DataObject) -> None:
    grid = [(a, b, c) for a in range(8) for b in range(8) for c in range(8)]
    inside = [v for v in grid if rngs[0].contains(v)]
    outside = [v for v in grid if not any(r.contains(v) for r in rngs)]
    cves = [f"CVE-2099-{i:04d}" for i in range(len(rngs))]
    index = AdvisoryIndex.build(_vuln(c, [r.rule()]) for c, r in zip(cves, rngs, strict=True))
    if inside:
        before = _host(distro, data.draw(st.sampled_from(inside)))
        found = {v.cve_id for v in assess_software(before, index) if v.affected}
        assert cves[0] in found
        assert found == {c for c, r in zip(cves, rngs, strict=True)
                         if r.contains(tuple(map(int, before.qemu.split("."))))}  # type: ignore[arg-type]
    if outside:
        moved = _host(distro, data.draw(st.sampled_from(outside)))
        assert not [v for v in assess_software(moved, index) if v.affected]


# --- equal software, equal verdicts --------------------------------------------------------------

_ESXI_BUILDS = [str(r.build) for r in esxi_releases()]
_RPM_QEMU = sorted({f.fixed for f in POOL.fixes if f.fixed and f.scheme == "rpm"
                    and f.package == "qemu-kvm"})
_DEB_XEN = sorted({f.fixed for f in POOL.fixes if f.fixed and f.package == "xen-utils-common"})


@st.composite
def software(draw: st.DrawFn) -> Software:
    kind = draw(st.sampled_from(["esxi", "hyperv", "kvm", "xen"]))
    if kind == "esxi":
        return EsxiSoftware(draw(st.sampled_from(_ESXI_BUILDS)))
    if kind == "hyperv":
        build = draw(st.sampled_from([9200, 9600, 14393, 17763, 20348, 25398]))
        return HyperVSoftware(f"10.0.{build}.{draw(st.integers(0, 8000))}")
    if kind == "kvm":
        package = draw(st.sampled_from(_RPM_QEMU))
        distro = draw(st.sampled_from(["rhel-9", "rocky-9", "almalinux-9", "almalinux-8",
                                       "centos-7"]))
        upstream = package.split(":")[-1].split("-")[0]
        return KvmSoftware(distro, upstream, "9.0.0", "5.14.0", (Package("qemu-kvm", package),))
    package = draw(st.sampled_from(_DEB_XEN))
    return XenSoftware(package.split("+")[0].split("-")[0], distro="debian-12",
                       packages=(Package("xen-utils-common", package),))


@settings(max_examples=40, deadline=None)
@given(software(), software())
def test_hosts_with_equal_software_get_equal_verdicts(first: Software, other: Software) -> None:
    twin = software_from_dict(first.family, software_to_dict(first))
    assert twin == first and twin is not first
    assert assess_software(twin, POOL.index) == assess_software(first, POOL.index)
    # in a fleet: the twin's findings do not depend on what was matched before it
    hosts = [Host(HostName(name), "s", "c", sw, 8, 8192)
             for name, sw in (("a", first), ("b", other), ("c", twin))]

    def fleet(members: list[Host]) -> Fleet:
        return Fleet(sites=(Site("s", clusters=(Cluster("c", "s", Family(first.family),
                                                         hosts=tuple(members)),)),))

    found: dict[str, list[Verdict]] = {"a": [], "b": [], "c": []}
    for f in match_fleet(fleet(hosts), POOL.index):
        found[f.host].append(f.verdict)
    assert found["a"] == found["c"]
    assert [f.verdict for f in match_fleet(fleet(hosts[2:]), POOL.index)] == found["c"]
