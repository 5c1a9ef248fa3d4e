"""The rollout engine's own cost per step on a simulated campaign, against the bare store write.

A generated fleet is imported and planned into a multi-ring campaign that bumps every host's main
component (as the rollout tests do: infeasible clusters left out, short soaks, no approvals),
then rolled out on the simulator (:mod:`hvpatch.adapters.drivers.simulator`) with an accelerated
clock so fast (``--speed``, default 10^7) that simulated time costs next to nothing: what is
left is the engine, the activities and the simulator's own store writes. The engine is built as
:func:`hvpatch.orchestration.runner.drive` builds it, with two probes added in this process only
(no change to the engine):

* its executor is wrapped to time each activity (the activity, the simulator's reads and writes
  and the checks: the step's *work*);
* its ``_step`` is wrapped to time each step. A step runs synchronously except while it awaits
  the executor (and a retry's back-off, which a fault-free run never takes), so
  *engine overhead* = step wall time - executor time is exactly the engine's bookkeeping for the
  step: the start record, the task, the end record with its audit entry, events.

Reported per store: steps per second over the whole rollout, the engine overhead per step
(median and 99th percentile), the executor time per step, SQL statements and commits per step
on each side, and the **bare store write** measured in the same process, store and tables after
the rollout. For a sample of the rollout's own step records (same host, step and evidence), on
one held connection, with the engine's two commits: an ``INSERT`` of the step row + commit (the
start is durable before the work runs), then an ``UPDATE`` of it with its evidence and one audit
append with :func:`hvpatch.services.audit.record` + commit (the end and its audit entry commit
together, as in the engine). The ratio is overhead / bare. For reference it also times the same
end with the audit append in plain SQL (lock the head, insert the linked entry, move the head):
the floor, not in the ratio.

Wall time includes the event loop's idle waits: a simulated sleep of a few microseconds still
waits for the selector, which rounds its timeout up to a millisecond, whenever no other task is
ready. The process CPU time of the rollout is printed next to the wall time.

    .venv/bin/python -m bench.bench_rollout --hosts 5000 --store both
    .venv/bin/python -m bench.bench_rollout --hosts 500 --store sqlite     # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import gc
import os
import re
import statistics
import tempfile
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, select, text
from sqlalchemy.orm import Session

from hvpatch.adapters.checks.builtin import builtin_checks
from hvpatch.adapters.checks.suites import suite_checks
from hvpatch.adapters.clock import SystemClock
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, PlanRow, RolloutRow, RolloutStepRow
from hvpatch.adapters.store.plan_codec import plan_to_dict
from hvpatch.domain.audit import AuditEntry, append
from hvpatch.domain.fleet import Fleet, Host
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.planning.campaign import InfeasibleCampaign, build_campaign
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.targets import TargetChoice, product_line
from hvpatch.domain.rollout import RolloutPolicy, rollout_policy_from_dict
from hvpatch.domain.versions import parse_version
from hvpatch.errors import VersionParseError
from hvpatch.orchestration.engine import RolloutEngine
from hvpatch.orchestration.records import Records
from hvpatch.orchestration.runner import build_driver, simulator_spec, start_rollout
from hvpatch.ports.executor import Executor, StepOutcome, StepTask
from hvpatch.services.audit import record
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.rollouts import get_rollout

PG_URL = os.environ.get("HVPATCH_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
#: short soaks (the clock makes them free), no failure allowed, no approval anywhere
RINGS: dict[str, dict[str, Any]] = {
    **{r: {"soak_hours": 1.0, "max_failures": 0} for r in ("test", "dev", "staging")},
    "prod": {"soak_hours": 0.0, "approval": False},
}

#: [executor seconds, executor runs] of the step running in this task (set by the step probe)
_EXEC: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("exec", default=None)
#: whether the code running now is inside the executor (SQL is attributed by it)
_IN_EXEC: contextvars.ContextVar[bool] = contextvars.ContextVar("in_exec", default=False)


# --- the campaign ------------------------------------------------------------------------------


def _bump(version: str) -> str:
    m = list(re.finditer(r"\d+", version))[-1]
    return version[:m.start()] + str(int(m.group()) + 1) + version[m.end():]


def bump_target(host: Host) -> TargetChoice | None:
    """A target that raises ``host``'s main component by one (None when that is no valid
    version of its scheme)."""
    c = host.software.components()[0]
    new = _bump(c.version)
    try:
        parse_version(c.scheme, new)
    except VersionParseError:
        return None
    line = product_line(host) or host.family.value
    return TargetChoice(line, f"{c.name} {new}", new, "bench", ((c.name, new),))


def store_plan(store: Store, fleet: Fleet, targets: Mapping[str, TargetChoice],
               name: str = "bench") -> CampaignPlan:
    """Plan ``targets`` (the clusters the planner finds infeasible left out) and store the
    plan as ``name``."""
    cluster_of: dict[str, str] = {h.name: h.cluster for h in fleet.hosts()}
    wanted: dict[str, TargetChoice | str] = dict(targets)
    spec = {"ha_reserve_hosts": 0, "pinned_guests": "shutdown", "rings": RINGS}
    while True:
        try:
            plan = build_campaign(fleet, wanted, (), plan_policy_from_dict(spec), name=name,
                                  created=NOW, emergency=False, requester="bench")
            break
        except InfeasibleCampaign as exc:
            bad = set(exc.clusters)
            wanted = {h: t for h, t in wanted.items() if cluster_of[h] not in bad}
    with store.session() as s:
        s.add(PlanRow(name=name, created=NOW, requester="bench", scope="bench",
                      emergency=False, status="draft", summary={}, data=plan_to_dict(plan)))
        s.commit()
    return plan


def make_campaign(store: Store, hosts: int, seed: int, guests_per_host: float,
                  name: str = "bench") -> CampaignPlan:
    """Import a generated fleet; store a plan ``name`` that bumps every host's main component
    (clusters the planner finds infeasible are left out)."""
    import_fleet(store, generate_fleet(hosts, seed, guests_per_host=guests_per_host),
                 source="bench", sha256="")
    fleet = load_fleet(store)
    targets = {str(h.name): t for h in fleet.hosts() if (t := bump_target(h)) is not None}
    return store_plan(store, fleet, targets, name)


# --- probes ------------------------------------------------------------------------------------


class TimedExecutor:
    """Wraps an executor: adds each run's seconds to the running step's accumulator."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    async def run(self, task: StepTask) -> StepOutcome:
        """Run ``task`` on the wrapped executor, timed."""
        acc = _EXEC.get()
        token = _IN_EXEC.set(True)
        t0 = time.perf_counter()
        try:
            return await self.inner.run(task)
        finally:
            if acc is not None:
                acc[0] += time.perf_counter() - t0
                acc[1] += 1
            _IN_EXEC.reset(token)


