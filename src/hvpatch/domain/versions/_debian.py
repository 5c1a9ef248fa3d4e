"""Debian package versions (``[epoch:]upstream[-revision]``) in dpkg order.

Ordering follows dpkg's ``verrevcmp`` (deb-version(7)): the epoch numerically, then upstream,
then revision, each compared as alternating non-digit and digit runs. Non-digit runs compare
character by character with ``~`` before the end of the run, the end before letters, letters
before everything else; digit runs compare numerically; a missing run counts as empty / zero.
So ``1:2.3 > 2.9``, ``6.2.0~rc1 < 6.2.0`` and ``1.0 == 1.00 == 0:1.0 == 1.0-0``.

The order is computed from a precomputed tuple key rather than by calling univers' comparison
(slow, and its ``==``/``hash`` disagree with its ordering for ``1.0`` vs ``1.00``); the property
tests check the key against univers on generated versions. :meth:`DebianVersion.to_univers`
gives the equivalent univers object for use with univers ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, final

if TYPE_CHECKING:
    import univers.versions

from hvpatch.domain.versions._base import Version, clean_text, pack, rejection, require_str

_KIND = "a Debian version"
_EXPECTED = (
    "[epoch:]upstream[-revision] like '1:2.3-4' or '6.2.0~rc1', upstream starting with a digit"
)
_EPOCH = re.compile(r"\d{1,9}")
_UPSTREAM = re.compile(r"\d[A-Za-z0-9.+~-]*")
_UPSTREAM_NO_HYPHEN = re.compile(r"\d[A-Za-z0-9.+~]*")
_REVISION = re.compile(r"[A-Za-z0-9.+~]+")
_RUNS = re.compile(r"(\D*)(\d*)")

#: Key of one dpkg string part: ((sign, atom), ...) followed by the end marker (0,).
_PartKey = tuple[tuple[int, ...], ...]


def _char_weight(char: str) -> int:
    """dpkg's ``order()``: '~' < end of run (0) < letters < other characters."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def dpkg_part_key(text: str) -> _PartKey:
    """A tuple that orders upstream or revision strings exactly like dpkg's ``verrevcmp``.

    The string becomes a flat sequence of atoms: the weights of each non-digit run followed by
    0 (end of run), then the value of the digit run after it. dpkg compares these sequences as
    if padded with zeros forever, so trailing zeros are stripped (``1.0`` == ``1.00`` == ``1``
    plus ``.0``) and each atom is tagged with the sign of the first non-zero atom at or after
    it; a final ``(0,)`` then sorts after a continuation that goes negative (``~``) and before
    one that goes positive, exactly as the zero padding would.
    """
    atoms: list[int] = []
    for letters, digits in _RUNS.findall(text):
        if not letters and not digits:
            continue
        atoms.extend(_char_weight(c) for c in letters)
        atoms.append(0)
        atoms.append(int(digits) if digits else 0)
    while atoms and atoms[-1] == 0:
        atoms.pop()
    keyed: list[tuple[int, ...]] = []
    sign = 0
    for atom in reversed(atoms):
        if atom:
            sign = 1 if atom > 0 else -1
        keyed.append((sign, atom))
    keyed.reverse()
    keyed.append((0,))
    return tuple(keyed)


@final
@dataclass(frozen=True, slots=True, eq=False)
class DebianVersion(Version):
    """A Debian package version such as ``1:8.2.2+ds-0ubuntu1~22.04.1`` or ``6.2.0~rc1``."""

    scheme: ClassVar[str] = "deb"

    text: str
    epoch: int = field(init=False)
    upstream: str = field(init=False)
    #: "" when the version has no revision (which dpkg treats like "0").
    revision: str = field(init=False)
    _key: tuple[int, _PartKey, _PartKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        text = clean_text(_KIND, self.text, _EXPECTED)
        epoch_text, colon, rest = text.partition(":")
        if not colon:
            epoch_text, rest = "", text
        elif not _EPOCH.fullmatch(epoch_text):
            raise rejection(_KIND, self.text, _EXPECTED, f"epoch {epoch_text!r} is not a number")
        upstream, hyphen, revision = rest.rpartition("-")
        if not hyphen:
            upstream, revision = rest, ""
        if hyphen and not _REVISION.fullmatch(revision):
            reason = "empty revision" if not revision else f"bad revision {revision!r}"
            raise rejection(_KIND, self.text, _EXPECTED, reason)
        upstream_pattern = _UPSTREAM if hyphen else _UPSTREAM_NO_HYPHEN
        if not upstream_pattern.fullmatch(upstream):
            raise rejection(_KIND, self.text, _EXPECTED, f"bad upstream version {upstream!r}")
        epoch = int(epoch_text) if epoch_text else 0
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "epoch", epoch)
        object.__setattr__(self, "upstream", upstream)
        object.__setattr__(self, "revision", revision)
        object.__setattr__(self, "_key", (epoch, dpkg_part_key(upstream), dpkg_part_key(revision)))

    @classmethod
    def parse(cls, text: str) -> DebianVersion:
        """Parse a Debian version; the result for a given string is cached."""
        return _parse(require_str(_KIND, text, _EXPECTED))

    def __str__(self) -> str:
        return self.text

    def coarse_key(self) -> int:
        """Epoch (30 bits) then the leading number of upstream (32 bits), saturating."""
        match = re.match(r"\d+", self.upstream)
        leading = int(match.group()) if match else 0
        return pack((self.epoch, leading), (30, 32))

    def to_univers(self) -> univers.versions.DebianVersion:
        """The same version as a ``univers.versions.DebianVersion`` (for univers ranges)."""
        import univers.versions  # imported on demand: univers takes ~50 ms to import

        return univers.versions.DebianVersion(self.text)


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> DebianVersion:
    return DebianVersion(text)
