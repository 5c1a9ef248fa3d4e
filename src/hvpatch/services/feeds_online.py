"""Online update: fetch NVD (incrementally), KEV and EPSS into a mirror directory, then import.

The mirror is plain files (the same a site without internet copies in by hand), so the online
path and the air-gapped path end in the same ``import_feeds``. Downloads are resumable and rate
limited (see :mod:`hvpatch.adapters.feeds.nvd_api`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvpatch.adapters.clock import SystemClock
from hvpatch.adapters.feeds import download, nvd_api
from hvpatch.adapters.store.db import Store
from hvpatch.ports.clock import Clock
from hvpatch.services.feeds import FeedImportReport, import_feeds


@dataclass
class UpdateReport:
    """What the online update fetched, then what the import did with it."""

    fetched: dict[str, Any] = field(default_factory=dict)
    imported: FeedImportReport | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"fetched": self.fetched,
                "imported": self.imported.as_dict() if self.imported else None}


@dataclass(frozen=True, slots=True)
class Sources:
    """Where to fetch from (the public services by default; a local mirror or test server)."""

    nvd_url: str = nvd_api.NVD_API_URL
    kev_url: str = download.KEV_URL
    epss_url: str = download.EPSS_URL


async def _fetch(mirror: Path, *, api_key: str | None, nvd: bool, kev: bool, epss: bool,
                 sources: Sources, clock: Clock) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if nvd:
        r = await nvd_api.sync_nvd(mirror, api_key=api_key, clock=clock,
                                   base_url=sources.nvd_url)
        out["nvd"] = {"pages": r.pages_fetched, "records": r.records, "windows": r.windows,
                      "resumed": r.resumed, "full": r.full}
    if kev:
        k = await download.download_kev(mirror, clock=clock, url=sources.kev_url)
        out["kev"] = {"changed": k.changed, "size": k.size}
    if epss:
        e = await download.download_epss(mirror, clock=clock, url=sources.epss_url)
        out["epss"] = {"changed": e.changed, "size": e.size}
    return out


def update_feeds(store: Store, mirror: Path, *, api_key: str | None = None, nvd: bool = True,
                 kev: bool = True, epss: bool = True, sources: Sources = Sources(),
                 clock: Clock | None = None) -> UpdateReport:
    """Fetch what was asked into ``mirror`` and import every feed file there."""
    mirror.mkdir(parents=True, exist_ok=True)
    report = UpdateReport()
    report.fetched = asyncio.run(_fetch(mirror, api_key=api_key, nvd=nvd, kev=kev, epss=epss,
                                        sources=sources, clock=clock or SystemClock()))
    wanted = [mirror / name for name, on in (("nvd", nvd), ("kev", kev), ("epss", epss))
              if on and (mirror / name).exists()]
    if wanted:
        report.imported = import_feeds(store, wanted)
    return report
