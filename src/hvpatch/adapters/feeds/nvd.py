"""NVD CVE data -> :class:`~hvpatch.domain.advisories.Vulnerability` values, streamed.

Three shapes are recognised from the content, not the file name:

* the NVD CVE API 2.0 envelope, used by the 2.0 yearly feeds and by API pages
  (``{"format": "NVD_CVE", ..., "vulnerabilities": [{"cve": {...}}, ...]}``);
* a single API 2.0 ``cve`` object (a file holding one record: ``id``, ``descriptions``, ...);
* the legacy 1.1 feed (``{"CVE_Items": [{"cve": {"CVE_data_meta": ...}, "impact": ...}]}``).

Both formats give equal values for what they both carry: a 1.1 top-level node with children is
the 2.0 configuration whose nodes are those children; any other 1.1 top-level node is a 2.0
configuration of that single node. Records stream through
:class:`~hvpatch.adapters.feeds.jsonstream.JsonArraySplitter`, so memory does not grow with the
feed.
Any unreadable file, malformed record or missing field raises :class:`FeedError` naming the file,
the record index, its CVE id and byte offset when known.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

from hvpatch.adapters.feeds.jsonstream import JsonArraySplitter
from hvpatch.adapters.feeds.reader import (
    DEFAULT_LIMITS,
    FeedLimits,
    MiB,
    feed_name,
    open_feed,
)
from hvpatch.domain.advisories import (
    AnalysisStatus,
    ConfigNode,
    Configuration,
    CpeMatchRule,
    CvssMetric,
    VendorAffected,
    Vulnerability,
)
from hvpatch.errors import FeedError

API_ARRAY_KEY = "vulnerabilities"
LEGACY_ARRAY_KEY = "CVE_Items"
DEFAULT_MAX_RECORD_BYTES = 64 * MiB

_API_METRIC_KEYS = ("cvssMetricV2", "cvssMetricV30", "cvssMetricV31", "cvssMetricV40")
_STATUS = {
    "Analyzed": AnalysisStatus.ANALYSED,
    "Modified": AnalysisStatus.ANALYSED,
    "Rejected": AnalysisStatus.REJECTED,
}
_NVD_SOURCE = "nvd@nist.gov"
_MAPPING_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_Mapper = Callable[[Any], Vulnerability]


def iter_nvd(
    source: str | os.PathLike[str] | BinaryIO,
    name: str | None = None,
    *,
    limits: FeedLimits = DEFAULT_LIMITS,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Vulnerability]:
    """Yield every CVE of an NVD file (plain, zip or gzip) or binary stream, in file order.

    ``name`` labels errors (default: the path; give one for streams). ``max_record_bytes`` caps
    one record and the envelope around the records: a larger token fails fast with
    :class:`FeedError` instead of filling memory.
    """
    if isinstance(source, str | os.PathLike):
        label = name or feed_name(source)
        with open_feed(source, limits) as stream:
            yield from _iter_stream(stream, label, max_record_bytes)
    else:
        yield from _iter_stream(source, name or "<stream>", max_record_bytes)


def _iter_stream(stream: BinaryIO, name: str, max_record_bytes: int) -> Iterator[Vulnerability]:
    splitter = JsonArraySplitter(
        stream, name, (API_ARRAY_KEY, LEGACY_ARRAY_KEY), max_record_bytes=max_record_bytes
    )
    key = splitter.start()
    if key is None:
        yield _map(_single_record_mapper(splitter.document, name), splitter.document, name, 0, -1)
        return
    mapper: _Mapper = _from_api_item if key == API_ARRAY_KEY else _from_legacy_item
    for record in splitter.records():
        yield _map(mapper, record.value, name, record.index, record.offset)


def _single_record_mapper(doc: Any, name: str) -> _Mapper:
    if isinstance(doc, dict):
        if "id" in doc and "descriptions" in doc:
            return _from_api_cve
        inner = doc.get("cve")
        if isinstance(inner, dict):
            return _from_legacy_item if "CVE_data_meta" in inner else _from_api_item
    raise FeedError(
        f"{name}: not an NVD document: expected an API 2.0 envelope or cve object, "
        "or a 1.1 feed (CVE_Items)"
    )


def _map(mapper: _Mapper, value: Any, name: str, index: int, offset: int) -> Vulnerability:
    try:
        vuln = mapper(value)
    except _MAPPING_ERRORS as exc:
        where = f" at byte {offset}" if offset >= 0 else ""
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FeedError(f"{name}: record #{index} ({_guess_id(value)}){where}: {what}") from exc
    return vuln


def _guess_id(value: Any) -> str:
    try:
        cve = value.get("cve", value)
        return str(cve.get("id") or cve["CVE_data_meta"]["ID"])
    except (AttributeError, KeyError, TypeError):
        return "id unknown"


# --- shared helpers ----------------------------------------------------------------------------


def _when(text: str | None) -> datetime | None:
    """NVD timestamps are UTC; 2.0 writes them without an offset, 1.1 with ``Z``."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _english(entries: Iterable[dict[str, Any]]) -> str:
    first = ""
    for entry in entries:
        if entry.get("lang", "en") in ("en", "en-US"):
            return str(entry["value"])
        first = first or str(entry.get("value", ""))
    return first


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _cwe_key(cwe: str) -> tuple[int, str]:
    number = cwe.removeprefix("CWE-")
    return (int(number), "") if number.isdigit() else (1 << 30, cwe)


