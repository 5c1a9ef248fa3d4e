"""User regression suites as ring checks: a shell command, a pytest path, an Ansible playbook.

A :class:`SuiteCheck` runs once a ring's hosts are patched (scope ``ring``), as a subprocess:

=========  ==================================================================================
kind       runs
=========  ==================================================================================
command    ``/bin/sh -c RUN`` (users write shell lines: pipes, ``&&``, variables work)
pytest     ``<this python> -m pytest -q RUN`` (RUN: a path, optionally followed by pytest
           arguments, split like a shell would, never through a shell)
ansible    ``ansible-playbook -i HOST1,HOST2, RUN`` (RUN: the playbook, optionally followed
           by arguments); when ``ansible-playbook`` is not on PATH the check fails saying so
=========  ==================================================================================

The process inherits hvpatch's environment (but not ``HVPATCH_DATABASE_URL``) plus
``HVPATCH_ROLLOUT``, ``HVPATCH_RING``, ``HVPATCH_HOSTS`` (the ring's hosts, comma-separated)
and ``HVPATCH_SUITE``. It runs in its own process group: when the suite's ``timeout_s``
passes, the whole group is killed and the check fails with "timed out after N s". Once the
suite's process ends, anything it left running in its group that still holds its output open
is killed too (after 2 s). Exit code 0 passes.
The evidence keeps the command line, the exit code, the duration and the last 200 lines (at
most 20 kB) of the combined stdout and stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hvpatch.domain.rollout import SUITE_KINDS, SuiteSpec
from hvpatch.errors import InputError, Problem
from hvpatch.ports.checks import Check, CheckContext, CheckResult, Scope
from hvpatch.ports.driver import HypervisorDriver

__all__ = ["TAIL_BYTES", "TAIL_LINES", "SuiteCheck", "suite_checks"]

#: how much of the suite's output the evidence keeps (the end of it)
TAIL_LINES = 200
TAIL_BYTES = 20_000
#: after the process ends (or is killed), how long to wait for its output pipe to close
_DRAIN_S = 2.0
#: hvpatch's own variables a suite does not inherit
_WITHHELD = frozenset({"HVPATCH_DATABASE_URL"})
#: how often to look whether the suite's process has exited
_POLL_S = 0.05


class _Tail:
    """The last ``TAIL_BYTES`` bytes of a stream, and how many bytes it had in all."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > TAIL_BYTES:
            del self.buf[:len(self.buf) - TAIL_BYTES]

    def text(self) -> tuple[str, bool]:
        """The kept lines and whether anything was cut off."""
        text = self.buf.decode("utf-8", errors="replace")
        cut = self.total > len(self.buf)
        if cut and "\n" in text:  # drop the partial first line
            text = text.split("\n", 1)[1]
        lines = text.splitlines()
        if len(lines) > TAIL_LINES:
            lines, cut = lines[-TAIL_LINES:], True
        return "\n".join(lines), cut


