"""Route dependencies: the store, the job pool, and the caller with the role a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from hvpatch.adapters.store.db import Store
from hvpatch.api.auth import Principal, require
from hvpatch.api.background import Background
from hvpatch.api.models import NAME_PATTERN

__all__ = ["Admin", "Anyone", "Approver", "Filter", "Jobs", "Operator", "PathId", "PathName",
           "StoreDep", "Viewer"]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _jobs(request: Request) -> Background:
    jobs: Background = request.app.state.jobs
    return jobs


StoreDep = Annotated[Store, Depends(_store)]
Jobs = Annotated[Background, Depends(_jobs)]
#: the caller, with at least this role (roles: viewer < operator < approver < admin)
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Admin = Annotated[Principal, Depends(require("admin"))]
#: any authenticated caller, even one who still has to change a one-time password
Anyone = Annotated[Principal, Depends(require("viewer", before_password_change=True))]

#: a name in a path (a host, plan, rollout, user, secret)
PathName = Annotated[str, Path(min_length=1, max_length=255, pattern=NAME_PATTERN)]
#: a numeric id in a path
PathId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: an optional exact-match filter
Filter = Annotated[str | None, Query(min_length=1, max_length=255, pattern=NAME_PATTERN)]
