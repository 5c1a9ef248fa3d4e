"""CPE 2.3 names (NISTIR 7695), name matching (NISTIR 7696) and NVD configurations."""

from __future__ import annotations

import pytest

from hvpatch.domain.cpe import (
    ANY,
    ATTRIBUTES,
    NA,
    Configuration,
    Cpe,
    CpeMatchCriterion,
    MatchEvidence,
    Node,
    Platform,
    Relation,
    compare_attribute,
    compare_cpes,
    compare_dotted,
    cpe_matches,
    criterion_matches,
    evaluate,
    format_cpe,
    name_relation,
    parse_cpe,
)
from hvpatch.errors import InputError

ESXI_70U3C = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:update_3c:*:*:*:*:*:*")
ESXI_70U3D = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:update_3d:*:*:*:*:*:*")
WS2022 = parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:x64:*")
QEMU = "cpe:2.3:a:qemu:qemu:*:*:*:*:*:*:*:*"


def qemu(version: str) -> Cpe:
    return parse_cpe(f"cpe:2.3:a:qemu:qemu:{version}:*:*:*:*:*:*:*")


def rule(text: str, *, vulnerable: bool = True, **bounds: str) -> CpeMatchCriterion:
    return CpeMatchCriterion(parse_cpe(text), vulnerable, **bounds)


def problem_of(text: str) -> tuple[str, str, str]:
    """Parse ``text``, expecting a rejection: (message, attribute at fault, why)."""
    with pytest.raises(InputError) as caught:
        parse_cpe(text)
    exc = caught.value
    assert len(exc.problems) == 1
    assert repr(text) in str(exc)
    return str(exc), exc.problems[0].location, exc.problems[0].message


# --- parsing the 2.3 formatted string ---------------------------------------------------------


def test_nistir_7695_example_binds_every_attribute() -> None:
    cpe = parse_cpe("cpe:2.3:a:hp:insight_diagnostics:7.4.0.1570:-:*:*:online:win2003:x64:*")
    assert cpe == Cpe(
        part="a",
        vendor="hp",
        product="insight_diagnostics",
        version="7.4.0.1570",
        update=NA,
        edition=ANY,
        language=ANY,
        sw_edition="online",
        target_sw="win2003",
        target_hw="x64",
        other=ANY,
    )
    assert cpe.values == tuple(getattr(cpe, name) for name in ATTRIBUTES)


def test_na_and_any_are_different_values() -> None:
    na = parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:*:*")
    any_ = parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:*:*:*:*:*:*:*:*")
    assert na.version is NA
    assert any_.version is ANY
    assert na != any_


def test_escaped_colon_is_part_of_the_value() -> None:
    text = "cpe:2.3:a:mark_stosberg:data\\:\\:formvalidator:2.11_04:*:*:*:*:*:*:*"
    cpe = parse_cpe(text)
    assert cpe.product == "data::formvalidator"
    assert cpe.version == "2.11_04"
    assert format_cpe(cpe) == text


def test_escaped_backslash_and_dollar_from_the_spec() -> None:
    text = "cpe:2.3:a:foo\\\\bar:big\\$money_2010:*:*:*:*:special:ipod_touch:80gb:*"
    cpe = parse_cpe(text)
    assert cpe.vendor == "foo\\\\bar"  # value form keeps a literal backslash quoted
    assert cpe.text("vendor") == "foo\\bar"
    assert cpe.product == "big$money_2010"
    assert format_cpe(cpe) == text
    # an escaped backslash does not quote the colon after it
    split = parse_cpe("cpe:2.3:a:foo\\\\:bar:*:*:*:*:*:*:*:*")
    assert (split.vendor, split.product) == ("foo\\\\", "bar")


def test_quoted_asterisk_is_a_literal_not_a_wildcard() -> None:
    text = "cpe:2.3:a:hitachi:jp1-netm-dm_manager:*:05-24-e\\(\\*1\\):*:*:*:*:*:*"
    cpe = parse_cpe(text)
    assert cpe.update == "05-24-e(\\*1)"
    assert cpe.text("update") == "05-24-e(*1)"
    assert format_cpe(cpe) == text
    assert compare_attribute(cpe.update, "05-24-e(\\*1)") is Relation.EQUAL
    assert compare_attribute(cpe.update, "05-24-exx1)") is Relation.DISJOINT