async def _drain(stream: asyncio.StreamReader | None, tail: _Tail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        tail.add(chunk)


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The exit code once the process itself has exited.

    Not ``proc.wait()``: on some Pythons that also waits for the output pipe to close, which a
    background process the suite left behind may hold open for ever.
    """
    while proc.returncode is None:
        await asyncio.sleep(_POLL_S)
    return proc.returncode


async def _finished(task: asyncio.Task[None], timeout: float) -> bool:
    """Whether ``task`` finished within ``timeout`` seconds (it is not cancelled if not)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout)
    return task.done()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class SuiteCheck:
    """One user suite (:class:`~hvpatch.domain.rollout.SuiteSpec`) as a ring check."""

    def __init__(self, spec: SuiteSpec, *, cwd: Path | str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``cwd``: where the suite runs (default: hvpatch's working directory); ``env``: extra
        environment variables (the ``HVPATCH_*`` ones always win)."""
        if spec.kind not in SUITE_KINDS:
            raise InputError(f"suite {spec.name!r} has an unknown kind", [Problem(
                f"suites.{spec.name}.kind", f"expected one of {', '.join(SUITE_KINDS)}, got "
                f"{spec.kind!r}")])
        self.spec = spec
        self.cwd = cwd
        self.env = dict(env or {})

    def __repr__(self) -> str:
        return f"SuiteCheck({self.spec.name!r}, kind={self.spec.kind!r})"

    @property
    def name(self) -> str:
        return f"suite:{self.spec.name}"

    @property
    def scope(self) -> Scope:
        return "ring"

    def argv(self, ctx: CheckContext) -> list[str] | None:
        """The command line for ``ctx``; None when its program is not installed."""
        spec = self.spec
        if spec.kind == "command":
            return ["/bin/sh", "-c", spec.run]
        if spec.kind == "pytest":
            return [sys.executable, "-m", "pytest", "-q", *shlex.split(spec.run)]
        exe = shutil.which("ansible-playbook")
        if exe is None:
            return None
        return [exe, "-i", "".join(f"{h}," for h in ctx.hosts) or ",", *shlex.split(spec.run)]

    def environment(self, ctx: CheckContext) -> dict[str, str]:
        """The suite's environment: hvpatch's (without the store's URL, which may hold a
        password and has no business in a suite's output), the extras, and the ``HVPATCH_*``
        variables."""
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
        return {**env, **self.env, "HVPATCH_ROLLOUT": ctx.rollout,
                "HVPATCH_RING": ctx.ring, "HVPATCH_HOSTS": ",".join(ctx.hosts),
                "HVPATCH_SUITE": self.spec.name}

    def _result(self, ok: bool, summary: str, **evidence: Any) -> CheckResult:
        return CheckResult(self.name, ok, summary, {
            "suite": self.spec.name, "kind": self.spec.kind, "run": self.spec.run,
            "timeout_s": self.spec.timeout_s, **evidence})

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        """Run the suite; a failure, a timeout or a missing program is ``ok=False``."""
        spec = self.spec
        try:
            argv = self.argv(ctx)
        except ValueError as exc:  # shlex: unbalanced quotes
            return self._result(False, f"suite {spec.name}: cannot parse {spec.run!r}: {exc}",
                                exit_code=None, duration_s=0.0, output="")
        if argv is None:
            return self._result(False, f"suite {spec.name}: ansible-playbook is not installed "
                                "(not found on PATH); install Ansible where hvpatch runs",
                                exit_code=None, duration_s=0.0, output="")
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=self.environment(ctx), cwd=self.cwd,
                start_new_session=True)
        except OSError as exc:
            return self._result(False, f"suite {spec.name}: cannot start {argv[0]}: {exc}",
                                argv=argv, exit_code=None, duration_s=0.0, output="")
        tail = _Tail()
        reader = asyncio.create_task(_drain(proc.stdout, tail))
        timed_out = False
        code: int | None = None
        try:
            try:
                code = await asyncio.wait_for(_exited(proc), spec.timeout_s)
            except TimeoutError:
                timed_out = True
                _kill_group(proc.pid)  # not reaped yet, so the group id is still its own
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(_exited(proc), _DRAIN_S)
            duration = time.monotonic() - started
            if not await _finished(reader, _DRAIN_S):
                # something the suite started still holds its output open: while it is in the
                # group, the group's id cannot be reused, so killing the group is safe
                _kill_group(proc.pid)
                await _finished(reader, _DRAIN_S)
        finally:
            if proc.returncode is None:  # cancelled: leave nothing running
                _kill_group(proc.pid)
            if not reader.done():
                reader.cancel()
        output, truncated = tail.text()
        evidence: dict[str, Any] = {
            "argv": argv, "exit_code": code, "duration_s": round(duration, 3),
            "timed_out": timed_out, "output": output, "output_truncated": truncated,
            "output_bytes": tail.total}
        if timed_out:
            return self._result(False, f"suite {spec.name}: timed out after "
                                f"{spec.timeout_s:g} s", **evidence)
        if code == 0:
            return self._result(True, f"suite {spec.name} passed in {duration:.1f} s",
                                **evidence)
        return self._result(False, f"suite {spec.name} failed with exit code {code} after "
                            f"{duration:.1f} s", **evidence)


def suite_checks(suites: Iterable[SuiteSpec], ring: str | None = None, *,
                 cwd: Path | str | None = None) -> list[Check]:
    """A :class:`SuiteCheck` per suite (only those that apply to ``ring`` when given)."""
    return [SuiteCheck(s, cwd=cwd) for s in suites if ring is None or s.applies_to(ring)]
