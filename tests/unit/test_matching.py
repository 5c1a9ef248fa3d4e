"""Unit tests of the matching rules: distribution fix records and VMware's ESXi fixed builds.

``distro.decide`` judges an installed package against the fix records that apply to the host;
``esxi.esxi_verdict``, ``esxi.bound_build`` and ``esxi.esxi_compare`` turn VMware's build-based
data into verdicts. Versions are real ones (AlmaLinux/Rocky/RHEL qemu-kvm, Debian qemu and the
bundled ESXi build table); the records around them are built here, one rule at a time.
"""

from __future__ import annotations

import pytest

from hvpatch.domain.advisories import FixStatus, PackageFix, VendorAffected
from hvpatch.domain.matching import Confidence
from hvpatch.domain.matching.distro import decide, distro_match
from hvpatch.domain.matching.esxi import (
    EsxiFix,
    bound_build,
    esxi_compare,
    esxi_fixes,
    esxi_verdict,
    release_update,
)
from hvpatch.domain.versions import EsxiRelease, esxi_release

HIGH, MEDIUM = Confidence.HIGH, Confidence.MEDIUM


def fix(fixed: str | None, *, distro: str = "almalinux-9", scheme: str = "rpm",
        status: FixStatus = FixStatus.FIXED, introduced: str | None = None,
        advisory: str = "TEST-1", package: str = "qemu-kvm") -> PackageFix:
    return PackageFix("osv", advisory, distro, package, scheme, ("CVE-2024-0001",), status,
                      fixed, introduced)


def deb(fixed: str | None, **kw: object) -> PackageFix:
    return fix(fixed, distro="debian-12", scheme="deb", package="qemu-system-common", **kw)  # type: ignore[arg-type]


# --- distro.decide: same upstream version -> the backport decides --------------------------------


@pytest.mark.parametrize(("installed", "affected"), [
    ("1:7.2+dfsg-7+deb12u7", True),    # one Debian security update before the fix
    ("1:7.2+dfsg-7+deb12u8", False),   # the fix
    ("1:7.2+dfsg-7+deb12u18", False),  # dpkg order: u18 > u8
])
def test_same_upstream_backport_decides_by_plain_comparison(installed: str, affected: bool) -> None:
    v = decide([(deb("1:7.2+dfsg-7+deb12u8"), HIGH)], installed, "deb")
    assert v is not None
    assert (v.affected, v.fixed_in, v.confidence) == (affected, "1:7.2+dfsg-7+deb12u8", HIGH)
    assert ("<" if affected else ">=") in v.reason and "1:7.2+dfsg-7+deb12u8" in v.reason


def test_same_upstream_fixes_of_two_streams() -> None:
    # RHEL 9.4 EUS (17:8.2.0-11.el9_4.8) and a CIQ LTS rebuild of the same upstream
    fixes = [(fix("17:8.2.0-11.el9_4.8"), HIGH),
             (fix("17:8.2.0-11.1.el9_4.94ciq_lts.6", distro="rocky-9"), MEDIUM)]
    before = decide(fixes, "17:8.2.0-11.el9_4.6", "rpm")
    assert before is not None and before.affected
    assert before.fixed_in == "17:8.2.0-11.el9_4.8"  # the oldest fix on this upstream
    at = decide(fixes, "17:8.2.0-11.el9_4.8", "rpm")
    assert at is not None and not at.affected and at.fixed_in == "17:8.2.0-11.el9_4.8"
    later = decide(fixes, "17:8.2.0-11.1.el9_4.94ciq_lts.7", "rpm")
    assert later is not None and not later.affected
    # the host's own distribution (high) decides before the rebuild's record (medium)
    assert later.fixed_in == "17:8.2.0-11.el9_4.8" and later.confidence is HIGH


def test_a_fix_on_an_older_upstream_does_not_clear_a_same_upstream_host() -> None:
    # CVE-2024-7409 on RHEL 9: 9.2 EUS fixed 17:7.2.0-14.el9_2.14, 9.4 EUS 17:8.2.0-11.el9_4.8
    fixes = [(fix("17:7.2.0-14.el9_2.14", distro="rhel-9"), HIGH),
             (fix("17:8.2.0-11.el9_4.8", distro="rhel-9"), HIGH)]
    v = decide(fixes, "17:8.2.0-11.el9_4.6", "rpm")
    assert v is not None and v.affected and v.fixed_in == "17:8.2.0-11.el9_4.8"


# --- distro.decide: other upstream versions ------------------------------------------------------