@dataclass
class StepSample:
    """One step as the probe saw it."""

    step: str
    wall_s: float
    exec_s: float
    runs: int

    @property
    def overhead_s(self) -> float:
        """The engine's own time for the step."""
        return self.wall_s - self.exec_s


@dataclass
class SqlCounts:
    """Statements, commits and pool check-outs, by side (engine or executor)."""

    statements: Counter[str] = field(default_factory=Counter)
    commits: Counter[str] = field(default_factory=Counter)
    checkouts: Counter[str] = field(default_factory=Counter)


def _side() -> str:
    return "executor" if _IN_EXEC.get() else "engine"


@contextmanager
def count_sql(store: Store) -> Iterator[SqlCounts]:
    """Count SQL on ``store`` while inside, attributed to the engine or the executor."""
    counts = SqlCounts()

    def on_statement(*_: Any) -> None:
        counts.statements[_side()] += 1

    def on_commit(*_: Any) -> None:
        counts.commits[_side()] += 1

    def on_checkout(*_: Any) -> None:
        counts.checkouts[_side()] += 1

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", on_statement), ("commit", on_commit),
        ("checkout", on_checkout)]
    for name, fn in listeners:
        event.listen(store.engine, name, fn)
    try:
        yield counts
    finally:
        for name, fn in listeners:
            event.remove(store.engine, name, fn)


