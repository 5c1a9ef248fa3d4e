"""Unit tests of the version schemes: parsing real-looking strings, field-relevant orderings,
errors that say what was wrong, and the ESXi release lookups."""

from __future__ import annotations

import datetime as dt
import itertools
import pickle

import pytest

from hvpatch.domain.versions import (
    SCHEMES,
    DebianVersion,
    DottedVersion,
    EsxiBuild,
    RpmVersion,
    Version,
    WindowsBuild,
    esxi_release,
    esxi_release_at_or_before,
    esxi_releases,
    parse_version,
)
from hvpatch.errors import InputError, VersionParseError


def ascending(scheme: str, *texts: str) -> list[Version]:
    """Parse ``texts`` and assert they are strictly ascending in every operator."""
    versions = [parse_version(scheme, text) for text in texts]
    for low, high in itertools.pairwise(versions):
        assert low < high and low <= high and high > low and high >= low, (low, high)
        assert low != high and not low == high, (low, high)  # noqa: SIM201
    return versions


def assert_coarse_monotone(versions: list[Version]) -> None:
    ordered = sorted(versions)
    keys = [v.coarse_key() for v in ordered]
    assert keys == sorted(keys)
    assert all(0 <= k < 2**63 for k in keys)


# --- registry -------------------------------------------------------------------------------


def test_registry_names_every_scheme() -> None:
    assert dict(SCHEMES) == {
        "esxi": EsxiBuild,
        "windows": WindowsBuild,
        "deb": DebianVersion,
        "rpm": RpmVersion,
        "dotted": DottedVersion,
    }
    assert all(cls.scheme == name for name, cls in SCHEMES.items())


def test_parse_version_dispatches_on_scheme() -> None:
    assert parse_version("deb", "1:2.3") == DebianVersion.parse("1:2.3")
    assert parse_version("esxi", "19193900") == EsxiBuild(19193900)


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(VersionParseError) as info:
        parse_version("semver", "1.2.3")
    message = str(info.value)
    assert "'semver'" in message
    for name in ("deb", "dotted", "esxi", "rpm", "windows"):
        assert name in message


def test_parse_errors_are_input_errors_and_value_errors() -> None:
    with pytest.raises(InputError):
        parse_version("rpm", "")
    with pytest.raises(ValueError):
        parse_version("rpm", "")


@pytest.mark.parametrize(
    ("scheme", "text"),
    [
        ("esxi", "abc"),
        ("esxi", "0"),
        ("esxi", "19193900x"),
        ("esxi", "7.0.3-"),
        ("esxi", "-19193900"),
        ("windows", "10.0"),
        ("windows", "10.0.20348.2340.1"),
        ("windows", "10.0.x"),
        ("windows", "Windows Server 2022"),
        ("deb", "a1.0"),
        ("deb", "1.0-"),
        ("deb", "x:1.0"),
        ("deb", "1.0 beta"),
        ("deb", "1:2:3"),
        ("rpm", "1:"),
        ("rpm", "1.0-"),
        ("rpm", "1.0-2-3"),
        ("rpm", "1.0 final"),
        ("rpm", "e:1.0"),
        ("dotted", "8.2.0-"),
        ("dotted", "8..2"),
        ("dotted", "rc1"),
        ("dotted", "8.2.0 beta"),
        ("dotted", "1.2.3-rc1#"),
    ],
)
def test_garbage_is_rejected_with_the_input_in_the_message(scheme: str, text: str) -> None:
    with pytest.raises(VersionParseError) as info:
        parse_version(scheme, text)
    message = str(info.value)
    assert repr(text) in message
    assert "expected" in message


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("text", ["", "   ", "1.0\u00e9", "9" * 500])
def test_empty_non_ascii_and_huge_inputs_are_rejected(scheme: str, text: str) -> None:
    with pytest.raises(VersionParseError):
        parse_version(scheme, text)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("value", [None, 19193900, 1.5, b"1.0"])