def _cwes(values: Iterable[str]) -> tuple[str, ...]:
    """CWE ids as a set in canonical order (numeric, then ``NVD-CWE-*``): feeds list them in
    no meaningful order, and 2.0 and 1.1 order the same ids differently."""
    return tuple(sorted(set(values), key=_cwe_key))


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be true or false, got {value!r}")
    return value


def _status(vuln_status: str | None, configured: bool) -> AnalysisStatus:
    status = _STATUS.get(vuln_status or "")
    if status is not None:
        return status
    return AnalysisStatus.ANALYSED if configured else AnalysisStatus.UNANALYSED


def _rule(match: dict[str, Any], criteria_key: str) -> CpeMatchRule:
    return CpeMatchRule(
        _text(match[criteria_key], criteria_key),
        _flag(match["vulnerable"], "vulnerable"),
        match.get("versionStartIncluding"),
        match.get("versionStartExcluding"),
        match.get("versionEndIncluding"),
        match.get("versionEndExcluding"),
    )


# --- NVD CVE API 2.0 ---------------------------------------------------------------------------


def _from_api_item(item: dict[str, Any]) -> Vulnerability:
    return _from_api_cve(item["cve"])


def _from_api_cve(cve: dict[str, Any]) -> Vulnerability:
    metrics = cve.get("metrics") or {}
    configurations = tuple(_api_configuration(c) for c in cve.get("configurations") or ())
    return Vulnerability(
        cve_id=_text(cve["id"], "id"),
        published=_when(cve.get("published")),
        last_modified=_when(cve.get("lastModified")),
        description=_english(cve.get("descriptions") or ()),
        status=_status(cve.get("vulnStatus"), bool(configurations)),
        source=cve.get("sourceIdentifier") or "",
        cvss=tuple(_api_cvss(metrics)),
        cwes=_api_cwes(cve.get("weaknesses") or ()),
        references=_unique(_text(r["url"], "url") for r in cve.get("references") or ()),
        configurations=configurations,
        vendor_affected=tuple(_api_affected(cve.get("affected") or ())),
        cisa_exploit_add=_day(cve.get("cisaExploitAdd")),
        cisa_action_due=_day(cve.get("cisaActionDue")),
        cisa_required_action=cve.get("cisaRequiredAction") or "",
        ssvc=_api_ssvc(metrics.get("ssvcV203") or ()),
    )


def _api_cvss(metrics: dict[str, Any]) -> Iterator[CvssMetric]:
    for key in _API_METRIC_KEYS:
        for metric in metrics.get(key) or ():
            data = metric["cvssData"]
            yield CvssMetric(
                version=_text(data["version"], "cvssData.version"),
                vector=_text(data["vectorString"], "vectorString"),
                base_score=float(data["baseScore"]),
                severity=data.get("baseSeverity") or metric.get("baseSeverity") or "",
                source=metric.get("source", ""),
                primary=metric.get("type", "Primary") == "Primary",
            )