def test_newer_upstream_fix_needed() -> None:
    fixes = [(fix("17:8.2.0-11.el9_4", advisory="ALSA-2024:2135"), HIGH),
             (fix("17:7.2.0-14.el9_2", advisory="ALSA-2023:2162"), HIGH)]
    v = decide(fixes, "17:7.0.0-13.el9", "rpm")
    assert v is not None and v.affected
    assert v.fixed_in == "17:7.2.0-14.el9_2"  # the oldest fix that is newer than the host
    assert v.fix.advisory_id == "ALSA-2023:2162"


def test_only_older_upstream_fixes_mean_the_newer_upstream_has_it() -> None:
    fixes = [(fix("17:8.2.0-11.el9_4.4"), HIGH), (fix("17:7.2.0-14.el9_2"), HIGH)]
    v = decide(fixes, "17:9.0.0-10.el9_5", "rpm")
    assert v is not None and not v.affected
    assert v.fixed_in == "17:8.2.0-11.el9_4.4"  # the newest fix below the host


# --- distro.decide: statuses, introduced, unusable data ------------------------------------------


def test_known_not_affected_clears_within_its_level() -> None:
    fixes = [(fix("17:9.0.0-10.el9_5"), MEDIUM),
             (fix(None, status=FixStatus.KNOWN_NOT_AFFECTED, distro="rocky-9"), MEDIUM)]
    v = decide(fixes, "17:8.2.0-11.el9_4", "rpm")
    assert v is not None and not v.affected and v.fixed_in is None
    assert v.confidence is MEDIUM and "known not affected" in v.reason


def test_own_distribution_fix_outranks_a_rebuilds_not_affected() -> None:
    fixes = [(fix("17:9.0.0-10.el9_5"), HIGH),
             (fix(None, status=FixStatus.KNOWN_NOT_AFFECTED, distro="rocky-9"), MEDIUM)]
    v = decide(fixes, "17:8.2.0-11.el9_4", "rpm")
    assert v is not None and v.affected and v.confidence is HIGH


def test_known_affected_without_fix() -> None:
    v = decide([(fix(None, status=FixStatus.KNOWN_AFFECTED), HIGH)], "17:8.2.0-11.el9_4", "rpm")
    assert v is not None and v.affected and v.fixed_in is None
    assert "no fix listed" in v.reason


def test_a_fix_record_outranks_known_affected() -> None:
    fixes = [(fix(None, status=FixStatus.KNOWN_AFFECTED), HIGH),
             (fix("17:8.2.0-11.el9_4.4"), HIGH)]
    at = decide(fixes, "17:8.2.0-11.el9_4.4", "rpm")
    assert at is not None and not at.affected
    before = decide(fixes, "17:8.2.0-11.el9_4.3", "rpm")
    assert before is not None and before.affected and before.fixed_in == "17:8.2.0-11.el9_4.4"


@pytest.mark.parametrize(("introduced", "expected"), [
    ("1:8.0+dfsg-1", None),     # the bug came with 8.0: a 7.2 package never had it
    ("1:7.0+dfsg-1", True),     # introduced before the installed version: the record applies
    ("1:7.2+dfsg-7+deb12u7", True),  # introduced exactly at the installed version
])
def test_introduced_bound(introduced: str, expected: bool | None) -> None:
    v = decide([(deb("1:8.2.2+ds-1", introduced=introduced), HIGH)], "1:7.2+dfsg-7+deb12u7",
               "deb")
    assert (v.affected if v else None) == expected


def test_introduced_without_epoch_takes_the_installed_epoch() -> None:
    record = fix("17:9.0.0-10.el9_5", introduced="8.0.0-1.el9")
    v = decide([(record, HIGH)], "17:7.2.0-14.el9_2", "rpm")
    assert v is None  # introduced 17:8.0.0-1.el9 > installed: the record does not apply


def test_epoch_less_fixed_version_takes_the_installed_epoch() -> None:
    # CIQ's VEX for CVE-2021-3682 writes qemu-kvm 1.5.3-176.el7_9.ciqcbr.1 (real epoch 10)
    record = fix("1.5.3-176.el7_9.ciqcbr.1", distro="centos-7")
    before = decide([(record, HIGH)], "10:1.5.3-175.el7_9.6", "rpm")
    assert before is not None and before.affected
    at = decide([(record, HIGH)], "10:1.5.3-176.el7_9.ciqcbr.1", "rpm")
    assert at is not None and not at.affected


