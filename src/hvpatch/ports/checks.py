"""The regression check port: what proves a patched host (or ring) still does its job.

A :class:`Check` runs after a host is patched (scope ``host``) or after a ring's waves (scope
``ring``) and returns a :class:`CheckResult` whose ``evidence`` is kept with the rollout and read
by the ring's gate. Built-in checks live in :mod:`hvpatch.adapters.checks`; user suites (a shell
command, a pytest path, an Ansible playbook) are checks too. The context is plain data, so a
check can run wherever the step runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from hvpatch.ports.driver import Components, HostState, HypervisorDriver

Scope = Literal["host", "ring"]


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check knows: the rollout, the ring, the host(s), the target, the pre-patch state."""

    rollout: str
    ring: str
    hosts: tuple[str, ...]
    #: the host under test (scope ``host``); empty for ring checks
    host: str = ""
    target: Components = ()
    #: the host's state before the patch (scope ``host``)
    before: HostState | None = None
    #: the probe's metrics before the patch, per host (baseline for performance checks)
    baseline: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: guests that ran anywhere in the host's cluster before the patch
    cluster_guests_before: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's verdict, a one-line summary and the evidence kept for auditors."""

    name: str
    ok: bool
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Check(Protocol):
    """One regression check."""

    @property
    def name(self) -> str:
        """A short stable name (``version-is-target``, ``suite:smoke``)."""
        ...

    @property
    def scope(self) -> Scope:
        """``host`` (after each host) or ``ring`` (once the ring's hosts are done)."""
        ...

    async def run(self, ctx: CheckContext, driver: HypervisorDriver) -> CheckResult:
        """Run the check; a failure is a result with ``ok=False``, not an exception."""
        ...
