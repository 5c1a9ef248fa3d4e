"""After a host is patched: record what it really runs, and close only what no longer matches.

The rollout's verify step reads the host's live versions from its driver and hands them here.
The stored host's software becomes what the host runs (:func:`hvpatch.domain.software.upgraded`
with the live versions of the target components); advisories are matched again against it, and
a finding is closed only when the running software no longer matches -- each closed finding keeps
the installed version before and after as evidence. Guests the rollout moved are recorded on
their new hosts, so the next plan starts from where they really are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import FindingRow, GuestRow, HostRow
from hvpatch.domain.matching import AdvisoryIndex, assess_software
from hvpatch.domain.software import software_from_dict, software_to_dict, upgraded
from hvpatch.errors import NotFoundError
from hvpatch.services.findings import load_index
from hvpatch.services.inventory import load_fleet, replace_components

__all__ = ["IndexCache", "VerifiedHost", "record_moves", "verify_host"]


class IndexCache:
    """The advisory index, loaded once per engine run (matching a host needs all of it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._index: AdvisoryIndex | None = None

    def get(self) -> AdvisoryIndex:
        """The index for the stored fleet (loaded on first use)."""
        if self._index is None:
            self._index = load_index(self.store, load_fleet(self.store))
        return self._index


@dataclass(frozen=True, slots=True)
class VerifiedHost:
    """What verification found: the software before and after, findings closed and still open."""

    host: str
    before: str
    after: str
    closed: tuple[dict[str, Any], ...]
    still_open: tuple[str, ...]
    reopened: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the step's evidence."""
        return {"host": self.host, "before": self.before, "after": self.after,
                "closed": list(self.closed), "still_open": list(self.still_open),
                "reopened": list(self.reopened)}


def verify_host(session: Session, index: AdvisoryIndex, host: str,
                live: Mapping[str, str], *, now: datetime) -> VerifiedHost:
    """Store what ``host`` runs (``live`` component versions) and reconcile its findings.

    Runs in the caller's transaction. Only findings of this host are touched: one that still
    matches stays open (its installed version refreshed), one that no longer matches is closed,
    and a closed one that matches again (the host was rolled back) is reopened.
    """
    row = session.scalar(select(HostRow).where(HostRow.name == host))
    if row is None:
        raise NotFoundError(f"no host named {host!r} in the inventory")
    old = software_from_dict(row.family, row.software)
    current = {c.name: c.version for c in old.components()}
    changes = tuple((c, v) for c, v in sorted(live.items())
                    if c in current and current[c] != v)
    new = upgraded(old, changes) if changes else old
    if changes:
        row.software, row.label = software_to_dict(new), new.label
        replace_components(session, [(row.id, new)])
    affected = {(v.cve_id, v.component): v for v in assess_software(new, index) if v.affected}
    closed, still, reopened = [], [], []
    for f in session.scalars(select(FindingRow).where(FindingRow.host_id == row.id)):
        v = affected.get((f.cve_id, f.component))
        if f.state == "open" and v is None:
            closed.append({"cve": f.cve_id, "component": f.component, "before": f.installed,
                           "after": dict(live).get(f.component, new.label)})
            f.state, f.closed_at = "closed", now
        elif v is not None:
            # matches (again): a rolled-back host's findings are open once more
            if f.state != "open":
                reopened.append(f.cve_id)
                f.state, f.closed_at = "open", None
            still.append(f.cve_id)
            f.installed, f.last_seen = v.installed, now
    session.flush()
    return VerifiedHost(host, old.label, new.label, tuple(closed), tuple(sorted(set(still))),
                        tuple(sorted(set(reopened))))


def record_moves(session: Session, placements: Iterable[tuple[str, str]]) -> None:
    """Record guests on the hosts they were moved to (``(guest, host)`` pairs)."""
    pairs = list(placements)
    if not pairs:
        return
    hosts = {h for _, h in pairs}
    ids = dict(session.execute(select(HostRow.name, HostRow.id)
                               .where(HostRow.name.in_(hosts))).all())
    for guest, host in pairs:
        if host in ids:
            session.execute(update(GuestRow).where(GuestRow.name == guest)
                            .values(host_id=ids[host]))
