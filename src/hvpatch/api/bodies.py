"""Request bodies of the API: strict (an unknown field is an error, not silently ignored),
bounded (lengths, ranges), and without control characters in names."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hvpatch.api.models import NAME_PATTERN, TEXT_PATTERN, Name, Text
from hvpatch.services.secrets import KINDS as SECRET_KINDS
from hvpatch.services.users import MAX_PASSWORD, ROLES

Role = Literal["viewer", "operator", "approver", "admin"]
SecretKind = Literal["password", "token", "ssh-key", "certificate", "other"]
Decision = Literal["patch-now", "patch-through-rings", "mitigate-first"]
assert ROLES == ("viewer", "operator", "approver", "admin")
assert SECRET_KINDS == ("password", "token", "ssh-key", "certificate", "other")


class In(BaseModel):
    """A request body: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

class LoginIn(In):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]

class PasswordIn(In):
    current: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]

class UserIn(In):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
    role: Role
    password: Annotated[str | None, Field(
        max_length=MAX_PASSWORD, description="omit to have one generated (shown once, to be "
        "changed at first login)")] = None

class TokenIn(In):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)] = "api"
    expires_days: Annotated[int | None, Field(ge=1, le=3650)] = None

class SecretIn(In):
    kind: SecretKind = "password"
    value: Annotated[str, Field(min_length=1, max_length=64 * 1024)]

class FeedImportIn(In):
    match: Annotated[bool, Field(description="re-match the fleet afterwards")] = True

class AssessIn(In):
    refresh: Annotated[bool, Field(description="re-match findings before assessing")] = True
    full: Annotated[bool, Field(description="a full (not incremental) matching run")] = False

class ExceptionIn(In):
    host: Name
    cve: Annotated[str | None, Field(max_length=32, pattern=NAME_PATTERN,
                                     description="a CVE id, or null (or '*') for every "
                                     "finding of the host")] = None
    reason: Annotated[str, Field(min_length=1, max_length=4000, pattern=TEXT_PATTERN)]
    compensating_control: Annotated[str, Field(min_length=1, max_length=4000,
                                               pattern=TEXT_PATTERN)]
    expires_on: date

class PlanIn(In):
    name: Annotated[str | None, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)] = None
    include: Annotated[list[Decision], Field(min_length=1, max_length=3)] = [
        "patch-now", "patch-through-rings"]
    cves: Annotated[list[Annotated[str, Field(max_length=32, pattern=NAME_PATTERN)]] | None,
                    Field(max_length=1000)] = None
    policy: Annotated[dict[str, Any] | None, Field(description="a plan policy (rings, gates, "
                                                   "windows; see docs/planning.md)")] = None
    history: Annotated[bool, Field(description="plan with the time model refined from the "
                                   "rollouts recorded on real platforms (false: the built-in "
                                   "defaults)")] = True

class RolloutIn(In):
    plan: Name
    name: Annotated[str | None, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)] = None
    speed: Annotated[float, Field(gt=0, le=1e7, description="simulated seconds per real "
                                  "second (the simulator driver)")] = 3600.0
    policy: Annotated[dict[str, Any] | None, Field(description="a rollout policy (retries, "
                                                   "rollback, checks; see docs/rollout.md)")
                      ] = None
    faults: Annotated[dict[str, Any] | None, Field(description="a simulator fault plan (see "
                                                   "docs/simulator.md)")] = None

class ControlIn(In):
    reason: Text = ""

class ApproveIn(In):
    ring: Annotated[str | None, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)] = None
    comment: Text = ""

class IncidentIn(In):
    title: Annotated[str, Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)]
