"""NVD configurations (CVE API 2.0 ``configurations[].nodes[].cpeMatch[]``) and their evaluation.

A configuration says which platforms a CVE applies to: AND/OR nodes of match criteria,
possibly negated, possibly nested (the 1.1 feeds' ``children``). A *platform* is the set of
concrete CPE names describing one host (its OS, its hypervisor, its applications).

Evaluation answers two things: whether the configuration applies, and which *vulnerable*
criteria matched which platform names in the nodes that made it apply (the evidence). A
node's evidence explains its value: for a true OR node, its true operands; for a true AND
node, all of them; for a false node, its false operands; a negated node keeps the evidence
of what it negates. So a negated node that is true because something is absent brings no
evidence, and ``negate(negate(x))`` reports exactly what ``x`` reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hvpatch.domain.cpe._criteria import (
    CpeMatchCriterion,
    VersionCompare,
    compare_dotted,
    criterion_matches,
)
from hvpatch.domain.cpe._wfn import K_LITERAL, Cpe
from hvpatch.errors import InputError, Problem

Operator = Literal["AND", "OR"]
_OPERATORS = ("AND", "OR")


def _check_operator(kind: str, operator: object) -> None:
    if operator not in _OPERATORS:
        why = f"operator must be 'AND' or 'OR', got {operator!r}"
        raise InputError(f"invalid {kind}", [Problem("operator", why)])


@dataclass(frozen=True, slots=True)
class Node:
    """An NVD configuration node: its criteria and child nodes combined by ``operator``.

    OR is true when any operand is, AND when all are; ``negate`` inverts the result. A node
    must have at least one criterion or child (NVD has no empty nodes; an empty AND would
    apply to every host).
    """

    operator: Operator
    negate: bool
    matches: tuple[CpeMatchCriterion, ...] = ()
    children: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        _check_operator("configuration node", self.operator)
        object.__setattr__(self, "matches", tuple(self.matches))
        object.__setattr__(self, "children", tuple(self.children))
        if not self.matches and not self.children:
            why = "a node needs at least one cpeMatch criterion or child node"
            raise InputError("invalid configuration node", [Problem("node", why)])

    def negated(self) -> Node:
        """The same node with ``negate`` flipped."""
        return dataclasses.replace(self, negate=not self.negate)


@dataclass(frozen=True, slots=True)
class Configuration:
    """One NVD configuration: its nodes combined by ``operator`` (NVD's default is OR).

    The usual "running on/with" shape is AND of an OR node of vulnerable criteria and an OR
    node of non-vulnerable platform criteria.
    """

    operator: Operator
    negate: bool
    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        _check_operator("configuration", self.operator)
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            why = "a configuration needs at least one node"
            raise InputError("invalid configuration", [Problem("nodes", why)])

    def negated(self) -> Configuration:
        """The same configuration with ``negate`` flipped."""
        return dataclasses.replace(self, negate=not self.negate)


@dataclass(frozen=True, slots=True)
class Platform:
    """The concrete CPE names of one host, indexed by vendor and product for fast matching.

    Build it once per host when evaluating many configurations; duplicates are dropped.
    """

    cpes: tuple[Cpe, ...]
    _by_product: dict[tuple[str, str], tuple[Cpe, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        cpes = tuple(dict.fromkeys(self.cpes))
        object.__setattr__(self, "cpes", cpes)
        index: dict[tuple[str, str], list[Cpe]] = {}
        for cpe in cpes:
            if cpe._kinds[1] == K_LITERAL and cpe._kinds[2] == K_LITERAL:
                key = (str(cpe.vendor), str(cpe.product))
                index.setdefault(key, []).append(cpe)
        object.__setattr__(self, "_by_product", {k: tuple(v) for k, v in index.items()})

    def candidates(self, criteria: Cpe) -> Sequence[Cpe]:
        """The names that ``criteria`` could match (all of them unless it names a product).

        A literal vendor and product in the criteria only match the same literal values
        (NISTIR 7696: a literal is a subset of ANY and disjoint from NA), so the index is exact.
        """
        if criteria._kinds[1] == K_LITERAL and criteria._kinds[2] == K_LITERAL:
            return self._by_product.get((str(criteria.vendor), str(criteria.product)), ())
        return self.cpes


@dataclass(frozen=True, slots=True)
class MatchEvidence:
    """A vulnerable criterion and the platform name it matched."""

    criterion: CpeMatchCriterion
    platform_cpe: Cpe

    def describe(self) -> str:
        """One line for reports: which host name matched which rule."""
        return f"{self.platform_cpe} matched {self.criterion.describe()}"


@dataclass(frozen=True, slots=True)
class ConfigResult:
    """Whether a configuration applies to a platform, and the vulnerable matches that made it.

    ``vulnerable`` is empty when the configuration does not apply; it is sorted and has no
    duplicates, so results do not depend on the order of criteria, nodes or platform names.
    """

    applies: bool
    vulnerable: tuple[MatchEvidence, ...] = ()


_Outcome = tuple[bool, tuple[MatchEvidence, ...]]


def _combine(operator: Operator, negate: bool, operands: Iterable[_Outcome]) -> _Outcome:
    results = list(operands)
    if operator == "OR":
        value = any(v for v, _ in results)
    else:
        value = all(v for v, _ in results)
    # The operands whose value equals the node's are the ones that decide it.
    evidence = tuple(e for v, evs in results if v == value for e in evs)
    return (not value if negate else value), evidence


def _criterion(c: CpeMatchCriterion, platform: Platform, compare: VersionCompare) -> _Outcome:
    matched = [t for t in platform.candidates(c.criteria) if criterion_matches(c, t, compare)]
    if not matched:
        return False, ()
    return True, (tuple(MatchEvidence(c, t) for t in matched) if c.vulnerable else ())


def _node(node: Node, platform: Platform, compare: VersionCompare) -> _Outcome:
    operands = [_criterion(c, platform, compare) for c in node.matches]
    operands += [_node(child, platform, compare) for child in node.children]
    return _combine(node.operator, node.negate, operands)


def _evidence_key(e: MatchEvidence) -> tuple[str, ...]:
    c = e.criterion
    return (
        str(c.criteria),
        c.version_start_including or "",
        c.version_start_excluding or "",
        c.version_end_including or "",
        c.version_end_excluding or "",
        c.match_criteria_id or "",
        str(e.platform_cpe),
    )


def evaluate(
    config: Configuration | Node,
    platform: Platform | Iterable[Cpe],
    compare: VersionCompare = compare_dotted,
) -> ConfigResult:
    """Whether ``config`` applies to ``platform``, with the vulnerable matches as evidence.

    ``compare`` orders versions for range criteria (see :func:`criterion_matches`). Criteria
    with ``vulnerable=False`` count in the logic but never appear in the evidence.
    """
    plat = platform if isinstance(platform, Platform) else Platform(tuple(platform))
    if isinstance(config, Node):
        applies, evidence = _node(config, plat, compare)
    else:
        nodes = (_node(n, plat, compare) for n in config.nodes)
        applies, evidence = _combine(config.operator, config.negate, nodes)
    if not applies:
        return ConfigResult(False)
    unique = sorted(dict.fromkeys(evidence), key=_evidence_key)
    return ConfigResult(True, tuple(unique))
