"""Campaign plans to JSON-able dicts and back (the ``plans.data`` column and ``plan export``)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from hvpatch.domain.planning.model import (
    CampaignPlan,
    Gate,
    HostStep,
    Move,
    MoveKind,
    RingPlan,
    Skip,
    Wave,
)
from hvpatch.domain.planning.windows import Blackout, MaintenanceWindow, Monthly, Weekly


def plan_to_dict(p: CampaignPlan) -> dict[str, Any]:
    """The plan as plain data (stable key order, readable as an export)."""
    return {
        "name": p.name, "created": p.created.isoformat(), "emergency": p.emergency,
        "requester": p.requester, "start": p.start.isoformat() if p.start else None,
        "targets": dict(p.targets), "seconds": p.seconds, "findings": p.findings,
        "notes": list(p.notes),
        "skipped": [{"host": s.host, "reason": s.reason} for s in p.skipped],
        "rings": [{
            "ring": r.ring, "position": r.position, "seconds": r.seconds,
            "fits_windows": r.fits_windows, "entry_approval": r.entry_approval,
            "gate": {"regression_suite": r.gate.regression_suite, "soak_hours": r.gate.soak_hours,
                     "max_failures": r.gate.max_failures,
                     "max_failure_percent": r.gate.max_failure_percent,
                     "no_open_incident": r.gate.no_open_incident, "approval": r.gate.approval},
            "waves": [{
                "index": w.index, "cluster": w.cluster, "seconds": w.seconds,
                "start_offset": w.start_offset, "window": w.window, "tenants": list(w.tenants),
                "hosts": [{"host": h.host, "cluster": h.cluster, "current": h.current,
                           "target": h.target, "seconds": dict(h.seconds),
                           "components": [list(c) for c in h.components]} for h in w.hosts],
                "moves": [{"guest": m.guest, "kind": m.kind.value, "source": m.source,
                           "destination": m.destination, "memory_mb": m.memory_mb,
                           "vcpus": m.vcpus, "reason": m.reason} for m in w.moves],
            } for w in r.waves],
        } for r in p.rings],
        "windows": [_window_to_dict(w) for w in p.windows],
        "blackouts": [_blackout_to_dict(b) for b in p.blackouts],
    }


def _blackout_to_dict(b: Blackout) -> dict[str, Any]:
    return {"start": b.start.isoformat(), "end": b.end.isoformat(), "reason": b.reason,
            "cluster": b.cluster, "tenant": b.tenant, "timezone": b.timezone}


def _blackout_from_dict(d: dict[str, Any]) -> Blackout:
    return Blackout(date.fromisoformat(d["start"]), date.fromisoformat(d["end"]),
                    d.get("reason", ""), d.get("cluster", ""), d.get("tenant", ""),
                    d.get("timezone", ""))


def _window_to_dict(w: MaintenanceWindow) -> dict[str, Any]:
    rec = w.recurrence
    recurrence: dict[str, Any] = (
        {"weekly": {"days": list(rec.days), "start": rec.start.isoformat(), "hours": rec.hours}}
        if isinstance(rec, Weekly) else
        {"monthly": {"weekday": rec.weekday, "nth": rec.nth, "start": rec.start.isoformat(),
                     "hours": rec.hours, "offset_days": rec.offset_days}})
    return {**recurrence, "timezone": w.timezone, "cluster": w.cluster, "tenant": w.tenant,
            "name": w.name, "blackouts": [_blackout_to_dict(b) for b in w.blackouts]}


def _window_from_dict(d: dict[str, Any]) -> MaintenanceWindow:
    recurrence: Weekly | Monthly
    if "weekly" in d:
        r = d["weekly"]
        recurrence = Weekly(tuple(r["days"]), time.fromisoformat(r["start"]), r["hours"])
    else:
        r = d["monthly"]
        recurrence = Monthly(r["weekday"], r["nth"], time.fromisoformat(r["start"]), r["hours"],
                             r.get("offset_days", 0))
    return MaintenanceWindow(recurrence, d.get("timezone", "UTC"), d.get("cluster", ""),
                             d.get("tenant", ""),
                             tuple(_blackout_from_dict(b) for b in d.get("blackouts", ())),
                             d.get("name", ""))


def plan_from_dict(d: dict[str, Any]) -> CampaignPlan:
    """Inverse of :func:`plan_to_dict`."""
    return CampaignPlan(
        name=d["name"], created=datetime.fromisoformat(d["created"]), emergency=d["emergency"],
        requester=d.get("requester", ""),
        start=datetime.fromisoformat(d["start"]) if d.get("start") else None,
        targets=dict(d["targets"]), seconds=d["seconds"], findings=d.get("findings", 0),
        notes=tuple(d.get("notes", ())),
        skipped=tuple(Skip(s["host"], s["reason"]) for s in d["skipped"]),
        rings=tuple(RingPlan(
            ring=r["ring"], position=r["position"], seconds=r["seconds"],
            fits_windows=r.get("fits_windows", True), gate=Gate(**r["gate"]),
            entry_approval=r.get("entry_approval", False),
            waves=tuple(Wave(
                index=w["index"], cluster=w["cluster"], seconds=w["seconds"],
                start_offset=w.get("start_offset", 0.0), window=w.get("window", ""),
                tenants=tuple(w.get("tenants", ())),
                hosts=tuple(HostStep(h["host"], h["cluster"], h["current"], h["target"],
                                     dict(h["seconds"]),
                                     tuple((c, v) for c, v in h.get("components", ())))
                            for h in w["hosts"]),
                moves=tuple(Move(m["guest"], MoveKind(m["kind"]), m["source"],
                                 m["destination"], m["memory_mb"], m["vcpus"], m["reason"])
                            for m in w["moves"]),
            ) for w in r["waves"]),
        ) for r in d["rings"]),
        windows=tuple(_window_from_dict(w) for w in d.get("windows", ())),
        blackouts=tuple(_blackout_from_dict(b) for b in d.get("blackouts", ())),
    )