def test_non_strings_are_rejected_not_crashed_on(scheme: str, value: object) -> None:
    with pytest.raises(VersionParseError, match="is not a string"):
        parse_version(scheme, value)  # type: ignore[arg-type]


def test_huge_input_is_shortened_in_the_message() -> None:
    with pytest.raises(VersionParseError) as info:
        parse_version("dotted", "1." * 300)
    assert len(str(info.value)) < 300


def test_parsing_is_cached_per_string() -> None:
    assert DebianVersion.parse("1:8.2.2+ds-0ubuntu1") is DebianVersion.parse("1:8.2.2+ds-0ubuntu1")
    assert EsxiBuild.parse("7.0U3c") is EsxiBuild.parse("7.0U3c")


def test_surrounding_whitespace_is_ignored() -> None:
    assert str(RpmVersion.parse("  8.2.0-1  ")) == "8.2.0-1"
    assert EsxiBuild.parse(" 19193900\n").build == 19193900


# --- cross-scheme ---------------------------------------------------------------------------


def test_versions_of_different_schemes_do_not_order() -> None:
    deb, rpm = DebianVersion.parse("1.0"), RpmVersion.parse("1.0")
    with pytest.raises(TypeError, match="different schemes"):
        _ = deb < rpm
    with pytest.raises(TypeError, match="different schemes"):
        _ = rpm >= deb
    with pytest.raises(TypeError):
        _ = deb < "1.0"
    assert deb != rpm
    assert len({deb, rpm}) == 2


def test_versions_are_immutable_and_picklable() -> None:
    version = DebianVersion.parse("1:2.3-4")
    with pytest.raises(AttributeError):
        version.epoch = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(version)) == version
    build = EsxiBuild(19193900)
    assert pickle.loads(pickle.dumps(build)) == build


# --- ESXi -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "build"),
    [
        ("19193900", 19193900),
        ("build-19193900", 19193900),
        ("7.0.3-19193900", 19193900),
        ("VMware ESXi 7.0.3 build-19193900", 19193900),
        ("ESXi 7.0 Update 3c", 19193900),
        ("7.0 Update 3c", 19193900),
        ("7.0U3c", 19193900),
        ("7.0 U3c", 19193900),
        ("esxi 7.0 update 3C", 19193900),
        ("ESXi 8.0 Update 2b", 23305546),
        ("8.0.2-0.30.23305546", 23305546),
        ("ESXi-8.0U2b-23305546-standard", 23305546),
        ("ESXi80U2sb-23305545", 23305545),  # security-only build, not in the KB table
        ("ESXi70U3p-23307199", 23307199),
        ("ESXi 8.0 GA", 20513097),
        ("ESXi 8.0", 20513097),
        ("ESXi 7.0b", 16324942),
        ("ESX 9.0 GA", 24755229),
        ("ESX 9.1", 25370933),
        ("ESX 9.0.1.0", 24957456),
        ("9.0.1.0.24957456", 24957456),
        ("ESXi670-202210001", 20497097),
        ("ESXi 670-202011002", 17167734),
        ("ESXi 6.7 U3", 14320388),
        ("ESXi 6.5 U2", 8294253),
        ("ESXi 5.0 GA", 469512),  # the KB lists 469512 / 469965; a name resolves to the lowest
        ("VMware ESXi 7.0.3 build-18905247", 18905247),
        ("ESXi 7.0 Update 3", 18644231),
        ("12345678", 12345678),  # unknown but valid build
    ],
)
def test_esxi_parses_what_hosts_kbs_and_advisories_print(text: str, build: int) -> None:
    assert EsxiBuild.parse(text).build == build


def test_esxi_str_is_version_dash_build_when_known_and_round_trips() -> None:
    known, unknown = EsxiBuild(19193900), EsxiBuild(12345678)
    assert str(known) == "7.0.3-19193900"
    assert str(unknown) == "12345678"
    for build in (known, unknown, EsxiBuild.parse("ESXi 6.7 U3")):
        assert EsxiBuild.parse(str(build)) == build
    assert str(EsxiBuild.parse("ESXi670-202210001")) == "6.7.0-20497097"