@contextmanager
def time_records(totals: dict[str, list[float]]) -> Iterator[None]:
    """Time every public method of :class:`Records` (all synchronous) into ``totals``."""
    originals = {n: f for n, f in vars(Records).items()
                 if callable(f) and not n.startswith("_")}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if not _IN_EXEC.get():
                    totals[name].append(time.perf_counter() - t0)
        return wrapper

    for n, f in originals.items():
        setattr(Records, n, timed(n, f))
    try:
        yield
    finally:
        for n, f in originals.items():
            setattr(Records, n, f)


def probe_steps(engine: RolloutEngine, samples: list[StepSample]) -> None:
    """Wrap this engine's ``_step`` so that each call appends a :class:`StepSample`."""
    original = engine._step

    async def timed_step(self: RolloutEngine, host: str, ring: str, step: str,
                         args: Mapping[str, Any], *,
                         activity: str | None = None) -> tuple[bool, str]:
        acc = [0.0, 0]
        token = _EXEC.set(acc)
        t0 = time.perf_counter()
        try:
            return await original(host, ring, step, args, activity=activity)
        finally:
            wall = time.perf_counter() - t0
            _EXEC.reset(token)
            samples.append(StepSample(step.split(":")[0], wall, acc[0], int(acc[1])))

    engine._step = types.MethodType(timed_step, engine)  # type: ignore[method-assign]


# --- the bare store write ------------------------------------------------------------------------


def _binder(conn: Connection, model: Any, column: str) -> Callable[[Any], Any]:
    """The column type's own bind processing (what an ORM write would store)."""
    dialect = conn.dialect
    proc = model.__table__.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return proc or (lambda v: v)


def _plain_audit(conn: Connection, mark: str, at_bind: Callable[[Any], Any],
                 json_bind: Callable[[Any], Any], *, action: str, subject: str,
                 details: dict[str, Any]) -> None:
    """What :func:`record` does, in plain SQL: lock the head, link, insert, move the head."""
    conn.exec_driver_sql("UPDATE audit_head SET seq = seq WHERE id = 1")
    seq, head = conn.exec_driver_sql("SELECT seq, hash FROM audit_head WHERE id = 1").one()
    at = datetime.now(UTC)
    last = AuditEntry(seq, at, "", "", "", {}, "", head) if seq else None
    e = append(last, at=at, actor="engine", action=action, subject=subject, details=details)
    conn.exec_driver_sql(
        f"INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) "
        f"VALUES ({', '.join([mark] * 8)})",
        (e.seq, at_bind(e.at), e.actor, e.action, e.subject, json_bind(dict(e.details)),
         e.prev_hash, e.hash))
    conn.exec_driver_sql(f"UPDATE audit_head SET seq = {mark}, hash = {mark} WHERE id = 1",
                         (e.seq, e.hash))


