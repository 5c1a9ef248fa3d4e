"""The hypervisor driver port: what a rollout needs from a platform, and nothing more.

One :class:`HypervisorDriver` per platform (the simulator, vSphere, libvirt/KVM over SSH,
Hyper-V, XAPI, Proxmox) implements these operations. Every operation names hosts, guests and
clusters by their inventory names and exchanges plain, serialisable values, so a driver can run
in another process or on another machine (a distributed executor) without change.

Contract for implementers:

* Operations are **idempotent where the platform allows**: entering maintenance on a host already
  in maintenance, migrating a guest to where it already runs, starting a running guest are
  successes. The engine relies on this and on :meth:`host_state` to reconcile after a crash.
* Failures are :class:`~hvpatch.errors.TemporaryStepError` (worth retrying after ``delay``) or
  :class:`~hvpatch.errors.PermanentStepError`; foreign exceptions are translated with
  ``raise ... from``. Credentials never appear in messages.
* ``components`` are ``(component, version)`` pairs as the campaign plan targets them (e.g.
  ``(("esxi", "24022510"),)`` or ``(("qemu-kvm", "8.2.0-11.el9"),)``); how they are installed
  (vLCM, esxcli, apt, dnf, a cumulative update) is the driver's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Components = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class GuestState:
    """A guest as the platform reports it now."""

    name: str
    host: str
    running: bool
    memory_mb: int = 0


@dataclass(frozen=True, slots=True)
class HostState:
    """A host as the platform reports it now."""

    name: str
    reachable: bool
    maintenance: bool
    #: installed versions, ``(component, version)``, as matching names them
    components: Components
    #: changes on every boot; how the engine tells that a reboot happened
    boot_id: str
    #: what is staged and not yet applied
    staged: Components = ()
    #: a patch was applied and takes effect at the next reboot
    reboot_required: bool = False
    guests: tuple[GuestState, ...] = ()

    def version(self, component: str) -> str | None:
        """The installed version of ``component``, None when absent."""
        return dict(self.components).get(component)

    def running_guests(self) -> tuple[str, ...]:
        """Names of the guests running on the host, sorted."""
        return tuple(sorted(g.name for g in self.guests if g.running))


@dataclass(frozen=True, slots=True)
class Probe:
    """A health probe: platform services, and measurements a performance baseline compares."""

    services_ok: bool
    services: Mapping[str, str] = field(default_factory=dict)   # service -> state
    metrics: Mapping[str, float] = field(default_factory=dict)  # e.g. guest_boot_s, io_latency_ms


@dataclass(frozen=True, slots=True)
class DriverCapabilities:
    """What a platform can do; the engine plans around what it cannot."""

    name: str
    live_migration: bool = True
    stage: bool = True
    rollback: bool = False


@runtime_checkable
class HypervisorDriver(Protocol):
    """Operations a rollout performs on a hypervisor platform."""

    @property
    def capabilities(self) -> DriverCapabilities:
        """What this platform supports."""
        ...

    async def host_state(self, host: str) -> HostState:
        """The live state of ``host`` (version, maintenance, guests, boot id)."""
        ...

    async def enter_maintenance(self, host: str) -> None:
        """Put an evacuated ``host`` into maintenance mode."""
        ...

    async def exit_maintenance(self, host: str) -> None:
        """Take ``host`` out of maintenance mode."""
        ...

    async def migrate_guest(self, guest: str, destination: str) -> None:
        """Live-migrate ``guest`` to ``destination``."""
        ...

    async def shutdown_guest(self, guest: str) -> None:
        """Shut ``guest`` down cleanly."""
        ...

    async def start_guest(self, guest: str) -> None:
        """Power ``guest`` on where it is registered."""
        ...

    async def stage_patch(self, host: str, components: Components) -> None:
        """Download and stage ``components`` on ``host`` without applying them."""
        ...

    async def apply_patch(self, host: str, components: Components) -> None:
        """Install the staged ``components``; may leave the host needing a reboot."""
        ...

    async def reboot(self, host: str) -> None:
        """Start a reboot of ``host`` (returns before the host is back)."""
        ...

    async def wait_ready(self, host: str, timeout_s: float) -> None:
        """Return when ``host`` answers again; PermanentStepError when it is not back within
        ``timeout_s`` (TemporaryStepError for a passing API failure)."""
        ...

    async def rollback(self, host: str) -> None:
        """Return ``host`` to the software it ran before the last apply (when capable)."""
        ...

    async def probe(self, host: str) -> Probe:
        """Run the platform's health probe on ``host``."""
        ...

    async def cluster_settings(self, cluster: str) -> dict[str, str]:
        """Cluster settings a rollout may change (e.g. DRS automation, HA admission control)."""
        ...

    async def set_cluster_settings(self, cluster: str, settings: Mapping[str, str]) -> None:
        """Change cluster settings (the engine records the old values and restores them)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