def test_esxi_release_knowledge() -> None:
    release = EsxiBuild.parse("ESXi 7.0 Update 3c").release
    assert release is not None
    assert (release.build, release.version, release.line) == (19193900, "7.0.3", "7.0")
    assert release.name == "ESXi 7.0 Update 3c"
    assert release.update == "update_3c"
    assert release.release_date == dt.date(2022, 1, 27)
    assert release.available_as == "ISO"
    assert not release.withdrawn
    assert EsxiBuild(12345678).release is None


def test_withdrawn_7_0_u3_builds_are_known_and_flagged() -> None:
    for build, name, date in [
        (18644231, "ESXi 7.0 Update 3", dt.date(2021, 10, 5)),
        (18825058, "ESXi 7.0 Update 3a", dt.date(2021, 10, 28)),
        (18905247, "ESXi 7.0 Update 3b", dt.date(2021, 11, 12)),
    ]:
        release = esxi_release(build)
        assert release is not None
        assert (release.name, release.version, release.release_date) == (name, "7.0.3", date)
        assert release.withdrawn
    assert {r.build for r in esxi_releases() if r.withdrawn} == {18644231, 18825058, 18905247}


@pytest.mark.parametrize(
    ("name", "update"),
    [
        ("ESXi 7.0 Update 3c", "update_3c"),
        ("ESXi 7.0 GA", "-"),
        ("ESXi 7.0b", "b"),
        ("ESXi 8.0a", "a"),
        ("ESXi650-202210001", "650-202210001"),
        ("ESXi 670-202011002", "670-202011002"),
        ("ESXi 6.0 Update 2", "u2"),
        ("ESXi 5.0 Update 1", "1"),
        ("ESX 9.0.1.0", None),
    ],
)
def test_esxi_update_field_follows_nvd_cpe_spelling(name: str, update: str | None) -> None:
    release = EsxiBuild.parse(name).release
    assert release is not None and release.name == name
    assert release.update == update


def test_esxi_orders_by_build_number_across_update_lines() -> None:
    builds = ascending("esxi", "ESXi 7.0 Update 3", "ESXi 7.0 Update 3c", "ESXi 7.0 Update 2e")
    assert [b.build for b in builds] == [18644231, 19193900, 19290878]  # type: ignore[attr-defined]
    assert_coarse_monotone(builds)


def test_esxi_version_written_next_to_a_listed_build_must_match() -> None:
    with pytest.raises(VersionParseError, match=r"ESXi 7\.0 Update 3c"):
        EsxiBuild.parse("7.0.2-19193900")
    with pytest.raises(VersionParseError, match=r"line 8\.0"):
        EsxiBuild.parse("ESXi70U2b-23305546")
    assert EsxiBuild.parse("7.0.2-12345678").build == 12345678  # unlisted: nothing to check


def test_esxi_unknown_release_name_says_so() -> None:
    with pytest.raises(VersionParseError, match="no release of that name"):
        EsxiBuild.parse("ESXi 7.0 Update 3z")


@pytest.mark.parametrize("build", [0, -1, 10**10, True])
def test_esxi_direct_construction_validates(build: int) -> None:
    with pytest.raises(VersionParseError):
        EsxiBuild(build)


def test_esxi_lookups() -> None:
    assert esxi_release_at_or_before(19193900) == esxi_release(19193900)
    assert esxi_release_at_or_before(19193901) is None  # documented: exact match only
    seven = esxi_releases("7.0")
    assert all(r.line == "7.0" for r in seven)
    assert [r.build for r in seven] == sorted(r.build for r in seven)
    assert seven[0].name == "ESXi 7.0 GA"
    assert esxi_releases("3.5") == ()
    assert len(esxi_releases()) == len({r.build for r in esxi_releases()})


# --- Windows --------------------------------------------------------------------------------