def test_unneeded_quotes_are_dropped_when_binding() -> None:
    cpe = parse_cpe("cpe:2.3:a:foo:bar\\.baz:1\\-2:*:*:*:*:*:*:*")
    assert (cpe.product, cpe.version) == ("bar.baz", "1-2")
    assert format_cpe(cpe) == "cpe:2.3:a:foo:bar.baz:1-2:*:*:*:*:*:*:*"


def test_a_quoted_lone_hyphen_is_a_literal_not_na() -> None:
    cpe = parse_cpe("cpe:2.3:a:foo:bar:\\-:*:*:*:*:*:*:*")
    assert cpe.version == "\\-"
    assert cpe.text("version") == "-"
    assert format_cpe(cpe) == "cpe:2.3:a:foo:bar:\\-:*:*:*:*:*:*:*"
    assert parse_cpe(format_cpe(cpe)) == cpe


def test_values_are_lower_cased_and_the_prefix_is_case_insensitive() -> None:
    cpe = parse_cpe("CPE:2.3:O:VMware:ESXi:7.0:Update_3C:*:*:*:*:*:*")
    assert cpe == ESXI_70U3C


def test_wildcards_at_the_ends_make_a_pattern() -> None:
    cpe = parse_cpe("cpe:2.3:a:qemu:qemu:8.*:*:*:*:*:*:*:*")
    assert cpe.version == "8.*"
    assert cpe.text("version") is None  # not a literal
    assert parse_cpe("cpe:2.3:o:vmware:esxi:7.0:??date_3c:*:*:*:*:*:*").update == "??date_3c"


def test_parsing_is_cached() -> None:
    text = "cpe:2.3:a:libvirt:libvirt:9.0.0:*:*:*:*:*:*:*"
    assert parse_cpe(text) is parse_cpe(text)


def test_str_of_a_name_is_its_formatted_string() -> None:
    assert str(WS2022) == "cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:x64:*"
    assert str(Cpe("a", "xen", "xen", "4.17.2")) == "cpe:2.3:a:xen:xen:4.17.2:*:*:*:*:*:*:*"


# --- parsing the 2.2 URI ----------------------------------------------------------------------


def test_uri_missing_components_are_any() -> None:
    assert parse_cpe("cpe:/o:vmware:esxi:6.5") == parse_cpe(
        "cpe:2.3:o:vmware:esxi:6.5:*:*:*:*:*:*:*"
    )


def test_uri_na_percent_encoding_and_packed_edition() -> None:
    cpe = parse_cpe("cpe:/a:hp:insight_diagnostics:7.4.0.1570:-:~~online~win2003~x64~")
    assert cpe == parse_cpe(
        "cpe:2.3:a:hp:insight_diagnostics:7.4.0.1570:-:*:*:online:win2003:x64:*"
    )
    money = parse_cpe("cpe:/a:foo%5cbar:big%24money_2010%3a")
    assert (money.vendor, money.product) == ("foo\\\\bar", "big$money_2010:")


def test_uri_wildcard_codes() -> None:
    cpe = parse_cpe("cpe:/a:qemu:qemu:8.%02:%01%01date_1")
    assert (cpe.version, cpe.update) == ("8.*", "??date_1")


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("cpe:/a:v:p:1:2:3:en:extra", "", "at most 7"),
        ("cpe:/a:v:p:1%zz", "version", "percent-encoding"),
        ("cpe:/a:v:p:1::~a~b", "edition", "packed edition"),
        ("cpe:/x:v:p", "part", "part must be"),
        ("cpe:/a:v:p:1%02x", "version", "wildcard"),
    ],
)
def test_bad_uris_are_rejected(text: str, where: str, fragment: str) -> None:
    _, location, why = problem_of(text)
    assert location == where
    assert fragment in why


