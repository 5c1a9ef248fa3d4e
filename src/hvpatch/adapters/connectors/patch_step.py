"""The patch step: how a host's software gets installed, the same for every platform's driver.

A driver calls its :class:`PatchStep` with the host in maintenance; a :class:`StagingPatchStep`
can also stage (download) ahead of the maintenance window. :class:`CommandPatchStep` runs a
command the user configures (an ``esxcli software profile update`` over SSH, an Ansible
playbook, ...) with the host and the targets as arguments and in its environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Protocol

from hvpatch.errors import InputError, PermanentStepError, Problem
from hvpatch.ports.driver import Components

__all__ = ["CommandPatchStep", "PatchStep", "StagingPatchStep", "staging_step"]

log = logging.getLogger(__name__)


class PatchStep(Protocol):
    """How a host's software is installed: the driver calls it with the host in maintenance.

    Platform-neutral (``apply`` returning evidence), so one step (e.g. an Ansible one) serves
    every driver that takes a patch step."""

    async def apply(self, host: str, components: Components) -> str:
        """Install ``components`` on ``host``; returns evidence; PermanentStepError on failure."""
        ...


class StagingPatchStep(PatchStep, Protocol):
    """A patch step that can also stage (download) ahead of the maintenance window."""

    @property
    def stages(self) -> bool:
        """True when :meth:`stage` does something."""
        ...

    async def stage(self, host: str, components: Components) -> str:
        """Download/stage ``components`` on ``host``; returns evidence."""
        ...


def staging_step(step: PatchStep | None) -> StagingPatchStep | None:
    """``step`` when it stages (``stages`` is true and it has ``stage``), otherwise None."""
    if step is not None and getattr(step, "stages", False) and hasattr(step, "stage"):
        return step  # type: ignore[return-value]  # checked just above
    return None


class CommandPatchStep:
    """Runs a user-configured local command (an argv list, no shell) per host.

    The command gets the host name and each target as ``component=version`` as extra
    arguments, and the environment ``HVPATCH_ACTION`` (``stage``/``apply``), ``HVPATCH_HOST``,
    ``HVPATCH_COMPONENTS`` (space-separated ``component=version``) and, for ESXi,
    ``HVPATCH_ESXI_BUILD``. Exit status 0 is success; anything else fails the step with the
    end of the output as evidence.
    """

    def __init__(self, argv: Sequence[str], *, stage_argv: Sequence[str] | None = None,
                 timeout_s: float = 3600.0, env: Mapping[str, str] | None = None) -> None:
        if not argv:
            raise InputError("patch command", [Problem("argv", "an empty command")])
        self.argv = tuple(argv)
        self.stage_argv = tuple(stage_argv) if stage_argv else None
        self.timeout_s = timeout_s
        self.env = dict(env or {})
        #: host -> output of the last run, kept as evidence
        self.evidence: dict[str, str] = {}

    @property
    def stages(self) -> bool:
        """True when a stage command is configured."""
        return self.stage_argv is not None

    async def stage(self, host: str, components: Components) -> str:
        """Run the stage command (nothing without one)."""
        if self.stage_argv is None:
            return ""
        return await self._run("stage", self.stage_argv, host, components)

    async def apply(self, host: str, components: Components) -> str:
        """Run the apply command."""
        return await self._run("apply", self.argv, host, components)

    async def _run(self, action: str, argv: Sequence[str], host: str,
                   components: Components) -> str:
        targets = [f"{c}={v}" for c, v in components]
        env = {**os.environ, **self.env, "HVPATCH_ACTION": action, "HVPATCH_HOST": host,
               "HVPATCH_COMPONENTS": " ".join(targets),
               "HVPATCH_ESXI_BUILD": dict(components).get("esxi", "")}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, host, *targets, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            raise PermanentStepError(f"patch command {argv[0]!r} for {host} cannot be started: "
                                     f"{exc.strerror or exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise PermanentStepError(f"patch command {argv[0]!r} ({action}) for {host} did not "
                                     f"finish within {self.timeout_s:g} s and was killed; the "
                                     "host's software state is unknown") from exc
        text = out.decode(errors="replace")
        self.evidence[host] = text
        if proc.returncode != 0:
            raise PermanentStepError(f"patch command {argv[0]!r} ({action}) for {host} exited "
                                     f"with {proc.returncode}; output ends with:\n"
                                     f"{text[-2000:]}")
        log.info("patch command (%s) for %s succeeded", action, host)
        return text