@pytest.mark.parametrize("records", [
    [],
    [fix(None, status=FixStatus.UNDER_INVESTIGATION)],
    [fix("not a version!")],  # unparseable in the host's scheme: ignored
    [fix(None)],              # "fixed" without a version says nothing
])
def test_nothing_usable_gives_no_verdict(records: list[PackageFix]) -> None:
    assert decide([(r, HIGH) for r in records], "17:8.2.0-11.el9_4", "rpm") is None


def test_unparseable_installed_version_gives_no_verdict() -> None:
    assert decide([(fix("17:8.2.0-11.el9_4.4"), HIGH)], "8.2.0 (custom build)", "rpm") is None


def test_confidence_comes_from_the_deciding_record() -> None:
    v = decide([(fix("17:7.2.0-14.el9_2"), MEDIUM)], "17:7.2.0-13.el9", "rpm")
    assert v is not None and v.confidence is MEDIUM


def test_tied_records_prefer_the_hosts_own_distribution() -> None:
    fixes = [(fix("17:7.0.0-13.el9", advisory="ALSA-2022:7967"), MEDIUM),
             (fix("17:7.0.0-13.el9", distro="rocky-9", advisory="CRLSA-2022:7967"), HIGH)]
    v = decide(fixes, "17:8.2.0-11.el9_4.4", "rpm")
    assert v is not None and v.confidence is HIGH and v.fix.advisory_id == "CRLSA-2022:7967"


def test_own_distribution_fix_is_not_overridden_by_another_stream() -> None:
    fixes = [(fix("17:8.2.0-11.el9_4.4", advisory="ALSA-2024:4278"), HIGH),
             (fix("8.2.0-11.el9_2.92ciq_lts.4", distro="rocky-9", advisory="CVE-2024-4467"),
              MEDIUM)]
    v = decide(fixes, "17:8.2.0-11.el9_4.3", "rpm")
    assert v is not None and v.affected and v.fixed_in == "17:8.2.0-11.el9_4.4"


@pytest.mark.parametrize(("host", "record", "expected"), [
    ("almalinux-9", "almalinux-9", HIGH),
    ("rocky-9", "almalinux-9", MEDIUM),   # rebuilds of the same RHEL release
    ("rhel-9", "rocky-9", MEDIUM),
    ("rocky-9", "almalinux-8", None),     # another release
    ("debian-12", "debian", HIGH),        # a changelog entry without suite: the lineage
    ("debian-12", "debian-11", None),
    ("ubuntu-22.04", "debian-12", None),
    ("", "almalinux-9", None),
])
def test_distro_match(host: str, record: str, expected: Confidence | None) -> None:
    assert distro_match(host, record) == expected


# --- ESXi: VMware's fixed builds -----------------------------------------------------------------

# CVE-2024-22252 as VMware (CNA) and CISA's ADP container write it (VMSA-2024-0006).
VMSA_2024_0006 = (
    VendorAffected("n/a", "VMware ESXi", (
        ("affected", "8.0 ", "ESXi80U2sb-23305545", None, "custom"),
        ("affected", "8.0", "ESXi80U1d-23299997", None, "custom"),
        ("affected", "7.0", "ESXi70U3p-23307199", None, "custom"))),
    VendorAffected("vmware", "esxi", (
        ("affected", "0", "esxi80u2sb-23305545", None, "custom"),
        ("affected", "8.0", "esxi80u1d-23299997", None, "custom"),
        ("affected", "7.0", "esxi70u3p-23307199", None, "custom"))),
    VendorAffected("n/a", "VMware Workstation", (("affected", "17.x", "17.5.1", None, "custom"),)),
)
FIXES = esxi_fixes(VMSA_2024_0006)


def release(build: int) -> EsxiRelease:
    r = esxi_release(build)
    assert r is not None, build
    return r


def test_esxi_fixes_one_entry_per_line_update_and_build() -> None:
    assert [(f.line, f.update, f.build) for f in FIXES] == [
        ("7.0", 3, 23307199), ("8.0", 1, 23299997), ("8.0", 2, 23305545)]
    assert FIXES[2].label == "ESXi80U2sb-23305545"  # the CNA spelling, seen first


