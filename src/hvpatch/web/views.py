"""The dashboard's pages and buttons: server-rendered HTML, no front-end build step.

Pages read through the same services as the API and the CLI (nothing here decides anything);
buttons are HTML forms that post the session's CSRF token and call the same service functions
the API's routes call, under the same roles: pause, abort and resume need the operator role,
approving a gate the approver role (and someone other than the requester). The rollout page
refreshes its progress part every two seconds with a few lines of inline script while the
rollout has not ended.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hvpatch.adapters.plots.charts import bar_chart_png, line_chart_png
from hvpatch.adapters.plots.gantt import gantt_bytes, timeline_bytes
from hvpatch.api.auth import Principal, csrf_ok, log_in, principal_of
from hvpatch.api.background import Background
from hvpatch.api.deps import Filter, PathName, StoreDep
from hvpatch.domain.risk.policy import OUTCOMES
from hvpatch.domain.rollout import rollout_policy_from_dict
from hvpatch.errors import (
    AuthenticationError,
    HvpatchError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
)
from hvpatch.orchestration.runner import simulator_spec, start_rollout
from hvpatch.services.audit import list_entries
from hvpatch.services.catalog import host_detail, page_hosts
from hvpatch.services.dashboard import (
    NO_DECISION,
    burndown,
    exposure_by_tenant,
    exposure_now,
    findings_age,
    hosts_by_outcome,
)
from hvpatch.services.findings import explain
from hvpatch.services.plans import export_plan, get_plan, list_plans
from hvpatch.services.risk import explain_risk
from hvpatch.services.rollouts import (
    ENDS,
    approve,
    get_rollout,
    list_rollouts,
    request_control,
    rollout_gates,
    rollout_status,
    rollout_timeline,
)
from hvpatch.services.users import allows, set_password
from hvpatch.web.render import flash, render

__all__ = ["OUTCOME_COLOURS", "LoginRequired", "router"]

router = APIRouter(include_in_schema=False)
#: colours of the exposure outcomes (and of hosts without a decision) in every chart
OUTCOME_COLOURS = {"Act": "#c0392b", "Attend": "#e67e22", "Track*": "#d4ac0d",
                   "Track": "#4e79a7", NO_DECISION: "#aab2bd"}
PNG = "image/png"


class LoginRequired(Exception):
    """The browser must log in (or change its one-time password) first: go to ``url``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _viewer(request: Request) -> Principal:
    who = principal_of(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(f"/login?{urlencode({'next': target})}")
    if who.user.must_change and request.url.path not in ("/password", "/logout"):
        raise LoginRequired("/password")
    return who


Viewer = Annotated[Principal, Depends(_viewer)]
Csrf = Annotated[str, Form(max_length=256)]


def _allowed(who: Principal, csrf_token: str, role: str) -> None:
    """A button may be pressed: the form carries the session's token, the role suffices."""
    if not csrf_ok(csrf_token, who):
        raise PermissionDeniedError("the form is stale or forged (no valid CSRF token): "
                                    "reload the page and try again")
    if not allows(who.user.role, role):
        raise PermissionDeniedError(f"this needs the {role} role (or higher); {who.name} is "
                                    f"{who.user.role}")


def _local(target: str) -> str:
    """``target`` when it is a path of this site, else the overview (no open redirect)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/"


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _png(data: bytes) -> Response:
    return Response(data, media_type=PNG, headers={"Cache-Control": "no-store"})


def _jobs(request: Request) -> Background:
    jobs: Background = request.app.state.jobs
    return jobs


# -- session ----------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    """The login form."""
    return render(request, "login.html.j2", {"next": _local(next), "error": ""})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, store: StoreDep, name: Annotated[str, Form(max_length=128)],
          password: Annotated[str, Form(max_length=1024)],
          next: Annotated[str, Form(max_length=2048)] = "/") -> Response:
    """Check the name and password; start a session (as ``POST /api/v1/session`` does)."""
    try:
        user, _csrf = log_in(request, store, name.strip(), password)
    except (AuthenticationError, TooManyAttemptsError) as exc:
        status = 429 if isinstance(exc, TooManyAttemptsError) else 401
        return render(request, "login.html.j2", {"next": _local(next), "error": str(exc)},
                      status=status)
    return _back("/password" if user.must_change else _local(next))


@router.post("/logout")
def logout(request: Request, who: Viewer, csrf_token: Csrf = "") -> Response:
    """End the session."""
    _allowed(who, csrf_token, "viewer")
    request.session.clear()
    return _back("/login")


@router.get("/password", response_class=HTMLResponse)
def password_page(request: Request, who: Viewer) -> Response:
    """Change one's password (required after a one-time password)."""
    return render(request, "password.html.j2", {"error": ""})


@router.post("/password", response_class=HTMLResponse)
def change_password(request: Request, who: Viewer, store: StoreDep,
                    current: Annotated[str, Form(max_length=1024)],
                    password: Annotated[str, Form(max_length=1024)],
                    repeat: Annotated[str, Form(max_length=1024)],
                    csrf_token: Csrf = "") -> Response:
    """Set a new password (the current one is required)."""
    _allowed(who, csrf_token, "viewer")
    error = "the two new passwords differ" if password != repeat else ""
    if not error:
        try:
            set_password(store, who.name, password, actor=who.name, current=current)
        except HvpatchError as exc:
            error = str(exc)
    if error:
        return render(request, "password.html.j2", {"error": error}, status=422)
    flash(request, "password changed")
    return _back("/")


# -- pages ------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Viewer, store: StoreDep) -> Response:
    """Exposure now, the burn-down, exposure by tenant, findings age, campaigns in flight."""
    now = exposure_now(store)
    return render(request, "overview.html.j2", {
        "now": now, "outcomes": OUTCOMES,
        "colours": OUTCOME_COLOURS, "recent": list_rollouts(store)[:5]})


@router.get("/charts/{chart}.png")
def chart(chart: str, who: Viewer, store: StoreDep) -> Response:
    """The overview's plots as PNG images."""
    if chart == "outcomes":
        now = hosts_by_outcome(store)
        labels = list(now)
        return _png(bar_chart_png("Hosts by exposure outcome", labels,
                                  [("hosts", [now[o] for o in labels])],
                                  colours=[OUTCOME_COLOURS[o] for o in labels], width_in=6.0))
    if chart == "burndown":
        b = burndown(store)
        return _png(line_chart_png(f"Open findings over time ({b.opened} opened, {b.closed} "
                                   "closed in the span)", b.at, b.open, ylabel="open findings"))
    if chart == "tenants":
        rows = exposure_by_tenant(store)
        return _png(bar_chart_png("Guests by the outcome of their host, per tenant",
                                  [r["tenant"] for r in rows],
                                  [(o, [r["guests"][o] for r in rows]) for o in OUTCOMES],
                                  colours=[OUTCOME_COLOURS[o] for o in OUTCOMES],
                                  horizontal=True, xlabel="guests"))
    if chart == "age":
        age = findings_age(store)
        return _png(bar_chart_png("Open findings by age of the advisory (since published)",
                                  age["buckets"], [("KEV", age["kev"]),
                                                   ("not KEV", age["other"])],
                                  colours=["#c0392b", "#4e79a7"], xlabel="open findings"))
    raise NotFoundError(f"no chart {chart!r}: outcomes, burndown, tenants or age")


@router.get("/fleet", response_class=HTMLResponse)
def fleet(request: Request, who: Viewer, store: StoreDep, site: Filter = None,
          cluster: Filter = None, family: Filter = None, ring: Filter = None,
          after: Filter = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Hosts by name with version, guests, open findings and decision; filters, pages."""
    rows = page_hosts(store, after=after, limit=limit + 1, site=site, cluster=cluster,
                      family=family, ring=ring)
    filters = {k: v for k, v in (("site", site), ("cluster", cluster), ("family", family),
                                 ("ring", ring)) if v}
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = (f"/fleet?{urlencode({**filters, 'after': rows[-1]['name'], 'limit': limit})}"
           if more and rows else None)
    return render(request, "fleet.html.j2", {"hosts": rows, "filters": filters, "next": nxt,
                                             "first": after is None})


@router.get("/hosts/{name}", response_class=HTMLResponse)
def host(request: Request, name: PathName, who: Viewer, store: StoreDep) -> Response:
    """One host: software, guests and tenants, findings with the decision's explanation."""
    detail = host_detail(store, name)
    try:
        risk: dict[str, Any] | None = explain_risk(store, name)
    except NotFoundError:
        risk = None
    scored = {(f["cve"], f["component"]): f for f in (risk or {}).get("findings", [])}
    return render(request, "host.html.j2", {"h": detail, "risk": risk, "scored": scored})


@router.get("/hosts/{name}/findings/{cve}", response_class=HTMLResponse)
def finding(request: Request, name: PathName, cve: PathName, who: Viewer,
            store: StoreDep) -> Response:
    """Why a host is (or was) exposed to a CVE: the matching evidence and the risk factors."""
    why = explain(store, name, cve)
    try:
        risk: dict[str, Any] | None = explain_risk(store, name, cve)
    except NotFoundError:
        risk = None
    return render(request, "finding.html.j2", {"x": why, "risk": risk})


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, who: Viewer, store: StoreDep) -> Response:
    """Plans and rollouts, newest first."""
    return render(request, "campaigns.html.j2", {"plans": list_plans(store),
                                                 "rollouts": list_rollouts(store)})


@router.get("/plans/{name}", response_class=HTMLResponse)
def plan(request: Request, name: PathName, who: Viewer, store: StoreDep) -> Response:
    """A plan: rings, waves, hosts, every guest move, skipped hosts; the Gantt chart."""
    meta, campaign = get_plan(store, name)
    runs = [r for r in list_rollouts(store) if r["plan"] == meta["name"]]
    return render(request, "plan.html.j2", {"meta": meta, "p": export_plan(campaign),
                                            "runs": runs})


@router.get("/plans/{name}/gantt.png")
def gantt(name: PathName, who: Viewer, store: StoreDep) -> Response:
    """The plan's Gantt chart."""
    _, campaign = get_plan(store, name)
    return _png(gantt_bytes(campaign))


@router.get("/rollouts/{name}", response_class=HTMLResponse)
def rollout(request: Request, name: PathName, who: Viewer, store: StoreDep) -> Response:
    """A rollout: live progress per ring, wave and host, gates with their evidence, buttons."""
    status = rollout_status(store, name)
    return render(request, "rollout.html.j2", {
        "r": status, "gates": rollout_gates(store, name), "ends": ENDS,
        "audit": list_entries(store, subject=name, limit=15)})


@router.get("/rollouts/{name}/gantt.png")
def rollout_gantt(name: PathName, who: Viewer, store: StoreDep) -> Response:
    """When each wave actually ran (the rollout's Gantt chart)."""
    t = rollout_timeline(store, name)
    rings: dict[str, int] = {}
    rows = [(f"{w['ring']} · {', '.join(w['clusters'])} · wave {w['wave']} "
             f"({sum(w['hosts'].values())} hosts)", w["start_s"], w["seconds"],
             rings.setdefault(w["ring"], len(rings)),
             bool(w["hosts"].get("failed") or w["hosts"].get("rolled-back")))
            for w in t["waves"]]
    return _png(timeline_bytes(f"Rollout {t['name']}: what ran when", rows))


@router.get("/rollouts/{name}/progress", response_class=HTMLResponse)
def progress(request: Request, name: PathName, who: Viewer, store: StoreDep) -> Response:
    """The live part of the rollout page (fetched again while the rollout runs)."""
    return render(request, "_progress.html.j2", {"r": rollout_status(store, name),
                                                 "ends": ENDS})


AUDIT_PAGE = 200


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, who: Viewer, store: StoreDep, subject: Filter = None,
          actor: Filter = None, before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """Audit entries newest first (who did what, when), optionally for one subject or actor,
    a page at a time; ``before`` pages back to older entries."""
    rows = list_entries(store, subject=subject, actor=actor, limit=AUDIT_PAGE + 1,
                        before=before)
    more = len(rows) > AUDIT_PAGE
    rows = rows[-AUDIT_PAGE:]
    filters = {k: v for k, v in (("subject", subject), ("actor", actor)) if v}
    older = (f"/audit?{urlencode({**filters, 'before': rows[0]['seq']})}"
             if more and rows else None)
    return render(request, "audit.html.j2", {
        "entries": list(reversed(rows)), "subject": subject or "", "actor": actor or "",
        "older": older, "newest": f"/audit?{urlencode(filters)}" if before else None,
        "page": AUDIT_PAGE})


# -- buttons ----------------------------------------------------------------------------------

@router.post("/plans/{name}/start")
def start(request: Request, name: PathName, who: Viewer, store: StoreDep,
          csrf_token: Csrf = "",
          speed: Annotated[float, Form(gt=0, le=1e7)] = 3600.0) -> Response:
    """Start a rollout of the plan on the simulator (operator), driven in the background."""
    _allowed(who, csrf_token, "operator")
    try:
        rname = start_rollout(store, name, requester=who.name,
                              policy=rollout_policy_from_dict(None),
                              driver=simulator_spec(speed=speed))
    except HvpatchError as exc:
        flash(request, f"not started: {exc}", "error")
        return _back(f"/plans/{quote(name)}")
    _jobs(request).drive(rname, who.name, "start")
    flash(request, f"rollout {rname} started on the simulator")
    return _back(f"/rollouts/{quote(rname)}")


@router.post("/rollouts/{name}/{action}")
def control(request: Request, name: PathName, action: str, who: Viewer, store: StoreDep,
            csrf_token: Csrf = "",
            reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """The rollout's buttons: approve (approver; then resume), pause, abort, resume
    (operator)."""
    if action not in ("approve", "pause", "abort", "resume"):
        raise NotFoundError(f"no action {action!r}: approve, pause, abort or resume")
    _allowed(who, csrf_token, "approver" if action == "approve" else "operator")
    page = f"/rollouts/{quote(name)}"
    jobs = _jobs(request)
    try:
        if action == "approve":
            done = approve(store, name, actor=who.name, comment=reason)
            flash(request, f"{done['ring']} {done['gate']} gate approved by {who.name}; "
                  "the rollout carries on")
            if not get_rollout(store, name).lease_owner:
                jobs.drive(name, who.name, "resume")
        elif action == "resume":
            row = get_rollout(store, name)
            if row.state in ENDS:
                raise NotFoundError(f"rollout {name} has ended ({row.state}): nothing to "
                                    "resume")
            jobs.drive(row.name, who.name, "resume")
            flash(request, "resuming")
        else:
            result = request_control(store, name, action, actor=who.name, reason=reason)
            if action == "abort" and not result["driven"]:
                jobs.drive(result["name"], who.name, "abort")
            flash(request, f"{action} requested: the engine stops at its next safe point"
                  + (" and cleans up" if action == "abort" else ""))
    except HvpatchError as exc:
        flash(request, f"{action} refused: {exc}", "error")
    return _back(page)
