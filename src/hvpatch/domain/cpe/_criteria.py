"""NVD match criteria: a CPE name plus an optional version range, and the default comparator.

NVD writes a range as a criterion whose version is ``*`` and up to two bounds
(``versionStartIncluding`` / ``versionStartExcluding``, ``versionEndIncluding`` /
``versionEndExcluding``). How versions order depends on the product, so the comparator is
injected; :func:`compare_dotted` is a simple default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from hvpatch.domain.cpe._matching import cpe_matches
from hvpatch.domain.cpe._wfn import Cpe
from hvpatch.errors import InputError, Problem

VersionCompare = Callable[[str, str], int]
"""``compare(a, b)``: negative, zero or positive as version ``a`` is below, equal or above ``b``."""

_RUNS = re.compile(r"[0-9]+|[^0-9]+")
_Run = tuple[int, int, str]
_ZERO: Final[tuple[_Run, ...]] = ((0, 0, ""),)


@lru_cache(maxsize=1 << 14)
def _dotted_key(version: str) -> tuple[tuple[_Run, ...], ...]:
    return tuple(
        tuple(
            (0, int(run), "") if "0" <= run[0] <= "9" else (1, 0, run)
            for run in _RUNS.findall(segment)
        )
        for segment in version.lower().split(".")
    )


def compare_dotted(a: str, b: str) -> int:
    """Compare two dotted versions: ``8.1.5 < 8.2.0``, ``4.17.10 > 4.17.9``, ``7.0 == 7.0.0``.

    Segments split on ``.``; numeric segments compare as integers; others compare run by run,
    digit runs as integers and text runs lexically, case-insensitively (``3c < 3d``,
    ``9a < 10a``); a number sorts below text in the same place. Missing trailing segments
    count as ``0``. This is a total order, but it knows no pre-release or distribution
    conventions: inject a product's own scheme for those.
    """
    ka, kb = _dotted_key(a), _dotted_key(b)
    for i in range(max(len(ka), len(kb))):
        x = ka[i] if i < len(ka) else _ZERO
        y = kb[i] if i < len(kb) else _ZERO
        if x != y:
            return -1 if x < y else 1
    return 0


_BOUNDS: Final = (
    "version_start_including",
    "version_start_excluding",
    "version_end_including",
    "version_end_excluding",
)


@dataclass(frozen=True, slots=True)
class CpeMatchCriterion:
    """One NVD ``cpeMatch`` entry: a CPE name, whether it is the vulnerable part, a range.

    ``vulnerable=False`` marks a "running on/with" platform: it takes part in a
    configuration's logic but is never reported as the vulnerable component. At most one
    start and one end bound may be set; bounds must not be empty.
    """

    criteria: Cpe
    vulnerable: bool = True
    version_start_including: str | None = None
    version_start_excluding: str | None = None
    version_end_including: str | None = None
    version_end_excluding: str | None = None
    match_criteria_id: str | None = None

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        for name in _BOUNDS:
            bound = getattr(self, name)
            if bound is not None and (not isinstance(bound, str) or not bound.strip()):
                problems.append(Problem(name, f"a bound must be a non-empty string, got {bound!r}"))
        if self.version_start_including is not None and self.version_start_excluding is not None:
            problems.append(Problem("version_start", "both including and excluding start set"))
        if self.version_end_including is not None and self.version_end_excluding is not None:
            problems.append(Problem("version_end", "both including and excluding end set"))
        if problems:
            raise InputError(f"invalid CPE match criterion for {self.criteria}", problems)

    @property
    def has_range(self) -> bool:
        """Whether any version bound is set."""
        return not (
            self.version_start_including is None
            and self.version_start_excluding is None
            and self.version_end_including is None
            and self.version_end_excluding is None
        )

    def describe(self) -> str:
        """The criterion as one line, e.g. ``cpe:2.3:a:qemu:qemu:*:... <8.2.0 (vulnerable)``."""
        bounds = [
            f"{op}{value}"
            for op, value in (
                (">=", self.version_start_including),
                (">", self.version_start_excluding),
                ("<=", self.version_end_including),
                ("<", self.version_end_excluding),
            )
            if value is not None
        ]
        role = "vulnerable" if self.vulnerable else "running on/with"
        return " ".join([str(self.criteria), *bounds, f"({role})"])


def in_range(criterion: CpeMatchCriterion, version: str, compare: VersionCompare) -> bool:
    """Whether ``version`` lies within the criterion's bounds (True when it has none)."""
    c = criterion
    if c.version_start_including is not None and compare(version, c.version_start_including) < 0:
        return False
    if c.version_start_excluding is not None and compare(version, c.version_start_excluding) <= 0:
        return False
    if c.version_end_including is not None and compare(version, c.version_end_including) > 0:
        return False
    return not (
        c.version_end_excluding is not None and compare(version, c.version_end_excluding) >= 0
    )


def criterion_matches(
    criterion: CpeMatchCriterion, target: Cpe, compare: VersionCompare = compare_dotted
) -> bool:
    """Whether a criterion matches a concrete product name.

    The name must match per NISTIR 7696 (:func:`cpe_matches`). With a range, the target's
    version must also be a literal value inside it, compared by ``compare`` on the literal
    text; a target whose version is ANY, NA or a pattern is not in any range. Exceptions
    from ``compare`` (versions it cannot read) propagate to the caller.
    """
    if not cpe_matches(criterion.criteria, target):
        return False
    if not criterion.has_range:
        return True
    version = target.text("version")
    return version is not None and in_range(criterion, version, compare)
