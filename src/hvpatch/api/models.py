"""The responses of the API (request bodies are in :mod:`hvpatch.api.bodies`).

Responses are validated against these models on the way out, so the published OpenAPI schema is
what clients get. Nested structures the services own (a rollout's status, a plan, a decision's
factors) are typed as objects and documented in ``docs/api.md``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

#: printable text without control characters (what every name in the store may hold)
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
TEXT_PATTERN = r"^[^\x00\x7f]*$"
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NAME_PATTERN)]
Text = Annotated[str, Field(max_length=4000, pattern=TEXT_PATTERN)]


def _utc(value: datetime) -> datetime:
    """SQLite keeps no time zone: a stored time without one is UTC (every writer uses UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


#: a point in time, always with its offset (RFC 3339)
Timestamp = Annotated[datetime, AfterValidator(_utc)]


class Out(BaseModel):
    """A response body."""


# --- errors -----------------------------------------------------------------------------------


class ProblemOut(Out):
    location: str
    message: str


class ErrorDetail(Out):
    type: str
    message: str
    problems: list[ProblemOut]


class ErrorBody(Out):
    """Every error response."""

    error: ErrorDetail


# --- sessions, users, tokens, secrets ---------------------------------------------------------


class SessionOut(Out):
    user: str
    role: str
    must_change: bool
    csrf_token: Annotated[str, Field(description="send it as the X-CSRF-Token header (or the "
                                     "csrf_token form field) with every unsafe request of this "
                                     "session")]


class MeOut(Out):
    user: str
    role: str
    via: str
    must_change: bool


class UserOut(Out):
    name: str
    role: str
    created: Timestamp
    disabled: bool
    must_change: bool


class UserCreated(Out):
    user: UserOut
    password: Annotated[str | None, Field(description="the generated password, shown this "
                                          "once")]


class TokenOut(Out):
    id: int
    user: str
    name: str
    prefix: str
    created: Timestamp
    last_used: Timestamp | None
    expires: Timestamp | None
    revoked: bool


class TokenCreated(Out):
    token: Annotated[str, Field(description="the token, shown this once: Authorization: "
                                "Bearer <token>")]
    record: TokenOut


class SecretOut(Out):
    name: str
    kind: str
    created: Timestamp
    updated: Timestamp


# --- jobs -------------------------------------------------------------------------------------


class JobOut(Out):
    id: int
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    actor: str
    params: dict[str, Any]
    created: Timestamp
    started: Timestamp | None
    finished: Timestamp | None
    progress: dict[str, Any]
    result: dict[str, Any]
    error: str | None


# --- inventory --------------------------------------------------------------------------------


class SiteOut(Out):
    name: str
    timezone: str
    clusters: int
    hosts: int


class ClusterOut(Out):
    site: str
    name: str
    family: str
    ring: str
    memory_overcommit: float
    cpu_overcommit: float
    ha_reserve_hosts: int
    hosts: int


class TenantOut(Out):
    name: str
    description: str
    guests: int


class HostOut(Out):
    name: str
    site: str
    cluster: str
    family: str
    version: str
    ring: str
    exposure: str
    cores: int
    memory_mb: int
    guests: int
    open_findings: int
    decision: str | None
    outcome: str | None
    deadline: date | None


class GuestOut(Out):
    name: str
    host: str
    tenant: str
    vcpus: int
    memory_mb: int
    criticality: str
    data_classification: str
    power_state: str
    migration_block: str | None


class FindingOut(Out):
    host: str
    cve: str
    component: str
    installed: str
    fixed_in: str | None
    confidence: str
    source: str
    state: str
    kev: bool
    kev_due: date | None
    ransomware: bool
    epss: float | None
    first_seen: Timestamp
    closed_at: Timestamp | None


class FindingItem(FindingOut):
    id: int


class HostGuestOut(Out):
    name: str
    tenant: str
    vcpus: int
    memory_mb: int
    criticality: str
    data_classification: str
    power_state: str
    migration_block: str | None


class HostDetailOut(Out):
    name: str
    site: str
    cluster: str
    family: str
    version: str
    software: dict[str, Any]
    cores: int
    memory_mb: int
    exposure: str
    ring: str
    cpu_group: str
    coordinator: bool
    tenants: list[str]
    guests: list[HostGuestOut]
    findings: list[FindingOut]


# --- judge: exceptions ------------------------------------------------------------------------


class ExceptionOut(Out):
    id: int
    host: str
    cve: str
    state: str
    reason: str
    compensating_control: str
    expires_on: date
    requested_by: str
    requested_at: Timestamp
    approved_by: str | None
    approved_at: Timestamp | None
    closed_by: str | None
    closed_at: Timestamp | None


# --- plans and rollouts -----------------------------------------------------------------------


class RolloutStarted(Out):
    rollout: str
    job: JobOut


class ControlOut(Out):
    name: str
    requested: str
    state: str
    driven: bool
    job: JobOut | None = None


class ApprovalOut(Out):
    name: str
    ring: str
    gate: str
    approved_by: str
    state: str


class RolloutOut(Out):
    name: str
    plan: str
    state: str
    requester: str
    created: str
    reason: str
    hosts: dict[str, int]


class GateOut(Out):
    ring: str
    kind: str
    state: str
    ring_done: Timestamp | None
    evaluated: Timestamp | None
    evidence: dict[str, Any]
    approved_by: str | None
    approved_at: Timestamp | None


class StepOut(Out):
    id: int
    host: str
    ring: str
    step: str
    attempt: int
    state: str
    started: Timestamp
    finished: Timestamp | None
    error: str
    evidence: dict[str, Any]


# --- incidents and audit ----------------------------------------------------------------------


class IncidentOut(Out):
    id: int
    title: str
    state: str
    opened: Timestamp
    opened_by: str
    closed: Timestamp | None
    closed_by: str | None


class AuditEntryOut(Out):
    seq: int
    at: Timestamp
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyOut(Out):
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


class HealthOut(Out):
    status: Literal["ok"]
