"""Inventory use cases: import a fleet into the store (atomic, idempotent) and read it back.

An import is a merge by natural keys: what the file names is added or updated, what it does not
name is kept -- unless ``replace=True``, which makes the store hold exactly the file's fleet. The
whole import is one transaction; a failure leaves the store as it was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    ClusterRow,
    GuestRow,
    HostComponentRow,
    HostRow,
    InventoryImportRow,
    RingRow,
    SiteRow,
    TenantRow,
)
from hvpatch.domain.fleet import (
    Cluster,
    Criticality,
    DataClass,
    Exposure,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    PowerState,
    Ring,
    Site,
    Tenant,
    TenantName,
)
from hvpatch.domain.software import Software, software_from_dict, software_to_dict
from hvpatch.domain.versions import parse_version
from hvpatch.errors import NotFoundError

KINDS = ("rings", "tenants", "sites", "clusters", "hosts", "guests")
_INT64_MAX = 2**63 - 1
_CHUNK = 5000


@dataclass
class ImportSummary:
    """Counts per kind of what an import added, changed, removed or left unchanged."""

    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    changed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def touched(self) -> bool:
        """True when the import changed anything."""
        return any(sum(d.values()) for d in (self.added, self.changed, self.removed))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"added": self.added, "changed": self.changed, "removed": self.removed,
                "unchanged": self.unchanged, "touched": self.touched}


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), _CHUNK):
        yield rows[i:i + _CHUNK]


def _coarse(scheme: str, version: str) -> int:
    key = parse_version(scheme, version).coarse_key()
    return max(-_INT64_MAX, min(_INT64_MAX, key))


class _Sync:
    """Upserts one kind of row keyed by a natural key, counting what it did."""

    def __init__(self, session: Session, summary: ImportSummary) -> None:
        self.s = session
        self.summary = summary
        self.stale: dict[str, tuple[Any, list[int]]] = {}

    def remove_stale(self, kinds: Sequence[str]) -> None:
        """Delete what the import did not name, children before parents."""
        for kind in kinds:
            model, ids = self.stale.get(kind, (None, []))
            self.summary.removed[kind] += len(ids)
            for i in range(0, len(ids), _CHUNK):
                self.s.execute(delete(model).where(model.id.in_(ids[i:i + _CHUNK])))

    def run(self, kind: str, model: Any, key_cols: tuple[str, ...],
            wanted: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[Any, ...], int]:
        """Insert what is new, update what differs; remember what is stale; return key -> id."""
        existing: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
        names = ["id", *key_cols, *next(iter(wanted.values()), {})]
        for row in self.s.execute(select(*[getattr(model, n) for n in names])):
            data = dict(zip(names, row, strict=True))
            key = tuple(data[c] for c in key_cols)
            existing[key] = (data.pop("id"), data)
        inserts, updates = [], []
        for key, values in wanted.items():
            full = {**dict(zip(key_cols, key, strict=True)), **values}
            if key not in existing:
                inserts.append(full)
            elif existing[key][1] != full:
                updates.append({"id": existing[key][0], **values})
            else:
                self.summary.unchanged[kind] += 1
        self.summary.added[kind] += len(inserts)
        self.summary.changed[kind] += len(updates)
        for chunk in _chunks(updates):
            self.s.execute(update(model), list(chunk))
        for chunk in _chunks(inserts):
            self.s.execute(insert(model), list(chunk))
        self.stale[kind] = (model, [existing[k][0] for k in existing if k not in wanted])
        ids = {}
        for row in self.s.execute(select(model.id, *[getattr(model, c) for c in key_cols])):
            ids[tuple(row[1:])] = row[0]
        return ids


def import_fleet(store: Store, fleet: Fleet, *, source: str, sha256: str,
                 replace: bool = False, dry_run: bool = False) -> ImportSummary:
    """Merge ``fleet`` into the store in one transaction; return what changed."""
    summary = ImportSummary()
    with store.session() as s:
        sync = _Sync(s, summary)
        sync.run("rings", RingRow, ("name",),
                 {(r.name,): {"position": r.position, "description": r.description}
                  for r in fleet.rings})
        tenant_ids = sync.run("tenants", TenantRow, ("name",),
                              {(t.name,): {"description": t.description} for t in fleet.tenants})
        site_ids = sync.run("sites", SiteRow, ("name",),
                            {(x.name,): {"timezone": x.timezone} for x in fleet.sites})
        cluster_ids = sync.run("clusters", ClusterRow, ("site_id", "name"), {
            (site_ids[(c.site,)], c.name): {
                "family": c.family.value, "ring": c.ring, "memory_overcommit": c.memory_overcommit,
                "cpu_overcommit": c.cpu_overcommit, "ha_reserve_hosts": c.ha_reserve_hosts,
            } for c in fleet.clusters()})
        hosts = {h.name: h for h in fleet.hosts()}
        old_sw: dict[str, Any] = dict(s.execute(select(HostRow.name, HostRow.software)).all())
        host_ids = sync.run("hosts", HostRow, ("name",), {
            (h.name,): {
                "cluster_id": cluster_ids[(site_ids[(h.site,)], h.cluster)],
                "family": h.family.value, "software": software_to_dict(h.software),
                "label": h.software.label, "cores": h.cores, "memory_mb": h.memory_mb,
                "exposure": h.exposure.value, "ring": h.ring, "cpu_group": h.cpu_group,
                "coordinator": h.coordinator,
            } for h in hosts.values()})
        redo = [n for n, h in hosts.items() if old_sw.get(n) != software_to_dict(h.software)]
        if redo:
            replace_components(s, [(host_ids[(n,)], hosts[n].software) for n in redo])
        sync.run("guests", GuestRow, ("name",), {
            (g.name,): {
                "host_id": host_ids[(h.name,)], "tenant_id": tenant_ids[(g.tenant,)],
                "vcpus": g.vcpus, "memory_mb": g.memory_mb, "criticality": g.criticality.value,
                "data_classification": g.data_classification.value,
                "power_state": g.power_state.value, "anti_affinity": list(g.anti_affinity),
                "migration_block": g.migration_block.value if g.migration_block else None,
                "migration_note": g.migration_note,
            } for h, g in fleet.guests()})
        if replace:
            sync.remove_stale(("guests", "hosts", "clusters", "sites", "rings"))
            used = set(s.scalars(select(GuestRow.tenant_id).distinct()))
            declared = {tenant_ids[(t.name,)] for t in fleet.tenants}
            stale = [i for i in s.scalars(select(TenantRow.id)) if i not in used | declared]
            if stale:
                summary.removed["tenants"] += len(stale)
                s.execute(delete(TenantRow).where(TenantRow.id.in_(stale)))
        if summary.touched:
            s.add(InventoryImportRow(at=datetime.now(UTC), source=source, sha256=sha256,
                                     summary=summary.as_dict()))
        if dry_run:
            s.rollback()
        else:
            s.commit()
    if summary.touched and not dry_run:
        store.analyze(HostRow, HostComponentRow, GuestRow, ClusterRow, TenantRow)
    return summary


def replace_components(s: Session, hosts: list[tuple[int, Software]]) -> None:
    """Rewrite the component rows (what matching reads) of the given hosts."""
    ids = [i for i, _ in hosts]
    for i in range(0, len(ids), _CHUNK):
        s.execute(delete(HostComponentRow).where(HostComponentRow.host_id.in_(ids[i:i + _CHUNK])))
    rows = [
        {"host_id": host_id, "name": c.name, "scheme": c.scheme, "version": c.version,
         "coarse_key": _coarse(c.scheme, c.version) if c.scheme != "kb" else 0}
        for host_id, sw in hosts for c in sw.components()
    ]
    for chunk in _chunks(rows):
        s.execute(insert(HostComponentRow), list(chunk))


def load_fleet(store: Store, *, site: str | None = None, cluster: str | None = None) -> Fleet:
    """Read the stored fleet back as domain values (optionally one site or cluster)."""
    with store.session() as s:
        rings = tuple(Ring(r.name, r.position, r.description)
                      for r in s.scalars(select(RingRow).order_by(RingRow.position)))
        tenants_by_id = {t.id: t for t in s.scalars(select(TenantRow).order_by(TenantRow.name))}
        site_q = select(SiteRow).order_by(SiteRow.name)
        if site:
            site_q = site_q.where(SiteRow.name == site)
        site_rows = list(s.scalars(site_q))
        cluster_q = select(ClusterRow).where(ClusterRow.site_id.in_([x.id for x in site_rows]))
        if cluster:
            cluster_q = cluster_q.where(ClusterRow.name == cluster)
        cluster_rows = list(s.scalars(cluster_q.order_by(ClusterRow.name)))
        cids = [c.id for c in cluster_rows]
        host_rows = list(s.scalars(select(HostRow).where(HostRow.cluster_id.in_(cids))
                                   .order_by(HostRow.name))) if cids else []
        guests_by_host: dict[int, list[Guest]] = defaultdict(list)
        hids = [h.id for h in host_rows]
        if hids:
            q = select(GuestRow).order_by(GuestRow.name)
            if site or cluster:
                q = q.where(GuestRow.host_id.in_(hids))
            for g in s.scalars(q):
                guests_by_host[g.host_id].append(Guest(
                    GuestName(g.name), TenantName(tenants_by_id[g.tenant_id].name), g.vcpus,
                    g.memory_mb, Criticality(g.criticality), DataClass(g.data_classification),
                    PowerState(g.power_state), tuple(g.anti_affinity),
                    MigrationBlock(g.migration_block) if g.migration_block else None,
                    g.migration_note))
    site_names = {x.id: x.name for x in site_rows}
    hosts_by_cluster: dict[int, list[Host]] = defaultdict(list)
    cluster_by_id = {c.id: c for c in cluster_rows}
    for h in host_rows:
        c = cluster_by_id[h.cluster_id]
        hosts_by_cluster[h.cluster_id].append(Host(
            HostName(h.name), site_names[c.site_id], c.name,
            software_from_dict(h.family, h.software), h.cores, h.memory_mb, Exposure(h.exposure),
            h.ring, h.cpu_group, h.coordinator, tuple(guests_by_host[h.id])))
    clusters_by_site: dict[int, list[Cluster]] = defaultdict(list)
    for c in cluster_rows:
        clusters_by_site[c.site_id].append(Cluster(
            c.name, site_names[c.site_id], Family(c.family), c.ring, c.memory_overcommit,
            c.cpu_overcommit, c.ha_reserve_hosts, tuple(hosts_by_cluster[c.id])))
    sites = tuple(Site(x.name, x.timezone, tuple(clusters_by_site[x.id])) for x in site_rows
                  if not cluster or clusters_by_site[x.id])
    tenants = tuple(Tenant(TenantName(t.name), t.description) for t in tenants_by_id.values())
    return Fleet(rings, tenants, sites)


def get_host(store: Store, name: str) -> Host:
    """One host with its guests; :class:`NotFoundError` naming close matches if absent."""
    with store.session() as s:
        row = s.scalars(select(HostRow).where(HostRow.name == name)).first()
        if row is None:
            like = list(s.scalars(select(HostRow.name).where(HostRow.name.contains(name[:8]))
                                  .order_by(HostRow.name).limit(5)))
            hint = f"; did you mean {', '.join(like)}?" if like else ""
            raise NotFoundError(f"no host named {name!r}{hint}")
        cluster = s.get_one(ClusterRow, row.cluster_id)
        site = s.get_one(SiteRow, cluster.site_id)
    fleet = load_fleet(store, site=site.name, cluster=cluster.name)
    return next(h for h in fleet.hosts() if h.name == name)


def store_counts(store: Store) -> dict[str, int]:
    """Number of rows of each inventory kind."""
    from sqlalchemy import func

    models = dict(zip(KINDS, (RingRow, TenantRow, SiteRow, ClusterRow, HostRow, GuestRow),
                      strict=True))
    with store.session() as s:
        return {k: s.scalar(select(func.count()).select_from(m)) or 0 for k, m in models.items()}
