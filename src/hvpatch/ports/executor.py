"""The executor port: where the rollout engine's step work runs.

The engine decides *what* to do (a :class:`StepTask`: plain, serialisable data naming the rollout,
host, step and attempt) and hands it to an :class:`Executor`, which runs the matching activity and
returns its :class:`StepOutcome`. The in-process executor calls the activity on the event loop; a
distributed executor can ship the task to a worker, because nothing in a task refers to objects
in the engine's memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class StepTask:
    """One step to run: which rollout, host, step, attempt, and the step's arguments."""

    rollout_id: int
    host: str
    step: str
    attempt: int
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What a step did: its evidence (kept in the step record) and whether it found the work
    already done (after a crash, reconciled from the platform's live state)."""

    evidence: Mapping[str, Any] = field(default_factory=dict)
    already_done: bool = False


@runtime_checkable
class Executor(Protocol):
    """Runs step tasks; raises the activity's DriverError unchanged."""

    async def run(self, task: StepTask) -> StepOutcome:
        """Run ``task`` to completion and return its outcome."""
        ...
