"""The REST API under load: concurrent clients on loopback, against a 10,000-host store.

Per store (SQLite file in WAL mode; PostgreSQL in a schema of its own) the benchmark builds what
an operator's store holds: a generated fleet (``generate_fleet``, default 20 guests per host),
the bundled advisory snapshot (``import_feeds``), findings (``refresh_findings``) and risk
decisions (``assess_risk``), and one finished rollout on the simulator -- a small campaign that
bumps the main component of the hosts of a few clusters per ring (``--rollout-hosts``, as
:mod:`bench.bench_rollout` plans, with infeasible clusters left out) -- so that
``/api/v1/rollouts/{name}`` and ``.../gates`` read a real rollout with its gates and evidence.
A viewer and an API token are made with :mod:`hvpatch.services.users`. On PostgreSQL the
schema's tables are then ``ANALYZE``d, as autovacuum would do within a minute or so of the bulk
load on a default server (it is off on the test server; ``--no-analyze`` measures the store
without planner statistics).

The API is then served by a separate process, ``hvpatch --db URL serve --log-level warning``
(one uvicorn process, as a user runs it), and ``--clients`` concurrent clients in this process
(asyncio, one ``httpx.AsyncClient`` and one keep-alive connection each, ``Authorization:
Bearer``) run four phases of ``--seconds`` each (or ``--requests`` per client), after one
walk over every page of findings (a warm-up that collects the cursors):

* **api, 1 client** then **api, N clients**: each client loops over a cycle --
  ``GET /api/v1/findings?limit=100`` from a random page, following ``next`` for ``--pages``
  pages, then ``GET /api/v1/rollouts/{name}`` and ``GET /api/v1/rollouts/{name}/gates``; one
  client alone shows the cost of a request without queueing;
* **healthz**: ``GET /healthz`` without credentials (the framework and one ``SELECT 1``: the
  floor of any request);
* **healthz + token**: the same with the Bearer token (the floor plus the token check every
  ``/api/`` request pays).

Each request's latency is taken on the client; non-2xx answers and transport errors are counted
and must be none (the benchmark prints them and exits 1 otherwise). The server's CPU time
(``/proc/PID/stat``) and this process's are read around each phase.

The baseline, in the same process and on the same store, is the **direct call**: the services
the routes call, as they call them (``page_findings`` with ``limit + 1`` from the same random
pages, ``rollout_status``, ``rollout_gates``, ``verify_token``, ``ping``), one at a time, before
and after the HTTP phases (the faster of the two runs counts; both medians are printed). Ratios:
HTTP median (p99) under load over the direct median (p99), per endpoint; and the throughput of a
phase over the *direct rate* of the same mix, one over the sum of the direct medians of the
requests it made.

    .venv/bin/python -m bench.bench_api_load --hosts 10000 --store both
    .venv/bin/python -m bench.bench_api_load --hosts 500 --seconds 5 --store sqlite   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from sqlalchemy import func, select, text

from bench.bench_rollout import NOW, bump_target, ms, pct, pg_store, sqlite_store, store_plan
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRow, RolloutStepRow
from hvpatch.api.models import FindingItem, GateOut
from hvpatch.api.pages import Page, page_of
from hvpatch.domain.fleet import Cluster, Fleet
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.targets import TargetChoice
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import page_findings, refresh_findings
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.metrics import ping
from hvpatch.services.risk import assess_risk
from hvpatch.services.rollouts import rollout_gates, rollout_status
from hvpatch.services.users import add_user, create_token, verify_token

PG_URL = os.environ.get("HVPATCH_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
API = "/api/v1"
PAGE = 100
ROLLOUT = "bench-rollout"
#: endpoint labels, in the order tables print them
FINDINGS, STATUS, GATES, HEALTH, HEALTH_TOKEN = (
    "findings page", "rollout status", "rollout gates", "healthz", "healthz + token")
#: the direct call each endpoint's ratio is taken against
DIRECT_OF = {FINDINGS: FINDINGS, STATUS: STATUS, GATES: GATES, HEALTH: "store ping",
             HEALTH_TOKEN: "store ping"}


# --- the store ------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What the load reads: the store, its URL for the server, the token, the pages."""

    store: Store
    url: str
    token: str
    hosts: int
    guests: int
    findings: int
    #: the ``after`` key of each page of open findings (None: the first page)
    page_keys: list[int | None]
    rollout: dict[str, Any]
    setup_s: float


