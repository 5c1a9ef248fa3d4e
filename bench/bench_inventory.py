"""Generate + import throughput of simulated fleets, on SQLite and PostgreSQL.

For each store it reports hosts/s and guests/s of ``generate_fleet`` and of ``import_fleet`` (a
full validated upsert with components), the time of a re-import that changes nothing, and the ratio
of the import against the *bare store write* it needs: the same number of host, component and
guest rows inserted with the database driver's ``executemany`` into plain tables, measured in the
same run. The ratio is what the numbers in docs/benchmarks.md are compared by.

    .venv/bin/python -m bench.bench_inventory --hosts 10000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hvpatch.adapters.store.db import Store
from hvpatch.domain.fleet import Fleet
from hvpatch.domain.generator import generate_fleet
from hvpatch.services.inventory import import_fleet

PG_URL = os.environ.get("HVPATCH_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _bare_write(store: Store, fleet: Fleet) -> float:
    """Insert rows as wide as hosts/components/guests with raw executemany; return seconds."""
    hosts = [(h.name, h.cluster, h.software.label, h.cores, h.memory_mb, h.exposure.value)
             for h in fleet.hosts()]
    comps = [(i, c.name, c.scheme, c.version, 0) for i, h in enumerate(fleet.hosts())
             for c in h.software.components()]
    guests = [(g.name, i, g.tenant, g.vcpus, g.memory_mb, g.criticality.value,
               g.data_classification.value, g.power_state.value)
              for i, h in enumerate(fleet.hosts()) for g in h.guests]
    ddl = [
        "CREATE TABLE bare_h (id SERIAL PRIMARY KEY, name TEXT UNIQUE, c TEXT, l TEXT, "
        "cores INT, mem BIGINT, e TEXT)",
        "CREATE TABLE bare_c (id SERIAL PRIMARY KEY, h INT, n TEXT, s TEXT, v TEXT, k BIGINT)",
        "CREATE TABLE bare_g (id SERIAL PRIMARY KEY, name TEXT UNIQUE, h INT, t TEXT, v INT, "
        "m BIGINT, c TEXT, d TEXT, p TEXT)",
    ]
    if store.dialect == "sqlite":
        ddl = [d.replace("SERIAL", "INTEGER") for d in ddl]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for t in ("bare_h", "bare_c", "bare_g"):
            cur.execute(f"DROP TABLE IF EXISTS {t}")
        for d in ddl:
            cur.execute(d)
        raw.commit()
        ph = "?" if store.dialect == "sqlite" else "%s"
        t0 = time.perf_counter()
        cur.executemany(f"INSERT INTO bare_h (name,c,l,cores,mem,e) VALUES ({','.join([ph]*6)})",
                        hosts)
        cur.executemany(f"INSERT INTO bare_c (h,n,s,v,k) VALUES ({','.join([ph]*5)})", comps)
        cur.executemany(f"INSERT INTO bare_g (name,h,t,v,m,c,d,p) VALUES ({','.join([ph]*8)})",
                        guests)
        raw.commit()
        elapsed = time.perf_counter() - t0
        for t in ("bare_h", "bare_c", "bare_g"):
            cur.execute(f"DROP TABLE {t}")
        raw.commit()
    finally:
        raw.close()
    return elapsed


def _pg_store() -> Store | None:
    schema = "hvpatch_bench"
    try:
        admin = Store(PG_URL, migrate=False)
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        admin.close()
    except Exception as exc:  # noqa: BLE001 - report and skip PostgreSQL, keep benchmarking
        print(f"postgresql: skipped ({exc.__class__.__name__}: {str(exc)[:100]})")
        return None
    return Store(f"{PG_URL}?options=-csearch_path%3D{schema}")


def run(hosts: int, seed: int) -> list[dict[str, Any]]:
    """Benchmark both stores; return one result row per store."""
    gen_s, fleet = _timed(lambda: generate_fleet(hosts, seed))
    n_guests = sum(len(h.guests) for h in fleet.hosts())
    print(f"generate: {hosts} hosts, {n_guests} guests in {gen_s:.2f} s "
          f"({hosts / gen_s:,.0f} hosts/s, {n_guests / gen_s:,.0f} guests/s)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, Callable[[], Store | None]]] = [
            ("sqlite", lambda: Store(f"sqlite:///{Path(tmp) / 'bench.db'}")),
            ("postgresql", _pg_store),
        ]
        for name, make in stores:
            store = make()
            if store is None:
                continue
            imp_s, _ = _timed(lambda s=store: import_fleet(s, fleet, source="bench", sha256=""))
            again_s, summary = _timed(lambda s=store: import_fleet(s, fleet, source="bench",
                                                                 sha256=""))
            assert not summary.touched
            bare_s = _bare_write(store, fleet)
            store.close()
            row = {"store": name, "hosts": hosts, "guests": n_guests, "generate_s": gen_s,
                   "import_s": imp_s, "reimport_s": again_s, "bare_write_s": bare_s,
                   "ratio_import_to_bare": imp_s / bare_s}
            results.append(row)
            total = gen_s + imp_s
            print(f"{name:>10}: import {imp_s:6.2f} s, re-import (no change) {again_s:6.2f} s, "
                  f"bare write {bare_s:6.2f} s, import/bare {imp_s / bare_s:4.1f}x; "
                  f"generate+import {hosts / total:,.0f} hosts/s, {n_guests / total:,.0f} guests/s")
    return results


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    run(args.hosts, args.seed)


if __name__ == "__main__":
    main()
