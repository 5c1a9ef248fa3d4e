"""SQLAlchemy 2 table models of the store. The schema is owned by the Alembic migrations.

Natural keys carry unique constraints so that imports can be idempotent upserts: a site, tenant,
ring and host are unique by name; a cluster by (site, name); a guest by name.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back time-zone aware on SQLite and PostgreSQL alike
    (SQLite keeps no zone): what the audit chain hashes must survive a round trip unchanged."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be time-zone aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable migration names)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 - SQLAlchemy API


class RingRow(Base):
    __tablename__ = "rings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")


class ClusterRow(Base):
    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(16))
    ring: Mapped[str] = mapped_column(String(64), default="")
    memory_overcommit: Mapped[float] = mapped_column(Float, default=1.0)
    cpu_overcommit: Mapped[float] = mapped_column(Float, default=4.0)
    ha_reserve_hosts: Mapped[int] = mapped_column(Integer, default=1)


class HostRow(Base):
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255), unique=True)
    family: Mapped[str] = mapped_column(String(16), index=True)
    software: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(255))
    cores: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    exposure: Mapped[str] = mapped_column(String(16))
    ring: Mapped[str] = mapped_column(String(64), default="")
    cpu_group: Mapped[str] = mapped_column(String(64), default="")
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)


class HostComponentRow(Base):
    """Flattened software of a host: what matching filters on (coarse_key: SQL pre-filters)."""

    __tablename__ = "host_components"
    __table_args__ = (Index("ix_host_components_name_key", "name", "coarse_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    scheme: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(255))
    coarse_key: Mapped[int] = mapped_column(BigInteger)


class GuestRow(Base):
    __tablename__ = "guests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    criticality: Mapped[str] = mapped_column(String(24))
    data_classification: Mapped[str] = mapped_column(String(24))
    power_state: Mapped[str] = mapped_column(String(16))
    anti_affinity: Mapped[list[Any]] = mapped_column(JSON)
    migration_block: Mapped[str | None] = mapped_column(String(24), nullable=True)
    migration_note: Mapped[str] = mapped_column(Text, default="")


class InventoryImportRow(Base):
    """One inventory import: where it came from and what it changed."""

    __tablename__ = "inventory_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class VulnerabilityRow(Base):
    """One CVE. ``data`` holds the whole record (``codec.py``); columns are what we filter on."""

    __tablename__ = "vulnerabilities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cve_id: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    published: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_modified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class VulnProductRow(Base):
    """(vendor, product) pairs a vulnerability's rules name: the matching pre-filter."""

    __tablename__ = "vuln_products"
    __table_args__ = (Index("ix_vuln_products_vendor_product", "vendor", "product"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vuln_id: Mapped[int] = mapped_column(
        ForeignKey("vulnerabilities.id", ondelete="CASCADE"), index=True
    )
    vendor: Mapped[str] = mapped_column(String(128))
    product: Mapped[str] = mapped_column(String(255))


class KevRow(Base):
    __tablename__ = "kev_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cve_id: Mapped[str] = mapped_column(String(32), unique=True)
    vendor_project: Mapped[str] = mapped_column(String(255))
    product: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(Text)
    date_added: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    required_action: Mapped[str] = mapped_column(Text)
    known_ransomware: Mapped[bool] = mapped_column(Boolean)
    notes: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EpssRow(Base):
    __tablename__ = "epss_scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cve_id: Mapped[str] = mapped_column(String(32), unique=True)
    epss: Mapped[float] = mapped_column(Float)
    percentile: Mapped[float] = mapped_column(Float)
    score_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    model_version: Mapped[str] = mapped_column(String(64), default="")


class PackageFixRow(Base):
    """Distribution data: a package's fixed (or affected) version for some CVEs on one distro."""

    __tablename__ = "package_fixes"
    __table_args__ = (Index("ix_package_fixes_distro_package", "distro", "package"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    advisory_id: Mapped[str] = mapped_column(String(128))
    distro: Mapped[str] = mapped_column(String(64))
    package: Mapped[str] = mapped_column(String(255))
    scheme: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    fixed: Mapped[str | None] = mapped_column(String(255), nullable=True)
    introduced: Mapped[str | None] = mapped_column(String(255), nullable=True)
    published: Mapped[date | None] = mapped_column(Date, nullable=True)
    cves: Mapped[list[Any]] = mapped_column(JSON)
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class XsaRow(Base):
    __tablename__ = "xen_advisories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    cves: Mapped[list[Any]] = mapped_column(JSON)
    public_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    title: Mapped[str] = mapped_column(Text, default="")


class FeedImportRow(Base):
    """One file of one ``feeds import``: what it was and what it changed."""

    __tablename__ = "feed_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)


class FindingRow(Base):
    """A (host, component, vulnerability) match with its evidence; closed when it stops matching."""

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("host_id", "cve_id", "component"),
        Index("ix_findings_cve_id", "cve_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    cve_id: Mapped[str] = mapped_column(String(32))
    component: Mapped[str] = mapped_column(String(255))
    installed: Mapped[str] = mapped_column(String(255))
    fixed_in: Mapped[str | None] = mapped_column(String(255), nullable=True)
    confidence: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="open")
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AssessmentRow(Base):
    """One matching run: when, what it covered, and what it opened and closed."""

    __tablename__ = "assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(String(16))
    inventory_import_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class ExceptionRow(Base):
    """A risk exception: defer a CVE (or all) on a host until a date; who asked, who approved."""

    __tablename__ = "risk_exceptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    cve_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    compensating_control: Mapped[str] = mapped_column(Text)
    expires_on: Mapped[date] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FindingRiskRow(Base):
    """The latest exposure assessment of a finding, and the one before (to show changes)."""

    __tablename__ = "finding_risks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), unique=True)
    score: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    impact_class: Mapped[str] = mapped_column(String(24))
    deadline: Mapped[date] = mapped_column(Date)
    deadline_reason: Mapped[str] = mapped_column(Text)
    deferred_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    factors: Mapped[list[Any]] = mapped_column(JSON)
    ssvc: Mapped[list[Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    prev_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    prev_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)


class HostRiskRow(Base):
    """The latest decision for a host and the one before."""

    __tablename__ = "host_risks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), unique=True)
    decision: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str] = mapped_column(String(16))
    exposure_score: Mapped[float] = mapped_column(Float)
    patch_score: Mapped[float] = mapped_column(Float)
    candidate: Mapped[str] = mapped_column(String(255))
    deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    patch_factors: Mapped[list[Any]] = mapped_column(JSON)
    mitigation: Mapped[str] = mapped_column(Text, default="")
    suggest_defer: Mapped[bool] = mapped_column(Boolean, default=False)
    defer_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    open_findings: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    prev_decision: Mapped[str | None] = mapped_column(String(24), nullable=True)
    prev_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)


class RiskRunRow(Base):
    """One risk assessment run: when, by whom, under which policy, and what changed."""

    __tablename__ = "risk_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class PlanRow(Base):
    """A campaign plan as created: who asked, for what, and the whole plan (``plan_codec``)."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requester: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    emergency: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


# --- rollouts (the durable engine's state) ---------------------------------------------------


class RolloutRow(Base):
    """One execution of a plan: its state, who drives it (the lease), and operator requests."""

    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"), index=True)
    state: Mapped[str] = mapped_column(String(24))
    requester: Mapped[str] = mapped_column(String(128))
    driver: Mapped[dict[str, Any]] = mapped_column(JSON)    # {"name": "simulator", ...settings}
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    updated: Mapped[datetime] = mapped_column(UtcDateTime)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ring_index: Mapped[int] = mapped_column(Integer, default=0)
    #: an operator's request the running engine acts on at its next safe point: pause, abort
    control: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str] = mapped_column(String(255), default="")
    lease_expires: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RolloutHostRow(Base):
    """A host of a rollout: where it stands, how often it was tried, before/after evidence."""

    __tablename__ = "rollout_hosts"
    __table_args__ = (UniqueConstraint("rollout_id", "host"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    cluster: Mapped[str] = mapped_column(String(128))
    ring: Mapped[str] = mapped_column(String(64))
    wave: Mapped[int] = mapped_column(Integer)          # position of its wave in the plan
    state: Mapped[str] = mapped_column(String(24), default="pending")
    step: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated: Mapped[datetime] = mapped_column(UtcDateTime)


class RolloutStepRow(Base):
    """One attempt of one step, written when it starts and again when it ends."""

    __tablename__ = "rollout_steps"
    __table_args__ = (Index("ix_rollout_steps_lookup", "rollout_id", "host", "step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))      # "" for ring- and wave-level steps
    ring: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))      # started, finished, failed
    started: Mapped[datetime] = mapped_column(UtcDateTime)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RolloutGateRow(Base):
    """A ring's gate (kind ``exit``) or entry approval (kind ``entry``): state and evidence."""

    __tablename__ = "rollout_gates"
    __table_args__ = (UniqueConstraint("rollout_id", "ring", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    ring: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(24), default="pending")
    ring_done: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    evaluated: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approved_by: Mapped[str] = mapped_column(String(128), default="")
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RolloutChangeRow(Base):
    """A cluster setting the rollout changed, with the value to restore in cleanup."""

    __tablename__ = "rollout_changes"
    __table_args__ = (UniqueConstraint("rollout_id", "cluster", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    cluster: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(64))
    old: Mapped[str] = mapped_column(Text)
    new: Mapped[str] = mapped_column(Text)
    restored: Mapped[bool] = mapped_column(Boolean, default=False)


class IncidentRow(Base):
    """An operational incident; an open one blocks ring gates that require none."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(128))
    opened: Mapped[datetime] = mapped_column(UtcDateTime)
    closed: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_by: Mapped[str] = mapped_column(String(128), default="")


class WithdrawnReleaseRow(Base):
    """A release its vendor withdrew after planning: no further host gets it."""

    __tablename__ = "withdrawn_releases"
    __table_args__ = (UniqueConstraint("component", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """One hash-chained audit entry (:mod:`hvpatch.domain.audit`); never updated or deleted."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's head (one row): appending locks it first, which serialises writers."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


# --- the simulator's live state (the digital twin of the stored fleet) -----------------------


class SimHostRow(Base):
    """A simulated host's live state."""

    __tablename__ = "sim_hosts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    cluster: Mapped[str] = mapped_column(String(128), index=True)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)    # component -> version
    previous: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # before last apply
    staged: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pending: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)   # applied, needs reboot
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    up: Mapped[bool] = mapped_column(Boolean, default=True)
    boot_id: Mapped[int] = mapped_column(Integer, default=1)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    family: Mapped[str] = mapped_column(String(16))
    #: memory guests may use: the host's memory times its cluster's overcommit
    capacity_mb: Mapped[int] = mapped_column(BigInteger)
    applies: Mapped[int] = mapped_column(Integer, default=0)
    rollbacks: Mapped[int] = mapped_column(Integer, default=0)


class SimGuestRow(Base):
    """A simulated guest: where it runs and whether it is running."""

    __tablename__ = "sim_guests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    running: Mapped[bool] = mapped_column(Boolean)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    #: why it cannot live-migrate ("" when it can): local disk, passthrough, ...
    blocked: Mapped[str] = mapped_column(String(64), default="")
    migrations: Mapped[int] = mapped_column(Integer, default=0)


class SimStateRow(Base):
    """Key/value state of the simulator: cluster settings, fault hit counters, its clock."""

    __tablename__ = "sim_state"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


# --- access control, secrets and background jobs (the API) -----------------------------------


class UserRow(Base):
    """A person (or service account) who may use the API: a role and an argon2 password hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))          # viewer, operator, approver, admin
    password_hash: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the password was generated (first admin, ``users add``): change it before anything else
    must_change: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiTokenRow(Base):
    """An API token of a user: only its SHA-256 is kept, and a short prefix to recognise it."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AppSettingRow(Base):
    """Key/value settings of the server (the session signing key, generated on first run)."""

    __tablename__ = "app_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SecretRow(Base):
    """A credential for a connector, encrypted (Fernet); the clear value is never stored."""

    __tablename__ = "secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    updated: Mapped[datetime] = mapped_column(UtcDateTime)


class JobRow(Base):
    """Long-running work the API started (feed import, assessment, planning, a rollout)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued running done failed
    actor: Mapped[str] = mapped_column(String(128))
    #: the server process that runs it (``host:pid:random``): a dead one's jobs are failed
    worker: Mapped[str] = mapped_column(String(255), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    started: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")


# --- connections to real platforms (migration 0007) ------------------------------------------


class ConnectionRow(Base):
    """A platform an inventory is read from: its kind, URL, user and a credential *reference*
    (``secret:NAME``, ``env:VAR``, ``file:PATH`` or empty), never the credential itself."""

    __tablename__ = "connections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(255), default="")
    credential: Mapped[str] = mapped_column(Text, default="")
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    ca_file: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UtcDateTime)
    last_sync: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_status: Mapped[str] = mapped_column(Text, default="")