def _rollout_targets(fleet: Fleet, want: int) -> dict[str, TargetChoice]:
    """Bump targets for the hosts of a few clusters of each ring, about ``want`` hosts."""
    order = fleet.ring_order()
    by_ring: dict[str, list[Cluster]] = defaultdict(list)
    for c in sorted(fleet.clusters(), key=lambda c: (c.site, c.name)):
        if c.hosts:
            by_ring[c.hosts[0].ring].append(c)
    share = max(1, want // max(1, len(by_ring)))
    targets: dict[str, TargetChoice] = {}
    for ring in sorted(by_ring, key=lambda r: order.get(r, 99)):
        taken = 0
        for c in by_ring[ring]:
            if taken >= share:
                break
            for h in c.hosts:
                target = bump_target(h)
                if target is not None:
                    targets[h.name] = target
                    taken += 1
    return targets


def plan_rollout(store: Store, want: int) -> CampaignPlan:
    """Store a plan ``bench`` over about ``want`` hosts (infeasible clusters left out)."""
    fleet = load_fleet(store)
    return store_plan(store, fleet, _rollout_targets(fleet, want))


def walk_keys(store: Store) -> list[int | None]:
    """Walk every open finding a page at a time, as the route does; each page's ``after``."""
    keys: list[int | None] = [None]
    while True:
        rows = page_findings(store, after=keys[-1], limit=PAGE + 1)
        if len(rows) <= PAGE:
            return keys
        keys.append(rows[PAGE - 1]["id"])


def prepare(store: Store, url: str, hosts: int, seed: int, rollout_hosts: int) -> Prepared:
    """Fill ``store``: fleet, advisories, findings, risk, a finished rollout, a viewer's token."""
    t0 = time.perf_counter()
    fleet = generate_fleet(hosts, seed)
    import_fleet(store, fleet, source="bench", sha256="")
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    assess_risk(store, actor="bench")
    plan = plan_rollout(store, rollout_hosts)
    start_rollout(store, "bench", requester="bench", policy=RolloutPolicy(),
                  driver=simulator_spec(speed=1e7, start=NOW), name=ROLLOUT)
    state = asyncio.run(drive(store, ROLLOUT))
    add_user(store, "bench-viewer", "viewer", actor="bench", password="bench-load-password")
    token, _ = create_token(store, "bench-viewer", actor="bench", name="load")
    with store.session() as s:
        findings = s.scalar(select(func.count()).select_from(FindingRow)
                            .where(FindingRow.state == "open")) or 0
        steps = s.scalar(select(func.count()).select_from(RolloutStepRow)) or 0
    keys = walk_keys(store)
    rollout = {"state": state, "hosts": sum(len(w.hosts) for w in plan.waves()),
               "clusters": len({w.cluster for w in plan.waves()}), "rings": len(plan.rings),
               "steps": steps}
    return Prepared(store, url, token, hosts, sum(len(h.guests) for h in fleet.hosts()),
                    findings, keys, rollout, time.perf_counter() - t0)


@contextmanager
def _pg_store() -> Iterator[tuple[Store, str]]:
    with pg_store("hvpatch_bench_api") as (store, url):
        yield store, url


STORES: dict[str, Callable[[], Any]] = {"sqlite": sqlite_store, "postgresql": _pg_store}


def analyze(store: Store) -> float:
    """``ANALYZE`` every table of the store's own schema (what PostgreSQL's autovacuum does
    within a minute or so of a bulk load; it is off on the test server); seconds taken."""
    t0 = time.perf_counter()
    with store.engine.begin() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables "
                                   "WHERE schemaname = current_schema()")).scalars().all()
        for table in tables:
            conn.execute(text(f'ANALYZE "{table}"'))
    return time.perf_counter() - t0


# --- the server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _hvpatch() -> list[str]:
    exe = Path(sys.executable).with_name("hvpatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hvpatch"]


