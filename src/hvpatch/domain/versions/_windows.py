"""Windows (Server / Hyper-V host) build numbers: ``major.minor.build[.ubr]``.

``10.0.20348.2340`` is Windows Server 2022 at update build revision (UBR) 2340; the UBR rises
with every monthly cumulative update, which is what NVD ranges such as
``versionEndExcluding: 10.0.20348.2333`` compare.

Order: ``(major, minor, build, ubr)`` numerically. A build written without UBR
(``10.0.20348``) means "patch level unknown" and sorts *before* every explicit UBR including
``.0`` (and is not equal to ``10.0.20348.0``): an unknown patch level is treated as the oldest,
so range checks err towards "still affected".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, final

from hvpatch.domain.versions._base import Version, clean_text, pack, rejection, require_str

_KIND = "a Windows build"
_EXPECTED = "major.minor.build[.ubr] like '10.0.20348.2340' or '6.3.9600'"
_GRAMMAR = re.compile(r"(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?")

#: Server products by (major, minor, build). Build 20348 is also Azure Stack HCI 21H2 and 26100
#: also Windows 11 24H2; the server name is given because hvpatch manages hypervisor hosts.
SERVER_PRODUCTS: dict[tuple[int, int, int], str] = {
    (6, 0, 6001): "Windows Server 2008",
    (6, 0, 6002): "Windows Server 2008",
    (6, 0, 6003): "Windows Server 2008",
    (6, 1, 7600): "Windows Server 2008 R2",
    (6, 1, 7601): "Windows Server 2008 R2",
    (6, 2, 9200): "Windows Server 2012",
    (6, 3, 9600): "Windows Server 2012 R2",
    (10, 0, 14393): "Windows Server 2016",
    (10, 0, 17763): "Windows Server 2019",
    (10, 0, 20348): "Windows Server 2022",
    (10, 0, 25398): "Windows Server, version 23H2",
    (10, 0, 26100): "Windows Server 2025",
}


@final
@dataclass(frozen=True, slots=True, eq=False)
class WindowsBuild(Version):
    """A Windows build number such as ``10.0.20348.2340``; ``ubr`` is None when not given."""

    scheme: ClassVar[str] = "windows"

    major: int
    minor: int
    build: int
    ubr: int | None = None
    _key: tuple[int, int, int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = (self.major, self.minor, self.build, 0 if self.ubr is None else self.ubr)
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in parts):
            raise rejection(_KIND, str(self), _EXPECTED, "components must be integers >= 0")
        ubr = -1 if self.ubr is None else self.ubr
        object.__setattr__(self, "_key", (self.major, self.minor, self.build, ubr))

    @classmethod
    def parse(cls, text: str) -> WindowsBuild:
        """Parse ``major.minor.build[.ubr]``; the result for a given string is cached."""
        return _parse(require_str(_KIND, text, _EXPECTED))

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.build}"
        return base if self.ubr is None else f"{base}.{self.ubr}"

    @property
    def product(self) -> str | None:
        """The Windows Server release of this build (e.g. "Windows Server 2022"), if known."""
        return SERVER_PRODUCTS.get((self.major, self.minor, self.build))

    def coarse_key(self) -> int:
        """major/minor/build/ubr+1 in 15/8/20/20 bits, saturating."""
        ubr = 0 if self.ubr is None else self.ubr + 1
        return pack((self.major, self.minor, self.build, ubr), (15, 8, 20, 20))


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> WindowsBuild:
    clean = clean_text(_KIND, text, _EXPECTED)
    match = _GRAMMAR.fullmatch(clean)
    if match is None:
        raise rejection(_KIND, text, _EXPECTED)
    major, minor, build, ubr = match.groups()
    return WindowsBuild(int(major), int(minor), int(build), None if ubr is None else int(ubr))
