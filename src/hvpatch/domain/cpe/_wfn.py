"""The well-formed CPE name (WFN, NISTIR 7695) as a frozen value, and its 2.3 FS binding.

Attribute values are kept in a *value form* that is canonical, so that equal names are equal
Python values and matching can compare strings directly:

* :data:`ANY` and :data:`NA` are the two logical values;
* any other value is a non-empty lower-case string of printable ASCII in which only three
  characters are quoted with a backslash: ``\\\\`` (backslash), ``\\*`` and ``\\?`` (a literal
  asterisk or question mark). An unquoted ``*`` (at most one, at the start and/or the end) or
  a run of unquoted ``?`` (at the start and/or the end) is a wildcard, which makes the value a
  *pattern*. Every other character, ``:`` and ``.`` included, stands for itself.
* A value made of one literal hyphen is written ``\\-``, because a bare ``-`` means NA.

So ``esxi`` is a literal, ``7.0`` is a literal, ``7.*`` is a pattern and ``7.\\*`` is the
literal text ``7.*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Final

from hvpatch.errors import InputError, Problem


class Logical(Enum):
    """The two logical attribute values of a WFN."""

    ANY = "ANY"
    NA = "NA"

    def __repr__(self) -> str:
        return self.value


ANY: Final = Logical.ANY
"""Any value at all (bound as ``*``)."""
NA: Final = Logical.NA
"""Not applicable: the attribute has no meaningful value for this product (bound as ``-``)."""

AttributeValue = Logical | str
"""ANY, NA, or a value-form string (see the module docstring)."""

ATTRIBUTES: Final = (
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
)
"""The eleven WFN attributes, in the order the 2.3 formatted string binds them."""

# Kinds of an attribute value, precomputed per name so matching is a few integer tests.
K_ANY: Final = 0
K_NA: Final = 1
K_LITERAL: Final = 2
K_PATTERN: Final = 3

_PARTS: Final = frozenset({"a", "o", "h"})
_VALUE_FORM = re.compile(r"(\*|\?+)?((?:[^\\*?]|\\[\\*?])*)(\*|\?+)?")
_QUOTED = re.compile(r"\\(.)")
_FS_PLAIN: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class ValueFormError(ValueError):
    """Why a value-form string is malformed (callers turn it into an InputError)."""


def _printable(ch: str) -> bool:
    return "!" <= ch <= "~"


def _misplaced_wildcard(value: str) -> str:
    """The reason a value of printable characters fails the value-form grammar."""
    tokens: list[tuple[int, str, bool]] = []  # (position, character, quoted)
    i = 0
    while i < len(value):
        if value[i] == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt not in ("\\", "*", "?"):
                shown = repr("\\" + nxt) if nxt else "a trailing backslash"
                return f"bad quoting {shown}: only \\\\, \\* and \\? are quoted in a value"
            tokens.append((i, nxt, True))
            i += 2
        else:
            tokens.append((i, value[i], False))
            i += 1
    lead = _wild_run(tokens)
    trail = _wild_run(tokens[lead:][::-1])
    for pos, ch, quoted in tokens[lead : len(tokens) - trail]:
        if not quoted and ch in "*?":
            return (
                f"unquoted {ch!r} at position {pos}: a wildcard may only lead or trail the "
                f"value (quote it as '\\{ch}' for a literal)"
            )
    return "malformed value"  # pragma: no cover - the grammar accepts everything else


def _wild_run(tokens: list[tuple[int, str, bool]]) -> int:
    """How many leading tokens form one wildcard run (a single ``*`` or ``?``s)."""
    if tokens and tokens[0][1] == "*" and not tokens[0][2]:
        return 1
    n = 0
    while n < len(tokens) and tokens[n][1] == "?" and not tokens[n][2]:
        n += 1
    return n


@lru_cache(maxsize=1 << 14)
def classify(value: str) -> tuple[AttributeValue, int]:
    """Normalise one attribute value (lower case; ``*`` is ANY, ``-`` is NA) and give its kind.

    Raises :class:`ValueFormError` with the reason when ``value`` is not a valid value form.
    """
    if value == "*":
        return ANY, K_ANY
    if value == "-":
        return NA, K_NA
    if value == "":
        raise ValueFormError("empty value (use ANY for 'any value')")
    for ch in value:
        if not _printable(ch):
            raise ValueFormError(f"character {ch!r} is not printable ASCII")
    value = value.lower()
    if value == "\\-":
        return value, K_LITERAL
    m = _VALUE_FORM.fullmatch(value)
    if m is None:
        raise ValueFormError(_misplaced_wildcard(value))
    if m.group(1) is None and m.group(3) is None:
        return value, K_LITERAL
    return value, K_PATTERN


def unquote(value: str) -> str:
    """The literal text of a value-form string (quotes removed, wildcards kept as written)."""
    return _QUOTED.sub(r"\1", value) if "\\" in value else value


@lru_cache(maxsize=1 << 12)
def pattern_regex(value: str) -> re.Pattern[str]:
    """A compiled regex for a pattern value, matching the literal text of target values.

    ``*`` matches any run of characters; a run of *n* ``?`` matches up to *n* characters, as
    the NISTIR 7696 ``compare_strings`` algorithm does (its ``begins``/``ends`` bound the
    characters before and after the body). A value made only of ``?`` is a leading run.
    """
    m = _VALUE_FORM.fullmatch(value)
    assert m is not None, value
    head, body, tail = m.group(1), m.group(2), m.group(3)

    def wild(run: str | None) -> str:
        if run is None:
            return ""
        return ".*" if run == "*" else f".{{0,{len(run)}}}"

    return re.compile(wild(head) + re.escape(unquote(body)) + wild(tail), re.DOTALL)


def _bind_value_fs(value: AttributeValue) -> str:
    """One attribute as the 2.3 formatted string writes it (NISTIR 7695 ``bind_value_for_fs``)."""
    if value is ANY:
        return "*"
    if value is NA:
        return "-"
    assert isinstance(value, str)
    if value == "\\-":
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":  # \\ \* \? stay quoted in the FS
            out.append(value[i : i + 2])
            i += 2
            continue
        out.append(ch if ch in _FS_PLAIN or ch in "*?" else "\\" + ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Cpe:
    """A CPE 2.3 name: eleven attributes, each ANY, NA or a value-form string.

    Construction validates and normalises: strings are lower-cased (CPE matching is
    case-insensitive), ``"*"`` becomes ANY and ``"-"`` becomes NA. ``part`` is ``a``
    (application), ``o`` (operating system), ``h`` (hardware) or ANY. Bad values raise
    :class:`~hvpatch.errors.InputError` naming the attribute. ``str(cpe)`` is the 2.3 FS;
    ``values`` holds the eleven normalised attributes in that order.
    """

    part: AttributeValue = ANY
    vendor: AttributeValue = ANY
    product: AttributeValue = ANY
    version: AttributeValue = ANY
    update: AttributeValue = ANY
    edition: AttributeValue = ANY
    language: AttributeValue = ANY
    sw_edition: AttributeValue = ANY
    target_sw: AttributeValue = ANY
    target_hw: AttributeValue = ANY
    other: AttributeValue = ANY
    values: tuple[AttributeValue, ...] = field(init=False, repr=False, compare=False)
    _kinds: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values: list[AttributeValue] = []
        kinds: list[int] = []
        for name in ATTRIBUTES:
            raw = getattr(self, name)
            value, kind = _normalise(name, raw)
            if value is not raw:
                object.__setattr__(self, name, value)
            values.append(value)
            kinds.append(kind)
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "_kinds", tuple(kinds))

    def text(self, attribute: str) -> str | None:
        """The literal text of ``attribute`` (quotes removed), or None for ANY, NA or a pattern."""
        i = ATTRIBUTES.index(attribute)
        value = self.values[i]
        if self._kinds[i] != K_LITERAL:
            return None
        assert isinstance(value, str)
        return unquote(value)

    def __str__(self) -> str:
        return format_cpe(self)


def _normalise(name: str, raw: object) -> tuple[AttributeValue, int]:
    if raw is ANY:
        return ANY, K_ANY
    if raw is NA:
        if name == "part":
            raise _attribute_error(name, raw, "part cannot be NA")
        return NA, K_NA
    if not isinstance(raw, str):
        raise _attribute_error(name, raw, "expected ANY, NA or a string")
    try:
        value, kind = classify(raw)
    except ValueFormError as exc:
        raise _attribute_error(name, raw, str(exc)) from None
    if name == "part" and kind != K_ANY and value not in _PARTS:
        raise _attribute_error(name, raw, "part must be 'a', 'o', 'h' or ANY")
    return value, kind


def _attribute_error(name: str, raw: object, why: str) -> InputError:
    return InputError(f"invalid CPE attribute value {raw!r}", [Problem(name, why)])


def format_cpe(cpe: Cpe) -> str:
    """Bind a name to the CPE 2.3 formatted string, e.g. ``cpe:2.3:o:vmware:esxi:7.0:...``.

    Only ``.``, ``-`` and ``_`` stay unquoted among punctuation, as NISTIR 7695 §6.2 binds;
    ``parse_cpe(format_cpe(x)) == x`` for every name.
    """
    return "cpe:2.3:" + ":".join(_bind_value_fs(v) for v in cpe.values)
