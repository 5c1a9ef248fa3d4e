"""``/metrics`` (Prometheus text exposition format 0.0.4, written by hand) and ``/healthz``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from hvpatch.api.deps import StoreDep, Viewer
from hvpatch.api.models import HealthOut
from hvpatch.services.metrics import Snapshot, ping, snapshot

router = APIRouter(tags=["operations"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}")
    return lines


def render(snap: Snapshot) -> str:
    """The snapshot in the Prometheus text format."""
    lines: list[str] = []
    lines += _family("hvpatch_findings", "Findings by state and confidence.",
                     [({"state": st, "confidence": c}, n)
                      for (st, c), n in sorted(snap.findings.items())])
    lines += _family("hvpatch_open_findings_by_outcome", "Open findings by exposure outcome "
                     "(SSVC: Track, Track*, Attend, Act).",
                     [({"outcome": o}, n) for o, n in sorted(snap.open_by_outcome.items())])
    lines += _family("hvpatch_overdue_findings", "Open findings past their deadline (not "
                     "deferred by an exception).", [({}, snap.overdue_findings)])
    lines += _family("hvpatch_overdue_hosts", "Hosts whose decision's deadline has passed.",
                     [({}, snap.overdue_hosts)])
    lines += _family("hvpatch_rollout_hosts", "Hosts of unfinished rollouts by state.",
                     [({"rollout": r, "state": st}, n)
                      for (r, st), n in sorted(snap.rollout_hosts.items())])
    lines += _family("hvpatch_rollouts", "Rollouts by state.",
                     [({"state": st}, n) for st, n in sorted(snap.rollouts.items())])
    lines += _family("hvpatch_jobs", "Background jobs by state.",
                     [({"state": st}, n) for st, n in sorted(snap.jobs.items())])
    lines += _family("hvpatch_audit_entries", "Entries in the audit log.",
                     [({}, snap.audit_entries)])
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_model=None,
            responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
def metrics(_who: Viewer, store: StoreDep) -> PlainTextResponse:
    """Counts for Prometheus: findings by state and confidence and by outcome, overdue findings
    and hosts, rollout progress, jobs by state (scrape with an API token)."""
    return PlainTextResponse(render(snapshot(store)), media_type=CONTENT_TYPE)


@router.get("/healthz", response_model=HealthOut)
def healthz(store: StoreDep) -> dict[str, Any]:
    """200 when the store answers, 503 otherwise (no authentication)."""
    ping(store)
    return {"status": "ok"}