def test_windows_fields_and_str() -> None:
    build = WindowsBuild.parse("10.0.20348.2340")
    assert (build.major, build.minor, build.build, build.ubr) == (10, 0, 20348, 2340)
    assert str(build) == "10.0.20348.2340"
    assert WindowsBuild.parse("10.0.20348").ubr is None
    assert str(WindowsBuild.parse("10.0.020348.02340")) == "10.0.20348.2340"


def test_windows_ordering_is_numeric_and_missing_ubr_sorts_first() -> None:
    versions = ascending(
        "windows",
        "6.3.9600.21620",
        "10.0.17763.5576",
        "10.0.20348",
        "10.0.20348.0",
        "10.0.20348.999",
        "10.0.20348.2333",
        "10.0.20348.2340",
        "10.0.26100.1",
    )
    assert WindowsBuild.parse("10.0.20348") != WindowsBuild.parse("10.0.20348.0")
    assert_coarse_monotone(versions)


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("10.0.20348.2340", "Windows Server 2022"),
        ("10.0.17763.5576", "Windows Server 2019"),
        ("10.0.14393.6796", "Windows Server 2016"),
        ("10.0.26100.1742", "Windows Server 2025"),
        ("6.3.9600.21620", "Windows Server 2012 R2"),
        ("6.2.9200.24768", "Windows Server 2012"),
        ("10.0.19045.4170", None),
        ("10.0.9600", None),
    ],
)
def test_windows_product(text: str, product: str | None) -> None:
    assert WindowsBuild.parse(text).product == product


# --- Debian ---------------------------------------------------------------------------------


def test_debian_fields() -> None:
    version = DebianVersion.parse("1:8.2.2+ds-0ubuntu1~22.04.1")
    assert (version.epoch, version.upstream, version.revision) == (
        1,
        "8.2.2+ds",
        "0ubuntu1~22.04.1",
    )
    hyphenated = DebianVersion.parse("4.17.3+10-g091466ba55-1~deb12u1")
    assert hyphenated.upstream == "4.17.3+10-g091466ba55"
    assert hyphenated.revision == "1~deb12u1"
    assert DebianVersion.parse("6.2.0").revision == ""


def test_debian_field_orderings() -> None:
    assert DebianVersion.parse("1:2.3") > DebianVersion.parse("2.9")
    assert DebianVersion.parse("6.2.0~rc1") < DebianVersion.parse("6.2.0")
    assert DebianVersion.parse("4.17.3+10-g091466ba55-1~deb12u1") < DebianVersion.parse(
        "4.17.3+10-g091466ba55-1"
    )
    versions = ascending(
        "deb",
        "1.0~~",
        "1.0~~a",
        "1.0~",
        "1.0",
        "1.0a",
        "1.0+dfsg",
        "1.0.1",
        "4.14.0+88-g1d1d1f5391-1",
        "4.14.3+32-g9de3671772-1",
        "4.17.3+10-g091466ba55-1~deb12u1",
        "4.17.3+10-g091466ba55-1",
        "4.17.3+10-g091466ba55-1+b1",
        "1:7.2+dfsg-7",
        "1:8.2.2+ds-0ubuntu1~22.04.1",
        "1:8.2.2+ds-0ubuntu1",
        "2:0.1",
    )
    assert_coarse_monotone(versions)


def test_debian_equal_spellings_are_equal_and_hash_alike() -> None:
    same = [DebianVersion.parse(t) for t in ("1.0", "1.00", "0:1.0", "1.0-0", "01.0")]
    assert all(v == same[0] for v in same)
    assert len(set(same)) == 1
    assert [str(v) for v in same] == ["1.0", "1.00", "0:1.0", "1.0-0", "01.0"]


def test_debian_to_univers_round_trips() -> None:
    version = DebianVersion.parse("1:8.2.2+ds-0ubuntu1~22.04.1")
    assert str(version.to_univers()) == "1:8.2.2+ds-0ubuntu1~22.04.1"


