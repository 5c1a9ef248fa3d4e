"""Which release each host moves to: the oldest non-withdrawn release fixing every targeted finding.

A campaign targets a set of findings (every finding decided patch-now or patch-through-rings, or
the findings of one advisory; see :func:`select_findings`). :func:`select_targets` groups the
targeted hosts by *product line* and picks one target per line:

* **ESXi** (``esxi 7.0``): the oldest release of the bundled build table that is not withdrawn,
  whose build is at least every fixed build of the line's findings and every host's current
  build (VMware does not support upgrades back in time), and whose update level is at least each
  fix's and each host's (no update downgrade). A fix in withdrawn 7.0 U3 leads to 7.0 U3c.
* **Hyper-V** (``windows-server 2022``): the highest fixed build; any later cumulative update
  contains it.
* **Package-based hosts** (KVM, Proxmox VE, Xen/XCP-ng; ``kvm rocky-9``) and **AHV / generic**
  products: per component (package, upstream QEMU, ...) the highest fixed version.

A finding without a fixed version on its line means there is no fix on that line: its host is
skipped with that reason, unless the user overrides the line's target (``latest`` picks the
newest non-withdrawn ESXi release). Overrides may raise a target, never lower it below a known
fix, never name a withdrawn build. Hosts that need nothing -- no targeted finding, or already at
or above the target -- are skipped with the reason.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from hvpatch.domain.fleet import Fleet, Host
from hvpatch.domain.lifecycle import line_for
from hvpatch.domain.matching.engine import Finding
from hvpatch.domain.planning.model import Skip
from hvpatch.domain.risk.decision import Decision, HostDecision
from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    ProxmoxSoftware,
    XenSoftware,
)
from hvpatch.domain.versions import (
    EsxiBuild,
    EsxiRelease,
    Version,
    WindowsBuild,
    esxi_release,
    esxi_releases,
    parse_version,
)
from hvpatch.errors import InputError, Problem, VersionParseError

__all__ = [
    "TargetChoice",
    "TargetedFinding",
    "is_emergency",
    "product_line",
    "select_findings",
    "select_targets",
]


@dataclass(frozen=True, slots=True)
class TargetedFinding:
    """A finding the campaign is to fix: host, CVE, component, installed and fixed versions."""

    host: str
    cve: str
    component: str
    installed: str
    fixed_in: str | None


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """The target of a product line: what to install, and why this one."""

    line: str
    label: str
    version: str
    reason: str
    #: (component, version) pairs the target requires, e.g. (("esxi", "19193900"),).
    components: tuple[tuple[str, str], ...] = ()


FindingRow = TargetedFinding | tuple[str, str, str, str, str | None]


def select_findings(findings: Iterable[Finding], decisions: Iterable[HostDecision] | None = None,
                    *, include: Iterable[Decision] = (Decision.PATCH_NOW, Decision.THROUGH_RINGS),
                    cves: Iterable[str] | None = None) -> list[TargetedFinding]:
    """The findings a campaign targets.

    With ``decisions``: only hosts whose decision is in ``include``, without findings an
    exception defers. With ``cves``: only those CVEs (one advisory's, for instance).
    """
    wanted = None if cves is None else {c.upper() for c in cves}
    allowed = set(include)
    by_host = None if decisions is None else {d.host: d for d in decisions}
    out = []
    for f in findings:
        v = f.verdict
        if wanted is not None and v.cve_id.upper() not in wanted:
            continue
        if by_host is not None:
            d = by_host.get(f.host)
            if d is None or d.decision not in allowed or any(
                    r.cve == v.cve_id and r.deferred_by is not None for r in d.findings):
                continue
        out.append(TargetedFinding(f.host, v.cve_id, v.component, v.installed, v.fixed_in))
    return out


def is_emergency(decisions: Iterable[HostDecision], hosts: Iterable[str] | None = None) -> bool:
    """Whether any (of the given) hosts is decided patch-now: the campaign is an emergency."""
    names = None if hosts is None else set(hosts)
    return any(d.decision is Decision.PATCH_NOW for d in decisions
               if names is None or d.host in names)


_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)")


def _mm(text: str) -> str:
    m = _MAJOR_MINOR.match(text.strip())
    return f"{m.group(1)}.{m.group(2)}" if m else text.strip()


def product_line(host: Host) -> str | None:
    """The line a host's target is chosen for (``esxi 7.0``, ``kvm rocky-9``), None if unknown."""
    s = host.software
    if isinstance(s, EsxiSoftware):
        try:
            release = EsxiBuild.parse(s.build).release
        except VersionParseError:
            return None
        return None if release is None else f"esxi {release.line}"
    if isinstance(s, HyperVSoftware):
        key = line_for(s)
        if key is not None:
            return " ".join(key)
        b = WindowsBuild.parse(s.build)
        return f"windows-server {b.major}.{b.minor}.{b.build}"
    if isinstance(s, KvmSoftware):
        return f"kvm {s.distro}"
    if isinstance(s, ProxmoxSoftware):
        return f"proxmox-ve {s.pve_manager.split('.')[0]}"
    if isinstance(s, XenSoftware):
        if s.product == "xen":
            return f"xen {_mm(s.xen)}" + (f" {s.distro}" if s.distro else "")
        return f"{s.product} {_mm(s.product_version or s.xen)}"
    if isinstance(s, AhvSoftware):
        return "ahv"
    assert isinstance(s, GenericSoftware)
    return f"{s.vendor}:{s.product}"


# --- resolving one finding into a requirement ------------------------------------------------

_FIX_ID = re.compile(r"(?i)esxi(\d)(\d)(?:u(\d+))?[a-z]*-(\d{5,10})")
_UPDATE = re.compile(r"update_(\d+)")


def _update(release: EsxiRelease | None) -> int:
    m = _UPDATE.search((release.update or "") if release else "")
    return int(m.group(1)) if m else 0


@dataclass(frozen=True, slots=True)
class _Need:
    """What one finding requires: a component at a version (ESXi: a build and update level)."""

    component: str
    version: Version
    update: int = 0


def _esxi_need(f: TargetedFinding, line: str) -> _Need | str:
    line = line.removeprefix("esxi ")
    text = (f.fixed_in or "").strip()
    strict = text.startswith(">")
    text = text.lstrip("> ").strip()
    try:
        build = EsxiBuild.parse(text).build
    except VersionParseError:
        return f"its fixed_in {f.fixed_in!r} names no ESXi build hvpatch knows"
    m = _FIX_ID.search(text)
    release = esxi_release(build)
    fix_line = f"{m.group(1)}.{m.group(2)}" if m else (release.line if release else line)
    if fix_line != line:
        return f"it is fixed in {text} on line {fix_line}, not on {line}"
    update = int(m.group(3)) if m and m.group(3) else _update(release)
    return _Need("esxi", EsxiBuild(build + 1 if strict else build), update)


_UPSTREAM = frozenset({"qemu", "libvirt", "linux_kernel", "xen"})


def _packaged(software: object) -> bool:
    """Whether the host gets QEMU/libvirt/kernel/Xen from distribution packages.

    KVM and Proxmox hosts always do; Xen hosts when they list packages or a distribution
    (XCP-ng and XenServer without a package list are judged by their Xen version).
    """
    if isinstance(software, KvmSoftware | ProxmoxSoftware):
        return True
    return isinstance(software, XenSoftware) and bool(software.packages or software.distro)


def _need(host: Host, f: TargetedFinding, line: str) -> _Need | str:
    """The requirement of a finding, or why it has no usable fix on this line."""
    if not f.fixed_in or not f.fixed_in.strip():
        return f"the advisory names no fixed version on line {line}"
    if isinstance(host.software, EsxiSoftware):
        return _esxi_need(f, line)
    if f.component in _UPSTREAM and _packaged(host.software):
        # an upstream range on a component the host gets from packages: no installable
        # version follows from it (QEMU "8.2.0" is not a qemu-kvm release)
        return (f"only an upstream {f.component} range is known (fixed upstream in "
                f"{f.fixed_in}); no {f.component} package fix for this host is known")
    schemes = {c.name: c.scheme for c in host.software.components()}
    scheme = schemes.get(f.component)
    if scheme is None:
        return f"its component {f.component!r} is not in the host's software record"
    if f.fixed_in.strip().startswith(">"):
        return f"it is only known to be fixed after {f.fixed_in.lstrip('> ')} (no fixed version)"
    try:
        version = parse_version(scheme, f.fixed_in.strip())
    except VersionParseError:
        return f"its fixed_in {f.fixed_in!r} is not a {scheme} version"
    if isinstance(version, WindowsBuild) and isinstance(host.software, HyperVSoftware):
        own = WindowsBuild.parse(host.software.build)
        if (version.major, version.minor, version.build) != (own.major, own.minor, own.build):
            return f"it is fixed in {version}, a build of another Windows release"
    return _Need(f.component, version)


def _installed(host: Host) -> dict[str, Version]:
    out: dict[str, Version] = {}
    for c in host.software.components():
        try:
            out[c.name] = parse_version(c.scheme, c.version)
        except VersionParseError:
            continue
    return out


# --- one line's target -----------------------------------------------------------------------


def _esxi_choice(line: str, needs: Sequence[_Need], hosts: Sequence[Host], cves: str,
                 override: str | None, problems: list[Problem]) -> TargetChoice | None:
    short = line.split()[1]
    current = [EsxiBuild.parse(h.software.build) for h in hosts
               if isinstance(h.software, EsxiSoftware)]
    min_build = max([n.version.coarse_key() for n in needs] + [b.build for b in current],
                    default=0)
    min_update = max([n.update for n in needs] + [_update(b.release) for b in current],
                     default=0)
    fixes_build = max((n.version.coarse_key() for n in needs), default=0)
    fixes_update = max((n.update for n in needs), default=0)
    usable = [r for r in esxi_releases(short) if not r.withdrawn]
    if override is not None:
        loc = f"overrides[{line!r}]"
        if override.strip().lower() in ("latest", "newest"):
            chosen = usable[-1] if usable else None
        else:
            try:
                chosen = esxi_release(EsxiBuild.parse(override).build)
            except VersionParseError as exc:
                problems.append(Problem(loc, str(exc)))
                return None
        if chosen is None or chosen.line != short:
            problems.append(Problem(loc, f"{override!r} is no listed ESXi {short} release"))
            return None
        if chosen.withdrawn:
            problems.append(Problem(loc, f"{chosen.name} ({chosen.build}) was withdrawn by "
                                    "VMware: never a target"))
            return None
        low = [h.name for h, b in zip(hosts, current, strict=True) if chosen.build < b.build]
        if low:
            problems.append(Problem(loc, f"{chosen.name} ({chosen.build}) would take "
                                    f"{', '.join(low)} back in time (older build)"))
            return None
        if chosen.build < fixes_build or _update(chosen) < fixes_update:
            problems.append(Problem(loc, f"{chosen.name} ({chosen.build}) does not fix {cves} "
                                    f"(needs build >= {fixes_build}, update >= {fixes_update})"))
            return None
        why = f"set by override; fixes {cves}" if needs else "set by override"
    else:
        fitting = [r for r in usable if r.build >= min_build and _update(r) >= min_update]
        if not fitting:
            return None
        chosen = fitting[0]
        passed = [r for r in esxi_releases(short) if r.withdrawn
                  and min_build <= r.build < chosen.build]
        why = (f"oldest non-withdrawn ESXi {short} release with build >= {min_build} and update "
               f">= {min_update}, fixing {cves}")
        if passed:
            why += "; passed over withdrawn " + ", ".join(f"{r.name} ({r.build})" for r in passed)
    return TargetChoice(line, f"{chosen.name} ({chosen.build})", str(chosen.build), why,
                        (("esxi", str(chosen.build)),))


def _versions_choice(line: str, needs: Sequence[_Need], hosts: Sequence[Host], cves: str,
                     override: str | None, problems: list[Problem]) -> TargetChoice:
    best: dict[str, Version] = {}
    for n in needs:
        if n.component not in best or best[n.component] < n.version:
            best[n.component] = n.version
    why = f"highest fixed version per component of {cves}"
    if override is not None:
        loc = f"overrides[{line!r}]"
        schemes = {c.name: c.scheme for h in hosts for c in h.software.components()}
        main = hosts[0].software.components()[0].name if isinstance(
            hosts[0].software, HyperVSoftware | AhvSoftware | GenericSoftware) else None
        single = next(iter(best)) if len(best) == 1 else (main if not best else None)
        pairs = [p.split("=", 1) for p in override.split(",")] if "=" in override else (
            [[single, override]] if single else [])
        if not pairs:
            problems.append(Problem(loc, "name the components: 'name=version,name=version'"))
        for name, text in ((p[0].strip(), p[-1].strip()) for p in pairs):
            if name not in schemes:
                problems.append(Problem(loc, f"no host of {line} has a component {name!r}"))
                continue
            try:
                version = parse_version(schemes[name], text)
            except VersionParseError as exc:
                problems.append(Problem(loc, str(exc).splitlines()[0]))
                continue
            if name in best and version < best[name]:
                problems.append(Problem(loc, f"{name} {text} is below the fix {best[name]}"))
                continue
            best[name] = version
        why = f"set by override; fixes {cves}" if needs else "set by override"
    components = tuple(sorted((c, str(v)) for c, v in best.items()))
    first = hosts[0].software
    if isinstance(first, HyperVSoftware) and len(components) == 1:
        build = WindowsBuild.parse(components[0][1])
        label = f"{build.product or 'Windows'} {build} or a later cumulative update"
        return TargetChoice(line, label, str(build), why, components)
    label = ", ".join(f"{c} {v}" for c, v in components)
    text = components[0][1] if len(components) == 1 else ",".join(
        f"{c}={v}" for c, v in components)
    return TargetChoice(line, label, text, why, components)


def _needs_nothing(host: Host, choice: TargetChoice) -> bool:
    have = _installed(host)
    for component, text in choice.components:
        current = have.get(component)
        if current is not None and current < parse_version(current.scheme, text):
            return False
    return True


def _row(item: FindingRow) -> TargetedFinding:
    return item if isinstance(item, TargetedFinding) else TargetedFinding(*item)


def select_targets(fleet: Fleet, findings: Iterable[FindingRow],
                   overrides: Mapping[str, str] | None = None,
                   ) -> tuple[dict[str, TargetChoice], list[Skip]]:
    """Per host the target of its product line, and every other host with why it is skipped.

    ``findings`` are :class:`TargetedFinding` values or ``(host, cve, component, installed,
    fixed_in)`` tuples; findings of hosts not in the fleet are ignored. ``overrides`` maps a
    product line (as :func:`product_line` names it) to a release; a bad override raises
    :class:`InputError` naming it.
    """
    overrides = dict(overrides or {})
    hosts = list(fleet.hosts())
    lines = {h.name: product_line(h) for h in hosts}
    problems = [Problem(f"overrides[{key!r}]", f"no host runs that product line (lines: "
                        f"{', '.join(sorted({v for v in lines.values() if v}))})")
                for key in sorted(overrides) if key not in set(lines.values())]
    by_host: dict[str, list[TargetedFinding]] = defaultdict(list)
    for item in findings:
        f = _row(item)
        if f.host in lines:
            by_host[f.host].append(f)
    skipped: list[Skip] = []
    skip_reason: dict[str, str] = {}
    groups: dict[str, list[tuple[Host, list[_Need]]]] = defaultdict(list)
    # findings with no fix on their line do not block the others: the host is patched for
    # what can be fixed, and the target says which CVEs stay open (mitigate or defer them)
    unfixed: dict[str, set[str]] = defaultdict(set)
    for host in hosts:
        found = sorted(by_host.get(host.name, []), key=lambda f: (f.cve, f.component))
        line = lines[host.name]
        if not found:
            skip_reason[host.name] = "no targeted finding on this host"
            continue
        if line is None:
            skip_reason[host.name] = (f"its product line is unknown ({host.software.label}): no "
                                      "release table to pick a target from")
            continue
        needs, gaps = [], []
        for f in found:
            need = _need(host, f, line)
            if isinstance(need, _Need):
                needs.append(need)
            else:
                gaps.append(f"{f.cve}: {need}")
        if gaps and not needs and line not in overrides:
            skip_reason[host.name] = (f"no fix on line {line} ({'; '.join(gaps)}); override the "
                                      f"line's target to patch it anyway")
            continue
        unfixed[line].update(f.split(":")[0] for f in gaps)
        groups[line].append((host, needs))
    targets: dict[str, TargetChoice] = {}
    for line, members in sorted(groups.items()):
        needs = [n for _, ns in members for n in ns]
        cves = ", ".join(sorted({f.cve for h, _ in members for f in by_host[h.name]}))
        line_hosts = [h for h, _ in members]
        if isinstance(line_hosts[0].software, EsxiSoftware):
            choice = _esxi_choice(line, needs, line_hosts, cves, overrides.get(line), problems)
        else:
            choice = _versions_choice(line, needs, line_hosts, cves, overrides.get(line),
                                      problems)
        if choice is not None and unfixed[line]:
            choice = replace(choice, reason=f"{choice.reason}; no release of {line} fixes "
                             f"{', '.join(sorted(unfixed[line]))}: they stay open (mitigate or "
                             "defer them)")
        for host in line_hosts:
            if choice is None:
                skip_reason[host.name] = (f"no non-withdrawn release of {line} in the bundled "
                                          f"build table fixes {cves} without a downgrade")
            elif _needs_nothing(host, choice):
                skip_reason[host.name] = f"already at or above the target {choice.label}"
            else:
                targets[host.name] = choice
    if problems:
        raise InputError("the target overrides are not valid; nothing was planned", problems)
    skipped = [Skip(h.name, skip_reason[h.name]) for h in hosts if h.name in skip_reason]
    return targets, skipped
