"""The simulator's state in the store: set-up from the inventory, snapshots, row locking and
fault bookkeeping. :class:`TwinState` is the base of
:class:`~hvpatch.adapters.drivers.simulator.SimulatorDriver`, which adds the platform operations;
the module doc there describes the twin as a whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hvpatch.adapters.clock import AcceleratedClock
from hvpatch.adapters.drivers.faults import Fault, FaultPlan
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    ClusterRow,
    GuestRow,
    HostRow,
    SimGuestRow,
    SimHostRow,
    SimStateRow,
)
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.domain.software import software_from_dict
from hvpatch.errors import PermanentStepError, TemporaryStepError
from hvpatch.ports.clock import Clock
from hvpatch.ports.driver import (
    Components,
    DriverCapabilities,
)

__all__ = ["DEFAULT_CLUSTER_SETTINGS", "STAGE_SECONDS", "TwinState", "simulation_clock"]

#: simulated seconds to download and stage a patch
STAGE_SECONDS = 60.0
#: a cluster's settings when the simulator first sees it
DEFAULT_CLUSTER_SETTINGS: Mapping[str, str] = {
    "drs_automation": "fully-automated", "ha_admission_control": "enabled",
}
#: the platform services a probe reports, per family
SERVICES: Mapping[str, tuple[str, ...]] = {
    "esxi": ("hostd", "vpxa", "fdm"),
    "hyperv": ("vmms", "vmcompute", "clussvc"),
    "kvm": ("libvirtd", "virtlogd", "sshd"),
    "proxmox": ("pvedaemon", "pveproxy", "pve-cluster"),
    "xen": ("xapi", "xenopsd", "xcp-rrdd"),
    "ahv": ("acropolis", "libvirtd", "ovs-vswitchd"),
    "generic": ("agent", "sshd"),
}
#: why a pinned guest cannot move, as the platform would say it
BLOCKED: Mapping[str, str] = {
    "local-disk": "its disks are on the host's local storage",
    "pci-passthrough": "a PCI device is passed through to it",
    "vgpu": "it uses a vGPU of the host",
    "cpu-pinning": "its vCPUs are pinned to the host's cores",
    "other": "the platform refuses to move it",
}
#: retry hint while a host is rebooting and its boot time is unknown (a hung boot)
UNREACHABLE_DELAY_S = 60.0
_CLUSTER_PREFIX = "cluster:"
_CLOCK_KEY = "clock"
_CHUNK = 2000
_WITHDRAWN_REASON = "withdrawn by the vendor (simulated)"

T = TypeVar("T")


def _insert_ignore(s: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ``rows``, skipping any whose unique ``keys`` already exist (races included)."""
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).on_conflict_do_nothing(index_elements=keys)
    for i in range(0, len(rows), _CHUNK):
        s.execute(stmt, rows[i:i + _CHUNK])