@pytest.mark.parametrize(("build", "affected", "fix_build"), [
    (22380479, True, 23305545),   # 8.0 U2: its own line's fix
    (23305546, False, 23305545),  # 8.0 U2b: one above the security-only build
    (22088125, True, 23299997),   # 8.0 U1c
    (23299997, False, 23299997),  # 8.0 U1d: exactly the fix build
    (24022510, False, 23305545),  # 8.0 U3: newer than every listed line -> the newest fix
    (20513097, True, 23299997),   # 8.0 GA: older than every listed line -> the oldest fix
    (21493926, True, 23299997),   # 8.0c, a GA-line patch: update 0
    (22348816, True, 23307199),   # 7.0 U3o
    (23307199, False, 23307199),  # 7.0 U3p
    (17630552, True, 23307199),   # 7.0 U2: no 7.0 U2 entry, the oldest 7.0 fix applies
])
def test_esxi_verdict(build: int, affected: bool, fix_build: int) -> None:
    result = esxi_verdict(FIXES, release(build))
    assert result is not None
    got_affected, used, why = result
    assert (got_affected, used.build) == (affected, fix_build)
    assert str(build) in why and str(fix_build) in why and ("<" if affected else ">=") in why


def test_esxi_verdict_unlisted_line_gives_none() -> None:
    assert esxi_verdict(FIXES, release(13473784)) is None  # ESXi 6.7 (ESXi670-201904001)
    assert esxi_verdict([], release(22380479)) is None


def test_esxi_verdict_uses_the_lowest_build_of_an_update_line() -> None:
    fixes = [EsxiFix("7.0", 3, 24585291, "ESXi70U3s-24585291"),
             EsxiFix("7.0", 3, 23307199, "ESXi70U3p-23307199")]
    result = esxi_verdict(fixes, release(23794027))  # 7.0 U3q
    assert result is not None and not result[0] and result[1].build == 23307199


@pytest.mark.parametrize(("update", "number"), [
    ("update_3c", 3), ("update_1", 1), ("-", 0), ("b", 0), ("670-201806001", 0), (None, 0)])
def test_release_update(update: str | None, number: int) -> None:
    r = release(22380479)
    assert release_update(EsxiRelease(r.build, r.version, r.name, update, r.release_date,
                                      r.available_as, r.withdrawn)) == number


# --- ESXi: NVD range bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(("bound", "build"), [
    ("esxi670-201806401-bg", 8941472),    # bulletin -> first build of ESXi670-201806001
    ("ESXi670-201810101-SG", 10176752),   # case does not matter
    ("esxi650-201806401-bg", 8935087),
    ("esxi600-201806401-bg", 8934903),
    ("ESXi80U2sb-23305545", 23305545),    # VMware fix ids
    ("esxi70u3p-23307199", 23307199),
    ("23305545", 23305545),               # a bare build
    ("6.7", 8169922),                     # a version: its first (GA) build
    ("7.0", 15843807),
    ("7.0.3", 18644231),                  # 7.0 U3, withdrawn, is still the first 7.0.3 build
    ("8.0.2", 22380479),
    ("5.5", 1331820),
])
def test_bound_build(bound: str, build: int) -> None:
    assert bound_build(bound) == build


@pytest.mark.parametrize("bound", [
    "", "1234", "update_3", "esxi670-209901001",  # no 6.7 patch release in that month
    "9.9", "3.5.0-foo"])
def test_bound_build_unrecognised(bound: str) -> None:
    assert bound_build(bound) is None


def _cmp(line: str, build: int):
    major, minor = (int(x) for x in line.split("."))
    return esxi_compare(frozenset({line}), (major, minor), build)


def test_esxi_compare_within_a_line() -> None:
    cmp = _cmp("6.7", 8169922)  # a 6.7 GA host
    assert cmp("6.7", "esxi670-201806401-bg") < 0
    assert cmp("6.7", "6.7") == 0  # "from 6.7" includes every 6.7 build
    after = _cmp("6.7", 9214924)  # ESXi670-201807001
    assert after("6.7", "esxi670-201806401-bg") > 0
    assert after("6.7", "6.7") == 0  # "up to and including 6.7" includes it too


def test_esxi_compare_host_of_an_older_line_is_below_a_newer_line() -> None:
    assert _cmp("6.5", 8935087)("6.5", "6.7") < 0
    # 8935087 is a higher number than the 6.7 bulletin's build, but on an older line
    assert _cmp("6.5", 8935087)("6.5", "esxi670-201806401-bg") < 0


def test_esxi_compare_every_6_7_build_is_below_7_0() -> None:
    assert _cmp("6.7", 17167734)("6.7", "7.0") < 0
    assert _cmp("7.0", 15843807)("7.0", "6.7") > 0
