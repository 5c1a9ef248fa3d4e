"""Unbinding CPE names from text: the 2.3 formatted string and the 2.2 URI (NISTIR 7695 §6).

Both unbinders produce value-form strings (see :mod:`hvpatch.domain.cpe._wfn`) and hand them
to :class:`Cpe`, so a name parsed from either binding is the same value. Errors are
:class:`~hvpatch.errors.InputError` naming the text and the attribute at fault.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from hvpatch.domain.cpe._wfn import ANY, ATTRIBUTES, NA, AttributeValue, Cpe
from hvpatch.errors import InputError, Problem

_FS_PREFIX: Final = "cpe:2.3:"
_URI_PREFIX: Final = "cpe:/"
_ALNUM: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_HEX: Final = frozenset("0123456789abcdef")
_URI_ATTRIBUTES: Final = ATTRIBUTES[:7]  # part .. language; edition may pack the other four


class _Bad(Exception):
    """A problem in one attribute, located by the caller."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _error(text: str, where: str, why: str) -> InputError:
    """``invalid CPE name '...'`` with one problem located at the attribute ("" for the name)."""
    return InputError(f"invalid CPE name {text!r}", [Problem(where, why)])


def parse_cpe(text: str) -> Cpe:
    """Parse a CPE name: the 2.3 formatted string (``cpe:2.3:...``) or the 2.2 URI (``cpe:/``).

    Values are lower-cased; ``*`` is ANY and ``-`` is NA; a backslash quotes the next
    punctuation character (``\\:``, ``\\.``, ``\\*``...); unquoted ``*`` and ``?`` are wildcards
    allowed only at the start or end of a value (NISTIR 7695 §6.2, ``add_quoting``). URI
    names missing trailing components have ANY there. Results are cached: names repeat
    across feeds.
    """
    if not isinstance(text, str):
        raise InputError(f"invalid CPE name {text!r}", [Problem("", "expected a string")])
    return _parse_cached(text)


@lru_cache(maxsize=1 << 16)
def _parse_cached(text: str) -> Cpe:
    lowered = text.strip().lower()
    if lowered.startswith(_FS_PREFIX):
        return _unbind_fs(text, lowered)
    if lowered.startswith(_URI_PREFIX):
        return _unbind_uri(text, lowered)
    raise _error(text, "", "expected a 2.3 formatted string 'cpe:2.3:...' or a 2.2 URI 'cpe:/...'")


# --- 2.3 formatted string ------------------------------------------------------------------


def _split_fs(body: str) -> list[str]:
    """Split on colons that are not quoted by a backslash."""
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            current.append(body[i : i + 2])
            i += 2
        elif ch == ":":
            fields.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    fields.append("".join(current))
    return fields


def _unbind_fs(text: str, lowered: str) -> Cpe:
    fields = _split_fs(lowered[len(_FS_PREFIX) :])
    if len(fields) != len(ATTRIBUTES):
        raise _error(
            text,
            "",
            f"has {len(fields)} attributes after 'cpe:2.3:', a formatted string has "
            f"{len(ATTRIBUTES)} (quote a literal ':' as '\\:')",
        )
    values: list[AttributeValue] = []
    for name, raw in zip(ATTRIBUTES, fields, strict=True):
        try:
            values.append(_unbind_value_fs(raw))
        except _Bad as bad:
            raise _error(text, name, bad.why) from None
    return _build(text, values)


def _unbind_value_fs(raw: str) -> AttributeValue:
    """One FS attribute to its value form (NISTIR 7695 FS unbinding, ``unbind_value_fs``)."""
    if raw == "*":
        return ANY
    if raw == "-":
        return NA
    if raw == "":
        raise _Bad("empty value (write '*' for ANY or '-' for NA)")
    if raw == "\\-":
        return "\\-"
    out: list[str] = []
    i, last = 0, len(raw) - 1
    while i <= last:
        ch = raw[i]
        if ch == "\\":
            if i == last:
                raise _Bad("ends with a lone backslash (write '\\\\' for a literal one)")
            nxt = raw[i + 1]
            if nxt in _ALNUM:
                raise _Bad(f"bad escape '\\{nxt}': only punctuation can be quoted")
            if not "!" <= nxt <= "~":
                raise _Bad(f"bad escape of {nxt!r}: only printable punctuation can be quoted")
            out.append("\\" + nxt if nxt in "\\*?" else nxt)
            i += 2
            continue
        if ch == "*" and 0 < i < last:
            raise _Bad(
                f"unquoted '*' at position {i}: it may only lead or trail the value "
                "(quote it as '\\*' for a literal)"
            )
        if not "!" <= ch <= "~":
            raise _Bad(f"character {ch!r} is not allowed (printable ASCII only, no spaces)")
        out.append(ch)
        i += 1
    return "".join(out)


def _build(text: str, values: list[AttributeValue]) -> Cpe:
    try:
        return Cpe(*values)
    except InputError as exc:  # a value-form rule (wildcard placement, part letter)
        problem = exc.problems[0] if exc.problems else Problem("", str(exc))
        raise _error(text, problem.location, problem.message) from None


# --- 2.2 URI -------------------------------------------------------------------------------


def _unbind_uri(text: str, lowered: str) -> Cpe:
    components = lowered[len(_URI_PREFIX) :].split(":")
    if len(components) > len(_URI_ATTRIBUTES):
        raise _error(
            text,
            "",
            f"has {len(components)} components after 'cpe:/', a 2.2 URI has at most "
            f"{len(_URI_ATTRIBUTES)}",
        )
    components += [""] * (len(_URI_ATTRIBUTES) - len(components))
    values: dict[str, AttributeValue] = {}
    for name, raw in zip(_URI_ATTRIBUTES, components, strict=True):
        try:
            if name == "edition" and raw.startswith("~"):
                values.update(_unpack_edition(raw))
            else:
                values[name] = _decode_uri(raw)
        except _Bad as bad:
            raise _error(text, name, bad.why) from None
    return _build(text, [values.get(name, ANY) for name in ATTRIBUTES])


def _unpack_edition(raw: str) -> dict[str, AttributeValue]:
    """``~edition~sw_edition~target_sw~target_hw~other`` (NISTIR 7695 §6.1, URI unpacking)."""
    packed = raw.split("~")
    if len(packed) != 6:
        raise _Bad(
            f"packed edition has {len(packed) - 1} fields, expected 5 "
            "(~edition~sw_edition~target_sw~target_hw~other)"
        )
    names = ("edition", "sw_edition", "target_sw", "target_hw", "other")
    return {name: _decode_uri(part) for name, part in zip(names, packed[1:], strict=True)}


def _decode_uri(raw: str) -> AttributeValue:
    """One URI component to its value form: percent-decoding, ``%01`` = ``?``, ``%02`` = ``*``."""
    if raw == "":
        return ANY
    if raw == "-":
        return NA
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "%":
            code = raw[i + 1 : i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                raise _Bad(f"bad percent-encoding {raw[i : i + 3]!r}")
            i += 3
            if code == "01":
                out.append("?")
                continue
            if code == "02":
                out.append("*")
                continue
            ch = chr(int(code, 16))
            if not "!" <= ch <= "~":
                raise _Bad(f"percent-encoded {ch!r} is not printable ASCII")
            out.append("\\" + ch if ch in "\\*?" else ch)
            continue
        if not "!" <= ch <= "~" or ch in "*?\\":
            raise _Bad(f"character {ch!r} must be percent-encoded in a URI")
        out.append(ch)
        i += 1
    value = "".join(out)
    return "\\-" if value == "-" else value  # a literal hyphen (``%2d``), not NA
