"""The one error tree of hvpatch.

Every error hvpatch raises on purpose derives from :class:`HvpatchError`; adapters translate
foreign exceptions into it with ``raise ... from``. The CLI and the API map these classes to exit
codes and HTTP statuses in one place each (``hvpatch.cli.errors``, ``hvpatch.api.errors``).

::

    HvpatchError
    ├── InputError                 bad file, field or argument; carries every problem found
    │   ├── VersionParseError      a version string that no scheme accepts
    │   ├── FeedFileError          a feed file that cannot be read (also a FeedError)
    │   └── SeparationOfDutiesError  someone would approve their own request
    ├── NotFoundError              a named thing (host, cluster, ...) does not exist
    ├── StoreError                 the database is unreachable or its schema is wrong
    ├── FeedError                  an advisory feed cannot be read or fetched
    ├── PlanError                  no safe plan exists (names the guest and the constraint)
    ├── DriverError                a hypervisor driver failed
    │   ├── TemporaryStepError     worth retrying after ``delay`` seconds
    │   └── PermanentStepError     retrying will not help
    └── AccessError                access control refused a request (the API)
        ├── AuthenticationError    who is asking is not known: no, bad, expired or revoked
        │                          credentials
        └── PermissionDeniedError  known, but the role (or a missing CSRF token) forbids it
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class HvpatchError(Exception):
    """Base of every error hvpatch raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where it is, and what was expected there."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class InputError(HvpatchError):
    """Bad input (file, field, argument). Holds every problem found, each with its location."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class VersionParseError(InputError, ValueError):
    """A version string that its scheme cannot parse."""


class NotFoundError(HvpatchError):
    """A thing the user named does not exist."""


class StoreError(HvpatchError):
    """The store cannot be used (unreachable, wrong schema, failed migration)."""


class FeedError(HvpatchError):
    """An advisory feed cannot be read, parsed or fetched."""


class FeedFileError(InputError, FeedError):
    """A local feed file that is malformed, truncated or hostile: bad input (exit code 2)."""


class PlanError(HvpatchError):
    """No safe plan exists; the message names what does not fit and why."""


class DriverError(HvpatchError):
    """A hypervisor driver operation failed."""


class TemporaryStepError(DriverError):
    """A step failed in a way worth retrying after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 0.0) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentStepError(DriverError):
    """A step failed in a way that retrying will not fix."""


class SeparationOfDutiesError(InputError):
    """Someone would approve their own request (exception, plan, rollout, gate)."""


class AccessError(HvpatchError):
    """Access control refused a request."""


class AuthenticationError(AccessError):
    """Who is asking is not known: no, bad, expired or revoked credentials."""


class TooManyAttemptsError(AccessError):
    """Too many failed logins from one client for one user: wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDeniedError(AccessError):
    """The user is known, but their role (or a missing CSRF token) does not allow the request."""
