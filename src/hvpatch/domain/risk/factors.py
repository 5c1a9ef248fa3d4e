"""Scores built from listed factors, so that every score can be recomputed by an auditor.

Each side of a score (likelihood, impact) combines its factors as a noisy-OR,
``1 - prod(1 - w)``: adding a factor or raising its weight never lowers the result, no single
factor can exceed 1, and the order of factors does not matter. A score is
``100 * likelihood * impact``, rounded to one decimal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LIKELIHOOD = "likelihood"
IMPACT = "impact"
SCALE = "scale"


@dataclass(frozen=True, slots=True)
class Factor:
    """One input of a score: what it is, the value seen, and the weight it contributes.

    ``part`` is ``likelihood`` or ``impact`` (combined by noisy-OR) or ``scale`` (multiplies
    the final score, e.g. the confidence of the finding).
    """

    name: str
    value: str
    weight: float
    part: str
    note: str = ""

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.part}/{self.name} = {self.value}: weight {self.weight:.3f}{note}"


def noisy_or(weights: Iterable[float]) -> float:
    """``1 - prod(1 - w)`` over weights clamped to [0, 1]."""
    rest = 1.0
    for w in weights:
        rest *= 1.0 - min(1.0, max(0.0, w))
    return 1.0 - rest


def combine(factors: Iterable[Factor]) -> tuple[float, float, float]:
    """(likelihood, impact, score) from factors; see the module docstring."""
    fs = list(factors)
    likelihood = noisy_or(f.weight for f in fs if f.part == LIKELIHOOD)
    impact = noisy_or(f.weight for f in fs if f.part == IMPACT)
    scale = 1.0
    for f in fs:
        if f.part == SCALE:
            scale *= min(1.0, max(0.0, f.weight))
    return likelihood, impact, round(100.0 * likelihood * impact * scale, 1)
