"""Know: sites, clusters, hosts (with guests and findings), guests, tenants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hvpatch.api.deps import Filter, PathName, StoreDep, Viewer
from hvpatch.api.models import ClusterOut, GuestOut, HostDetailOut, HostOut, SiteOut, TenantOut
from hvpatch.api.pages import Page, Paging, page_of, slice_page
from hvpatch.services.catalog import (
    host_detail,
    list_clusters,
    list_sites,
    list_tenants,
    page_guests,
    page_hosts,
)
from hvpatch.services.inventory import load_fleet
from hvpatch.services.summary import summarize

router = APIRouter(tags=["inventory"])


@router.get("/sites", response_model=Page[SiteOut])
def sites(_who: Viewer, store: StoreDep, paging: Paging) -> Page[Any]:
    """Every site with its number of clusters and hosts."""
    return slice_page(list_sites(store), paging, lambda r: r["name"], str)


@router.get("/clusters", response_model=Page[ClusterOut])
def clusters(_who: Viewer, store: StoreDep, paging: Paging, site: Filter = None) -> Page[Any]:
    """Every cluster (of one site) with its settings and number of hosts."""
    return slice_page(list_clusters(store, site=site), paging,
                      lambda r: f"{r['site']}\x00{r['name']}", str)


@router.get("/hosts", response_model=Page[HostOut])
def hosts(_who: Viewer, store: StoreDep, paging: Paging, site: Filter = None,
          cluster: Filter = None, family: Filter = None, ring: Filter = None) -> Page[Any]:
    """Hosts by name, with guest and open-finding counts and the latest decision."""
    rows = page_hosts(store, after=paging.after(str), limit=paging.limit + 1, site=site,
                      cluster=cluster, family=family, ring=ring)
    return page_of(rows, paging.limit, lambda r: r["name"])


@router.get("/hosts/{name}", response_model=HostDetailOut)
def host(name: PathName, _who: Viewer, store: StoreDep) -> dict[str, Any]:
    """One host: software, guests with their tenants, findings open and closed."""
    return host_detail(store, name)


@router.get("/guests", response_model=Page[GuestOut])
def guests(_who: Viewer, store: StoreDep, paging: Paging, host: Filter = None,
           tenant: Filter = None) -> Page[Any]:
    """Guests by name, with their host and tenant."""
    rows = page_guests(store, after=paging.after(str), limit=paging.limit + 1, host=host,
                       tenant=tenant)
    return page_of(rows, paging.limit, lambda r: r["name"])


@router.get("/tenants", response_model=Page[TenantOut])
def tenants(_who: Viewer, store: StoreDep, paging: Paging) -> Page[Any]:
    """Every tenant with its number of guests."""
    return slice_page(list_tenants(store), paging, lambda r: r["name"], str)


@router.get("/inventory/summary", response_model=dict[str, Any])
def summary(_who: Viewer, store: StoreDep) -> dict[str, Any]:
    """Totals and breakdowns per site, family, ring and version (as `hvpatch inventory
    summary`)."""
    return summarize(load_fleet(store)).as_dict()
