"""RPM versions (``[epoch:]version[-release]``) in ``rpmvercmp`` order.

Ordering follows rpm's ``rpmvercmp``: the epoch numerically (absent = 0), then version, then
release. Each string is split into maximal runs of digits or of ASCII letters; every other
character only separates runs, except ``~`` (sorts before everything, even the end) and ``^``
(sorts after the end but before any run). Digit runs compare numerically and beat letter runs;
letter runs compare as ASCII strings. So ``6.2.0-11.el9_4.6 < 6.2.0-11.el9_4.10``,
``1.0~rc1 < 1.0 < 1.0^git1 < 1.0.1`` and ``1.0 == 1.00 == 1_0``.

One deliberate difference from rpm: rpm treats a missing release as matching any release (a
range rule, not an order). Here a version without release sorts before the same version with
any release (``1.0 < 1.0-1``), which keeps the order total.

As with Debian versions, the order comes from a precomputed tuple key, checked against univers
in the property tests; :meth:`RpmVersion.to_univers` gives the univers object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, final

if TYPE_CHECKING:
    import univers.versions

from hvpatch.domain.versions._base import Version, clean_text, pack, rejection, require_str

_KIND = "an RPM version"
_EXPECTED = "[epoch:]version[-release] like '2:6.2.0-11.el9_4.6' or '8.2.0'"
_EPOCH = re.compile(r"\d{1,9}")
_PART = re.compile(r"[A-Za-z0-9._+~^]+")
_TOKENS = re.compile(r"~|\^|\d+|[A-Za-z]+")

_TILDE = (0,)
_END = (1,)
_CARET = (2,)
_ALPHA = 3
_NUM = 4

#: Key of a version or release string: one tuple per token, then the end marker.
_PartKey = tuple[tuple[int | str, ...], ...]


def rpm_part_key(text: str) -> _PartKey:
    """A tuple that orders version or release strings exactly like ``rpmvercmp``.

    Tokens weigh ``~`` < end < ``^`` < letters < digits; the end marker closes every key, so a
    string that continues with a run sorts after one that stops, and one that continues with
    ``~`` sorts before it.
    """
    tokens: list[tuple[int | str, ...]] = []
    for token in _TOKENS.findall(text):
        if token == "~":
            tokens.append(_TILDE)
        elif token == "^":
            tokens.append(_CARET)
        elif token.isdigit():
            tokens.append((_NUM, int(token)))
        else:
            tokens.append((_ALPHA, token))
    tokens.append(_END)
    return tuple(tokens)


@final
@dataclass(frozen=True, slots=True, eq=False)
class RpmVersion(Version):
    """An RPM epoch-version-release such as ``17:6.2.0-11.el9_4.6`` or ``4.17.3``."""

    scheme: ClassVar[str] = "rpm"

    text: str
    epoch: int = field(init=False)
    version: str = field(init=False)
    #: "" when the text has no release.
    release: str = field(init=False)
    _key: tuple[int, _PartKey, _PartKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        text = clean_text(_KIND, self.text, _EXPECTED)
        epoch_text, colon, rest = text.partition(":")
        if not colon:
            epoch_text, rest = "", text
        elif not _EPOCH.fullmatch(epoch_text):
            raise rejection(_KIND, self.text, _EXPECTED, f"epoch {epoch_text!r} is not a number")
        version, hyphen, release = rest.partition("-")
        if not _PART.fullmatch(version) or not re.search(r"[A-Za-z0-9]", version):
            raise rejection(_KIND, self.text, _EXPECTED, f"bad version {version!r}")
        if hyphen and (not _PART.fullmatch(release) or not re.search(r"[A-Za-z0-9]", release)):
            reason = f"bad release {release!r}" if release else "empty release"
            raise rejection(_KIND, self.text, _EXPECTED, reason)
        epoch = int(epoch_text) if epoch_text else 0
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "epoch", epoch)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "_key", (epoch, rpm_part_key(version), rpm_part_key(release)))

    @classmethod
    def parse(cls, text: str) -> RpmVersion:
        """Parse an RPM EVR; the result for a given string is cached."""
        return _parse(require_str(_KIND, text, _EXPECTED))

    def __str__(self) -> str:
        return self.text

    def coarse_key(self) -> int:
        """Epoch (30 bits), then the first token of version (32 bits), saturating.

        The first token is ranked the way the order ranks it: ``~`` 0, ``^`` 2, letters 3,
        a number n as 2**31 + n.
        """
        first = self._key[1][0]
        if first[0] == _NUM:
            assert isinstance(first[1], int)
            rank = (1 << 31) + min(first[1], (1 << 31) - 2)
        else:
            rank = int(first[0])
        return pack((self.epoch, rank), (30, 32))

    def to_univers(self) -> univers.versions.RpmVersion:
        """The same version as a ``univers.versions.RpmVersion`` (for univers ranges)."""
        import univers.versions  # imported on demand: univers takes ~50 ms to import

        return univers.versions.RpmVersion(self.text)


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> RpmVersion:
    return RpmVersion(text)
