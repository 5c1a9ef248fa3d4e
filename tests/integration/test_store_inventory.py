"""The store on SQLite and PostgreSQL: imports are atomic and idempotent; reads give it back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.adapters.store.db import Store, schema_revision
from hvpatch.adapters.store.models import HostComponentRow, InventoryImportRow
from hvpatch.domain.software import EsxiSoftware
from hvpatch.errors import NotFoundError
from hvpatch.services.inventory import get_host, import_fleet, load_fleet, store_counts

EXAMPLE = Path(__file__).parents[2] / "examples" / "inventory.yaml"


def _import(store: Store, path: Path = EXAMPLE, **kw):
    parsed = read_inventory(path)
    return import_fleet(store, parsed.fleet, source=parsed.source, sha256=parsed.sha256, **kw)


def _hosts(fleet):
    return {h.name: h for h in fleet.hosts()}


def test_schema_is_at_head(store: Store) -> None:
    current, head = schema_revision(store.engine)
    assert current == head != ""


def test_import_then_read_back_gives_the_same_fleet(store: Store) -> None:
    summary = _import(store)
    assert summary.added["hosts"] == 8 and summary.added["guests"] == 6
    stored = load_fleet(store)
    assert _hosts(stored) == _hosts(read_inventory(EXAMPLE).fleet)
    assert [r.name for r in stored.rings] == ["test", "dev", "staging", "prod"]


def test_reimport_changes_nothing(store: Store) -> None:
    _import(store)
    counts = store_counts(store)
    again = _import(store)
    assert not again.touched
    assert again.unchanged["guests"] == 6 and again.unchanged["hosts"] == 8
    assert store_counts(store) == counts
    with store.session() as s:  # only the first import is recorded
        assert len(s.scalars(select(InventoryImportRow)).all()) == 1


def test_changed_host_is_updated_with_its_components(store: Store) -> None:
    fleet = read_inventory(EXAMPLE).fleet
    import_fleet(store, fleet, source="a", sha256="")
    site = fleet.sites[0]
    cluster = site.clusters[0]
    h0 = dataclasses.replace(cluster.hosts[0], software=EsxiSoftware("24022510"))
    new_cluster = dataclasses.replace(cluster, hosts=(h0, *cluster.hosts[1:]))
    new_site = dataclasses.replace(site, clusters=(new_cluster, *site.clusters[1:]))
    changed = dataclasses.replace(fleet, sites=(new_site, *fleet.sites[1:]))
    summary = import_fleet(store, changed, source="b", sha256="")
    assert summary.changed == {"rings": 0, "tenants": 0, "sites": 0, "clusters": 0, "hosts": 1,
                               "guests": 0}
    assert get_host(store, h0.name).software == EsxiSoftware("24022510")
    with store.session() as s:
        versions = s.scalars(select(HostComponentRow.version).where(
            HostComponentRow.name == "esxi")).all()
    assert "24022510" in " ".join(versions) and "19193900" not in " ".join(versions)


def test_merge_keeps_and_replace_removes_what_the_file_omits(store: Store, tmp_path: Path) -> None:
    _import(store)
    csv_summary = _import(store, EXAMPLE.with_name("inventory.csv"))
    assert csv_summary.added["hosts"] == 3 and csv_summary.removed["hosts"] == 0
    assert store_counts(store)["hosts"] == 11
    replaced = _import(store, EXAMPLE.with_name("inventory.csv"), replace=True)
    assert replaced.removed["hosts"] == 8 and replaced.removed["sites"] == 2
    assert store_counts(store)["hosts"] == 3
    assert {t.name for t in load_fleet(store).tenants} == {"acme", "globex"}


def test_dry_run_writes_nothing(store: Store) -> None:
    summary = _import(store, dry_run=True)
    assert summary.added["hosts"] == 8
    assert store_counts(store)["hosts"] == 0


def test_failed_import_leaves_store_unchanged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(store)
    before = store_counts(store)
    from hvpatch.services import inventory

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(inventory, "replace_components", boom)
    with pytest.raises(RuntimeError):
        _import(store, EXAMPLE.with_name("inventory.csv"))
    assert store_counts(store) == before


def test_unknown_host_suggests_close_names(store: Store) -> None:
    _import(store)
    with pytest.raises(NotFoundError, match="did you mean fra1-esx-01-h01"):
        get_host(store, "fra1-esx-01-h0")
