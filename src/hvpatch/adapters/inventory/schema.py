"""The inventory file schema (YAML, JSON or CSV all map to it) and its conversion to the domain.

The schema is documented for users in ``docs/inventory.md`` with ``examples/inventory.yaml``.
Validation collects every problem with its path (``sites[0].clusters[1].hosts[2].memory_gb``);
the file reader turns paths into file lines or CSV rows.
"""

from __future__ import annotations

from dataclasses import MISSING
from dataclasses import fields as dc_fields
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hvpatch.domain.fleet import (
    DEFAULT_RINGS,
    Cluster,
    Criticality,
    DataClass,
    Exposure,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    MigrationBlock,
    PowerState,
    Ring,
    Site,
    Tenant,
    TenantName,
)
from hvpatch.domain.software import SOFTWARE_BY_FAMILY, Software, software_from_dict
from hvpatch.errors import Problem

Name = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s].*[^\s]$|^[^\s]$")]
Version = Annotated[str, Field(min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _memory_mb(data: Any, what: str) -> Any:
    """Accept ``memory_gb`` (float) or ``memory_mb`` (int); store megabytes."""
    if isinstance(data, dict) and "memory_gb" in data:
        data = dict(data)
        gb = data.pop("memory_gb")
        if "memory_mb" in data:
            raise ValueError(f"give {what} memory as memory_gb or memory_mb, not both")
        try:
            data["memory_mb"] = round(float(gb) * 1024)
        except (TypeError, ValueError):
            raise ValueError(f"memory_gb must be a number, got {gb!r}") from None
    return data


class GuestIn(_Strict):
    name: Name
    tenant: Name
    vcpus: int = Field(gt=0, le=4096)
    memory_mb: int = Field(gt=0, le=64 * 1024 * 1024)
    criticality: Criticality = Criticality.MEDIUM
    data_classification: DataClass = DataClass.INTERNAL
    power_state: PowerState = PowerState.RUNNING
    anti_affinity: tuple[Name, ...] = ()
    migration_block: MigrationBlock | None = None
    migration_note: str = ""

    _mem = model_validator(mode="before")(lambda cls, d: _memory_mb(d, "guest"))


class PackageIn(_Strict):
    name: Name
    version: Version


class HostIn(_Strict):
    name: Name
    cores: int = Field(gt=0, le=4096)
    memory_mb: int = Field(gt=0, le=256 * 1024 * 1024)
    exposure: Exposure = Exposure.INTERNAL
    ring: str = ""
    cpu_group: str = ""
    coordinator: bool = False
    software: dict[str, Any]
    guests: tuple[GuestIn, ...] = ()

    _mem = model_validator(mode="before")(lambda cls, d: _memory_mb(d, "host"))


class ClusterIn(_Strict):
    name: Name
    family: Family
    ring: str = ""
    memory_overcommit: float = Field(default=1.0, ge=0.5, le=4.0)
    cpu_overcommit: float = Field(default=4.0, gt=0, le=64.0)
    ha_reserve_hosts: int = Field(default=1, ge=0, le=64)
    hosts: tuple[HostIn, ...] = ()


class SiteIn(_Strict):
    name: Name
    timezone: str = "UTC"
    clusters: tuple[ClusterIn, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as "
                             "Europe/Berlin)") from None
        return value


class RingIn(_Strict):
    name: Name
    description: str = ""


class TenantIn(_Strict):
    name: Name
    description: str = ""


class InventoryIn(_Strict):
    """The whole document. ``rings`` and ``tenants`` may be plain names."""

    version: int = 1
    rings: tuple[RingIn, ...] | None = None
    tenants: tuple[TenantIn, ...] | None = None
    sites: tuple[SiteIn, ...] = ()

    @field_validator("rings", "tenants", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


def _software_problems(
    family: Family, raw: dict[str, Any]
) -> tuple[Software | None, list[Problem]]:
    cls = SOFTWARE_BY_FAMILY[family.value]
    declared = dc_fields(cls)
    fields = {f.name for f in declared}
    required = {f.name for f in declared if f.default is MISSING and f.default_factory is MISSING}
    problems: list[Problem] = []
    for key in sorted(set(raw) - fields):
        problems.append(Problem(key, f"unknown field for {family.value} software "
                                f"(expected {', '.join(sorted(fields))})"))
    for key in sorted(required - set(raw)):
        problems.append(Problem(key, f"required for {family.value} software"))
    if problems:
        return None, problems
    data = dict(raw)
    for key, value in data.items():
        if key == "packages":
            try:
                pkgs = [PackageIn.model_validate(p) for p in value]
            except (ValidationError, TypeError):
                problems.append(Problem("packages", "expected a list of {name, version}"))
                continue
            data[key] = [p.model_dump() for p in pkgs]
        elif key == "kbs":
            if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
                problems.append(Problem("kbs", "expected a list of KB numbers such as KB5034129"))
        elif key == "coordinator":
            continue
        elif isinstance(value, int | float) and not isinstance(value, bool):
            data[key] = str(value)
        elif not isinstance(value, str):
            problems.append(Problem(key, f"expected text, got {type(value).__name__}"))
    if problems:
        return None, problems
    software = software_from_dict(family.value, data)
    return software, software.problems()


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def to_fleet(raw: Any) -> tuple[Fleet | None, list[tuple[tuple[Any, ...], str]]]:
    """Validate a parsed document. Returns the fleet, or None and every (path, message)."""
    try:
        doc = InventoryIn.model_validate(raw)
    except ValidationError as exc:
        errs = []
        for e in exc.errors(include_url=False):
            loc = tuple(p for p in e["loc"]
                        if not (isinstance(p, str) and p.startswith("function-")))
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] not in ("missing", "extra_forbidden") and "input" in e:
                msg += f" (got {e['input']!r})"[:200]
            errs.append((loc, msg))
        return None, errs
    return _build(doc)


def _build(doc: InventoryIn) -> tuple[Fleet | None, list[tuple[tuple[Any, ...], str]]]:
    errs: list[tuple[tuple[Any, ...], str]] = []
    rings = (
        tuple(Ring(r.name, i, r.description) for i, r in enumerate(doc.rings))
        if doc.rings is not None else DEFAULT_RINGS
    )
    ring_names = {r.name for r in rings}
    if len(ring_names) != len(rings):
        errs.append((("rings",), "ring names must be unique"))
    declared = {t.name for t in doc.tenants} if doc.tenants is not None else None
    seen_hosts: dict[str, tuple[Any, ...]] = {}
    seen_guests: dict[str, tuple[Any, ...]] = {}
    seen_sites: set[str] = set()
    used_tenants: dict[str, None] = {}
    sites: list[Site] = []
    for si, s in enumerate(doc.sites):
        if s.name in seen_sites:
            errs.append((("sites", si, "name"), f"duplicate site {s.name!r}"))
        seen_sites.add(s.name)
        clusters: list[Cluster] = []
        cluster_names: set[str] = set()
        for ci, c in enumerate(s.clusters):
            cpath = ("sites", si, "clusters", ci)
            if c.name in cluster_names:
                errs.append(((*cpath, "name"), f"duplicate cluster {c.name!r} in site {s.name!r}"))
            cluster_names.add(c.name)
            if c.ring and c.ring not in ring_names:
                errs.append(((*cpath, "ring"), f"unknown ring {c.ring!r} (expected one of "
                             f"{', '.join(r.name for r in rings)})"))
            hosts: list[Host] = []
            for hi, h in enumerate(c.hosts):
                hpath = (*cpath, "hosts", hi)
                if h.name in seen_hosts:
                    errs.append(((*hpath, "name"), f"duplicate host {h.name!r} (first at "
                                 f"{_loc(seen_hosts[h.name])})"))
                seen_hosts.setdefault(h.name, hpath)
                if h.ring and h.ring not in ring_names:
                    errs.append(((*hpath, "ring"), f"unknown ring {h.ring!r} (expected one of "
                                 f"{', '.join(r.name for r in rings)})"))
                software, sw_problems = _software_problems(c.family, h.software)
                for p in sw_problems:
                    errs.append(((*hpath, "software", *p.location.replace("[", ".").replace(
                        "]", "").split(".")), p.message))
                guests: list[Guest] = []
                for gi, g in enumerate(h.guests):
                    gpath = (*hpath, "guests", gi)
                    if g.name in seen_guests:
                        errs.append(((*gpath, "name"), f"duplicate guest {g.name!r} (first at "
                                     f"{_loc(seen_guests[g.name])})"))
                    seen_guests.setdefault(g.name, gpath)
                    if declared is not None and g.tenant not in declared:
                        errs.append(((*gpath, "tenant"), f"unknown tenant {g.tenant!r} "
                                     "(declare it under tenants:)"))
                    used_tenants.setdefault(g.tenant)
                    guests.append(Guest(
                        GuestName(g.name), TenantName(g.tenant), g.vcpus, g.memory_mb,
                        g.criticality, g.data_classification, g.power_state,
                        tuple(g.anti_affinity), g.migration_block, g.migration_note,
                    ))
                if software is not None:
                    hosts.append(Host(
                        HostName(h.name), s.name, c.name, software, h.cores, h.memory_mb,
                        h.exposure, h.ring or c.ring, h.cpu_group, h.coordinator, tuple(guests),
                    ))
            clusters.append(Cluster(
                c.name, s.name, c.family, c.ring, c.memory_overcommit, c.cpu_overcommit,
                c.ha_reserve_hosts, tuple(hosts),
            ))
        sites.append(Site(s.name, s.timezone, tuple(clusters)))
    if errs:
        return None, errs
    tenants = (
        tuple(Tenant(TenantName(t.name), t.description) for t in doc.tenants)
        if doc.tenants is not None else tuple(Tenant(TenantName(n)) for n in used_tenants)
    )
    return Fleet(rings, tenants, tuple(sites)), []