# --- rejected names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("cpe:2.2:a:vmware:esxi:7.0", "", "expected a 2.3 formatted string"),
        ("vmware esxi 7.0", "", "expected a 2.3 formatted string"),
        ("cpe:2.3:o:vmware:esxi:7.0", "", "has 4 attributes"),
        ("cpe:2.3:o:vmware:esxi:7.0:*:*:*:*:*:*:*:*", "", "has 12 attributes"),
        ("cpe:2.3:o:vmware:esxi:7.0:*:*:*:*:*:*:\\", "other", "lone backslash"),
        ("cpe:2.3:o:vmware:es\\xi:7.0:*:*:*:*:*:*:*", "product", "bad escape '\\x'"),
        ("cpe:2.3:o:vmware:es*xi:7.0:*:*:*:*:*:*:*", "product", "unquoted '*'"),
        ("cpe:2.3:o:vmware:esxi:7.?.0:*:*:*:*:*:*:*", "version", "unquoted '?'"),
        ("cpe:2.3:o:vmware::7.0:*:*:*:*:*:*:*", "product", "empty value"),
        ("cpe:2.3:o:vmware:esxi:7 0:*:*:*:*:*:*:*", "version", "not allowed"),
        ("cpe:2.3:o:vmware:esxi:7.0é:*:*:*:*:*:*:*", "version", "not allowed"),
        ("cpe:2.3:x:vmware:esxi:7.0:*:*:*:*:*:*:*", "part", "part must be"),
        ("cpe:2.3:-:vmware:esxi:7.0:*:*:*:*:*:*:*", "part", "part cannot be NA"),
    ],
)
def test_bad_names_are_rejected_naming_the_attribute(text: str, where: str, fragment: str) -> None:
    message, location, why = problem_of(text)
    assert location == where
    assert fragment in why
    assert fragment in message


def test_a_non_string_is_rejected() -> None:
    with pytest.raises(InputError, match="expected a string"):
        parse_cpe(None)  # type: ignore[arg-type]


def test_constructor_normalises_and_validates() -> None:
    assert Cpe("o", "VMware", "esxi", "*", "-") == Cpe("o", "vmware", "esxi", ANY, NA)
    with pytest.raises(InputError) as caught:
        Cpe("a", "foo", "b*r")
    assert caught.value.problems[0].location == "product"
    with pytest.raises(InputError, match="part"):
        Cpe("q", "foo", "bar")
    with pytest.raises(InputError, match="version"):
        Cpe("a", "foo", "bar", 7)  # type: ignore[arg-type]


# --- NISTIR 7696 attribute relations ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        # Table 6-2, rows 1-17 ("i"/"k" literals, "m" values with wild cards)
        (ANY, ANY, Relation.EQUAL),
        (ANY, NA, Relation.SUPERSET),
        (ANY, "7.0", Relation.SUPERSET),
        (ANY, "7.*", Relation.UNDEFINED),
        (NA, ANY, Relation.SUBSET),
        (NA, NA, Relation.EQUAL),
        (NA, "7.0", Relation.DISJOINT),
        (NA, "7.*", Relation.UNDEFINED),
        ("7.0", ANY, Relation.SUBSET),
        ("7.0", NA, Relation.DISJOINT),
        ("7.0", "7.0", Relation.EQUAL),
        ("7.0", "8.0", Relation.DISJOINT),
        ("7.0", "7.*", Relation.UNDEFINED),
        ("7.*", ANY, Relation.SUBSET),
        ("7.*", NA, Relation.DISJOINT),
        ("7.*", "7.0.3", Relation.SUPERSET),
        ("7.*", "8.0", Relation.DISJOINT),
        ("7.*", "7.*", Relation.UNDEFINED),
        # wildcard forms
        ("*_3c", "update_3c", Relation.SUPERSET),
        ("update_?", "update_3", Relation.SUPERSET),
        ("update_?", "update_3c", Relation.DISJOINT),
        ("update_??", "update_3c", Relation.SUPERSET),
        ("?pdate_3", "update_3", Relation.SUPERSET),
        ("??b", "ab", Relation.SUPERSET),  # a run of n '?' takes up to n characters
        ("*x*", "a.x.b", Relation.SUPERSET),
        ("7.\\*", "7.0", Relation.DISJOINT),  # quoted: a literal asterisk
        ("7.\\*", "7.\\*", Relation.EQUAL),
        # case-insensitive, and "*" / "-" read as ANY / NA
        ("ESXi", "esxi", Relation.EQUAL),
        ("*", "-", Relation.SUPERSET),
    ],
)
def test_attribute_relations(source: str, target: str, expected: Relation) -> None:
    assert compare_attribute(source, target) is expected


def test_a_bad_attribute_value_is_rejected() -> None:
    with pytest.raises(InputError, match="source"):
        compare_attribute("7.*.1", "7.0")


