"""What ``/metrics`` and ``/healthz`` report: counts read from the store, and whether it answers.

Findings by state and confidence, open findings by exposure outcome, overdue findings and hosts
(past their decision's deadline), hosts of unfinished rollouts by state, rollouts by state and
jobs by state. Rendering (the Prometheus text format) is the API's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import (
    AuditHeadRow,
    FindingRiskRow,
    FindingRow,
    HostRiskRow,
    RolloutHostRow,
    RolloutRow,
)
from hvpatch.errors import StoreError
from hvpatch.services.jobs import job_counts
from hvpatch.services.rollouts import ACTIVE

__all__ = ["Snapshot", "ping", "snapshot"]


@dataclass
class Snapshot:
    """The counts of one scrape."""

    findings: dict[tuple[str, str], int] = field(default_factory=dict)   # (state, confidence)
    open_by_outcome: dict[str, int] = field(default_factory=dict)
    overdue_findings: int = 0
    overdue_hosts: int = 0
    rollout_hosts: dict[tuple[str, str], int] = field(default_factory=dict)  # (rollout, state)
    rollouts: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0


def snapshot(store: Store, today: date | None = None) -> Snapshot:
    """Read every count in one go."""
    today = today or datetime.now(UTC).date()
    snap = Snapshot()
    with store.session() as s:
        for state, conf, n in s.execute(select(FindingRow.state, FindingRow.confidence,
                                               func.count())
                                        .group_by(FindingRow.state, FindingRow.confidence)):
            snap.findings[(state, conf)] = int(n)
        opened = (select(FindingRiskRow.outcome, func.count())
                  .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
                  .where(FindingRow.state == "open").group_by(FindingRiskRow.outcome))
        snap.open_by_outcome = {o: int(n) for o, n in s.execute(opened)}
        snap.overdue_findings = int(s.scalar(
            select(func.count()).select_from(FindingRiskRow)
            .join(FindingRow, FindingRow.id == FindingRiskRow.finding_id)
            .where(FindingRow.state == "open", FindingRiskRow.deadline < today,
                   FindingRiskRow.deferred_by.is_(None))) or 0)
        snap.overdue_hosts = int(s.scalar(select(func.count()).select_from(HostRiskRow)
                                          .where(HostRiskRow.deadline < today)) or 0)
        for name, state, n in s.execute(
                select(RolloutRow.name, RolloutHostRow.state, func.count())
                .join(RolloutHostRow, RolloutHostRow.rollout_id == RolloutRow.id)
                .where(RolloutRow.state.in_(ACTIVE))
                .group_by(RolloutRow.name, RolloutHostRow.state)):
            snap.rollout_hosts[(name, state)] = int(n)
        snap.rollouts = {st: int(n) for st, n in s.execute(
            select(RolloutRow.state, func.count()).group_by(RolloutRow.state))}
        head = s.get(AuditHeadRow, 1)
        snap.audit_entries = head.seq if head is not None else 0
    snap.jobs = job_counts(store)
    return snap


def ping(store: Store) -> None:
    """Raise :class:`StoreError` unless the store answers a query."""
    try:
        with store.session() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"the store at {store.safe_url} does not answer: "
                         f"{type(exc).__name__}") from exc