def bare_writes(store: Store, rollout_id: int, name: str, n: int) -> dict[str, list[float]]:
    """Replay ``n`` of the rollout's step records (evenly spread) as the minimal writes a step
    needs, with the engine's two commits: INSERT + commit (the start is durable before the work
    runs), then UPDATE with the evidence and the audit append + commit (end and its audit entry
    together). The audit append is :func:`record`'s; ``end_sql`` times the same end with the
    append in plain SQL (:func:`_plain_audit`), for reference."""
    with store.session() as s:
        ids = list(s.scalars(select(RolloutStepRow.id).where(
            RolloutStepRow.rollout_id == rollout_id).order_by(RolloutStepRow.id)))
        pick = {ids[int(i * len(ids) / n)] for i in range(min(n, len(ids)))}
        rows = [(r.host, r.ring, r.step, r.attempt, dict(r.evidence))
                for r in s.scalars(select(RolloutStepRow).where(RolloutStepRow.id.in_(pick))
                                   .order_by(RolloutStepRow.id))]
    out: dict[str, list[float]] = {"insert": [], "end": [], "end_sql": [], "total": [],
                                   "floor": []}
    mark = "?" if store.dialect == "sqlite" else "%s"
    insert = (f"INSERT INTO rollout_steps (rollout_id, host, ring, step, attempt, state, "
              f"started, error, evidence) VALUES ({', '.join([mark] * 9)}) RETURNING id")
    update = (f"UPDATE rollout_steps SET state = {mark}, finished = {mark}, error = {mark}, "
              f"evidence = {mark} WHERE id = {mark}")
    with store.engine.connect() as conn:
        stamp = _binder(conn, RolloutStepRow, "started")
        as_json = _binder(conn, RolloutStepRow, "evidence")
        at_bind, details_bind = _binder(conn, AuditRow, "at"), _binder(conn, AuditRow, "details")
        for host, ring, step, attempt, evidence in rows:
            subject, details = f"{host or ring}:{step}", {"rollout": name, "ring": ring,
                                                           "attempt": attempt}
            t0 = time.perf_counter()
            sid = conn.exec_driver_sql(insert, (rollout_id, host, ring, step, attempt, "started",
                                                stamp(datetime.now(UTC)), "", as_json({})))\
                .scalar()
            conn.commit()
            t1 = time.perf_counter()
            with Session(bind=conn) as s:
                s.connection().exec_driver_sql(update, ("finished", stamp(datetime.now(UTC)), "",
                                                        as_json(evidence), sid))
                record(s, actor="engine", action="step.finished", subject=subject,
                       details=details, at=datetime.now(UTC))
                s.commit()
            t2 = time.perf_counter()
            conn.exec_driver_sql(update, ("finished", stamp(datetime.now(UTC)), "",
                                          as_json(evidence), sid))
            _plain_audit(conn, mark, at_bind, details_bind, action="step.finished",
                         subject=subject, details=details)
            conn.commit()
            t3 = time.perf_counter()
            out["insert"].append(t1 - t0)
            out["end"].append(t2 - t1)
            out["end_sql"].append(t3 - t2)
            out["total"].append(t2 - t0)
            out["floor"].append(t1 - t0 + t3 - t2)
    return out


# --- one store ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank below) of ``values``; 0.0 when empty."""
    s = sorted(values)
    return s[int(q * (len(s) - 1))] if s else 0.0


def ms(v: float) -> str:
    """Seconds as milliseconds with two decimals."""
    return f"{v * 1000:.2f}"


@dataclass
class Result:
    """What one store's run measured."""

    store: str
    hosts: int
    steps: int
    wall_s: float
    state: str
    samples: list[StepSample]
    records: dict[str, list[float]]
    sql: SqlCounts
    bare: dict[str, list[float]]
    setup_s: float
    cpu_s: float
    gc_s: float
    gc_full: int

    def row(self) -> dict[str, Any]:
        """The summary numbers."""
        over = [x.overhead_s for x in self.samples]
        work = [x.exec_s for x in self.samples]
        bare = self.bare["total"]
        return {
            "store": self.store, "hosts": self.hosts, "steps": self.steps,
            "wall_s": self.wall_s, "cpu_s": self.cpu_s, "steps_per_s": self.steps / self.wall_s,
            "overhead_median_s": statistics.median(over), "overhead_p99_s": pct(over, 0.99),
            "exec_median_s": statistics.median(work), "exec_p99_s": pct(work, 0.99),
            "bare_median_s": statistics.median(bare), "bare_p99_s": pct(bare, 0.99),
            "ratio_median": statistics.median(over) / statistics.median(bare),
            "ratio_p99": pct(over, 0.99) / pct(bare, 0.99),
            "overhead_share": sum(over) / self.wall_s,
        }


async def _drive(store: Store, name: str, samples: list[StepSample]) -> str:
    """What :func:`hvpatch.orchestration.runner.drive` does, with the probes in."""
    row = get_rollout(store, name)
    policy = rollout_policy_from_dict(row.policy)
    driver, clock = build_driver(store, row.driver)
    checks = builtin_checks(policy.checks, tolerance=policy.performance_tolerance)
    engine = RolloutEngine(store, driver, clock=clock, wall=SystemClock(), checks=checks,
                           ring_checks=lambda ring: suite_checks(policy.suites, ring))
    # the engine's own InProcessExecutor (over the engine's StepContext, which run() configures),
    # wrapped: the same activities, the same context
    engine.executor = TimedExecutor(engine.executor)
    probe_steps(engine, samples)
    try:
        return await engine.run(row.id)
    finally:
        await driver.close()