def test_name_relations() -> None:
    esxi_70 = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:*:*:*:*:*:*:*")
    assert name_relation(esxi_70, ESXI_70U3C) is Relation.SUPERSET
    assert name_relation(ESXI_70U3C, esxi_70) is Relation.SUBSET
    assert name_relation(ESXI_70U3C, ESXI_70U3C) is Relation.EQUAL
    assert name_relation(ESXI_70U3C, ESXI_70U3D) is Relation.DISJOINT
    mixed = parse_cpe("cpe:2.3:o:vmware:esxi:*:update_3c:*:*:*:*:*:*")
    other = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:*:*:*:*:*:*:*")
    assert name_relation(mixed, other) is Relation.UNDEFINED
    relations = compare_cpes(esxi_70, ESXI_70U3C)
    assert list(relations) == list(ATTRIBUTES)
    assert relations["update"] is Relation.SUPERSET
    assert relations["version"] is Relation.EQUAL


# --- matching names as NVD does ---------------------------------------------------------------


def test_esxi_update_level_enumeration() -> None:
    assert cpe_matches(ESXI_70U3C, ESXI_70U3C)
    assert not cpe_matches(ESXI_70U3C, ESXI_70U3D)
    any_update = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:*:*:*:*:*:*:*")
    assert cpe_matches(any_update, ESXI_70U3C)
    assert cpe_matches(any_update, ESXI_70U3D)
    assert not cpe_matches(ESXI_70U3C, any_update)  # a vaguer target is not matched


def test_na_update_matches_only_the_base_release() -> None:
    ga = parse_cpe("cpe:2.3:o:vmware:esxi:8.0:-:*:*:*:*:*:*")
    assert cpe_matches(ga, parse_cpe("cpe:2.3:o:vmware:esxi:8.0:-:*:*:*:*:*:*"))
    assert not cpe_matches(ga, parse_cpe("cpe:2.3:o:vmware:esxi:8.0:update_1:*:*:*:*:*:*"))


def test_target_hardware_must_agree() -> None:
    arm = parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:arm64:*")
    assert cpe_matches(WS2022, WS2022)
    assert not cpe_matches(WS2022, arm)
    assert cpe_matches(parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:*:*"), arm)


def test_a_target_with_wildcards_is_never_matched() -> None:
    assert not cpe_matches(parse_cpe(QEMU), parse_cpe("cpe:2.3:a:qemu:qemu:8.*:*:*:*:*:*:*:*"))


# --- version ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "matches"),
    [("8.1.5", True), ("7.2.0", True), ("8.2.0", False), ("8.2", False), ("9.0.0", False)],
)
def test_qemu_end_excluding(version: str, matches: bool) -> None:
    criterion = rule(QEMU, version_end_excluding="8.2.0")
    assert criterion_matches(criterion, qemu(version)) is matches


@pytest.mark.parametrize(
    ("bounds", "inside", "outside"),
    [
        ({"version_start_including": "4.0"}, ["4.0", "4.0.0", "5.1"], ["3.9.9"]),
        ({"version_start_excluding": "4.0"}, ["4.0.1", "4.1"], ["4.0", "4.0.0", "3.9"]),
        ({"version_end_including": "5.2"}, ["5.2", "5.2.0", "5.1.9"], ["5.2.1"]),
        ({"version_end_excluding": "5.2"}, ["5.1.9"], ["5.2", "5.2.0", "5.3"]),
        (
            {"version_start_including": "4.0", "version_end_excluding": "5.2"},
            ["4.0", "5.1.99"],
            ["3.9", "5.2"],
        ),
    ],
)
def test_range_boundaries(bounds: dict[str, str], inside: list[str], outside: list[str]) -> None:
    criterion = CpeMatchCriterion(
        parse_cpe("cpe:2.3:a:vmware:cloud_foundation:*:*:*:*:*:*:*:*"),
        version_start_including=bounds.get("version_start_including"),
        version_start_excluding=bounds.get("version_start_excluding"),
        version_end_including=bounds.get("version_end_including"),
        version_end_excluding=bounds.get("version_end_excluding"),
    )
    target = "cpe:2.3:a:vmware:cloud_foundation:{}:*:*:*:*:*:*:*"
    for version in inside:
        assert criterion_matches(criterion, parse_cpe(target.format(version))), version
    for version in outside:
        assert not criterion_matches(criterion, parse_cpe(target.format(version))), version


