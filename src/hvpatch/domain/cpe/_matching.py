"""CPE name matching (NISTIR 7696): attribute relations and name-level relations.

A *source* name (an advisory's criterion) is compared with a *target* name (what a host
runs). Per attribute the result is one of five set relations (7696 Table 6-2); a source
*matches* a target when it is a superset of, or equal to, the target on every attribute.
"""

from __future__ import annotations

from enum import Enum

from hvpatch.domain.cpe._wfn import (
    ANY,
    ATTRIBUTES,
    K_ANY,
    K_LITERAL,
    K_NA,
    K_PATTERN,
    NA,
    AttributeValue,
    Cpe,
    ValueFormError,
    classify,
    pattern_regex,
    unquote,
)
from hvpatch.errors import InputError, Problem


class Relation(Enum):
    """How the set of names a source value denotes relates to the target's (NISTIR 7696)."""

    SUPERSET = "superset"
    SUBSET = "subset"
    EQUAL = "equal"
    DISJOINT = "disjoint"
    UNDEFINED = "undefined"


def _relation(sk: int, s: AttributeValue, tk: int, t: AttributeValue) -> Relation:
    """NISTIR 7696 ``compare`` on normalised values and their kinds."""
    if tk == K_PATTERN:  # 7696 leaves wildcards in the target undefined
        return Relation.UNDEFINED
    if sk == tk and s == t:
        return Relation.EQUAL
    if sk == K_ANY:
        return Relation.SUPERSET
    if tk == K_ANY:
        return Relation.SUBSET
    if sk in (K_NA, K_LITERAL) or tk == K_NA:
        return Relation.DISJOINT
    assert isinstance(s, str) and isinstance(t, str)
    return Relation.SUPERSET if pattern_regex(s).fullmatch(unquote(t)) else Relation.DISJOINT


def _kind_of(role: str, value: AttributeValue) -> tuple[AttributeValue, int]:
    if value is ANY:
        return ANY, K_ANY
    if value is NA:
        return NA, K_NA
    if not isinstance(value, str):
        why = "expected ANY, NA or a string"
        raise InputError(f"invalid {role} value {value!r}", [Problem(role, why)])
    try:
        return classify(value)
    except ValueFormError as exc:
        why = str(exc)
        raise InputError(f"invalid {role} value {value!r}", [Problem(role, why)]) from None


def compare_attribute(source: AttributeValue, target: AttributeValue) -> Relation:
    """The NISTIR 7696 relation of one source attribute value to one target value.

    Values are ANY, NA or value-form strings (``"*"`` and ``"-"`` are read as ANY and NA);
    comparison is case-insensitive. A wildcard source value (``7.*``, ``update_?``) is a
    SUPERSET of the literal target values it matches and DISJOINT from the others; a target
    with wildcards is UNDEFINED, as 7696 leaves it.
    """
    s, sk = _kind_of("source", source)
    t, tk = _kind_of("target", target)
    return _relation(sk, s, tk, t)


def compare_cpes(source: Cpe, target: Cpe) -> dict[str, Relation]:
    """The relation of every attribute of ``source`` to ``target``, by attribute name."""
    sk, tk = source._kinds, target._kinds
    sv, tv = source.values, target.values
    return {name: _relation(sk[i], sv[i], tk[i], tv[i]) for i, name in enumerate(ATTRIBUTES)}


def name_relation(source: Cpe, target: Cpe) -> Relation:
    """The name-level relation of NISTIR 7696 (``CPE_DISJOINT``, ``CPE_EQUAL``...).

    DISJOINT if any attribute is disjoint; EQUAL if all are equal; SUPERSET (SUBSET) if all
    are superset (subset) or equal; UNDEFINED otherwise (mixed or undefined attributes).
    """
    relations = set(compare_cpes(source, target).values())
    if Relation.DISJOINT in relations:
        return Relation.DISJOINT
    if relations == {Relation.EQUAL}:
        return Relation.EQUAL
    for direction in (Relation.SUPERSET, Relation.SUBSET):
        if relations <= {direction, Relation.EQUAL}:
            return direction
    return Relation.UNDEFINED


# Most names differ in product or vendor, so those are tested first.
_MATCH_ORDER = tuple(
    ATTRIBUTES.index(name)
    for name in ("product", "vendor", "version", "update", "part", *ATTRIBUTES[5:])
)


def cpe_matches(criteria: Cpe, target: Cpe) -> bool:
    """Whether ``criteria`` matches ``target``: superset-or-equal on every attribute.

    This is what NVD means by a criterion matching a product name (NISTIR 7696
    ``CPE_SUPERSET``). ``esxi:7.0:*`` matches ``esxi:7.0:update_3c``; ``esxi:7.0:update_3c``
    does not match ``esxi:7.0:*`` (the target is wider) nor ``esxi:7.0:update_3d``.
    """
    sk, tk = criteria._kinds, target._kinds
    sv, tv = criteria.values, target.values
    for i in _MATCH_ORDER:
        s_kind, t_kind = sk[i], tk[i]
        if s_kind == K_ANY and t_kind != K_PATTERN:
            continue
        if t_kind in (K_PATTERN, K_ANY):
            return False
        if s_kind == t_kind and sv[i] == tv[i]:
            continue
        if s_kind != K_PATTERN or t_kind != K_LITERAL:
            return False
        s, t = sv[i], tv[i]
        assert isinstance(s, str) and isinstance(t, str)
        if pattern_regex(s).fullmatch(unquote(t)) is None:
            return False
    return True
