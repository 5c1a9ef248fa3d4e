"""Dotted numeric versions with an optional suffix: QEMU, Xen, libvirt, kernels, PVE, AHV.

Grammar: an optional ``v``, one or more dot-separated numbers (the *release*), then optionally
``-`` and a *suffix* of letters and digits separated by ``-``, ``.``, ``_``, ``+`` or ``~``.
Examples: ``8.2.0``, ``4.17.3``, ``20230302.100173``, ``6.1.0-18-amd64``,
``5.15.0-105-generic``, ``6.8.12-4-pve``, ``9.0.0-rc1``.

Order (documented rule, not any upstream's):

1. The release, numerically component by component; missing trailing components count as 0,
   so ``8.2 == 8.2.0`` and ``4.17.10 > 4.17.9``.
2. Then the kind of suffix: a *pre-release* suffix (its first word is ``dev``, ``alpha``,
   ``beta``, ``pre``, ``preview`` or ``rc``) < no suffix < any other suffix (a *post-release*
   such as a distribution build ``-18-amd64``). So ``9.0.0-rc1 < 9.0.0 < 9.0.0-1``.
3. Pre-releases then compare by their word (dev < alpha < beta < pre = preview < rc).
4. Then the suffix's numbers in order (``-18-amd64`` < ``-21-amd64``), then its remaining words
   in order, case-insensitively (``-105-generic`` < ``-105-lowlatency``). Separators inside the
   suffix are not significant (``rc.1`` == ``rc1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, final

from hvpatch.domain.versions._base import Version, clean_text, pack, rejection, require_str

_KIND = "a dotted version"
_EXPECTED = (
    "numbers separated by dots with an optional '-' suffix, like '8.2.0' or '6.1.0-18-amd64'"
)
_GRAMMAR = re.compile(
    r"[vV]?(?P<release>\d{1,12}(?:\.\d{1,12}){0,9})"
    r"(?:-(?P<suffix>[A-Za-z0-9]+(?:[-._+~][A-Za-z0-9]+)*))?"
)
_WORDS = re.compile(r"\d+|[a-z]+")
PRE_RELEASE_RANK = {"dev": 0, "alpha": 1, "beta": 2, "pre": 3, "preview": 3, "rc": 4}
_PRE, _FINAL, _POST = -1, 0, 1

_Key = tuple[tuple[int, ...], int, int, tuple[int, ...], tuple[str, ...]]


def _suffix_key(suffix: str) -> tuple[int, int, tuple[int, ...], tuple[str, ...]]:
    """(kind, pre-release rank, numbers, words) of a suffix; see the module docstring."""
    if not suffix:
        return (_FINAL, 0, (), ())
    tokens = _WORDS.findall(suffix.lower())
    numbers = tuple(int(t) for t in tokens if t.isdigit())
    words = [t for t in tokens if not t.isdigit()]
    first = tokens[0]
    if first in PRE_RELEASE_RANK:
        return (_PRE, PRE_RELEASE_RANK[first], numbers, tuple(words[1:]))
    return (_POST, 0, numbers, tuple(words))


@final
@dataclass(frozen=True, slots=True, eq=False)
class DottedVersion(Version):
    """A dotted numeric version such as ``4.17.3``, ``9.0.0-rc1`` or ``6.8.12-4-pve``."""

    scheme: ClassVar[str] = "dotted"

    text: str
    #: The numeric components as written (``(6, 1, 0)`` for ``6.1.0-18-amd64``).
    release: tuple[int, ...] = field(init=False)
    #: The text after the first ``-``, or "".
    suffix: str = field(init=False)
    _key: _Key = field(init=False, repr=False)

    def __post_init__(self) -> None:
        text = clean_text(_KIND, self.text, _EXPECTED)
        match = _GRAMMAR.fullmatch(text)
        if match is None:
            raise rejection(_KIND, self.text, _EXPECTED)
        release = tuple(int(part) for part in match["release"].split("."))
        suffix = match["suffix"] or ""
        trimmed = release
        while len(trimmed) > 1 and trimmed[-1] == 0:
            trimmed = trimmed[:-1]
        kind, rank, numbers, words = _suffix_key(suffix)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "suffix", suffix)
        object.__setattr__(self, "_key", (trimmed, kind, rank, numbers, words))

    @classmethod
    def parse(cls, text: str) -> DottedVersion:
        """Parse a dotted version; the result for a given string is cached."""
        return _parse(require_str(_KIND, text, _EXPECTED))

    def __str__(self) -> str:
        return self.text

    @property
    def is_prerelease(self) -> bool:
        """True for an ``-rc``/``-beta``/... suffix, which sorts before the plain release."""
        return self._key[1] == _PRE

    def coarse_key(self) -> int:
        """The first three release components in 31/16/16 bits, saturating."""
        parts = (*self.release[:3], 0, 0)[:3]
        return pack(parts, (31, 16, 16))


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> DottedVersion:
    return DottedVersion(text)