# --- RPM ------------------------------------------------------------------------------------


def test_rpm_fields() -> None:
    version = RpmVersion.parse("17:6.2.0-11.el9_4.6")
    assert (version.epoch, version.version, version.release) == (17, "6.2.0", "11.el9_4.6")
    assert RpmVersion.parse("8.2.0").release == ""


def test_rpm_field_orderings() -> None:
    assert RpmVersion.parse("6.2.0-11.el9_4.6") < RpmVersion.parse("6.2.0-11.el9_4.10")
    versions = ascending(
        "rpm",
        "1.0~rc1",
        "1.0",
        "1.0-1",
        "1.0^git1-1",
        "1.0a-1",
        "1.0.1-1",
        "6.2.0-11.el9_4.6",
        "6.2.0-11.el9_4.10",
        "6.2.0-20.el9",
        "1:1.0-1",
        "17:6.2.0-11.el9_4.6",
    )
    assert_coarse_monotone(versions)


def test_rpm_separators_and_leading_zeros_do_not_matter() -> None:
    same = [RpmVersion.parse(t) for t in ("1.0", "1.00", "1_0", "0:1.0", "1..0")]
    assert len(set(same)) == 1


def test_rpm_to_univers_round_trips() -> None:
    assert str(RpmVersion.parse("2:6.2.0-11.el9_4.6").to_univers()) == "2:6.2.0-11.el9_4.6"


# --- dotted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "release", "suffix"),
    [
        ("8.2.0", (8, 2, 0), ""),
        ("4.17.3", (4, 17, 3), ""),
        ("9.0.0", (9, 0, 0), ""),
        ("6.1.0-18-amd64", (6, 1, 0), "18-amd64"),
        ("5.15.0-105-generic", (5, 15, 0), "105-generic"),
        ("6.8.12-4-pve", (6, 8, 12), "4-pve"),
        ("8.2.4", (8, 2, 4), ""),
        ("20230302.100173", (20230302, 100173), ""),
        ("9.0.0-rc1", (9, 0, 0), "rc1"),
        ("v8.2.0", (8, 2, 0), ""),
    ],
)
def test_dotted_parses_hypervisor_component_versions(
    text: str, release: tuple[int, ...], suffix: str
) -> None:
    version = DottedVersion.parse(text)
    assert (version.release, version.suffix, str(version)) == (release, suffix, text)


def test_dotted_field_orderings() -> None:
    assert DottedVersion.parse("4.17.10") > DottedVersion.parse("4.17.9")
    assert DottedVersion.parse("9.0.0-rc1") < DottedVersion.parse("9.0.0")
    versions = ascending(
        "dotted",
        "4.17.3",
        "4.17.9",
        "4.17.10",
        "6.1.0-rc7",
        "6.1.0",
        "6.1.0-18-amd64",
        "6.1.0-21-amd64",
        "6.8.12-4-pve",
        "8.2.0",
        "9.0.0-dev",
        "9.0.0-alpha2",
        "9.0.0-beta1",
        "9.0.0-rc1",
        "9.0.0-rc2",
        "9.0.0",
        "9.0.0-1",
        "20230302.100173",
    )
    assert_coarse_monotone(versions)
    assert DottedVersion.parse("9.0.0-rc1").is_prerelease
    assert not DottedVersion.parse("6.1.0-18-amd64").is_prerelease


def test_dotted_kernel_flavours_order_by_number_then_name() -> None:
    ascending("dotted", "5.15.0-105-generic", "5.15.0-105-lowlatency", "5.15.0-106-generic")


def test_dotted_trailing_zeros_and_case_do_not_matter() -> None:
    assert DottedVersion.parse("8.2") == DottedVersion.parse("8.2.0")
    assert hash(DottedVersion.parse("8.2")) == hash(DottedVersion.parse("8.2.0.0"))
    assert DottedVersion.parse("9.0.0-RC1") == DottedVersion.parse("9.0.0-rc.1")
