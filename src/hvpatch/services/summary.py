"""Read-side summaries of the stored fleet: per site, cluster, family, ring, and versions in use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hvpatch.domain.fleet import Fleet, Host


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """Counts a person wants first: how big, where, which vendors, which rings, which versions."""

    totals: dict[str, int]
    by_site: list[dict[str, Any]]
    by_family: list[dict[str, Any]]
    by_ring: list[dict[str, Any]]
    versions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"totals": self.totals, "by_site": self.by_site, "by_family": self.by_family,
                "by_ring": self.by_ring, "versions": self.versions}


def _row(hosts: list[Host]) -> dict[str, Any]:
    guests = sum(len(h.guests) for h in hosts)
    mem = sum(h.memory_mb for h in hosts)
    used = sum(h.memory_demand_mb for h in hosts)
    tenants = len({t for h in hosts for t in h.tenants})
    return {"hosts": len(hosts), "guests": guests, "tenants": tenants,
            "memory_used_pct": round(100 * used / mem, 1) if mem else 0.0}


def summarize(fleet: Fleet) -> FleetSummary:
    """Summarise ``fleet``; every list is sorted so that output is stable."""
    hosts = list(fleet.hosts())
    by_site = []
    for site in fleet.sites:
        site_hosts = [h for c in site.clusters for h in c.hosts]
        by_site.append({"site": site.name, "timezone": site.timezone,
                        "clusters": len(site.clusters), **_row(site_hosts)})
    families = sorted({h.family.value for h in hosts})
    by_family = [{"family": f, **_row([h for h in hosts if h.family.value == f])}
                 for f in families]
    order = fleet.ring_order()
    rings = sorted({h.ring for h in hosts}, key=lambda r: (order.get(r, len(order)), r))
    by_ring = [{"ring": r or "(none)", **_row([h for h in hosts if h.ring == r])} for r in rings]
    labels = Counter((h.family.value, h.software.label) for h in hosts)
    versions = [{"family": f, "version": label, "hosts": n}
                for (f, label), n in sorted(labels.items(), key=lambda kv: (kv[0][0], -kv[1],
                                                                             kv[0][1]))]
    totals = {"sites": len(fleet.sites), "clusters": sum(len(s.clusters) for s in fleet.sites),
              "hosts": len(hosts), "guests": sum(len(h.guests) for h in hosts),
              "tenants": len(fleet.tenants), "rings": len(fleet.rings)}
    return FleetSummary(totals, by_site, by_family, by_ring, versions)
