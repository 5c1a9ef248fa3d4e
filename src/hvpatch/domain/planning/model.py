"""The plan of a patch campaign as frozen values: rings, waves, hosts, guest moves, timing.

A :class:`CampaignPlan` is what ``hvpatch plan create`` shows like a "terraform plan" and what
the rollout engine later executes: rings in order, each with its gates; per ring the waves of
each cluster (hosts in maintenance at the same time); per wave every guest move (evacuation,
optional migrate-back) in order, each capacity-checked; the expected durations; and every host
that is skipped, with the reason. A plan that cannot be made safe is not a plan: planning raises
:class:`hvpatch.errors.PlanError` carrying :class:`Infeasibility` records instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from hvpatch.domain.planning.windows import Blackout, MaintenanceWindow


class MoveKind(StrEnum):
    """Why a guest moves or stops."""

    EVACUATE = "evacuate"          # live-migrate off a host entering maintenance
    MIGRATE_BACK = "migrate-back"  # return to its original host after the patch
    SHUTDOWN = "shutdown"          # cannot live-migrate: stopped with consent, restarted after
    RESTART = "restart"


class PinnedPolicy(StrEnum):
    """What to do with a guest that cannot live-migrate (local disk, passthrough, vGPU, pinning)."""

    SHUTDOWN = "shutdown"   # stop it (with the user's consent) and restart it after the patch
    SKIP_HOST = "skip-host"  # leave its host unpatched, say so
    FAIL = "fail"           # stop planning with an explanation naming the guest


@dataclass(frozen=True, slots=True)
class Move:
    """One guest action in a wave, in execution order."""

    guest: str
    kind: MoveKind
    source: str
    destination: str
    memory_mb: int
    vcpus: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HostStep:
    """A host patched in a wave: from which version to which target, and each step's seconds."""

    host: str
    cluster: str
    current: str
    target: str
    seconds: dict[str, float] = field(default_factory=dict)  # evacuate, install, reboot, checks
    #: what the rollout installs: ``(component, version)`` pairs of the target release
    components: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Wave:
    """Hosts of one cluster in maintenance at the same time, and the moves around them."""

    index: int
    cluster: str
    hosts: tuple[HostStep, ...]
    moves: tuple[Move, ...]
    seconds: float
    start_offset: float = 0.0  # seconds from the start of the ring
    window: str = ""           # the maintenance window it is scheduled in, when windows apply
    tenants: tuple[str, ...] = ()  # tenants with a guest on its hosts (their windows bind it)


@dataclass(frozen=True, slots=True)
class Gate:
    """What must hold before the next ring starts."""

    regression_suite: bool = True
    soak_hours: float = 24.0
    max_failures: int = 0
    max_failure_percent: float = 0.0
    no_open_incident: bool = True
    approval: bool = False           # by someone other than the requester


@dataclass(frozen=True, slots=True)
class RingPlan:
    """One ring's waves (per cluster, in order), its gate, and its expected duration."""

    ring: str
    position: int
    waves: tuple[Wave, ...]
    gate: Gate
    seconds: float          # waves + soak
    fits_windows: bool = True
    entry_approval: bool = False  # someone other than the requester approves before it starts


@dataclass(frozen=True, slots=True)
class Skip:
    """A host the campaign does not touch, and why."""

    host: str
    reason: str


@dataclass(frozen=True, slots=True)
class Infeasibility:
    """Why no safe plan exists for a cluster, and what would make one feasible."""

    cluster: str
    reason: str
    guest: str = ""
    host: str = ""
    constraint: str = ""
    suggestion: str = ""


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """The whole campaign: rings in order, skipped hosts, targets per product line, durations."""

    name: str
    created: datetime
    emergency: bool
    targets: dict[str, str]            # product line -> target release (e.g. "esxi 7.0" -> ...)
    rings: tuple[RingPlan, ...]
    skipped: tuple[Skip, ...]
    seconds: float
    findings: int = 0
    notes: tuple[str, ...] = ()
    requester: str = ""                # who asked for it; an approver must be someone else
    start: datetime | None = None      # the start the schedule assumes (windows searched from it)
    #: the maintenance windows and blackouts that bind its waves (empty: any time), kept so the
    #: rollout engine starts each wave inside one
    windows: tuple[MaintenanceWindow, ...] = ()
    blackouts: tuple[Blackout, ...] = ()

    def waves(self) -> tuple[Wave, ...]:
        """Every wave of every ring, in order."""
        return tuple(w for r in self.rings for w in r.waves)

    def moves(self) -> tuple[Move, ...]:
        """Every guest move of the campaign, in order."""
        return tuple(m for w in self.waves() for m in w.moves)