def test_a_range_needs_a_literal_target_version_and_the_same_product() -> None:
    criterion = rule(QEMU, version_end_excluding="8.2.0")
    assert not criterion_matches(criterion, parse_cpe(QEMU))
    assert not criterion_matches(criterion, qemu("-"))
    assert not criterion_matches(criterion, parse_cpe("cpe:2.3:a:xen:xen:4.17:*:*:*:*:*:*:*"))


def test_without_a_range_versions_match_per_7696() -> None:
    criterion = rule("cpe:2.3:a:qemu:qemu:8.1.5:*:*:*:*:*:*:*")
    assert criterion_matches(criterion, qemu("8.1.5"))
    assert not criterion_matches(criterion, qemu("8.1.50"))
    assert criterion_matches(rule(QEMU), qemu("1.0"))


def test_the_injected_comparator_decides_and_its_errors_propagate() -> None:
    seen: list[tuple[str, str]] = []

    def backwards(a: str, b: str) -> int:
        seen.append((a, b))
        return -compare_dotted(a, b)

    criterion = rule(QEMU, version_end_excluding="8.2.0")
    assert criterion_matches(criterion, qemu("9.0.0"), backwards)
    assert seen == [("9.0.0", "8.2.0")]

    def unreadable(a: str, b: str) -> int:
        raise ValueError(f"cannot read {a!r}")

    with pytest.raises(ValueError, match="cannot read"):
        criterion_matches(criterion, qemu("8.1.5"), unreadable)


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("8.1.5", "8.2.0", -1),
        ("4.17.10", "4.17.9", 1),
        ("7.0", "7.0.0", 0),
        ("10.0.20348.2227", "10.0.20348.2340", -1),
        ("1.0006", "1.6", 0),  # numeric segments compare as integers
        ("7.0.3c", "7.0.3d", -1),
        ("9a", "10a", -1),
        ("1.0", "1.a", -1),  # a number sorts below text
        ("B", "a", 1),  # case-insensitive: "b" > "a"
    ],
)
def test_compare_dotted(a: str, b: str, sign: int) -> None:
    assert compare_dotted(a, b) == sign
    assert compare_dotted(b, a) == -sign


def test_criterion_validation() -> None:
    with pytest.raises(InputError) as caught:
        rule(QEMU, version_start_including="1", version_start_excluding="2")
    assert caught.value.problems[0].location == "version_start"
    with pytest.raises(InputError, match="version_end"):
        rule(QEMU, version_end_including="1", version_end_excluding="2")
    with pytest.raises(InputError, match="non-empty"):
        rule(QEMU, version_end_excluding=" ")


def test_criterion_describe() -> None:
    text = rule(QEMU, version_start_including="7.0", version_end_excluding="8.2.0").describe()
    assert text == f"{QEMU} >=7.0 <8.2.0 (vulnerable)"
    assert rule(str(WS2022), vulnerable=False).describe().endswith("(running on/with)")


# --- configurations ---------------------------------------------------------------------------

APP = rule("cpe:2.3:a:vendor:app:*:*:*:*:*:*:*:*", version_end_excluding="2.0")
ON_WS2022 = CpeMatchCriterion(
    parse_cpe("cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:*:*"), vulnerable=False
)
RUNNING_ON = Configuration(
    "AND", False, (Node("OR", False, (APP,)), Node("OR", False, (ON_WS2022,)))
)
APP_15 = parse_cpe("cpe:2.3:a:vendor:app:1.5:*:*:*:*:*:*:*")
APP_25 = parse_cpe("cpe:2.3:a:vendor:app:2.5:*:*:*:*:*:*:*")


def test_running_on_applies_only_with_both_and_reports_only_the_app() -> None:
    result = evaluate(RUNNING_ON, [APP_15, WS2022])
    assert result.applies
    assert result.vulnerable == (MatchEvidence(APP, APP_15),)
    assert "cpe:2.3:a:vendor:app:1.5" in result.vulnerable[0].describe()
    assert not evaluate(RUNNING_ON, [APP_15]).applies
    assert not evaluate(RUNNING_ON, [WS2022]).applies
    assert not evaluate(RUNNING_ON, [APP_25, WS2022]).applies
    assert evaluate(RUNNING_ON, [APP_15]).vulnerable == ()


