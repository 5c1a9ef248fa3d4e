"""Read an inventory file (YAML, JSON or CSV) into the schema, with file locations in errors.

Every problem is reported as ``FILE:LINE: path: message`` (YAML and JSON) or
``FILE: row N, column C: message`` (CSV), all at once, so a user fixes a file in one go.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hvpatch.adapters.inventory.schema import to_fleet
from hvpatch.domain.fleet import Fleet
from hvpatch.errors import InputError, Problem

try:  # libyaml is much faster on large inventories; PyYAML's pure loader is the fallback
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

FORMATS = ("yaml", "json", "csv")
MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class ParsedInventory:
    """A validated fleet and where it came from."""

    fleet: Fleet
    source: str
    sha256: str


def detect_format(path: Path, explicit: str | None = None) -> str:
    """``yaml``, ``json`` or ``csv`` from ``--format`` or the file extension."""
    if explicit:
        if explicit not in FORMATS:
            raise InputError("unknown format", [Problem("--format", f"{explicit!r} is not one "
                                                        f"of {', '.join(FORMATS)}")])
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("yaml", "yml"):
        return "yaml"
    if suffix in ("json", "csv"):
        return suffix
    raise InputError(
        f"cannot tell the format of {path}",
        [Problem(str(path), "expected a .yaml, .yml, .json or .csv file (or pass --format)")],
    )


def _path_str(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _yaml_locator(text: str) -> Callable[[tuple[Any, ...]], int | None]:
    """Map a document path to the 1-based line of its node (best effort, for messages)."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return lambda _parts: None

    def locate(parts: tuple[Any, ...]) -> int | None:
        node = root
        line = node.start_mark.line + 1 if node is not None else None
        for part in parts:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == part:
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    return locate


def _load_yaml_or_json(path: Path, text: str, fmt: str) -> tuple[Any, Callable[..., str]]:
    try:
        if fmt == "json":
            raw = json.loads(text)
        else:
            raw = yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON",
                         [Problem(f"{path}:{exc.lineno}:{exc.colno}", exc.msg)]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"{path} is not valid YAML",
                         [Problem(at, str(getattr(exc, "problem", exc)))]) from exc
    locator: Callable[[tuple[Any, ...]], int | None] | None = None

    def where(parts: tuple[Any, ...]) -> str:
        nonlocal locator
        if locator is None:
            locator = _yaml_locator(text)  # JSON is YAML for this purpose
        line = locator(parts)
        return f"{path}:{line}: {_path_str(parts)}" if line else f"{path}: {_path_str(parts)}"

    return raw, where


_HOST_COLS = ("cores", "memory_gb", "memory_mb", "exposure", "ring", "cpu_group", "coordinator")
_GUEST_COLS = {
    "guest": "name", "tenant": "tenant", "vcpus": "vcpus", "guest_memory_gb": "memory_gb",
    "guest_memory_mb": "memory_mb", "criticality": "criticality",
    "data_classification": "data_classification", "power_state": "power_state",
    "anti_affinity": "anti_affinity", "migration_block": "migration_block",
    "migration_note": "migration_note",
}
_LIST_FIELDS = {"anti_affinity", "kbs"}


def _csv_value(key: str, value: str) -> Any:
    if key in _LIST_FIELDS:
        return [v.strip() for v in value.split(";") if v.strip()]
    if key == "packages":
        out = []
        for item in value.split(";"):
            if item.strip():
                name, _, version = item.strip().partition("=")
                out.append({"name": name.strip(), "version": version.strip()})
        return out
    if key == "coordinator":
        return value.strip().lower() in ("1", "true", "yes", "y")
    return value.strip()


