"""Errors of the rollout engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hvpatch.errors import PermanentStepError


class CheckFailed(PermanentStepError):
    """A regression check failed; ``evidence`` holds every check's result."""

    def __init__(self, message: str, evidence: Mapping[str, Any]) -> None:
        self.evidence = dict(evidence)
        super().__init__(message)