def run_store(label: str, store: Store, hosts: int, seed: int, guests_per_host: float,
              speed: float, bare_samples: int, profile: str | None) -> Result:
    """Plan, roll out and measure on one store."""
    t0 = time.perf_counter()
    plan = make_campaign(store, hosts, seed, guests_per_host)
    name = start_rollout(store, "bench", requester="bench", policy=RolloutPolicy(),
                         driver=simulator_spec(speed=speed, start=NOW), name="bench-rollout")
    # the simulator's twin is copied from the inventory when the driver is first built: do it
    # now, outside the measured run (the engine's build of the driver then finds it in place)
    build_driver(store, get_rollout(store, name).driver)
    setup_s = time.perf_counter() - t0
    planned = sum(len(w.hosts) for w in plan.waves())
    print(f"{label}: {planned} of {hosts} hosts planned in {len({w.cluster for w in plan.waves()})}"
          f" clusters, {len(plan.rings)} rings, {len(plan.waves())} waves "
          f"(set-up {setup_s:.1f} s: import, plan, twin)", flush=True)
    samples: list[StepSample] = []
    rec_times: dict[str, list[float]] = defaultdict(list)
    prof = cProfile.Profile() if profile else None
    gc_time, gc_full = [0.0, 0.0], [0]   # seconds in all, start of the current collection

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]
            gc_full[0] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    try:
        with count_sql(store) as sql, time_records(rec_times):
            t1, c1 = time.perf_counter(), time.process_time()
            if prof:
                prof.enable()
            state = asyncio.run(_drive(store, name, samples))
            if prof:
                prof.disable()
            wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    finally:
        gc.callbacks.remove(on_gc)
    if prof and profile:
        path = f"{profile}.{label}.prof"
        prof.dump_stats(path)
        print(f"{label}: profile written to {path}")
    with store.session() as s:
        row = s.scalar(select(RolloutRow).where(RolloutRow.name == name))
        assert row is not None
        rid, reason = row.id, row.reason
    if state != "completed":
        print(f"{label}: rollout ended {state}: {reason}")
    bare = bare_writes(store, rid, name, bare_samples)
    return Result(label, planned, len(samples), wall, state, samples, dict(rec_times), sql, bare,
                  setup_s, cpu, gc_time[0], gc_full[0])


# --- stores --------------------------------------------------------------------------------------