def _load_csv(path: Path, text: str) -> tuple[Any, Callable[..., str]]:
    """One row per guest (host columns repeated) or per guest-less host; see docs/inventory.md."""
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    for required in ("site", "cluster", "family", "host"):
        if required not in header:
            raise InputError(f"{path} lacks a column", [Problem(f"{path}: header",
                             f"column {required!r} is required (have: {', '.join(header)})")])
    sites: dict[str, dict[str, Any]] = {}
    hosts: dict[str, dict[str, Any]] = {}
    rows_of: dict[tuple[Any, ...], int] = {}
    problems: list[Problem] = []
    for rowno, row in enumerate(reader, start=2):
        if None in row:
            problems.append(Problem(f"{path}: row {rowno}", "more cells than header columns"))
            continue
        site = sites.setdefault(row["site"], {"name": row["site"], "clusters": {}})
        if row.get("timezone"):
            site["timezone"] = row["timezone"]
        cl = site["clusters"].setdefault(row["cluster"], {
            "name": row["cluster"], "family": row["family"], "hosts": []})
        if cl["family"] != row["family"]:
            problems.append(Problem(f"{path}: row {rowno}, column family", f"cluster "
                            f"{row['cluster']!r} was {cl['family']!r} in an earlier row"))
        for col in ("cluster_ring", "memory_overcommit", "cpu_overcommit", "ha_reserve_hosts"):
            if row.get(col):
                cl["ring" if col == "cluster_ring" else col] = row[col]
        host_fields: dict[str, Any] = {k: _csv_value(k, row[k]) for k in _HOST_COLS if row.get(k)}
        software = {k.removeprefix("software."): _csv_value(k.removeprefix("software."), v)
                    for k, v in row.items() if k.startswith("software.") and v}
        host = hosts.get(row["host"])
        if host is None:
            host = {"name": row["host"], **host_fields, "software": software, "guests": []}
            hosts[row["host"]] = host
            cl["hosts"].append(host)
            rows_of[("host", row["host"])] = rowno
        else:
            pairs = [*host_fields.items(), *(("software." + a, b) for a, b in software.items())]
            for k, v in pairs:
                have = host["software"].get(k[9:]) if k.startswith("software.") else host.get(k)
                if have is not None and have != v:
                    problems.append(Problem(f"{path}: row {rowno}, column {k}", f"host "
                                    f"{row['host']!r} has {have!r} in row "
                                    f"{rows_of[('host', row['host'])]}, here {v!r}"))
        if row.get("guest"):
            guest = {dst: _csv_value(dst, row[src]) for src, dst in _GUEST_COLS.items()
                     if row.get(src)}
            host["guests"].append(guest)
            rows_of[("guest", row["guest"])] = rowno
    if problems:
        raise InputError(f"{path} has {len(problems)} problem(s)", problems)
    doc = {"sites": [{**s, "clusters": list(s["clusters"].values())} for s in sites.values()]}
    columns = {**{v: k for k, v in _GUEST_COLS.items()}}

    def where(parts: tuple[Any, ...]) -> str:
        node: Any = doc
        row: int | None = None
        for part in parts:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            if isinstance(node, dict) and "name" in node:
                kind = "guest" if "tenant" in node else "host"
                row = rows_of.get((kind, node["name"]), row)
        field = str(parts[-1]) if parts else ""
        in_guest = "guests" in parts
        col = columns.get(field, field) if in_guest else (
            f"software.{field}" if "software" in parts else field)
        return f"{path}: row {row}, column {col}" if row else f"{path}: {_path_str(parts)}"

    return doc, where


def read_inventory(path: Path, fmt: str | None = None) -> ParsedInventory:
    """Read and validate ``path``; raise :class:`InputError` listing every problem."""
    fmt = detect_format(path, fmt)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"{path} is too large", [Problem(str(path), f"{size} bytes; "
                             f"inventories over {MAX_BYTES} bytes are not supported")])
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}", [Problem(str(path), exc.strerror or str(exc))]) \
            from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text",
                         [Problem(f"{path}: byte {exc.start}", "invalid UTF-8")]) from exc
    if fmt == "csv":
        raw, where = _load_csv(path, text)
    else:
        raw, where = _load_yaml_or_json(path, text, fmt)
    if not isinstance(raw, dict):
        raise InputError(f"{path} is not an inventory",
                         [Problem(str(path), "expected a mapping with 'sites' at the top")])
    fleet, errors = to_fleet(raw)
    if fleet is None:
        raise InputError(f"{path} has {len(errors)} problem(s); nothing was imported",
                         [Problem(where(loc), msg) for loc, msg in errors])
    return ParsedInventory(fleet, str(path), hashlib.sha256(data).hexdigest())
