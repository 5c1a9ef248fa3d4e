"""Campaign plans to JSON-able dicts and back (the ``plans.data`` column and ``plan export``)."""

from __future__ import annotations

from datetime import datetime
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
                "start_offset": w.start_offset, "window": w.window,
                "hosts": [{"host": h.host, "cluster": h.cluster, "current": h.current,
                           "target": h.target, "seconds": dict(h.seconds),
                           "components": [list(c) for c in h.components]} for h in w.hosts],
                "moves": [{"guest": m.guest, "kind": m.kind.value, "source": m.source,
                           "destination": m.destination, "memory_mb": m.memory_mb,
                           "vcpus": m.vcpus, "reason": m.reason} for m in w.moves],
            } for w in r.waves],
        } for r in p.rings],
    }


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
                hosts=tuple(HostStep(h["host"], h["cluster"], h["current"], h["target"],
                                     dict(h["seconds"]),
                                     tuple((c, v) for c, v in h.get("components", ())))
                            for h in w["hosts"]),
                moves=tuple(Move(m["guest"], MoveKind(m["kind"]), m["source"],
                                 m["destination"], m["memory_mb"], m["vcpus"], m["reason"])
                            for m in w["moves"]),
            ) for w in r["waves"]),
        ) for r in d["rings"]),
    )
