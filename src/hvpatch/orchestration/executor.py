"""The in-process executor: runs activities on this event loop (the Executor port's first
implementation; a distributed one ships the same :class:`StepTask` to a worker instead)."""

from __future__ import annotations

from collections.abc import Mapping

from hvpatch.errors import PermanentStepError
from hvpatch.orchestration.activities import ACTIVITIES, Activity, StepContext
from hvpatch.ports.executor import StepOutcome, StepTask


class InProcessExecutor:
    """Runs each task's activity in this process with one shared :class:`StepContext`."""

    def __init__(self, context: StepContext,
                 activities: Mapping[str, Activity] | None = None) -> None:
        self.context = context
        self.activities = dict(activities or ACTIVITIES)

    async def run(self, task: StepTask) -> StepOutcome:
        """Run ``task``'s activity; an unknown step is a permanent failure."""
        activity = self.activities.get(task.step)
        if activity is None:
            raise PermanentStepError(f"no activity named {task.step!r}")
        return await activity(task, self.context)