@contextmanager
def sqlite_store() -> Iterator[tuple[Store, str]]:
    """A fresh SQLite file store (WAL) and its URL, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url)
        try:
            yield store, url
        finally:
            store.close()


@contextmanager
def pg_store(prefix: str = "hvpatch_bench_rollout") -> Iterator[tuple[Store, str]]:
    """A fresh PostgreSQL schema of its own (``PREFIX_PID``) and the URL that selects it,
    dropped afterwards."""
    schema = f"{prefix}_{os.getpid()}"
    admin = Store(PG_URL, migrate=False)
    with admin.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    store = Store(url)
    try:
        yield store, url
    finally:
        store.close()
        with admin.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.close()


STORES: dict[str, Callable[[], Any]] = {"sqlite": sqlite_store, "postgresql": pg_store}


# --- report ---------------------------------------------------------------------------------------


def report(res: Result) -> dict[str, Any]:
    """Print one store's lines; return its summary row."""
    r = res.row()
    print(f"{res.store:>10}  {r['hosts']:>5} {r['steps']:>6} {r['wall_s']:>7.1f} "
          f"{r['cpu_s']:>6.1f} {r['steps_per_s']:>7.1f}  {ms(r['overhead_median_s']):>7} "
          f"{ms(r['overhead_p99_s']):>7}  {ms(r['bare_median_s']):>7} "
          f"{ms(r['bare_p99_s']):>7}  {r['ratio_median']:>6.2f}x {r['ratio_p99']:>6.2f}x")
    n = max(res.steps, 1)
    b, pad = res.bare, " " * 12
    print(f"{pad}bare write, median (p99) ms, {len(b['total'])} samples: insert+commit "
          f"{ms(statistics.median(b['insert']))} ({ms(pct(b['insert'], 0.99))}), "
          f"update+audit.record+commit {ms(statistics.median(b['end']))} "
          f"({ms(pct(b['end'], 0.99))})")
    print(f"{pad}floor, audit append in plain SQL: update+append+commit "
          f"{ms(statistics.median(b['end_sql']))} ({ms(pct(b['end_sql'], 0.99))}), step "
          f"{ms(statistics.median(b['floor']))} ({ms(pct(b['floor'], 0.99))}); overhead / floor "
          f"{r['overhead_median_s'] / statistics.median(b['floor']):.1f}x (median)")
    print(f"{pad}executor, awaited per step (wall, other tasks' turns included): median "
          f"{ms(r['exec_median_s'])} ms, p99 {ms(r['exec_p99_s'])} ms; CPU per step, all in "
          f"{ms(res.cpu_s / n)} ms")
    s = res.sql
    print(f"{pad}per step: engine {s.statements['engine'] / n:.1f} statements, "
          f"{s.commits['engine'] / n:.2f} commits, {s.checkouts['engine'] / n:.2f} check-outs; "
          f"executor {s.statements['executor'] / n:.1f} statements, "
          f"{s.commits['executor'] / n:.2f} commits, {s.checkouts['executor'] / n:.2f} check-outs")
    rec = res.records
    parts = ", ".join(f"{k} {ms(statistics.median(v))}" for k, v in
                      sorted(rec.items(), key=lambda kv: -sum(kv[1]))[:6])
    in_steps = sum(sum(rec.get(k, [])) for k in ("started", "ended", "count_attempt"))
    outside = sum(sum(v) for v in rec.values()) - in_steps
    print(f"{pad}Records, median ms per call: {parts}; calls outside steps "
          f"{outside:.1f} s in all ({ms(outside / n)} ms per step)")
    by: dict[str, list[float]] = defaultdict(list)
    for x in res.samples:
        by[x.step].append(x.overhead_s)
    print(f"{pad}overhead median ms by step: " + ", ".join(
        f"{k} {ms(statistics.median(v))}" for k, v in by.items()))
    retried = sum(1 for x in res.samples if x.runs > 1)
    print(f"{pad}share of wall: step overheads {r['overhead_share']:.0%}, Records calls outside "
          f"steps {outside / res.wall_s:.0%}; garbage collector {res.gc_s:.1f} s "
          f"({res.gc_full} full collections); rollout {res.state}, {retried} step(s) retried")
    return r


def run(hosts: int, stores: list[str], seed: int, guests_per_host: float, speed: float,
        bare_samples: int, profile: str | None) -> list[dict[str, Any]]:
    """The benchmark on each store; one summary row per store."""
    results = []
    for label in stores:
        try:
            with STORES[label]() as (store, _url):
                results.append(run_store(label, store, hosts, seed, guests_per_host, speed,
                                         bare_samples, profile))
        except Exception as exc:
            if label != "postgresql" or "connect" not in str(exc).lower():
                raise
            print(f"postgresql: skipped ({exc.__class__.__name__}: {str(exc)[:100]})")
    print(f"\n{'':>10}  {'':>5} {'':>6} {'':>7} {'':>6} {'':>7}  {'engine overhead':>15}  "
          f"{'bare write':>15}  {'overhead / bare':>15}")
    print(f"{'store':>10}  {'hosts':>5} {'steps':>6} {'wall s':>7} {'CPU s':>6} {'steps/s':>7}"
          f"  {'med ms':>7} {'p99 ms':>7}  {'med ms':>7} {'p99 ms':>7}  {'median':>7} "
          f"{'p99':>7}")
    return [report(r) for r in results]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=5000)
    p.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--guests-per-host", type=float, default=4)
    p.add_argument("--speed", type=float, default=1e7,
                   help="simulated seconds per wall second (default 1e7)")
    p.add_argument("--bare-samples", type=int, default=2000,
                   help="step records replayed for the bare store write (default 2000)")
    p.add_argument("--profile", metavar="PREFIX",
                   help="write a cProfile of each rollout to PREFIX.STORE.prof")
    args = p.parse_args(argv)
    stores = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    run(args.hosts, stores, args.seed, args.guests_per_host, args.speed, args.bare_samples,
        args.profile)


if __name__ == "__main__":
    main()
