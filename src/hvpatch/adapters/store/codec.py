"""Vulnerability records to JSON-able dicts and back, for the ``vulnerabilities.data`` column.

The dict form is also what the content hash is computed over, so that a re-import of an unchanged
record is recognised without comparing field by field.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import orjson

from hvpatch.domain.advisories import (
    AnalysisStatus,
    ConfigNode,
    Configuration,
    CpeMatchRule,
    CvssMetric,
    KevEntry,
    VendorAffected,
    Vulnerability,
)


def _rule(m: CpeMatchRule) -> list[Any]:
    return [m.criteria, m.vulnerable, m.version_start_including, m.version_start_excluding,
            m.version_end_including, m.version_end_excluding]


def _node(n: ConfigNode) -> dict[str, Any]:
    out: dict[str, Any] = {"op": n.operator, "neg": n.negate, "m": [_rule(m) for m in n.matches]}
    if n.children:
        out["c"] = [_node(c) for c in n.children]
    return out


def vuln_to_dict(v: Vulnerability) -> dict[str, Any]:
    """Compact, order-preserving dict of a vulnerability."""
    return {
        "id": v.cve_id,
        "pub": v.published.isoformat() if v.published else None,
        "mod": v.last_modified.isoformat() if v.last_modified else None,
        "desc": v.description,
        "status": v.status.value,
        "src": v.source,
        "cvss": [[m.version, m.vector, m.base_score, m.severity, m.source, m.primary]
                 for m in v.cvss],
        "cwe": list(v.cwes),
        "refs": list(v.references),
        "cfg": [{"op": c.operator, "neg": c.negate, "n": [_node(n) for n in c.nodes]}
                for c in v.configurations],
        "aff": [{"v": a.vendor, "p": a.product, "vs": [list(x) for x in a.versions],
                 "d": a.default_status, "pkg": a.package_name, "cpes": list(a.cpes),
                 "s": a.source} for a in v.vendor_affected],
        "kev_add": v.cisa_exploit_add.isoformat() if v.cisa_exploit_add else None,
        "kev_due": v.cisa_action_due.isoformat() if v.cisa_action_due else None,
        "kev_action": v.cisa_required_action,
        "ssvc": [list(p) for p in v.ssvc],
    }


def _node_back(d: dict[str, Any]) -> ConfigNode:
    return ConfigNode(d["op"], d["neg"], tuple(CpeMatchRule(*m) for m in d["m"]),
                      tuple(_node_back(c) for c in d.get("c", ())))


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _d(s: str | None) -> date | None:
    return date.fromisoformat(s) if s else None


def vuln_from_dict(d: dict[str, Any]) -> Vulnerability:
    """Inverse of :func:`vuln_to_dict`."""
    return Vulnerability(
        cve_id=d["id"], published=_dt(d["pub"]), last_modified=_dt(d["mod"]),
        description=d["desc"], status=AnalysisStatus(d["status"]), source=d["src"],
        cvss=tuple(CvssMetric(*m) for m in d["cvss"]), cwes=tuple(d["cwe"]),
        references=tuple(d["refs"]),
        configurations=tuple(Configuration(c["op"], c["neg"], tuple(_node_back(n) for n in c["n"]))
                             for c in d["cfg"]),
        vendor_affected=tuple(VendorAffected(a["v"], a["p"], tuple(tuple(x) for x in a["vs"]),
                                             a["d"], a["pkg"], tuple(a["cpes"]), a["s"])
                              for a in d["aff"]),
        cisa_exploit_add=_d(d["kev_add"]), cisa_action_due=_d(d["kev_due"]),
        cisa_required_action=d["kev_action"], ssvc=tuple(tuple(p) for p in d["ssvc"]),
    )


def canonical_json(data: Any) -> bytes:
    """The canonical JSON of ``data`` (UTF-8, compact, keys sorted): what is hashed and stored."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def content_hash(data: Any) -> str:
    """sha256 of the canonical JSON of ``data``."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def encode_vuln(v: Vulnerability) -> tuple[str, str]:
    """(canonical JSON text, content hash) of a vulnerability, serialised once for both.

    The text is what the ``data`` column stores, so the stored bytes hash to the stored hash.
    """
    blob = canonical_json(vuln_to_dict(v))
    return blob.decode(), hashlib.sha256(blob).hexdigest()


def products_of(v: Vulnerability) -> set[tuple[str, str]]:
    """(vendor, product) pairs named by the record's CPE criteria and vendor ``affected`` data."""
    out: set[tuple[str, str]] = set()

    def walk(n: ConfigNode) -> None:
        for m in n.matches:
            parts = m.criteria.split(":", 5)  # cpe:2.3:part:vendor:product:rest
            if len(parts) > 4:
                out.add((parts[3].lower(), parts[4].lower()))
        for c in n.children:
            walk(c)

    for c in v.configurations:
        for n in c.nodes:
            walk(n)
    for a in v.vendor_affected:
        out.add((a.vendor.strip().lower(), (a.product or a.package_name).strip().lower()))
    return out


def kev_from_row(r: Any) -> KevEntry:
    """A stored ``kev_entries`` row as the domain's :class:`KevEntry`."""
    return KevEntry(r.cve_id, r.vendor_project, r.product, r.name, r.date_added, r.due_date,
                    r.required_action, r.known_ransomware, r.notes)
