"""The rollout's activities: the I/O of each step, idempotent and reconciled with live state.

Each activity takes a :class:`~hvpatch.ports.executor.StepTask` (plain data) and the
:class:`StepContext` of the process it runs in, looks at the platform's live state first, and
does only what is still to do -- so re-running a step after a crash (its start recorded, its end
not) neither repeats finished work (a patch is applied once) nor skips unfinished work. A step
that finds its work already done says so (``already_done``), which the step record keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hvpatch.adapters.store.db import Store
from hvpatch.errors import PermanentStepError
from hvpatch.orchestration.errors import CheckFailed
from hvpatch.ports.checks import Check, CheckContext
from hvpatch.ports.clock import Clock
from hvpatch.ports.driver import GuestState, HostState, HypervisorDriver
from hvpatch.ports.executor import StepOutcome, StepTask
from hvpatch.services.verification import IndexCache, record_moves, verify_host

__all__ = ["ACTIVITIES", "StepContext", "state_from_dict", "state_to_dict"]


@dataclass
class StepContext:
    """What activities use in this process: store, driver, clocks, checks, caches."""

    store: Store
    driver: HypervisorDriver
    clock: Clock
    checks: Sequence[Check] = ()
    index: IndexCache | None = None
    ready_timeout_s: float = 1800.0
    migrations_per_host: int = 2
    migrations_per_cluster: int = 8
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def cluster_slots(self, cluster: str) -> asyncio.Semaphore:
        """The concurrent-migration limit of ``cluster`` (shared by its hosts' evacuations)."""
        if cluster not in self._slots:
            self._slots[cluster] = asyncio.Semaphore(self.migrations_per_cluster)
        return self._slots[cluster]


def state_to_dict(s: HostState) -> dict[str, Any]:
    """A host state as plain data (kept as before/after evidence)."""
    return {"name": s.name, "reachable": s.reachable, "maintenance": s.maintenance,
            "components": [list(c) for c in s.components], "boot_id": s.boot_id,
            "staged": [list(c) for c in s.staged], "reboot_required": s.reboot_required,
            "guests": [{"name": g.name, "host": g.host, "running": g.running,
                        "memory_mb": g.memory_mb} for g in s.guests]}


def state_from_dict(d: Mapping[str, Any]) -> HostState:
    """Inverse of :func:`state_to_dict`."""
    return HostState(d["name"], d["reachable"], d["maintenance"],
                     tuple((c, v) for c, v in d["components"]), d["boot_id"],
                     tuple((c, v) for c, v in d.get("staged", ())), d.get("reboot_required", False),
                     tuple(GuestState(g["name"], g["host"], g["running"], g.get("memory_mb", 0))
                           for g in d.get("guests", ())))


def _components(task: StepTask) -> tuple[tuple[str, str], ...]:
    return tuple((c, v) for c, v in task.args.get("components", ()))


def _installed(state: HostState, components: tuple[tuple[str, str], ...]) -> bool:
    have = dict(state.components)
    return all(have.get(c) == v for c, v in components)


async def precheck(task: StepTask, ctx: StepContext) -> StepOutcome:
    """The host answers, and every guest running on it is one the plan moves or stops."""
    state = await ctx.driver.host_state(task.host)
    if not state.reachable:
        raise PermanentStepError(f"{task.host} does not answer; nothing was changed on it")
    planned = {m[0] for m in task.args.get("moves", ())}
    stray = [g for g in state.running_guests() if g not in planned]
    if stray and not state.maintenance:
        raise PermanentStepError(
            f"the plan is out of date: {', '.join(stray[:5])} run(s) on {task.host} but the "
            f"plan does not move them; re-plan the campaign (hvpatch plan create)")
    probe = await ctx.driver.probe(task.host)
    return StepOutcome({"before": state_to_dict(state), "baseline": dict(probe.metrics),
                        "services": dict(probe.services)})


async def _move(ctx: StepContext, cluster: str, guest: str, kind: str, dest: str,
                per_host: asyncio.Semaphore, failed: list[Exception]) -> bool:
    """One move; True once done. After a failure of another move, none is started."""
    async with per_host, ctx.cluster_slots(cluster):
        if failed:
            return False
        try:
            if kind == "shutdown":
                await ctx.driver.shutdown_guest(guest)
            else:
                await ctx.driver.migrate_guest(guest, dest)
        except Exception as exc:
            failed.append(exc)
            raise
        return True


async def evacuate(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Live-migrate (or, with consent, shut down) the host's guests as the plan says.

    When a move fails, no further one starts, the moves under way finish (none is left running
    behind the step's back, e.g. a shutdown after the cleanup restarted the guest), the moves
    done are recorded, and the first error is raised.
    """
    state = await ctx.driver.host_state(task.host)
    here = {g.name for g in state.guests if g.running}
    todo = [m for m in task.args.get("moves", ()) if m[0] in here]
    per_host = asyncio.Semaphore(ctx.migrations_per_host)
    cluster = str(task.args.get("cluster", ""))
    failed: list[Exception] = []
    results = await asyncio.gather(*(_move(ctx, cluster, g, kind, dest, per_host, failed)
                                     for g, kind, _src, dest in todo), return_exceptions=True)
    done = {m[0] for m, r in zip(todo, results, strict=True) if r is True}
    # a planned migration whose guest is no longer on the host was done by an earlier run of
    # this step (an engine killed mid-evacuation): record it too, or the inventory keeps it here
    registered = {g.name for g in state.guests}
    moved = [(g, dest) for g, kind, _src, dest in task.args.get("moves", ())
             if kind != "shutdown" and (g in done or g not in registered)]
    with ctx.store.session() as s:
        record_moves(s, moved)
        s.commit()
    if failed:
        raise failed[0]
    return StepOutcome({"moved": [list(m) for m in moved],
                        "stopped": [m[0] for m in todo if m[1] == "shutdown"]},
                       already_done=not todo)


async def enter_maintenance(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Maintenance mode on the emptied host."""
    state = await ctx.driver.host_state(task.host)
    if state.maintenance:
        return StepOutcome({"maintenance": True}, already_done=True)
    await ctx.driver.enter_maintenance(task.host)
    return StepOutcome({"maintenance": True})


async def exit_maintenance(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Out of maintenance mode."""
    state = await ctx.driver.host_state(task.host)
    if not state.maintenance:
        return StepOutcome({"maintenance": False}, already_done=True)
    await ctx.driver.exit_maintenance(task.host)
    return StepOutcome({"maintenance": False})


async def stage(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Stage the target (where the platform stages)."""
    components = _components(task)
    state = await ctx.driver.host_state(task.host)
    if not ctx.driver.capabilities.stage or _installed(state, components) \
            or set(state.staged) >= set(components):
        return StepOutcome({"staged": [list(c) for c in components]}, already_done=True)
    await ctx.driver.stage_patch(task.host, components)
    return StepOutcome({"staged": [list(c) for c in components]})


async def apply(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Install the target, unless the host already runs it or has it pending a reboot."""
    components = _components(task)
    state = await ctx.driver.host_state(task.host)
    if _installed(state, components) or (state.reboot_required
                                         and set(state.staged) >= set(components)):
        return StepOutcome({"components": [list(c) for c in components]}, already_done=True)
    await ctx.driver.apply_patch(task.host, components)
    return StepOutcome({"components": [list(c) for c in components]})


async def reboot(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Reboot when the applied patch needs it."""
    state = await ctx.driver.host_state(task.host)
    if not state.reboot_required:
        return StepOutcome({"boot_id": state.boot_id}, already_done=True)
    await ctx.driver.reboot(task.host)
    return StepOutcome({"boot_id_before": state.boot_id})


async def wait_ready(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Wait until the host answers again."""
    timeout = float(task.args.get("timeout_s", ctx.ready_timeout_s))
    await ctx.driver.wait_ready(task.host, timeout)
    state = await ctx.driver.host_state(task.host)
    return StepOutcome({"boot_id": state.boot_id, "reachable": state.reachable})


async def verify(task: StepTask, ctx: StepContext) -> StepOutcome:
    """The running versions are the target's; findings that no longer match are closed."""
    components = _components(task)
    state = await ctx.driver.host_state(task.host)
    live = dict(state.components)
    wrong = {c: live.get(c) for c, v in components if live.get(c) != v}
    if wrong:
        raise PermanentStepError(
            f"{task.host} runs {', '.join(f'{c} {v}' for c, v in wrong.items())} instead of the "
            f"target {', '.join(f'{c} {v}' for c, v in components if c in wrong)}")
    if ctx.index is None:
        return StepOutcome({"live": live})
    now: datetime = ctx.clock.now()
    with ctx.store.session() as s:
        result = verify_host(s, ctx.index.get(), task.host, live, now=now)
        s.commit()
    return StepOutcome({"live": live, **result.as_dict()})


async def run_checks(task: StepTask, ctx: StepContext) -> StepOutcome:
    """The host-scoped regression checks; the first failures fail the step, with evidence."""
    a = task.args
    before = state_from_dict(a["before"]) if a.get("before") else None
    cctx = CheckContext(
        rollout=str(a.get("rollout", "")), ring=str(a.get("ring", "")),
        hosts=tuple(a.get("hosts", ())), host=task.host, target=_components(task),
        before=before, baseline={task.host: dict(a.get("baseline", {}))},
        cluster_guests_before=tuple(a.get("cluster_guests_before", ())))
    wanted = set(a.get("checks", ()))
    results = [await c.run(cctx, ctx.driver) for c in ctx.checks
               if c.scope == "host" and c.name in wanted]
    evidence = {r.name: {"ok": r.ok, "summary": r.summary, **dict(r.evidence)} for r in results}
    bad = [r for r in results if not r.ok]
    if bad:
        raise CheckFailed("regression check(s) failed: " + "; ".join(
            f"{r.name}: {r.summary}" for r in bad), evidence)
    return StepOutcome({"checks": evidence})


async def restart(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Start the guests the plan shut down on this host."""
    guests = list(task.args.get("guests", ()))
    for g in guests:
        await ctx.driver.start_guest(g)
    return StepOutcome({"started": guests}, already_done=not guests)


async def migrate_back(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Return guests to their original hosts, in plan order (each move capacity-checked)."""
    done, kept = [], []
    try:
        for guest, _kind, src, dest in task.args.get("moves", ()):
            if dest in set(task.args.get("failed_hosts", ())):
                kept.append(guest)
                continue
            await ctx.driver.migrate_guest(guest, dest)
            done.append((guest, dest))
            del src
    finally:  # the moves done before a failure are recorded too
        with ctx.store.session() as s:
            record_moves(s, done)
            s.commit()
    return StepOutcome({"moved": [list(m) for m in done], "kept": kept})


async def rollback(task: StepTask, ctx: StepContext) -> StepOutcome:
    """Return a failed host to the software it ran before, wait until it is back, and record
    that it runs the old software again (its findings reopen)."""
    state = await ctx.driver.host_state(task.host)
    before = dict(tuple((c, v) for c, v in task.args.get("previous", ())))
    done = bool(before) and not state.reboot_required and all(
        dict(state.components).get(c) == v for c, v in before.items())
    if not done:
        await ctx.driver.rollback(task.host)
        await ctx.driver.wait_ready(task.host, ctx.ready_timeout_s)
        state = await ctx.driver.host_state(task.host)
    evidence: dict[str, Any] = {"components": [list(c) for c in state.components]}
    if ctx.index is not None:
        with ctx.store.session() as s:
            result = verify_host(s, ctx.index.get(), task.host, dict(state.components),
                                 now=ctx.clock.now())
            s.commit()
        evidence["reverified"] = result.as_dict()
    return StepOutcome(evidence, already_done=done)


Activity = Callable[[StepTask, StepContext], Awaitable[StepOutcome]]

ACTIVITIES: dict[str, Activity] = {
    "precheck": precheck, "evacuate": evacuate, "enter-maintenance": enter_maintenance,
    "stage": stage, "apply": apply, "reboot": reboot, "wait-ready": wait_ready,
    "verify": verify, "checks": run_checks, "guest-checks": run_checks,
    "exit-maintenance": exit_maintenance,
    "restart": restart, "migrate-back": migrate_back, "rollback": rollback,
}
