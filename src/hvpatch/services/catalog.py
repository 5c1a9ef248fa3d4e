"""Read side of the stored fleet for the API and the dashboard: sites, clusters, tenants, and
hosts and guests page by page (keyset pagination by name, so a page costs the same at any
depth of a 10,000-host fleet)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    ClusterRow,
    FindingRow,
    GuestRow,
    HostRiskRow,
    HostRow,
    SiteRow,
    TenantRow,
)
from hvpatch.domain.software import software_to_dict
from hvpatch.services.findings import list_findings
from hvpatch.services.inventory import get_host

__all__ = ["host_detail", "list_clusters", "list_sites", "list_tenants", "page_guests",
           "page_hosts"]


def list_sites(store: Store) -> list[dict[str, Any]]:
    """Every site with its number of clusters and hosts, by name."""
    with store.session() as s:
        clusters = dict(s.execute(select(ClusterRow.site_id, func.count())
                                  .group_by(ClusterRow.site_id)).all())
        hosts = dict(s.execute(select(ClusterRow.site_id, func.count(HostRow.id))
                               .join(HostRow, HostRow.cluster_id == ClusterRow.id)
                               .group_by(ClusterRow.site_id)).all())
        return [{"name": r.name, "timezone": r.timezone, "clusters": clusters.get(r.id, 0),
                 "hosts": hosts.get(r.id, 0)}
                for r in s.scalars(select(SiteRow).order_by(SiteRow.name))]


def list_clusters(store: Store, *, site: str | None = None) -> list[dict[str, Any]]:
    """Every cluster (of ``site``) with its settings and number of hosts, by site and name."""
    with store.session() as s:
        hosts = dict(s.execute(select(HostRow.cluster_id, func.count())
                               .group_by(HostRow.cluster_id)).all())
        q = select(ClusterRow, SiteRow.name).join(SiteRow, SiteRow.id == ClusterRow.site_id)
        if site:
            q = q.where(SiteRow.name == site)
        return [{"site": site_name, "name": c.name, "family": c.family, "ring": c.ring,
                 "memory_overcommit": c.memory_overcommit, "cpu_overcommit": c.cpu_overcommit,
                 "ha_reserve_hosts": c.ha_reserve_hosts, "hosts": hosts.get(c.id, 0)}
                for c, site_name in s.execute(q.order_by(SiteRow.name, ClusterRow.name))]


def list_tenants(store: Store) -> list[dict[str, Any]]:
    """Every tenant with its number of guests, by name."""
    with store.session() as s:
        guests = dict(s.execute(select(GuestRow.tenant_id, func.count())
                                .group_by(GuestRow.tenant_id)).all())
        return [{"name": t.name, "description": t.description, "guests": guests.get(t.id, 0)}
                for t in s.scalars(select(TenantRow).order_by(TenantRow.name))]


def page_hosts(store: Store, *, after: str | None = None, limit: int = 100,
               site: str | None = None, cluster: str | None = None,
               family: str | None = None, ring: str | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` hosts by name after ``after``, with guest and open-finding counts and
    the latest decision."""
    q = (select(HostRow, ClusterRow.name, SiteRow.name, HostRiskRow.decision,
                HostRiskRow.outcome, HostRiskRow.deadline)
         .join(ClusterRow, ClusterRow.id == HostRow.cluster_id)
         .join(SiteRow, SiteRow.id == ClusterRow.site_id)
         .outerjoin(HostRiskRow, HostRiskRow.host_id == HostRow.id))
    if after is not None:
        q = q.where(HostRow.name > after)
    if site:
        q = q.where(SiteRow.name == site)
    if cluster:
        q = q.where(ClusterRow.name == cluster)
    if family:
        q = q.where(HostRow.family == family)
    if ring:
        q = q.where(HostRow.ring == ring)
    with store.session() as s:
        rows = s.execute(q.order_by(HostRow.name).limit(limit)).all()
        ids = [r[0].id for r in rows]
        guests = dict(s.execute(select(GuestRow.host_id, func.count())
                                .where(GuestRow.host_id.in_(ids))
                                .group_by(GuestRow.host_id)).all()) if ids else {}
        findings = dict(s.execute(select(FindingRow.host_id, func.count())
                                  .where(FindingRow.host_id.in_(ids),
                                         FindingRow.state == "open")
                                  .group_by(FindingRow.host_id)).all()) if ids else {}
    return [{"name": h.name, "site": site_name, "cluster": cluster_name, "family": h.family,
             "version": h.label, "ring": h.ring, "exposure": h.exposure, "cores": h.cores,
             "memory_mb": h.memory_mb, "guests": guests.get(h.id, 0),
             "open_findings": findings.get(h.id, 0), "decision": decision, "outcome": outcome,
             "deadline": deadline}
            for h, cluster_name, site_name, decision, outcome, deadline in rows]


def host_detail(store: Store, name: str) -> dict[str, Any]:
    """One host: its software, guests (with tenants) and findings (open and closed)."""
    host = get_host(store, name)
    return {
        "name": host.name, "site": host.site, "cluster": host.cluster,
        "family": host.family.value, "version": host.software.label,
        "software": software_to_dict(host.software), "cores": host.cores,
        "memory_mb": host.memory_mb, "exposure": host.exposure.value, "ring": host.ring,
        "cpu_group": host.cpu_group, "coordinator": host.coordinator,
        "tenants": sorted(host.tenants),
        "guests": [{"name": g.name, "tenant": g.tenant, "vcpus": g.vcpus,
                    "memory_mb": g.memory_mb, "criticality": g.criticality.value,
                    "data_classification": g.data_classification.value,
                    "power_state": g.power_state.value,
                    "migration_block": g.migration_block.value if g.migration_block else None}
                   for g in host.guests],
        "findings": list_findings(store, host=name, state="all"),
    }


def page_guests(store: Store, *, after: str | None = None, limit: int = 100,
                host: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` guests by name after ``after``, with their host and tenant."""
    q = (select(GuestRow, HostRow.name, TenantRow.name)
         .join(HostRow, HostRow.id == GuestRow.host_id)
         .join(TenantRow, TenantRow.id == GuestRow.tenant_id))
    if after is not None:
        q = q.where(GuestRow.name > after)
    if host:
        q = q.where(HostRow.name == host)
    if tenant:
        q = q.where(TenantRow.name == tenant)
    with store.session() as s:
        return [{"name": g.name, "host": host_name, "tenant": tenant_name, "vcpus": g.vcpus,
                 "memory_mb": g.memory_mb, "criticality": g.criticality,
                 "data_classification": g.data_classification, "power_state": g.power_state,
                 "migration_block": g.migration_block}
                for g, host_name, tenant_name in s.execute(q.order_by(GuestRow.name)
                                                           .limit(limit))]