@contextmanager
def served(url: str, log: Path) -> Iterator[tuple[str, int]]:
    """``hvpatch --db URL serve`` on a free loopback port until the block ends: (base, pid)."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_hvpatch(), "--db", url, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}):\n"
                                   + log.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the clients ----------------------------------------------------------------------------------


@dataclass
class Phase:
    """One HTTP phase: every request's (endpoint, seconds, status), its wall and CPU times."""

    name: str
    clients: int
    samples: list[tuple[str, float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    load: float = 0.0


async def _client(http: httpx.AsyncClient, kind: str, rng: random.Random, cursors: list[str],
                  pages: int, stop: Callable[[int], bool], phase: Phase) -> None:
    done = 0

    async def get(label: str, path: str, params: dict[str, Any] | None = None) -> Any:
        nonlocal done
        t0 = time.perf_counter()
        try:
            r = await http.get(path, params=params)
        except httpx.HTTPError as exc:
            phase.samples.append((label, time.perf_counter() - t0, 0))
            phase.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            done += 1
            return None
        phase.samples.append((label, time.perf_counter() - t0, r.status_code))
        done += 1
        if not 200 <= r.status_code < 300:
            phase.errors.append(f"{label}: {r.status_code} {r.text[:200]}")
            return None
        return r.json() if label == FINDINGS else None

    while not stop(done):
        if kind == HEALTH:
            await get(HEALTH, "/healthz")
            continue
        if kind == HEALTH_TOKEN:
            await get(HEALTH_TOKEN, "/healthz")
            continue
        cursor: str | None = cursors[rng.randrange(len(cursors))]
        for _ in range(pages):
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            body = await get(FINDINGS, f"{API}/findings", params)
            cursor = body.get("next") if body else None
            if not cursor or stop(done):
                break
        if stop(done):
            break
        await get(STATUS, f"{API}/rollouts/{ROLLOUT}")
        if stop(done):
            break
        await get(GATES, f"{API}/rollouts/{ROLLOUT}/gates")


async def _phase(name: str, base: str, token: str, kind: str, clients: int, seconds: float,
                 requests: int | None, cursors: list[str], pages: int, seed: int,
                 server_pid: int) -> Phase:
    phase = Phase(name, clients)
    headers = {} if kind == HEALTH else {"Authorization": f"Bearer {token}"}
    https = [httpx.AsyncClient(base_url=base, headers=headers, timeout=120.0,
                               limits=httpx.Limits(max_connections=1)) for _ in range(clients)]
    try:
        # open every connection first (not measured)
        await asyncio.gather(*(h.get("/healthz") for h in https))
        phase.load = os.getloadavg()[0]
        t0, c0, s0 = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
        deadline = t0 + seconds

        def stop(done: int) -> bool:
            return done >= requests if requests else time.perf_counter() >= deadline

        await asyncio.gather(*(_client(h, kind, random.Random(seed * 1000 + i), cursors, pages,
                                       stop, phase) for i, h in enumerate(https)))
        phase.wall_s = time.perf_counter() - t0
        phase.client_cpu_s = time.process_time() - c0
        phase.server_cpu_s = cpu_seconds(server_pid) - s0
    finally:
        await asyncio.gather(*(h.aclose() for h in https))
    return phase


def http_cursors(base: str, token: str) -> list[str]:
    """Walk every page of open findings over HTTP once (a warm-up): each page's cursor."""
    cursors = [""]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=120.0) as http:
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if cursors[-1]:
                params["cursor"] = cursors[-1]
            r = http.get(f"{API}/findings", params=params)
            r.raise_for_status()
            nxt = r.json()["next"]
            if nxt is None:
                return cursors
            cursors.append(nxt)


# --- the direct calls -----------------------------------------------------------------------------


#: the response models of the routes, as FastAPI validates and serialises them (its fast path:
#: ``TypeAdapter.validate_python``, then ``dump_json``)
RESPONSE_MODELS: dict[str, TypeAdapter[Any]] = {
    FINDINGS: TypeAdapter(Page[FindingItem]), STATUS: TypeAdapter(dict[str, Any]),
    GATES: TypeAdapter(list[GateOut])}


def direct(prep: Prepared, cycles: int, pages: int, seed: int) -> dict[str, list[float]]:
    """The services the routes call, as they call them, one at a time: seconds per call. Also
    the route's response model applied to each result (``ENDPOINT + " (response)"``), not part
    of the baseline: it says how much of the server's time serialising takes."""
    rng = random.Random(seed)
    store, keys = prep.store, prep.page_keys
    out: dict[str, list[float]] = defaultdict(list)

    def timed(label: str, fn: Callable[[], Any], shape: Callable[[Any], Any] | None = None
              ) -> Any:
        t0 = time.perf_counter()
        result = fn()
        out[label].append(time.perf_counter() - t0)
        if shape is not None:
            adapter = RESPONSE_MODELS[label]
            t0 = time.perf_counter()
            adapter.dump_json(adapter.validate_python(shape(result)), by_alias=True)
            out[f"{label} (response)"].append(time.perf_counter() - t0)
        return result

    def as_page(rows: list[dict[str, Any]]) -> Page[Any]:
        return page_of(rows, PAGE, lambda r: r["id"])

    def page(after: int | None) -> Callable[[], list[dict[str, Any]]]:
        return lambda: page_findings(store, after=after, limit=PAGE + 1)  # as the route asks

    for _ in range(cycles):
        after = keys[rng.randrange(len(keys))]
        for _ in range(pages):
            rows = timed(FINDINGS, page(after), as_page)
            if len(rows) <= PAGE:
                break
            after = rows[PAGE - 1]["id"]
        timed(STATUS, lambda: rollout_status(store, ROLLOUT), lambda r: r)
        timed(GATES, lambda: rollout_gates(store, ROLLOUT), lambda r: r)
        user = timed("token check", lambda: verify_token(store, prep.token))
        assert user is not None
        timed("store ping", lambda: ping(store))
    return dict(out)


# --- one store ------------------------------------------------------------------------------------


@dataclass
class Result:
    """One store's measurements."""

    store: str
    prep: Prepared
    direct: dict[str, list[float]]
    direct_runs: list[dict[str, float]]
    phases: list[Phase]


def run_store(label: str, hosts: int, seed: int, rollout_hosts: int, clients: int,
              seconds: float, requests: int | None, pages: int, cycles: int,
              with_analyze: bool) -> Result:
    """Prepare the store, serve it, load it, and take the direct baseline."""
    with STORES[label]() as (store, url), tempfile.TemporaryDirectory() as tmp:
        prep = prepare(store, url, hosts, seed, rollout_hosts)
        ro = prep.rollout
        print(f"{label}: {prep.hosts} hosts, {prep.guests} guests, {prep.findings} open findings "
              f"({len(prep.page_keys)} pages of {PAGE}); rollout {ROLLOUT} {ro['state']}: "
              f"{ro['hosts']} hosts in {ro['clusters']} clusters, {ro['rings']} rings, "
              f"{ro['steps']} steps (set-up {prep.setup_s:.0f} s)", flush=True)
        if store.dialect == "postgresql":
            print(f"{label}: " + (f"ANALYZE of the schema's tables in {analyze(store):.1f} s"
                                  if with_analyze else "no ANALYZE (--no-analyze): the planner "
                                  "has no statistics of the freshly loaded tables"), flush=True)
        before = direct(prep, cycles, pages, seed)
        phases = []
        with served(url, Path(tmp) / "server.log") as (base, pid):
            cursors = http_cursors(base, prep.token)
            assert len(cursors) == len(prep.page_keys), (len(cursors), len(prep.page_keys))
            for name, kind, n in (("api, 1 client", "api", 1),
                                  (f"api, {clients} clients", "api", clients),
                                  (HEALTH, HEALTH, clients), (HEALTH_TOKEN, HEALTH_TOKEN, clients)):
                phase = asyncio.run(_phase(name, base, prep.token, kind, n, seconds, requests,
                                           cursors, pages, seed, pid))
                print(f"{label}: phase {name}: {len(phase.samples)} requests in "
                      f"{phase.wall_s:.1f} s (load average {phase.load:.1f})", flush=True)
                phases.append(phase)
        after = direct(prep, cycles, pages, seed + 1)
    best = {k: min((before[k], after[k]), key=statistics.median) for k in before}
    runs = [{k: statistics.median(v) for k, v in run.items()} for run in (before, after)]
    return Result(label, prep, best, runs, phases)


# --- report ---------------------------------------------------------------------------------------


def _phase_rows(res: Result, ph: Phase) -> list[dict[str, Any]]:
    """Print one phase's lines; its rows (per endpoint, then ``all``)."""
    by: dict[str, list[float]] = defaultdict(list)
    bad: Counter[str] = Counter()
    for endpoint, secs, status in ph.samples:
        by[endpoint].append(secs)
        bad[endpoint] += not 200 <= status < 300
    rows: list[dict[str, Any]] = []
    direct_sum = 0.0
    for endpoint, lat in by.items():
        d = res.direct[DIRECT_OF[endpoint]]
        dmed = statistics.median(d)
        direct_sum += len(lat) * dmed
        row: dict[str, Any] = {
            "store": res.store, "phase": ph.name, "endpoint": endpoint, "requests": len(lat),
            "rate": len(lat) / ph.wall_s, "p50_s": statistics.median(lat),
            "p99_s": pct(lat, 0.99), "non_2xx": bad[endpoint], "direct_p50_s": dmed,
            "direct_p99_s": pct(d, 0.99)}
        rows.append(row)
        print(f"   {ph.name:<16} {endpoint:<15} {len(lat):>8} {row['rate']:>7.1f} "
              f"{ms(row['p50_s']):>8} {ms(row['p99_s']):>8} {bad[endpoint]:>7} "
              f"{ms(dmed):>10} {row['p50_s'] / dmed:>8.1f}x "
              f"{row['p99_s'] / row['direct_p99_s']:>8.1f}x")
    lat = [secs for _, secs, _ in ph.samples]
    n = len(lat)
    rate = n / ph.wall_s
    total: dict[str, Any] = {
        "store": res.store, "phase": ph.name, "endpoint": "all", "requests": n, "rate": rate,
        "p50_s": statistics.median(lat), "p99_s": pct(lat, 0.99), "non_2xx": sum(bad.values()),
        "direct_rate": n / direct_sum, "server_cpu_ms": ph.server_cpu_s / n * 1000,
        "client_cpu_ms": ph.client_cpu_s / n * 1000, "load": ph.load}
    rows.append(total)
    if len(by) > 1:
        print(f"   {ph.name:<16} {'all':<15} {n:>8} {rate:>7.1f} {ms(total['p50_s']):>8} "
              f"{ms(total['p99_s']):>8} {total['non_2xx']:>7}")
    print(f"   {'':<16} throughput {rate:.1f}/s against the direct rate of this mix "
          f"{total['direct_rate']:.1f}/s: {rate / total['direct_rate']:.2f}x; mean latency "
          f"{statistics.fmean(lat) * 1000:.1f} ms (clients / throughput: "
          f"{ph.clients / rate * 1000:.1f} ms)")
    print(f"   {'':<16} CPU per request: server {total['server_cpu_ms']:.2f} ms, clients "
          f"{total['client_cpu_ms']:.2f} ms; {ph.wall_s:.1f} s, load average {ph.load:.1f}")
    for e in ph.errors[:5]:
        print(f"   ! {e}")
    return rows


def report(res: Result) -> list[dict[str, Any]]:
    """Print one store's tables; return its summary rows (per phase: per endpoint and all)."""
    print(f"\n== {res.store}: direct calls, one at a time in this process (the faster of two "
          f"runs; the medians of both)")
    print(f"   {'call':<26} {'calls':>6} {'median ms':>10} {'p99 ms':>8}   {'runs':>15}")
    for k, v in res.direct.items():
        both = " / ".join(ms(r[k]) for r in res.direct_runs)
        print(f"   {k:<26} {len(v):>6} {ms(statistics.median(v)):>10} {ms(pct(v, 0.99)):>8}"
              f"   {both:>15}")
    print(f"\n== {res.store}: HTTP on loopback (latency on the client; ratios against the "
          f"direct call)")
    print(f"   {'phase':<16} {'endpoint':<15} {'requests':>8} {'req/s':>7} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'non-2xx':>7} {'direct p50':>10} {'p50 ratio':>9} {'p99 ratio':>9}")
    rows = [row for ph in res.phases for row in _phase_rows(res, ph)]
    failed = sum(r["non_2xx"] for r in rows if r["endpoint"] == "all")
    if failed:
        print(f"{res.store}: {failed} request(s) failed or answered non-2xx")
    return rows


def run(hosts: int, stores: list[str], seed: int, rollout_hosts: int, clients: int,
        seconds: float, requests: int | None, pages: int, cycles: int,
        with_analyze: bool = True) -> list[dict[str, Any]]:
    """The benchmark on each store; summary rows. Exits 1 when any request failed."""
    rows: list[dict[str, Any]] = []
    for label in stores:
        try:
            res = run_store(label, hosts, seed, rollout_hosts, clients, seconds, requests, pages,
                            cycles, with_analyze)
        except Exception as exc:
            if label != "postgresql" or "connect" not in str(exc).lower():
                raise
            print(f"postgresql: skipped ({exc.__class__.__name__}: {str(exc)[:100]})")
            continue
        rows += report(res)
    if any(r["non_2xx"] for r in rows):
        raise SystemExit(1)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=10_000)
    p.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0,
                   help="length of each HTTP phase (default 30)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per client and phase, instead of --seconds")
    p.add_argument("--pages", type=int, default=3,
                   help="findings pages a client follows per cycle (default 3)")
    p.add_argument("--rollout-hosts", type=int, default=50,
                   help="about how many hosts the finished rollout patches (default 50)")
    p.add_argument("--direct-cycles", type=int, default=100,
                   help="cycles of the direct baseline, before and after (default 100)")
    p.add_argument("--no-analyze", action="store_true",
                   help="on PostgreSQL, leave the freshly built store without planner statistics")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    stores = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    run(args.hosts, stores, args.seed, args.rollout_hosts, args.clients, args.seconds,
        args.requests, args.pages, args.direct_cycles, not args.no_analyze)


if __name__ == "__main__":
    main()