def test_real_esxi_enumeration_reports_the_matching_criterion() -> None:
    updates = ["-", "update_1", "update_2", "update_3", "update_3c", "update_3d"]
    criteria = tuple(rule(f"cpe:2.3:o:vmware:esxi:7.0:{u}:*:*:*:*:*:*") for u in updates)
    config = Configuration("OR", False, (Node("OR", False, criteria),))
    host = [ESXI_70U3C, parse_cpe("cpe:2.3:a:vmware:tools:12.3.0:*:*:*:*:*:*:*")]
    result = evaluate(config, host)
    assert [e.criterion.criteria for e in result.vulnerable] == [ESXI_70U3C]
    patched = parse_cpe("cpe:2.3:o:vmware:esxi:7.0:update_3q:*:*:*:*:*:*")
    assert evaluate(config, [patched]).applies is False


def test_negate_inverts_a_node_and_brings_no_evidence() -> None:
    not_on_ws2022 = Node("OR", True, (ON_WS2022,))
    config = Configuration("AND", False, (Node("OR", False, (APP,)), not_on_ws2022))
    assert evaluate(config, [APP_15]) == evaluate(
        Node("OR", False, (APP,)), [APP_15]
    )  # same applies, same evidence: the app only
    assert not evaluate(config, [APP_15, WS2022]).applies
    assert evaluate(not_on_ws2022, []).applies
    assert evaluate(not_on_ws2022, []).vulnerable == ()
    assert not evaluate(config.negated(), [APP_15]).applies


def test_double_negation_keeps_the_evidence() -> None:
    node = Node("OR", False, (APP,))
    wrapped = Node("AND", True, children=(Node("OR", True, children=(node,)),))
    assert evaluate(wrapped, [APP_15]) == evaluate(node, [APP_15])
    assert node.negated().negated() == node


def test_evidence_comes_only_from_nodes_that_made_the_result() -> None:
    xen = rule("cpe:2.3:o:xen:xen:*:*:*:*:*:*:*:*", version_end_including="4.17")
    xen_417 = parse_cpe("cpe:2.3:o:xen:xen:4.17:*:*:*:*:*:*:*")
    missing = rule("cpe:2.3:a:nobody:nothing:*:*:*:*:*:*:*:*")
    # AND with a false node: nothing applies, nothing is reported even though xen matched.
    both = Node("AND", False, (xen, missing))
    assert evaluate(both, [xen_417]).vulnerable == ()
    # OR of a true child and a false one: the true child's matches only, although the
    # false child's vulnerable qemu criterion matched too.
    old_qemu = rule(QEMU, version_end_excluding="8.2.0")
    false_child = Node("AND", False, (old_qemu, missing))
    tree = Node("OR", False, children=(Node("AND", False, (xen,)), false_child))
    result = evaluate(tree, [xen_417, qemu("8.1.5")])
    assert result.vulnerable == (MatchEvidence(xen, xen_417),)


def test_a_criterion_matching_several_platform_names_reports_each() -> None:
    old, older = qemu("8.1.5"), qemu("7.2.0")
    node = Node("OR", False, (rule(QEMU, version_end_excluding="8.2.0"),))
    result = evaluate(node, Platform((old, older, qemu("8.2.1"), old)))
    assert [e.platform_cpe for e in result.vulnerable] == sorted([old, older], key=str)


def test_platform_index_still_serves_wildcard_criteria() -> None:
    platform = Platform((APP_15, WS2022, APP_15))
    assert platform.cpes == (APP_15, WS2022)
    assert platform.candidates(APP.criteria) == (APP_15,)
    wide = parse_cpe("cpe:2.3:a:*:app:*:*:*:*:*:*:*:*")
    assert platform.candidates(wide) == (APP_15, WS2022)
    assert evaluate(Node("OR", False, (CpeMatchCriterion(wide),)), platform).applies


@pytest.mark.parametrize(
    "build",
    [
        lambda: Node("XOR", False, (APP,)),  # type: ignore[arg-type]
        lambda: Node("OR", False),
        lambda: Configuration("OR", False, ()),
        lambda: Configuration("and", False, (Node("OR", False, (APP,)),)),  # type: ignore[arg-type]
    ],
)
def test_malformed_configurations_are_rejected(build: object) -> None:
    with pytest.raises(InputError):
        build()  # type: ignore[operator]
