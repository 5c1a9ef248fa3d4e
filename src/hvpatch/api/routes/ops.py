"""Incidents, the audit log, and background jobs (status, and server-sent events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hvpatch.api.bodies import IncidentIn
from hvpatch.api.deps import Filter, Operator, PathId, StoreDep, Viewer
from hvpatch.api.models import AuditEntryOut, IncidentOut, JobOut, VerifyOut
from hvpatch.api.pages import Page, Paging, page_of, ranked_page
from hvpatch.services.audit import page_entries, verify_store
from hvpatch.services.incidents import close_incident, list_incidents, open_incident
from hvpatch.services.jobs import get_job, list_jobs

router = APIRouter(tags=["operations"])
#: how often an event stream looks at its job, and sends a keep-alive comment when idle
POLL_S = 0.25
KEEPALIVE_S = 15.0


@router.get("/incidents", response_model=Page[IncidentOut])
def incidents(_who: Viewer, store: StoreDep, paging: Paging, open_only: bool = False
              ) -> Page[Any]:
    """Incidents, newest first."""
    return ranked_page(list_incidents(store, open_only=open_only), paging)


@router.post("/incidents", status_code=201, response_model=IncidentOut)
def open_(body: IncidentIn, who: Operator, store: StoreDep) -> dict[str, Any]:
    """Open an incident: ring gates that require none stay closed while it is open."""
    incident_id = open_incident(store, body.title, who.name)
    return next(i for i in list_incidents(store) if i["id"] == incident_id)


@router.post("/incidents/{incident_id}/close", response_model=IncidentOut)
def close(incident_id: PathId, who: Operator, store: StoreDep) -> dict[str, Any]:
    """Close an open incident."""
    return close_incident(store, incident_id, who.name)


@router.get("/audit", response_model=Page[AuditEntryOut])
def audit(_who: Viewer, store: StoreDep, paging: Paging, subject: Filter = None,
          action: Filter = None, actor: Filter = None) -> Page[Any]:
    """The hash-chained audit log, oldest first (filters match exactly)."""
    rows = page_entries(store, after=paging.after(int) or 0, limit=paging.limit + 1,
                        subject=subject, action=action, actor=actor)
    return page_of(rows, paging.limit, lambda r: r["seq"])


@router.get("/audit/verify", response_model=VerifyOut)
def verify(_who: Viewer, store: StoreDep) -> dict[str, Any]:
    """Check the whole chain: sequence, links, hashes, and that none was cut off the end."""
    result = verify_store(store)
    return {"ok": result.ok, "entries": result.entries, "first_bad_seq": result.first_bad_seq,
            "reason": result.reason or None}


@router.get("/jobs", response_model=Page[JobOut])
def jobs(_who: Viewer, store: StoreDep, paging: Paging,
         state: Literal["queued", "running", "done", "failed"] | None = None,
         kind: Literal["feeds.import", "assess", "plan.create", "rollout.drive"] | None = None,
         ) -> Page[Any]:
    """Background jobs, newest first."""
    rows = list_jobs(store, before=paging.after(int), limit=paging.limit + 1, state=state,
                     kind=kind)
    return page_of(rows, paging.limit, lambda r: r["id"])


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: PathId, _who: Viewer, store: StoreDep) -> dict[str, Any]:
    """One job: state, progress, and its result or error."""
    return get_job(store, job_id)


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"description": "server-sent events: `progress` whenever the job "
                             "changes, then one `end` when it is done or failed",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def events(job_id: PathId, _who: Viewer, store: StoreDep, request: Request
                 ) -> StreamingResponse:
    """Follow a job as server-sent events (`event: progress` / `event: end`, data: the job)."""
    await run_in_threadpool(get_job, store, job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last, idle = "", 0.0
        while True:
            current = JobOut.model_validate(await run_in_threadpool(get_job, store, job_id))
            data = current.model_dump_json()
            ended = current.state in ("done", "failed")
            if data != last:
                yield f"event: {'end' if ended else 'progress'}\ndata: {data}\n\n"
                last, idle = data, 0.0
            elif idle >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle = 0.0
            if ended or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)
            idle += POLL_S

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
