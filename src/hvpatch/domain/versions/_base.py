"""The :class:`Version` base class and the helpers every scheme shares.

A version is a frozen value with a precomputed sort key (``_key``). Equality, hashing and the four
order operators all use that key, so they agree with each other by construction and compare as
fast as a tuple comparison in C. Only versions of the same scheme are comparable: ``==`` across
schemes is ``False``, ``<`` across schemes raises :class:`TypeError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from hvpatch.errors import VersionParseError

#: Longest version string accepted; anything longer is garbage, not a version.
MAX_TEXT_LENGTH = 200


class Version(ABC):
    """A version of one scheme: totally ordered, hashable, immutable, printable and re-parsable.

    Subclasses are frozen slotted dataclasses that set ``_key`` in ``__post_init__``. ``str(v)``
    gives a text that :meth:`parse` turns back into a version equal to ``v``.
    """

    __slots__ = ()

    #: Registry name of the scheme ("esxi", "windows", "deb", "rpm", "dotted").
    scheme: ClassVar[str]
    #: Sort key; equal keys mean equal versions. Set once by each subclass.
    _key: Any

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text``; raise :class:`~hvpatch.errors.VersionParseError` if it is not valid."""

    @abstractmethod
    def coarse_key(self) -> int:
        """A non-negative int below 2**63 that never decreases as the version increases.

        ``a <= b`` implies ``a.coarse_key() <= b.coarse_key()``, so a range filter on versions
        can be pushed into SQL as a pre-filter on this column and refined in Python.
        """

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return bool(self._key == other._key)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: object) -> bool:
        if type(other) is type(self):
            return bool(self._key < other._key)
        self._refuse_other_scheme(other, "<")
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if type(other) is type(self):
            return bool(self._key <= other._key)
        self._refuse_other_scheme(other, "<=")
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if type(other) is type(self):
            return bool(self._key > other._key)
        self._refuse_other_scheme(other, ">")
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if type(other) is type(self):
            return bool(self._key >= other._key)
        self._refuse_other_scheme(other, ">=")
        return NotImplemented

    def _refuse_other_scheme(self, other: object, operator: str) -> None:
        """Raise a clear TypeError for a version of another scheme (other types: Python's)."""
        if isinstance(other, Version):
            raise TypeError(
                f"cannot compare versions of different schemes: {self.scheme} {str(self)!r} "
                f"{operator} {other.scheme} {str(other)!r}"
            )


def shown(text: object) -> str:
    """``repr`` of an input for an error message, shortened if it is very long."""
    if isinstance(text, str) and len(text) > 60:
        return repr(text[:57] + "...")
    return repr(text)


def rejection(kind: str, text: object, expected: str, reason: str = "") -> VersionParseError:
    """The error for an unparsable version: what was given, why, and what was expected."""
    detail = f": {reason}" if reason else ""
    return VersionParseError(f"not {kind}: {shown(text)}{detail} (expected {expected})")


def require_str(kind: str, text: object, expected: str) -> str:
    """``text`` itself if it is a string; a VersionParseError otherwise."""
    if not isinstance(text, str):
        raise rejection(kind, text, expected, f"{type(text).__name__} is not a string")
    return text


def clean_text(kind: str, text: object, expected: str) -> str:
    """``text`` without surrounding whitespace; rejects non-strings, empty and over-long input."""
    stripped = require_str(kind, text, expected).strip()
    if not stripped:
        raise rejection(kind, text, expected, "empty")
    if len(stripped) > MAX_TEXT_LENGTH:
        raise rejection(kind, text, expected, f"longer than {MAX_TEXT_LENGTH} characters")
    if not stripped.isascii():
        raise rejection(kind, text, expected, "contains non-ASCII characters")
    return stripped


def pack(values: Sequence[int], bits: Sequence[int]) -> int:
    """Pack non-negative ints into one int, most significant first, each in ``bits`` bits.

    A value too large for its field saturates it and every field after it, which keeps the
    packing monotone: if ``values_a <= values_b`` lexicographically, then
    ``pack(values_a) <= pack(values_b)``.
    """
    result = 0
    saturated = False
    for value, width in zip(values, bits, strict=True):
        top = (1 << width) - 1
        if saturated or value >= top:
            saturated = True
            value = top
        result = (result << width) | max(value, 0)
    return result
