"""Write a fleet as an inventory file (JSON, YAML or CSV): the inverse of reading one.

``fleet_to_document`` gives the document of :mod:`.schema` with every default-valued field left
out, so files stay small (a generated 10,000-host fleet is mostly guests). For JSON and YAML,
``read_inventory`` of a written file gives back an equal fleet. CSV (one row per guest, host
columns repeated) cannot carry tenant descriptions, unused tenants or custom rings; reading one
back gives the same sites, clusters, hosts and guests.

Files are written to a temporary sibling and renamed into place, so a failed write never leaves
half a file behind.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import yaml

from hvpatch.adapters.inventory.file import detect_format
from hvpatch.domain.fleet import (
    DEFAULT_RINGS,
    Cluster,
    Criticality,
    DataClass,
    Exposure,
    Fleet,
    Guest,
    Host,
    PowerState,
    Site,
)
from hvpatch.domain.software import Software, software_to_dict
from hvpatch.errors import InputError, Problem

try:  # libyaml is an order of magnitude faster on large inventories
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

#: Documents with at most this many hosts + guests are written indented (readable); larger
#: ones compact (a 200,000-guest fleet is ~40 % smaller without indentation).
INDENT_LIMIT = 5_000

_CLUSTER_DEFAULTS = {f.name: f.default for f in fields(Cluster)}
_CLUSTER_SETTINGS = ("ring", "memory_overcommit", "cpu_overcommit", "ha_reserve_hosts")


def fleet_to_document(fleet: Fleet) -> dict[str, Any]:
    """The inventory document for ``fleet``, without default-valued fields."""
    doc: dict[str, Any] = {"version": 1}
    if fleet.rings != DEFAULT_RINGS:
        ordered = sorted(fleet.rings, key=lambda r: r.position)
        doc["rings"] = [{"name": r.name, "description": r.description} if r.description
                        else r.name for r in ordered]
    if fleet.tenants:
        doc["tenants"] = [{"name": t.name, "description": t.description} if t.description
                          else t.name for t in fleet.tenants]
    doc["sites"] = [_site(s) for s in fleet.sites]
    return doc


def _site(site: Site) -> dict[str, Any]:
    out: dict[str, Any] = {"name": site.name}
    if site.timezone != "UTC":
        out["timezone"] = site.timezone
    out["clusters"] = [_cluster(c) for c in site.clusters]
    return out


def _cluster(cluster: Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cluster.name, "family": cluster.family.value}
    out.update(_cluster_settings(cluster))
    out["hosts"] = [_host(h, cluster.ring) for h in cluster.hosts]
    return out


def _cluster_settings(cluster: Cluster) -> dict[str, Any]:
    """Ring, overcommit and HA reserve, where they differ from the defaults."""
    return {key: getattr(cluster, key) for key in _CLUSTER_SETTINGS
            if getattr(cluster, key) != _CLUSTER_DEFAULTS[key]}


def _host(host: Host, cluster_ring: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": host.name, "cores": host.cores, "memory_mb": host.memory_mb}
    if host.exposure is not Exposure.INTERNAL:
        out["exposure"] = host.exposure.value
    if host.ring and host.ring != cluster_ring:  # reading fills an empty ring from the cluster
        out["ring"] = host.ring
    if host.cpu_group:
        out["cpu_group"] = host.cpu_group
    if host.coordinator:
        out["coordinator"] = True
    out["software"] = software_document(host.software)
    if host.guests:
        out["guests"] = [_guest(g) for g in host.guests]
    return out


def software_document(software: Software) -> dict[str, Any]:
    """The software record as the schema takes it, without empty optional fields."""
    return {k: v for k, v in software_to_dict(software).items() if v not in ("", [], ())}


def _guest(guest: Guest) -> dict[str, Any]:
    out: dict[str, Any] = {"name": guest.name, "tenant": guest.tenant, "vcpus": guest.vcpus,
                           "memory_mb": guest.memory_mb}
    if guest.criticality is not Criticality.MEDIUM:
        out["criticality"] = guest.criticality.value
    if guest.data_classification is not DataClass.INTERNAL:
        out["data_classification"] = guest.data_classification.value
    if guest.power_state is not PowerState.RUNNING:
        out["power_state"] = guest.power_state.value
    if guest.anti_affinity:
        out["anti_affinity"] = list(guest.anti_affinity)
    if guest.migration_block is not None:
        out["migration_block"] = guest.migration_block.value
    if guest.migration_note:
        out["migration_note"] = guest.migration_note
    return out


def write_inventory(fleet: Fleet, path: Path, fmt: str | None = None) -> None:
    """Write ``fleet`` to ``path`` as JSON, YAML or CSV (``fmt`` or the file extension)."""
    fmt = detect_format(path, fmt)
    if fmt == "csv":
        data = fleet_to_csv(fleet).encode("utf-8")
    else:
        doc = fleet_to_document(fleet)
        if fmt == "json":
            small = sum(len(h.guests) + 1 for h in fleet.hosts()) <= INDENT_LIMIT
            data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if small else 0) + b"\n"
        else:
            data = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                             default_flow_style=False, width=100).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}",
                         [Problem(str(path), exc.strerror or str(exc))]) from exc


# --- CSV ------------------------------------------------------------------------------------------

_FIXED_COLUMNS = (
    "site", "timezone", "cluster", "family", "cluster_ring", "memory_overcommit",
    "cpu_overcommit", "ha_reserve_hosts", "host", "cores", "memory_mb", "exposure", "ring",
    "cpu_group", "coordinator",
)
_GUEST_COLUMNS = (
    "guest", "tenant", "vcpus", "guest_memory_mb", "criticality", "data_classification",
    "power_state", "anti_affinity", "migration_block", "migration_note",
)


def fleet_to_csv(fleet: Fleet) -> str:
    """One row per guest (and one per guest-less host), in the CSV layout the reader takes."""
    software_keys: dict[str, None] = {}
    for host in fleet.hosts():
        software_keys.update(dict.fromkeys(software_document(host.software)))
    columns = [*_FIXED_COLUMNS, *(f"software.{k}" for k in software_keys), *_GUEST_COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for site in fleet.sites:
        for cluster in site.clusters:
            for host in cluster.hosts:
                base = _host_row(site, cluster, host)
                if not host.guests:
                    writer.writerow(base)
                for guest in host.guests:
                    writer.writerow({**base, **_guest_row(guest)})
    return buf.getvalue()


def _host_row(site: Site, cluster: Cluster, host: Host) -> dict[str, Any]:
    settings = _cluster_settings(cluster)
    row: dict[str, Any] = {"site": site.name, "timezone": site.timezone,
                           "cluster": cluster.name, "family": cluster.family.value,
                           "cluster_ring": settings.get("ring", "")}
    for key in _CLUSTER_SETTINGS[1:]:
        row[key] = settings.get(key, "")
    host_doc = _host(host, cluster.ring)
    row["host"] = host.name
    for key in ("cores", "memory_mb", "exposure", "ring", "cpu_group"):
        row[key] = host_doc.get(key, "")
    row["coordinator"] = "true" if host.coordinator else ""
    for key, value in host_doc["software"].items():
        if key == "packages":
            value = ";".join(f"{p['name']}={p['version']}" for p in value)
        elif isinstance(value, list):
            value = ";".join(value)
        row[f"software.{key}"] = value
    return row


def _guest_row(guest: Guest) -> dict[str, Any]:
    doc = _guest(guest)
    row = {"guest": guest.name, "tenant": guest.tenant, "vcpus": guest.vcpus,
           "guest_memory_mb": guest.memory_mb}
    for key in ("criticality", "data_classification", "power_state", "migration_block",
                "migration_note"):
        row[key] = doc.get(key, "")
    row["anti_affinity"] = ";".join(guest.anti_affinity)
    return row
