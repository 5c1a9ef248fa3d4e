"""Judge: feeds, findings, assessments and decisions, exceptions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from hvpatch.api.bodies import AssessIn, ExceptionIn, FeedImportIn
from hvpatch.api.deps import Approver, Filter, Jobs, Operator, PathId, PathName, StoreDep, Viewer
from hvpatch.api.models import NAME_PATTERN, ExceptionOut, FindingItem, JobOut
from hvpatch.api.pages import Page, Paging, page_of, ranked_page, slice_page
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.exceptions import (
    add_exception,
    approve_exception,
    expire_exception,
    list_exceptions,
)
from hvpatch.services.feeds import feed_status, import_feeds
from hvpatch.services.findings import explain, overview, page_findings, refresh_findings
from hvpatch.services.jobs import Progress
from hvpatch.services.risk import assess_risk, explain_risk, ranked, risk_runs

router = APIRouter(tags=["judge"])
CveFilter = Annotated[str | None, Query(min_length=1, max_length=32, pattern=NAME_PATTERN)]


@router.get("/feeds", response_model=dict[str, Any])
def feeds(_who: Viewer, store: StoreDep) -> dict[str, Any]:
    """What the store holds per feed kind, and when each was last imported."""
    return feed_status(store)


@router.post("/feeds/import", status_code=202, response_model=JobOut)
def import_bundled(who: Operator, store: StoreDep, jobs: Jobs,
                   body: FeedImportIn | None = None) -> dict[str, Any]:
    """Import the advisory snapshot bundled with hvpatch (a background job), then re-match."""
    match = (body or FeedImportIn()).match

    def work(progress: Progress) -> dict[str, Any]:
        progress({"step": "importing the bundled snapshot"})
        report = import_feeds(store, [bundled_feeds_dir()])
        out: dict[str, Any] = {"files": len(report.files), "totals": report.totals(),
                               "skipped": len(report.skipped)}
        if match:
            progress({"step": "matching"})
            out["matching"] = refresh_findings(store).as_dict()
        return out

    return jobs.submit("feeds.import", who.name, {"bundled": True, "match": match}, work)


@router.get("/findings", response_model=Page[FindingItem])
def findings(_who: Viewer, store: StoreDep, paging: Paging, host: Filter = None,
             cve: CveFilter = None, kev: bool = False,
             state: Literal["open", "closed", "all"] = "open",
             confidence: Annotated[list[Literal["high", "medium", "low"]], Query()] = [],  # noqa: B006
             ) -> Page[Any]:
    """Findings in a stable order (filter by host, CVE, KEV, state, confidence)."""
    rows = page_findings(store, after=paging.after(int), limit=paging.limit + 1, host=host,
                         cve=cve, kev_only=kev, state=state, confidence=confidence)
    return page_of(rows, paging.limit, lambda r: r["id"])


@router.get("/findings/overview", response_model=dict[str, Any])
def findings_overview(_who: Viewer, store: StoreDep) -> dict[str, Any]:
    """Open findings at a glance: totals, per family and confidence, the top CVEs."""
    return overview(store)


@router.get("/findings/explain", response_model=dict[str, Any])
def findings_explain(_who: Viewer, store: StoreDep,
                     host: Annotated[str, Query(min_length=1, max_length=255,
                                                pattern=NAME_PATTERN)],
                     cve: Annotated[str, Query(min_length=1, max_length=32,
                                               pattern=NAME_PATTERN)]) -> dict[str, Any]:
    """The evidence chain for one host and CVE, recomputed now."""
    return explain(store, host, cve)


@router.get("/decisions", response_model=Page[dict[str, Any]])
def decisions(_who: Viewer, store: StoreDep, paging: Paging,
              by: Literal["host", "cluster", "tenant", "site"] = "host") -> Page[Any]:
    """The latest decisions ranked by urgency, per host or rolled up (pages by rank)."""
    return ranked_page(ranked(store, by=by), paging)


@router.get("/decisions/{host}", response_model=dict[str, Any])
def decision(host: PathName, _who: Viewer, store: StoreDep, cve: CveFilter = None
             ) -> dict[str, Any]:
    """A host's decision and every factor behind it (one CVE's when given)."""
    return explain_risk(store, host, cve)


@router.get("/assessments", response_model=Page[dict[str, Any]])
def assessments(_who: Viewer, store: StoreDep, paging: Paging) -> Page[Any]:
    """Risk assessment runs, newest first: when, by whom, what changed."""
    rows = risk_runs(store, before=paging.after(int), limit=paging.limit + 1)
    return page_of(rows, paging.limit, lambda r: r["id"])


@router.post("/assessments", status_code=202, response_model=JobOut)
def assess(who: Operator, store: StoreDep, jobs: Jobs, body: AssessIn | None = None
           ) -> dict[str, Any]:
    """Re-match findings and assess risk for every host (a background job)."""
    opts = body or AssessIn()

    def work(progress: Progress) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if opts.refresh:
            progress({"step": "matching"})
            out["matching"] = refresh_findings(store, full=opts.full).as_dict()
        progress({"step": "assessing"})
        summary = assess_risk(store, actor=who.name).as_dict()
        summary["changes"] = summary["changes"][:100]
        out["risk"] = summary
        return out

    return jobs.submit("assess", who.name, opts.model_dump(), work)


@router.get("/exceptions", response_model=Page[ExceptionOut])
def exceptions(_who: Viewer, store: StoreDep, paging: Paging,
               state: Literal["pending", "approved", "expired"] | None = None) -> Page[Any]:
    """Risk exceptions with their effective state."""
    return slice_page(list_exceptions(store, state=state), paging, lambda r: r["id"], int)


@router.post("/exceptions", status_code=201, response_model=ExceptionOut)
def request_exception(body: ExceptionIn, who: Operator, store: StoreDep) -> dict[str, Any]:
    """Request an exception: it defers nothing until an approver (not the requester) approves
    it."""
    cve = None if body.cve in (None, "*") else body.cve
    return add_exception(store, host=body.host, cve=cve, reason=body.reason,
                         control=body.compensating_control, expires_on=body.expires_on,
                         actor=who.name)


@router.post("/exceptions/{exception_id}/approve", response_model=ExceptionOut)
def approve(exception_id: PathId, who: Approver, store: StoreDep) -> dict[str, Any]:
    """Approve a pending exception (separation of duties: not one's own)."""
    return approve_exception(store, exception_id, actor=who.name)


@router.post("/exceptions/{exception_id}/expire", response_model=ExceptionOut)
def expire(exception_id: PathId, who: Approver, store: StoreDep) -> dict[str, Any]:
    """End an exception now; the finding is back at the next assessment."""
    return expire_exception(store, exception_id, actor=who.name)
