"""After its bulk writes hvpatch refreshes PostgreSQL's planner statistics itself: a fresh store
must not wait for autovacuum (or, where autovacuum is off, for ever) to get sane query plans."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hvpatch.adapters.store.db import Store
from hvpatch.domain.generator import demo_fleet
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet
from hvpatch.services.risk import assess_risk


def _analyzed(store: Store) -> dict[str, bool]:
    with store.engine.connect() as conn:
        return {name: at is not None for name, at in conn.execute(text(
            "SELECT relname, last_analyze FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema()"))}


@pytest.mark.postgres
def test_bulk_writes_analyze_their_tables(pg_url: str) -> None:
    store = Store(pg_url)
    assert not any(_analyzed(store).values())
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store)
    assess_risk(store)
    done = _analyzed(store)
    for table in ("hosts", "host_components", "guests", "vulnerabilities", "vuln_products",
                  "kev_entries", "epss_scores", "findings", "finding_risks", "host_risks"):
        assert done[table], table
    assert not done["rollout_steps"]   # only what was written in bulk
    store.close()