def _components(components: Iterable[Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in components:
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and all(isinstance(x, str) and x for x in pair)):
            raise PermanentStepError(f"{what}: components must be (component, version) pairs, "
                                     f"got {pair!r}")
        out[pair[0]] = pair[1]
    return out


def _sorted_pairs(d: Mapping[str, Any]) -> Components:
    return tuple(sorted((str(k), str(v)) for k, v in d.items()))


def _state_key(fault: int, kind: str, subject: str) -> str:
    key = f"fault:{fault}:{kind}:{subject}"
    if len(key) > 255:  # the column's width; long host names are hashed
        key = f"fault:{fault}:{kind}:#{hashlib.sha256(subject.encode()).hexdigest()}"
    return key


def _fault_error(fault: Fault, message: str) -> Exception:
    if fault.permanent:
        return PermanentStepError(f"{message} (simulated fault: every time)")
    return TemporaryStepError(f"{message} (simulated fault)", delay=fault.delay_s)


def _patched(row: SimHostRow) -> bool:
    """The host runs software an apply installed (rebooted into it, not rolled back)."""
    return bool(row.previous) and not row.pending and dict(row.components) != dict(row.previous)


def _reachable(row: SimHostRow, now: datetime) -> bool:
    return row.up or (row.ready_at is not None and row.ready_at <= now)


def simulation_clock(store: Store, *, factor: float, origin_sim: datetime | None = None,
                     wall: Callable[[], datetime] | None = None) -> AcceleratedClock:
    """The simulator's shared accelerated clock, stored in ``sim_state`` under ``clock``.

    The first call creates it (simulated time starts at ``origin_sim``, default the wall time
    now) and stores it; every later call, in any process, returns the stored one and ignores
    ``factor`` and ``origin_sim``, so an engine restarted after ``kill -9`` continues the same
    timeline. :meth:`SimulatorDriver.reset` forgets it.
    """
    candidate = AcceleratedClock(factor, origin_sim or datetime.now(UTC), wall=wall)
    with store.session() as s:
        _insert_ignore(s, SimStateRow, [{"key": _CLOCK_KEY, "value": candidate.to_dict()}],
                       ["key"])
        value = s.scalars(select(SimStateRow.value).where(SimStateRow.key == _CLOCK_KEY)).one()
        s.commit()
    return AcceleratedClock.from_dict(value, wall=wall)


class TwinState:
    """A strict simulated platform over the ``sim_*`` tables (see the module doc).

    The constructor calls :meth:`initialize` (idempotent) unless ``initialize=False``, so a
    driver built on a store with an inventory is ready to use, and one built again after a
    crash continues from the stored state. ``faults`` is the fault plan (default: none),
    ``timing`` the durations the operations take on ``clock`` (default: :class:`TimeModel`).
    """

    def __init__(self, store: Store, clock: Clock, *, faults: FaultPlan | None = None,
                 timing: TimeModel | None = None, initialize: bool = True) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults or FaultPlan()
        self.timing = timing or TimeModel()
        self._rings: dict[str, str] | None = None
        if initialize:
            self.initialize()

    @property
    def capabilities(self) -> DriverCapabilities:
        """Live migration, staging and rollback."""
        return DriverCapabilities("simulator", live_migration=True, stage=True, rollback=True)

    # --- set-up, tests and demos ------------------------------------------------------------

    def initialize(self) -> dict[str, int]:
        """Copy every inventory host, guest and cluster the twin does not have yet.

        A host gets its software's components, family, cluster and ``capacity_mb`` = memory x
        its cluster's memory overcommit; a guest its host, power state, memory and migration
        block. Existing twin rows are left as they are (the twin's state wins), so this is
        idempotent, also when two processes run it at once. Returns what it added.
        """
        with self.store.session() as s:
            have_hosts = set(s.scalars(select(SimHostRow.name)))
            have_guests = set(s.scalars(select(SimGuestRow.name)))
            have_keys = set(s.scalars(select(SimStateRow.key).where(
                SimStateRow.key.startswith(_CLUSTER_PREFIX))))
            clusters = {c.id: c for c in s.scalars(select(ClusterRow))}
            host_names: dict[int, str] = {}
            hosts: list[dict[str, Any]] = []
            for h in s.scalars(select(HostRow).order_by(HostRow.name)):
                host_names[h.id] = h.name
                if h.name in have_hosts:
                    continue
                c = clusters[h.cluster_id]
                software = software_from_dict(h.family, h.software)
                hosts.append({
                    "name": h.name, "cluster": c.name, "family": h.family,
                    "components": {x.name: x.version for x in software.components()},
                    "previous": {}, "staged": {}, "pending": {}, "maintenance": False,
                    "up": True, "boot_id": 1, "ready_at": None,
                    "capacity_mb": int(h.memory_mb * c.memory_overcommit),
                    "applies": 0, "rollbacks": 0,
                })
            guests = [
                {"name": g.name, "host": host_names[g.host_id],
                 "running": g.power_state == "running", "memory_mb": g.memory_mb,
                 "blocked": g.migration_block or "", "migrations": 0}
                for g in s.scalars(select(GuestRow).order_by(GuestRow.name))
                if g.name not in have_guests
            ]
            settings = [{"key": key, "value": dict(DEFAULT_CLUSTER_SETTINGS)}
                        for key in sorted({_CLUSTER_PREFIX + c.name for c in clusters.values()})
                        if key not in have_keys]
        with self.store.session() as s:  # written in a transaction that starts with a write
            _insert_ignore(s, SimHostRow, hosts, ["name"])
            _insert_ignore(s, SimGuestRow, guests, ["name"])
            _insert_ignore(s, SimStateRow, settings, ["key"])
            s.commit()
        self._rings = None
        return {"hosts": len(hosts), "guests": len(guests), "clusters": len(settings)}

    def reset(self) -> None:
        """Forget the twin: empty ``sim_hosts``, ``sim_guests`` and ``sim_state`` (fault
        counters, cluster settings and the stored clock included). :meth:`initialize` starts
        it again from the inventory."""
        with self.store.session() as s:
            for model in (SimGuestRow, SimHostRow, SimStateRow):
                s.execute(delete(model))
            s.commit()
        self._rings = None

    def snapshot(self) -> dict[str, Any]:
        """The whole twin as plain data, for assertions and reports::

            {"hosts": {name: {cluster, family, components, previous, staged, pending,
                              maintenance, up, boot_id, ready_at, capacity_mb, applies,
                              rollbacks}},
             "guests": {name: {host, running, memory_mb, blocked, migrations}}}
        """
        with self.store.session() as s:
            hosts = {h.name: {
                "cluster": h.cluster, "family": h.family, "components": dict(h.components),
                "previous": dict(h.previous), "staged": dict(h.staged),
                "pending": dict(h.pending), "maintenance": h.maintenance, "up": h.up,
                "boot_id": h.boot_id, "ready_at": h.ready_at, "capacity_mb": h.capacity_mb,
                "applies": h.applies, "rollbacks": h.rollbacks,
            } for h in s.scalars(select(SimHostRow).order_by(SimHostRow.name))}
            guests = {g.name: {
                "host": g.host, "running": g.running, "memory_mb": g.memory_mb,
                "blocked": g.blocked, "migrations": g.migrations,
            } for g in s.scalars(select(SimGuestRow).order_by(SimGuestRow.name))}
        return {"hosts": hosts, "guests": guests}

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def _host(s: Session, name: str) -> SimHostRow:
        row = s.scalars(select(SimHostRow).where(SimHostRow.name == name)).first()
        if row is None:
            raise PermanentStepError(f"unknown host {name!r}: the simulator has no such host")
        return row

    @staticmethod
    def _guest(s: Session, name: str) -> SimGuestRow:
        row = s.scalars(select(SimGuestRow).where(SimGuestRow.name == name)).first()
        if row is None:
            raise PermanentStepError(f"unknown guest {name!r}: the simulator has no such guest")
        return row

    @staticmethod
    def _running_on(s: Session, host: str) -> list[SimGuestRow]:
        return list(s.scalars(select(SimGuestRow).where(
            SimGuestRow.host == host, SimGuestRow.running.is_(True)).order_by(SimGuestRow.name)))

    def _read_host(self, name: str) -> SimHostRow:
        with self.store.session() as s:
            return self._host(s, name)

    def _read_guest(self, name: str) -> tuple[SimGuestRow, SimHostRow]:
        with self.store.session() as s:
            guest = self._guest(s, name)
            return guest, self._host(s, guest.host)

    def _ring(self, host: str) -> str:
        if self._rings is None:
            with self.store.session() as s:
                rows = s.execute(select(HostRow.name, HostRow.ring, ClusterRow.ring)
                                 .join(ClusterRow, ClusterRow.id == HostRow.cluster_id))
                self._rings = {name: hring or cring for name, hring, cring in rows}
        return self._rings.get(host, "")

    def _matching(self, kind: str, row: SimHostRow) -> list[tuple[int, Fault]]:
        if kind not in self.faults.kinds():
            return []
        ring = self._ring(row.name) if self.faults.needs_rings else ""
        return self.faults.matching(kind, row.name, row.cluster, ring)

    # --- writing ------------------------------------------------------------------------------

    @staticmethod
    def _lock(s: Session, hosts: Iterable[str]) -> None:
        """Start the transaction with a write on each host row, in name order."""
        for name in sorted(set(hosts)):
            s.execute(update(SimHostRow).where(SimHostRow.name == name)
                      .values(cluster=SimHostRow.cluster)
                      .execution_options(synchronize_session=False))

    def _write_host(self, host: str, fn: Callable[[Session, SimHostRow], T]) -> T:
        """Run ``fn`` in one transaction holding ``host``'s lock; commit; return its result."""
        with self.store.session() as s:
            self._lock(s, [host])
            result = fn(s, self._host(s, host))
            s.commit()
        return result

    def _write_guest(self, guest: str, fn: Callable[[Session, SimGuestRow], T],
                     also: Iterable[str] = ()) -> T:
        """Run ``fn`` in one transaction holding the locks of the guest's host and ``also``."""
        also = tuple(also)
        for _ in range(10):
            with self.store.session() as s:  # a read of its own: the write starts with a write
                host = self._guest(s, guest).host
            with self.store.session() as s:
                self._lock(s, [host, *also])
                row = self._guest(s, guest)
                if row.host != host:  # it moved between the read and the lock
                    s.rollback()
                    continue
                result = fn(s, row)
                s.commit()
                return result
        raise TemporaryStepError(f"guest {guest} keeps moving; try again", delay=1.0)

    def _fire(self, s: Session, index: int, fault: Fault, subject: str) -> bool:
        """Count one firing of ``fault`` for ``subject`` if it has firings left (persistent)."""
        if fault.times is None:
            return True
        key = _state_key(index, fault.kind, subject)
        _insert_ignore(s, SimStateRow, [{"key": key, "value": {"hits": 0}}], ["key"])
        row = s.scalars(select(SimStateRow).where(SimStateRow.key == key)
                        .with_for_update()).one()
        hits = int(row.value.get("hits", 0))
        if hits >= fault.times:
            return False
        row.value = {"hits": hits + 1}
        return True

    def _first_firing(self, s: Session, kind: str, row: SimHostRow,
                      guest: str | None = None) -> Fault | None:
        for index, fault in self._matching(kind, row):
            if guest is not None and fault.guests and guest not in fault.guests:
                continue
            if self._fire(s, index, fault, row.name):
                return fault
        return None

    def _answers(self, *rows: SimHostRow) -> None:
        """The ``driver-unresponsive`` fault: the host's management endpoint does not answer."""
        for row in sorted(rows, key=lambda r: r.name):
            if not self._matching("driver-unresponsive", row):
                continue
            with self.store.session() as s:
                fault = self._first_firing(s, "driver-unresponsive", row)
                s.commit()
            if fault is not None:
                raise _fault_error(fault, f"host {row.name} did not answer")

    def _mark_up(self, host: str) -> None:
        now = self.clock.now()
        with self.store.session() as s:
            s.execute(update(SimHostRow).where(
                SimHostRow.name == host, SimHostRow.up.is_(False),
                SimHostRow.ready_at.is_not(None), SimHostRow.ready_at <= now,
            ).values(up=True).execution_options(synchronize_session=False))
            s.commit()

    def _require_reachable(self, row: SimHostRow) -> None:
        now = self.clock.now()
        if _reachable(row, now):
            return
        if row.ready_at is None:
            raise TemporaryStepError(f"host {row.name} is not reachable (it does not come back "
                                     "from its reboot)", delay=UNREACHABLE_DELAY_S)
        wait = (row.ready_at - now).total_seconds()
        raise TemporaryStepError(f"host {row.name} is not reachable (rebooting, about "
                                 f"{wait:.0f} s left)", delay=wait)

    def _refuse_running(self, s: Session, row: SimHostRow, action: str) -> None:
        running = self._running_on(s, row.name)
        if running:
            names = [g.name for g in running]
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more"
                                             if len(names) > 10 else "")
            raise PermanentStepError(f"cannot {action} host {row.name}: {len(names)} guest(s) "
                                     f"still running on it: {shown}")
