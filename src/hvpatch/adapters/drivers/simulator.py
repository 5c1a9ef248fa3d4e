"""The simulator driver: a strict digital twin of the stored fleet, living in the database.

:class:`SimulatorDriver` implements :class:`~hvpatch.ports.driver.HypervisorDriver` over the
``sim_*`` tables. Its state is a copy of the inventory (:meth:`SimulatorDriver.initialize`) that
the operations then change, one short transaction per operation, so the twin survives the engine
being killed at any instant and reads back exactly what the last committed operation left.

Every operation first reads what it needs (failing fast on what the platform would refuse),
then sleeps the operation's duration on the injected clock (:class:`~hvpatch.domain.planning.
timing.TimeModel`), then opens *one* transaction that starts with a write (``UPDATE`` of the
host rows it is about to depend on: a row lock on PostgreSQL, the write lock on SQLite, so no
read-then-write upgrade can fail with "database is locked"), checks again, commits the effect,
and only then raises whatever the operation or an injected fault (:mod:`.faults`) produces.
Nothing awaits while a transaction is open. Hosts are always locked in name order, before any
other row, so concurrent operations cannot deadlock.

The platform is strict on purpose, so that a rollout rehearsed on it is a safety net: it refuses
maintenance with running guests, migrations to a full, down or in-maintenance host, to another
cluster or of a guest pinned to its host, installs outside maintenance, reboots under running
guests, and starts on a host that is down or in maintenance. ``docs/simulator.md`` has the rules,
the time model and the faults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hvpatch.adapters.drivers.twin import (
    _CLUSTER_PREFIX,
    _WITHDRAWN_REASON,
    BLOCKED,
    DEFAULT_CLUSTER_SETTINGS,
    SERVICES,
    STAGE_SECONDS,
    TwinState,
    _components,
    _fault_error,
    _insert_ignore,
    _patched,
    _reachable,
    _sorted_pairs,
    _state_key,
    simulation_clock,
)
from hvpatch.adapters.store.models import (
    SimGuestRow,
    SimHostRow,
    SimStateRow,
    WithdrawnReleaseRow,
)
from hvpatch.errors import PermanentStepError
from hvpatch.ports.driver import (
    Components,
    GuestState,
    HostState,
    Probe,
)

__all__ = ["DEFAULT_CLUSTER_SETTINGS", "STAGE_SECONDS", "SimulatorDriver", "simulation_clock"]

T = TypeVar("T")


class SimulatorDriver(TwinState):
    """A strict simulated platform over the ``sim_*`` tables (see the module doc and
    :class:`~hvpatch.adapters.drivers.twin.TwinState` for set-up and snapshots)."""


    # --- the port -----------------------------------------------------------------------------

    async def host_state(self, host: str) -> HostState:
        """The twin's host: components, maintenance, boot id, staged, pending, guests."""
        with self.store.session() as s:
            row = self._host(s, host)
            guests = list(s.scalars(select(SimGuestRow).where(SimGuestRow.host == host)
                                    .order_by(SimGuestRow.name)))
        self._answers(row)
        reachable = _reachable(row, self.clock.now())
        if reachable and not row.up:
            self._mark_up(host)
        return HostState(
            name=row.name, reachable=reachable, maintenance=row.maintenance,
            components=_sorted_pairs(row.components), boot_id=str(row.boot_id),
            staged=_sorted_pairs(row.staged), reboot_required=bool(row.pending),
            guests=tuple(GuestState(g.name, g.host, g.running, g.memory_mb) for g in guests))

    async def enter_maintenance(self, host: str) -> None:
        """Maintenance mode; refused while any guest still runs on the host."""
        row = self._read_host(host)
        self._answers(row)
        self._require_reachable(row)
        if row.maintenance:
            return
        with self.store.session() as s:
            self._refuse_running(s, row, "put into maintenance")
        await self.clock.sleep(self.timing.enter_maintenance_s)

        def effect(s: Session, row: SimHostRow) -> None:
            self._require_reachable(row)
            if not row.maintenance:
                self._refuse_running(s, row, "put into maintenance")
                row.maintenance = True

        self._write_host(host, effect)

    async def exit_maintenance(self, host: str) -> None:
        """Out of maintenance mode (idempotent)."""
        row = self._read_host(host)
        self._answers(row)
        self._require_reachable(row)
        if not row.maintenance:
            return
        await self.clock.sleep(self.timing.exit_maintenance_s)

        def effect(_s: Session, row: SimHostRow) -> None:
            self._require_reachable(row)
            row.maintenance = False

        self._write_host(host, effect)

    def _check_migration(self, s: Session, guest: SimGuestRow, source: SimHostRow,
                         dest: SimHostRow) -> None:
        if guest.blocked:
            why = BLOCKED.get(guest.blocked, guest.blocked)
            raise PermanentStepError(f"guest {guest.name} cannot be live-migrated "
                                     f"({guest.blocked}: {why})")
        if dest.cluster != source.cluster:
            raise PermanentStepError(f"cannot migrate guest {guest.name} to {dest.name}: it is "
                                     f"in cluster {dest.cluster}, the guest in {source.cluster}")
        if not _reachable(dest, self.clock.now()):
            raise PermanentStepError(f"cannot migrate guest {guest.name} to {dest.name}: the "
                                     "host is down")
        if dest.maintenance:
            raise PermanentStepError(f"cannot migrate guest {guest.name} to {dest.name}: the "
                                     "host is in maintenance mode")
        if guest.running:
            used = int(s.scalar(select(func.coalesce(func.sum(SimGuestRow.memory_mb), 0)).where(
                SimGuestRow.host == dest.name, SimGuestRow.running.is_(True))) or 0)
            if used + guest.memory_mb > dest.capacity_mb:
                raise PermanentStepError(
                    f"guest {guest.name} ({guest.memory_mb} MiB) does not fit on {dest.name}: "
                    f"{used} of {dest.capacity_mb} MiB used, {dest.capacity_mb - used} free")

    async def migrate_guest(self, guest: str, destination: str) -> None:
        """Live-migrate; refused for pinned guests and full, down or in-maintenance hosts."""
        with self.store.session() as s:
            g = self._guest(s, guest)
            source = self._host(s, g.host)
            dest = self._host(s, destination)
            if g.host == destination:
                return
            self._check_migration(s, g, source, dest)
        self._answers(source, dest)
        timeout = self._matching("migration-timeout", source)
        if timeout:
            with self.store.session() as s:
                hung = self._first_firing(s, "migration-timeout", source, guest)
                s.commit()
            if hung is not None:
                await self.clock.sleep(hung.timeout_s)
                raise _fault_error(hung, f"migration of guest {guest} from {source.name} to "
                                   f"{destination} timed out after {hung.timeout_s:g} s")
        await self.clock.sleep(self.timing.migration_seconds(g.memory_mb))

        def effect(s: Session, g: SimGuestRow) -> Exception | None:
            if g.host == destination:
                return None
            src, dst = self._host(s, g.host), self._host(s, destination)
            self._check_migration(s, g, src, dst)
            failed = self._first_firing(s, "migration-fails", src, guest)
            if failed is not None:
                return _fault_error(failed, f"migration of guest {guest} from {src.name} to "
                                    f"{destination} failed")
            g.host = destination
            g.migrations += 1
            if g.running and _patched(dst) \
                    and self._first_firing(s, "guest-crash", dst, guest) is not None:
                g.running = False
            return None

        error = self._write_guest(guest, effect, also=[destination])
        if error is not None:
            raise error

    async def shutdown_guest(self, guest: str) -> None:
        """Clean shutdown (idempotent)."""
        g, host = self._read_guest(guest)
        self._answers(host)
        if not g.running:
            return
        await self.clock.sleep(self.timing.guest_shutdown_s)

        def effect(_s: Session, g: SimGuestRow) -> None:
            g.running = False

        self._write_guest(guest, effect)

    def _check_start(self, g: SimGuestRow, host: SimHostRow) -> None:
        if not _reachable(host, self.clock.now()):
            raise PermanentStepError(f"cannot start guest {g.name}: its host {host.name} is down")
        if host.maintenance:
            raise PermanentStepError(f"cannot start guest {g.name}: its host {host.name} is in "
                                     "maintenance mode")

    async def start_guest(self, guest: str) -> None:
        """Power on where registered (idempotent); refused on a down or in-maintenance host."""
        g, host = self._read_guest(guest)
        self._answers(host)
        if g.running:
            return
        self._check_start(g, host)
        await self.clock.sleep(self.timing.guest_start_s)

        def effect(s: Session, g: SimGuestRow) -> None:
            if g.running:
                return
            host = self._host(s, g.host)
            self._check_start(g, host)
            crashed = _patched(host) and self._first_firing(s, "guest-crash", host, g.name)
            g.running = not crashed

        self._write_guest(guest, effect)

    async def stage_patch(self, host: str, components: Components) -> None:
        """Record ``components`` as staged (idempotent)."""
        wanted = _components(components, f"stage on {host}")
        row = self._read_host(host)
        self._answers(row)
        self._require_reachable(row)
        if all(row.staged.get(c) == v or row.components.get(c) == v for c, v in wanted.items()):
            return
        await self.clock.sleep(STAGE_SECONDS)

        def effect(_s: Session, row: SimHostRow) -> None:
            self._require_reachable(row)
            row.staged = {**row.staged, **wanted}

        self._write_host(host, effect)

    @staticmethod
    def _to_install(row: SimHostRow, wanted: Mapping[str, str]) -> dict[str, str]:
        """What an apply of ``wanted`` would change: neither installed nor already pending."""
        return {c: v for c, v in wanted.items()
                if row.components.get(c) != v and row.pending.get(c) != v}

    @staticmethod
    def _require_maintenance(row: SimHostRow) -> None:
        if not row.maintenance:
            raise PermanentStepError(f"cannot install on host {row.name}: it is not in "
                                     "maintenance mode")

    async def apply_patch(self, host: str, components: Components) -> None:
        """Install in maintenance mode; pending until the next reboot. Applying what is
        installed or pending already does nothing (and is not counted)."""
        wanted = _components(components, f"apply on {host}")
        row = self._read_host(host)
        self._answers(row)
        self._require_reachable(row)
        self._require_maintenance(row)
        if not self._to_install(row, wanted):
            return
        await self.clock.sleep(self.timing.install(row.family))

        def effect(s: Session, row: SimHostRow) -> Exception | None:
            self._require_reachable(row)
            self._require_maintenance(row)
            todo = self._to_install(row, wanted)
            if not todo:
                return None
            failed = self._first_firing(s, "install-fails", row)
            if failed is not None:
                listed = ", ".join(f"{c} {v}" for c, v in sorted(todo.items()))
                return _fault_error(failed, f"install of {listed} on host {row.name} failed")
            row.previous = dict(row.components)
            row.pending = {**row.pending, **wanted}
            row.staged = {c: v for c, v in row.staged.items() if wanted.get(c) != v}
            row.applies += 1
            self._count_release(s, row, wanted)
            return None

        error = self._write_host(host, effect)
        if error is not None:
            raise error

    def _count_release(self, s: Session, row: SimHostRow, release: Mapping[str, str]) -> None:
        """The ``withdraw-release`` fault: count applies of the release, withdraw it at N."""
        pairs = sorted(release.items())
        digest = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:32]
        for index, fault in self._matching("withdraw-release", row):
            key = _state_key(index, fault.kind, digest)
            _insert_ignore(s, SimStateRow, [{"key": key, "value": {
                "applies": 0, "components": [list(p) for p in pairs]}}], ["key"])
            state = s.scalars(select(SimStateRow).where(SimStateRow.key == key)
                              .with_for_update()).one()
            applies = int(state.value.get("applies", 0)) + 1
            state.value = {**state.value, "applies": applies}
            if applies == fault.after_applies:
                now = self.clock.now()
                _insert_ignore(s, WithdrawnReleaseRow, [
                    {"component": c, "version": v, "reason": _WITHDRAWN_REASON, "at": now}
                    for c, v in pairs], ["component", "version"])

    def _restart(self, s: Session, row: SimHostRow) -> None:
        """Take the host down for a reboot; a ``no-boot`` fault leaves it hung."""
        row.boot_id += 1
        row.up = False
        hung = self._first_firing(s, "no-boot", row) is not None
        row.ready_at = None if hung else \
            self.clock.now() + timedelta(seconds=self.timing.reboot(row.family))

    async def reboot(self, host: str) -> None:
        """Reboot into the pending components; returns at once (see :meth:`wait_ready`).

        Refused while guests run on the host. Works on a host that is down (a power cycle).
        """
        row = self._read_host(host)
        self._answers(row)
        with self.store.session() as s:
            self._refuse_running(s, row, "reboot")

        def effect(s: Session, row: SimHostRow) -> None:
            self._refuse_running(s, row, "reboot")
            row.components = {**row.components, **row.pending}
            row.pending = {}
            self._restart(s, row)

        self._write_host(host, effect)

    async def wait_ready(self, host: str, timeout_s: float) -> None:
        """Return once the host is back; PermanentStepError after waiting ``timeout_s`` if it is
        not (a boot longer than the timeout, or a hung boot)."""
        if not timeout_s >= 0:
            raise PermanentStepError(f"wait for host {host}: bad timeout {timeout_s!r}")
        row = self._read_host(host)
        self._answers(row)
        deadline = self.clock.now() + timedelta(seconds=timeout_s)
        while True:
            now = self.clock.now()
            if _reachable(row, now):
                if not row.up:
                    self._mark_up(host)
                return
            if row.ready_at is None or row.ready_at > deadline:
                if now >= deadline:
                    raise PermanentStepError(f"host {host} did not come back within "
                                             f"{timeout_s:g} s")
                wait = (deadline - now).total_seconds()
            else:
                wait = max((row.ready_at - now).total_seconds(), 0.001)
            await self.clock.sleep(wait)
            row = self._read_host(host)

    async def rollback(self, host: str) -> None:
        """Back to the components before the last apply (if any): pending and staged are
        dropped, the host reboots (wait with :meth:`wait_ready`). Refused under running guests."""
        row = self._read_host(host)
        self._answers(row)
        with self.store.session() as s:
            self._refuse_running(s, row, "roll back")

        def effect(s: Session, row: SimHostRow) -> None:
            self._refuse_running(s, row, "roll back")
            if row.previous:
                row.components = dict(row.previous)
                row.previous = {}
            row.pending = {}
            row.staged = {}
            row.rollbacks += 1
            self._restart(s, row)

        self._write_host(host, effect)

    async def probe(self, host: str) -> Probe:
        """Platform services and two metrics (fixed per host; changed only by faults)."""
        row = self._read_host(host)
        self._answers(row)
        self._require_reachable(row)
        names = SERVICES.get(row.family, SERVICES["generic"])
        services = dict.fromkeys(names, "running")
        digest = hashlib.sha256(row.name.encode()).digest()
        metrics = {
            "guest_boot_s": round(20.0 + int.from_bytes(digest[0:4], "big") % 2000 / 100, 2),
            "io_latency_ms": round(0.5 + int.from_bytes(digest[4:8], "big") % 300 / 100, 2),
        }
        if _patched(row):
            for _, fault in self._matching("perf-regression", row):
                for m in fault.metrics:
                    metrics[m] = round(metrics[m] * fault.factor, 4)
            for _, fault in self._matching("services-unhealthy", row):
                for name in fault.services or names[:1]:
                    services[name] = "failed"
        return Probe(services_ok=all(v == "running" for v in services.values()),
                     services=services, metrics=metrics)

    async def cluster_settings(self, cluster: str) -> dict[str, str]:
        """The cluster's settings (DRS automation, HA admission control, ...)."""
        with self.store.session() as s:
            row = s.get(SimStateRow, _CLUSTER_PREFIX + cluster)
            if row is None:
                raise PermanentStepError(f"unknown cluster {cluster!r}: the simulator has no "
                                         "such cluster")
            return {str(k): str(v) for k, v in row.value.items()}

    async def set_cluster_settings(self, cluster: str, settings: Mapping[str, str]) -> None:
        """Change some settings of the cluster; the others keep their values."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items()):
            raise PermanentStepError(f"cluster {cluster}: settings must be text values")
        key = _CLUSTER_PREFIX + cluster
        with self.store.session() as s:
            s.execute(update(SimStateRow).where(SimStateRow.key == key)
                      .values(key=SimStateRow.key).execution_options(synchronize_session=False))
            row = s.get(SimStateRow, key)
            if row is None:
                raise PermanentStepError(f"unknown cluster {cluster!r}: the simulator has no "
                                         "such cluster")
            row.value = {**row.value, **dict(settings)}
            s.commit()

    async def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""
