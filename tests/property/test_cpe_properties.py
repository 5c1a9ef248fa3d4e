"""Laws of CPE names, matching, version ranges and configuration evaluation (Hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.domain.cpe import (
    ANY,
    ATTRIBUTES,
    NA,
    AttributeValue,
    Configuration,
    Cpe,
    CpeMatchCriterion,
    Node,
    Operator,
    Platform,
    Relation,
    compare_attribute,
    compare_cpes,
    compare_dotted,
    cpe_matches,
    criterion_matches,
    evaluate,
    format_cpe,
    parse_cpe,
)

# --- names ------------------------------------------------------------------------------------

# Printable ASCII a value can hold literally; "\\", "*" and "?" only appear quoted.
_PLAIN = "abcdefghijklmnopqrstuvwxyz0123456789._-:~!\"#$%&'()+,/;<=>@[]^`{|}"
_literal_token = st.one_of(st.sampled_from(_PLAIN), st.sampled_from(["\\\\", "\\*", "\\?"]))
_literal = st.lists(_literal_token, min_size=1, max_size=8).map("".join)
_wildcard = st.sampled_from(["", "*", "?", "??"])


def _fix_hyphen(value: str) -> str:
    return "\\-" if value == "-" else value  # a bare "-" is NA


literals = _literal.map(_fix_hyphen)
patterns = st.tuples(_wildcard, _literal, _wildcard).map(lambda t: "".join(t))
values: st.SearchStrategy[AttributeValue] = st.one_of(
    st.just(ANY), st.just(NA), literals, patterns.map(_fix_hyphen)
)
concrete_values: st.SearchStrategy[AttributeValue] = st.one_of(st.just(ANY), st.just(NA), literals)
parts = st.sampled_from(["a", "o", "h"])


@st.composite
def names(draw: st.DrawFn, value: st.SearchStrategy[AttributeValue] = values) -> Cpe:
    part = draw(st.one_of(st.just(ANY), parts))
    return Cpe(part, *(draw(value) for _ in ATTRIBUTES[1:]))


@st.composite
def targets(draw: st.DrawFn) -> Cpe:
    """A product name as a host reports it: literal part, vendor and product, no wildcards."""
    return Cpe(
        draw(parts),
        draw(literals),
        draw(literals),
        *(draw(concrete_values) for _ in ATTRIBUTES[3:]),
    )


@given(names())
def test_format_then_parse_is_identity(cpe: Cpe) -> None:
    text = format_cpe(cpe)
    assert parse_cpe(text) == cpe
    assert format_cpe(parse_cpe(text)) == text


@given(names())
def test_constructing_from_the_values_is_identity(cpe: Cpe) -> None:
    assert Cpe(*cpe.values) == cpe


@given(names(), names())
def test_fast_matching_agrees_with_the_7696_relations(source: Cpe, target: Cpe) -> None:
    relations = compare_cpes(source, target).values()
    assert cpe_matches(source, target) == all(
        r in (Relation.SUPERSET, Relation.EQUAL) for r in relations
    )


@given(names(concrete_values), names(concrete_values))
def test_relations_without_wildcards_mirror(source: Cpe, target: Cpe) -> None:
    mirror = {
        Relation.SUPERSET: Relation.SUBSET,
        Relation.SUBSET: Relation.SUPERSET,
        Relation.EQUAL: Relation.EQUAL,
        Relation.DISJOINT: Relation.DISJOINT,
    }
    for name, relation in compare_cpes(source, target).items():
        assert compare_cpes(target, source)[name] is mirror[relation]


@given(_literal, st.integers(min_value=0, max_value=8))
def test_a_wildcarded_prefix_or_suffix_matches_the_text_it_came_from(text: str, cut: int) -> None:
    target = _fix_hyphen(text)
    head, tail = text[:cut], text[cut:]
    if tail and not tail.startswith("\\") and not head.endswith("\\"):
        assert compare_attribute("*" + tail, target) is Relation.SUPERSET
    if head and not head.endswith("\\"):
        assert compare_attribute(head + "*", target) is Relation.SUPERSET


@given(targets())
def test_an_any_criterion_matches_every_target_of_its_product(target: Cpe) -> None:
    criteria = Cpe(target.part, target.vendor, target.product)
    assert cpe_matches(criteria, target)
    assert criterion_matches(CpeMatchCriterion(criteria), target)


# --- versions and ranges ----------------------------------------------------------------------

versions = st.builds(
    lambda numbers, suffix: ".".join(map(str, numbers)) + suffix,
    st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=4),
    st.sampled_from(["", "a", "c", "rc1"]),
)


@given(versions, versions, versions)
def test_compare_dotted_is_a_total_order(a: str, b: str, c: str) -> None:
    assert compare_dotted(a, a) == 0
    assert compare_dotted(a, b) == -compare_dotted(b, a)
    if compare_dotted(a, b) <= 0 and compare_dotted(b, c) <= 0:
        assert compare_dotted(a, c) <= 0


@given(versions, versions)
def test_a_range_and_its_complement_split_every_version(bound: str, version: str) -> None:
    criteria = parse_cpe("cpe:2.3:a:qemu:qemu:*:*:*:*:*:*:*:*")
    target = Cpe("a", "qemu", "qemu", version)
    for below, above in (
        (
            CpeMatchCriterion(criteria, version_end_excluding=bound),
            CpeMatchCriterion(criteria, version_start_including=bound),
        ),
        (
            CpeMatchCriterion(criteria, version_end_including=bound),
            CpeMatchCriterion(criteria, version_start_excluding=bound),
        ),
    ):
        assert criterion_matches(below, target) != criterion_matches(above, target)


# --- configurations ---------------------------------------------------------------------------

_PRODUCTS = ["app", "lib", "os"]
_VERSIONS = ["1.0", "1.5", "2.0", "2.5", "3.0"]
_BOUNDS = [
    "version_start_including",
    "version_start_excluding",
    "version_end_including",
    "version_end_excluding",
]
operators: st.SearchStrategy[Operator] = st.sampled_from(["AND", "OR"])


def _product(product: str, version: str) -> Cpe:
    return Cpe("a", "vendor", product, version)


@st.composite
def criteria(draw: st.DrawFn) -> CpeMatchCriterion:
    product = draw(st.sampled_from(_PRODUCTS))
    vulnerable = draw(st.booleans())
    shape = draw(st.sampled_from(["any", "exact", "range"]))
    version = draw(st.sampled_from(_VERSIONS))
    if shape == "exact":
        return CpeMatchCriterion(_product(product, version), vulnerable)
    name = Cpe("a", "vendor", product)
    if shape == "any":
        return CpeMatchCriterion(name, vulnerable)
    bound = draw(st.sampled_from(_BOUNDS))
    return CpeMatchCriterion(name, vulnerable, **{bound: version})


leaves = st.builds(
    lambda op, neg, ms: Node(op, neg, tuple(ms)),
    operators,
    st.booleans(),
    st.lists(criteria(), min_size=1, max_size=3),
)
nodes = st.recursive(
    leaves,
    lambda children: st.builds(
        lambda op, neg, ms, ch: Node(op, neg, tuple(ms), tuple(ch)),
        operators,
        st.booleans(),
        st.lists(criteria(), max_size=2),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)
configurations = st.builds(
    lambda op, neg, ns: Configuration(op, neg, tuple(ns)),
    operators,
    st.booleans(),
    st.lists(nodes, min_size=1, max_size=3),
)
platforms = st.lists(
    st.builds(_product, st.sampled_from(_PRODUCTS), st.sampled_from(_VERSIONS)), max_size=5
)


def _shuffled(node: Node, rnd: random.Random) -> Node:
    matches = list(node.matches)
    children = [_shuffled(child, rnd) for child in node.children]
    rnd.shuffle(matches)
    rnd.shuffle(children)
    return Node(node.operator, node.negate, tuple(matches), tuple(children))


@settings(deadline=None)
@given(configurations, platforms, st.randoms(use_true_random=False))
def test_evaluation_ignores_order(
    config: Configuration, platform: list[Cpe], rnd: random.Random
) -> None:
    shuffled_nodes = [_shuffled(node, rnd) for node in config.nodes]
    rnd.shuffle(shuffled_nodes)
    shuffled_platform = list(platform)
    rnd.shuffle(shuffled_platform)
    shuffled = Configuration(config.operator, config.negate, tuple(shuffled_nodes))
    assert evaluate(shuffled, shuffled_platform) == evaluate(config, platform)


@settings(deadline=None)
@given(nodes, configurations, platforms)
def test_double_negation_is_identity(
    node: Node, config: Configuration, platform: list[Cpe]
) -> None:
    wrapped = Node("OR", True, children=(Node("AND", True, children=(node,)),))
    assert evaluate(wrapped, platform) == evaluate(node, platform)
    assert node.negated().negated() == node
    assert evaluate(config.negated(), platform).applies != evaluate(config, platform).applies
    assert evaluate(config.negated().negated(), platform) == evaluate(config, platform)


@settings(deadline=None)
@given(configurations, platforms)
def test_evidence_is_vulnerable_real_and_only_when_applying(
    config: Configuration, platform: list[Cpe]
) -> None:
    result = evaluate(config, Platform(tuple(platform)))
    if not result.applies:
        assert result.vulnerable == ()
    for evidence in result.vulnerable:
        assert evidence.criterion.vulnerable
        assert evidence.platform_cpe in platform
        assert criterion_matches(evidence.criterion, evidence.platform_cpe)
    assert len(set(result.vulnerable)) == len(result.vulnerable)


def _without_negation(node: Node) -> Node:
    children = tuple(_without_negation(child) for child in node.children)
    return Node(node.operator, False, node.matches, children)


@settings(deadline=None)
@given(configurations, platforms, platforms)
def test_without_negation_more_software_never_unapplies(
    config: Configuration, platform: list[Cpe], more: list[Cpe]
) -> None:
    positive = Configuration(
        config.operator, False, tuple(_without_negation(n) for n in config.nodes)
    )
    if evaluate(positive, platform).applies:
        assert evaluate(positive, platform + more).applies


def _decided_by_true_nodes(node: Node, criterion: CpeMatchCriterion, platform: list[Cpe]) -> bool:
    """Whether ``criterion`` sits in ``node`` on a path of nodes that are all true."""
    if not evaluate(node, platform).applies:
        return False
    return criterion in node.matches or any(
        _decided_by_true_nodes(child, criterion, platform) for child in node.children
    )


@settings(deadline=None)
@given(configurations, platforms)
def test_evidence_comes_from_nodes_that_are_true(
    config: Configuration, platform: list[Cpe]
) -> None:
    positive = Configuration(
        config.operator, False, tuple(_without_negation(n) for n in config.nodes)
    )
    for evidence in evaluate(positive, platform).vulnerable:
        assert any(
            _decided_by_true_nodes(node, evidence.criterion, platform) for node in positive.nodes
        )