def _api_cwes(weaknesses: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return _cwes(
        _text(d["value"], "weakness")
        for w in weaknesses
        for d in w["description"]
        if d.get("lang", "en") == "en"
    )


def _api_configuration(config: dict[str, Any]) -> Configuration:
    return Configuration(
        operator=config.get("operator") or "OR",
        negate=bool(config.get("negate", False)),
        nodes=tuple(
            ConfigNode(
                operator=_text(node["operator"], "operator"),
                negate=bool(node.get("negate", False)),
                matches=tuple(_rule(m, "criteria") for m in node["cpeMatch"]),
            )
            for node in config["nodes"]
        ),
    )


def _api_affected(blocks: Iterable[dict[str, Any]]) -> Iterator[VendorAffected]:
    """CNA/ADP ``affected`` data; ``product`` falls back to ``packageName`` when absent."""
    for block in blocks:
        for entry in block["affectedData"]:
            yield VendorAffected(
                package_name=entry.get("packageName") or "",
                cpes=tuple(entry.get("cpes") or ()),
                source=block.get("source") or "",
                vendor=entry.get("vendor") or "",
                product=entry.get("product") or entry.get("packageName") or "",
                versions=tuple(
                    (
                        _text(v["status"], "status"),
                        _text(v["version"], "version"),
                        v.get("lessThan"),
                        v.get("lessThanOrEqual"),
                        v.get("versionType"),
                    )
                    for v in entry.get("versions") or ()
                ),
                default_status=entry.get("defaultStatus") or "",
            )


def _api_ssvc(entries: Iterable[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    pairs: dict[tuple[str, str], None] = {}
    for entry in entries:
        for option in entry["ssvcData"]["options"]:
            for decision, value in option.items():
                pairs[(_text(decision, "ssvc option"), _text(value, "ssvc value"))] = None
    return tuple(pairs)


# --- legacy 1.1 feed ---------------------------------------------------------------------------


def _from_legacy_item(item: dict[str, Any]) -> Vulnerability:
    cve = item["cve"]
    description = _english(cve["description"]["description_data"])
    configurations = tuple(
        _legacy_configuration(n) for n in (item.get("configurations") or {}).get("nodes") or ()
    )
    if description.startswith("** REJECT **"):
        status = AnalysisStatus.REJECTED
    else:
        status = _status(None, bool(configurations))
    return Vulnerability(
        cve_id=_text(cve["CVE_data_meta"]["ID"], "CVE_data_meta.ID"),
        published=_when(item.get("publishedDate")),
        last_modified=_when(item.get("lastModifiedDate")),
        description=description,
        status=status,
        source=cve["CVE_data_meta"].get("ASSIGNER") or "",
        cvss=tuple(_legacy_cvss(item.get("impact") or {})),
        cwes=_cwes(
            _text(d["value"], "problemtype")
            for p in (cve.get("problemtype") or {}).get("problemtype_data") or ()
            for d in p["description"]
            if d.get("lang", "en") == "en"
        ),
        references=_unique(
            _text(r["url"], "url")
            for r in (cve.get("references") or {}).get("reference_data") or ()
        ),
        configurations=configurations,
    )


def _legacy_cvss(impact: dict[str, Any]) -> Iterator[CvssMetric]:
    """1.1 carries NVD's own scores only, so they are the primary ones from nvd@nist.gov."""
    v2 = impact.get("baseMetricV2")
    if v2:
        data = v2["cvssV2"]
        yield CvssMetric(
            _text(data["version"], "cvssV2.version"),
            _text(data["vectorString"], "vectorString"),
            float(data["baseScore"]),
            v2.get("severity") or "",
            _NVD_SOURCE,
            True,
        )
    v3 = impact.get("baseMetricV3")
    if v3:
        data = v3["cvssV3"]
        yield CvssMetric(
            _text(data["version"], "cvssV3.version"),
            _text(data["vectorString"], "vectorString"),
            float(data["baseScore"]),
            data.get("baseSeverity") or "",
            _NVD_SOURCE,
            True,
        )


def _legacy_node(node: dict[str, Any]) -> ConfigNode:
    return ConfigNode(
        operator=_text(node["operator"], "operator"),
        negate=bool(node.get("negate", False)),
        matches=tuple(_rule(m, "cpe23Uri") for m in node.get("cpe_match") or ()),
        children=tuple(_legacy_node(c) for c in node.get("children") or ()),
    )


def _legacy_configuration(node: dict[str, Any]) -> Configuration:
    """A 1.1 top-level node as the 2.0 configuration NVD converted it into."""
    children = node.get("children") or ()
    if children and not node.get("cpe_match"):
        return Configuration(
            operator=_text(node["operator"], "operator"),
            negate=bool(node.get("negate", False)),
            nodes=tuple(_legacy_node(c) for c in children),
        )
    return Configuration(operator="OR", negate=False, nodes=(_legacy_node(node),))
