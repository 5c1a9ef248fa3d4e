"""Background jobs: long-running work the API started, observable while it runs.

A job is a row: ``queued`` when submitted, ``running`` while its work runs, then ``done`` with a
result or ``failed`` with an error. Work reports progress (plain data) as it goes. Submitting,
finishing and failing each write an audit entry with the job's actor. Where the work runs
(threads of the server) is the API's business; :func:`run_job` is what each worker calls.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import JobRow
from hvpatch.errors import HvpatchError, NotFoundError
from hvpatch.services.audit import record

__all__ = ["KINDS", "STATES", "Progress", "create_job", "fail_orphans", "fail_unfinished",
           "get_job", "job_counts", "list_jobs", "new_worker", "run_job"]

STATES = ("queued", "running", "done", "failed")
KINDS = ("feeds.import", "assess", "plan.create", "rollout.drive")
Progress = Callable[[Mapping[str, Any]], None]
Work = Callable[[Progress], Mapping[str, Any]]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _plain(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data`` as JSON-safe plain data (dates and other values become strings)."""
    return dict(json.loads(json.dumps(dict(data or {}), default=str)))


def _dict(r: JobRow) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "state": r.state, "actor": r.actor, "params": r.params,
            "created": r.created, "started": r.started, "finished": r.finished,
            "progress": r.progress, "result": r.result, "error": r.error or None}


def new_worker() -> str:
    """A worker id for a server process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _gone(worker: str) -> bool:
    """True when ``worker`` was a process of this machine that no longer runs."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def create_job(store: Store, kind: str, *, actor: str,
               params: Mapping[str, Any] | None = None, worker: str = "") -> int:
    """A new queued job (to run on ``worker``); returns its id."""
    with store.session() as s:
        row = JobRow(kind=kind, state="queued", actor=actor, worker=worker,
                     params=_plain(params),
                     created=_now(), progress={}, result={}, error="")
        s.add(row)
        s.flush()
        record(s, actor=actor, action="job.submit", subject=f"job:{row.id}",
               details={"kind": kind, "params": _plain(params)})
        s.commit()
        return row.id


def get_job(store: Store, job_id: int) -> dict[str, Any]:
    """One job; NotFoundError when there is none with this id."""
    with store.session() as s:
        row = s.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"no job with id {job_id}")
        return _dict(row)


def list_jobs(store: Store, *, before: int | None = None, limit: int = 100,
              state: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Jobs newest first; ``before`` an id continues a listing (keyset pagination)."""
    q = select(JobRow)
    if before is not None:
        q = q.where(JobRow.id < before)
    if state:
        q = q.where(JobRow.state == state)
    if kind:
        q = q.where(JobRow.kind == kind)
    with store.session() as s:
        return [_dict(r) for r in s.scalars(q.order_by(JobRow.id.desc()).limit(limit))]


def job_counts(store: Store) -> dict[str, int]:
    """How many jobs are in each state."""
    with store.session() as s:
        found = dict(s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
    return {state: int(found.get(state, 0)) for state in STATES}


def _set(store: Store, job_id: int, **values: Any) -> None:
    with store.session() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(**values))
        s.commit()


def _end(store: Store, job_id: int, state: str, *, result: Mapping[str, Any] | None = None,
         error: str = "") -> None:
    with store.session() as s:
        row = s.get_one(JobRow, job_id)
        row.state, row.finished, row.error = state, _now(), error
        row.result = _plain(result)
        details: dict[str, Any] = {"kind": row.kind}
        if error:
            details["error"] = error[:500]
        record(s, actor=row.actor, action=f"job.{state}", subject=f"job:{job_id}",
               details=details)
        s.commit()


def run_job(store: Store, job_id: int, work: Work) -> str:
    """Run ``work`` as job ``job_id``: running, then done or failed; returns the end state.

    A hvpatch error fails the job with its message (and its problems); any other exception is
    a bug: the job fails with its type, and the trace goes to the server log.
    """
    _set(store, job_id, state="running", started=_now())

    def progress(data: Mapping[str, Any]) -> None:
        _set(store, job_id, progress=_plain(data))

    try:
        result = work(progress)
    except HvpatchError as exc:
        problems = "".join(f"\n  - {p}" for p in getattr(exc, "problems", ()))
        _end(store, job_id, "failed", error=f"{type(exc).__name__}: "
             f"{exc.args[0] if exc.args else exc}{problems}")
        return "failed"
    except Exception as exc:  # a worker's top level: record the bug, keep serving
        log.exception("job %s failed with a bug", job_id)
        _end(store, job_id, "failed", error=f"internal error ({type(exc).__name__}); see the "
             "server log")
        return "failed"
    _end(store, job_id, "done", result=result)
    return "done"


def fail_unfinished(store: Store, worker: str,
                    reason: str = "the server stopped before the job ended") -> int:
    """Mark ``worker``'s queued or running jobs failed (when it stops); returns how many."""
    with store.session() as s:
        ids = list(s.scalars(select(JobRow.id).where(JobRow.state.in_(("queued", "running")),
                                                     JobRow.worker == worker)))
    for job_id in ids:
        _end(store, job_id, "failed", error=reason)
    return len(ids)


def fail_orphans(store: Store) -> int:
    """Mark failed the unfinished jobs of server processes of this machine that died (at
    server start); returns how many."""
    with store.session() as s:
        rows = s.execute(select(JobRow.id, JobRow.worker).where(
            JobRow.state.in_(("queued", "running")))).all()
    ids = [job_id for job_id, worker in rows if _gone(worker)]
    for job_id in ids:
        _end(store, job_id, "failed", error="the server running the job stopped")
    return len(ids)
