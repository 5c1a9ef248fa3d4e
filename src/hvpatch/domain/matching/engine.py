"""Matching: which vulnerabilities affect which component of which host, and why.

For one software record (hosts with identical software share the work) every candidate
vulnerability gets a :class:`Verdict` per component: affected or not, with a confidence, the
fixed-in version when known, and the evidence chain a person can audit. The order of preference:

1. vendor data with fixed builds (VMware's ``affected`` blocks for ESXi), high confidence;
2. distribution data for components that come from distribution packages (OSV, CSAF, Debian
   changelogs, Red Hat's CNA blocks): backported fixes are recognised;
3. NVD configurations: exact for ESXi update levels, Windows build ranges and vendor products;
   *low* confidence for upstream ranges applied to distribution packages, and for Windows
   records that list a product without any build range;
4. records NVD has not analysed yet: only where vendor data or the KEV entry names the product,
   at low confidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hvpatch.domain.cpe import (
    ConfigResult,
    Configuration,
    Cpe,
    MatchEvidence,
    Node,
    Platform,
    VersionCompare,
    compare_dotted,
    evaluate,
)
from hvpatch.domain.fleet import Fleet
from hvpatch.domain.matching.distro import Confidence, DistroVerdict, decide, distro_match
from hvpatch.domain.matching.esxi import (
    esxi_compare,
    esxi_verdict,
    gap_between_levels,
    listed_levels,
)
from hvpatch.domain.matching.index import AdvisoryIndex, CompiledVuln
from hvpatch.domain.matching.platform import (
    Target,
    host_distro,
    host_packages,
    source_package,
    targets,
)
from hvpatch.domain.software import EsxiSoftware, Software
from hvpatch.domain.versions import EsxiBuild, WindowsBuild


@dataclass(frozen=True, slots=True)
class Evidence:
    """One link of the chain: which source, which rule, which comparison."""

    source: str
    rule: str
    comparison: str

    def __str__(self) -> str:
        return f"[{self.source}] {self.rule}: {self.comparison}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one vulnerability affects one component of a software record, and why."""

    cve_id: str
    component: str
    installed: str
    affected: bool
    confidence: Confidence
    source: str
    fixed_in: str | None
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """An affected verdict on a named host."""

    host: str
    verdict: Verdict


def _fixed_in(e: MatchEvidence) -> str | None:
    c = e.criterion
    if c.version_end_excluding:
        return c.version_end_excluding
    if c.version_end_including:
        return f"> {c.version_end_including}"
    return None


def _buildless_windows(t: Target, e: MatchEvidence) -> bool:
    """A Windows match that says nothing about builds (``windows_server_2016:*`` or ``:-``).

    Older NVD records name the product for every build; whether this host's cumulative update
    contains the fix cannot be told from them, so such a match is kept at low confidence.
    """
    if t.legacy_windows:
        return True
    c = e.criterion
    return t.component == "windows" and not c.has_range and c.criteria.text("version") is None


class _Software:
    """Per-software matching state: targets, platform, packages, distribution."""

    def __init__(self, software: Software) -> None:
        self.software = software
        self.targets = targets(software)
        self.by_cpe = {t.cpe: t for t in self.targets}
        self.platform = Platform(tuple(t.cpe for t in self.targets))
        self.distro = host_distro(software)
        self.packages = host_packages(software)
        self.components = {t.component: t for t in self.targets if not t.context}
        release = None
        self.compare: VersionCompare = compare_dotted
        if isinstance(software, EsxiSoftware):
            build = EsxiBuild.parse(software.build)
            release = build.release
            if release is not None:
                major, minor = (int(x) for x in release.version.split(".")[:2])
                versions = frozenset(str(t.cpe.version) for t in self.targets
                                     if t.component == "esxi")
                self.compare = esxi_compare(versions, (major, minor), build.build)
        self.esxi_release = release
        self._results: dict[int, ConfigResult] = {}

    def evaluate(self, config: Configuration) -> ConfigResult:
        """Evaluate one compiled configuration against this software, memoised by identity."""
        key = id(config)
        result = self._results.get(key)
        if result is None:
            result = evaluate(config, self.platform, self.compare)
            self._results[key] = result
        return result


def _distro(state: _Software, index: AdvisoryIndex, family: str, cve: str,
            ) -> tuple[str, str, DistroVerdict] | None:
    """Distribution verdict for the host package of ``family`` and ``cve`` (package, version)."""
    for fam, package, version, scheme in state.packages:
        if fam != family:
            continue
        applicable = []
        source = source_package(package)
        for fix in index.fixes.get(family, ()):
            if cve in fix.cves and source_package(fix.package) == source:
                conf = distro_match(state.distro, fix.distro)
                if conf is not None and fix.scheme == scheme:
                    applicable.append((fix, conf))
        if applicable:
            verdict = decide(applicable, version, scheme)
            if verdict is not None:
                return package, version, verdict
    return None


def _from_distro(cve: str, pkg: str, version: str, dv: DistroVerdict,
                 extra: tuple[Evidence, ...] = ()) -> Verdict:
    ev = Evidence(f"distro:{dv.fix.source}", f"{dv.fix.distro} {dv.fix.package} "
                  f"{dv.fix.advisory_id}", dv.reason)
    return Verdict(cve, pkg, version, dv.affected, dv.confidence, "distro", dv.fixed_in,
                   (ev, *extra))


def _nvd_verdicts(state: _Software, index: AdvisoryIndex, cv: CompiledVuln) -> list[Verdict]:
    results = [state.evaluate(c) for c in cv.configs]
    by_component: dict[str, list[tuple[Target, MatchEvidence]]] = defaultdict(list)
    for r in results:
        if not r.applies:
            continue
        for e in r.vulnerable:
            t = state.by_cpe.get(e.platform_cpe)
            if t is not None and not t.context:
                by_component[t.component].append((t, e))
    out = []
    cve = cv.vuln.cve_id
    for component, hits in by_component.items():
        evidence = tuple(Evidence("nvd-cpe", e.criterion.describe(),
                                  f"host {t.cpe} ({t.installed})") for t, e in hits)
        target = hits[0][0]
        fixed = next((f for f in (_fixed_in(e) for _, e in hits) if f), None)
        if target.upstream_of_package:
            dv = _distro(state, index, component, cve) if state.distro else None
            if dv is not None:
                out.append(_from_distro(cve, dv[0], dv[1], dv[2], evidence))
                continue
            who = (f"no {state.distro} data for {cve}; the distribution" if state.distro
                   else f"no vendor package data for {cve}; the vendor")
            note = Evidence("note", "upstream range on a packaged component",
                            f"{who} may have backported the fix")
            out.append(Verdict(cve, component, target.installed, True, Confidence.LOW,
                               "nvd-cpe", fixed, (*evidence, note)))
            continue
        precise = [h for h in hits if not _buildless_windows(*h)]
        if not precise:
            out.append(_cumulative(index, cv, target, evidence, fixed))
            continue
        conf = Confidence.LOW if target.upstream_of_package else Confidence.HIGH
        out.append(Verdict(cve, component, target.installed, True, conf, "nvd-cpe", fixed,
                           evidence))
    return out


def _cumulative(index: AdvisoryIndex, cv: CompiledVuln, target: Target,
                evidence: tuple[Evidence, ...], fixed: str | None) -> Verdict:
    """Judge a build-less Windows match by what other records say about release dates.

    Windows updates are cumulative and ship on the day their CVEs are published. Records with
    build ranges tell which build fixed what on which day; if the host runs a build at least as
    new as one released on or after this CVE's publication, it has the fix (medium confidence).
    Otherwise the match stands at low confidence.
    """
    cve = cv.vuln.cve_id
    published = cv.vuln.published.date() if cv.vuln.published else None
    installed = WindowsBuild.parse(target.installed)
    if published is not None:
        # build numbers name the product line (20348 is Server 2022), so only fixes of the
        # host's own line say anything about its cumulative updates
        later = [(b, d, c) for builds in index.windows_builds.values() for b, d, c in builds
                 if b.build == installed.build and d >= published and b <= installed]
        if later:
            b, d, c = min(later, key=lambda x: x[0])
            ev = Evidence("cumulative-update", f"{c} was fixed in build {b} on {d}",
                          f"installed {installed} >= {b}, released on or after {cve}'s "
                          f"publication ({published}); cumulative updates include the fix")
            return Verdict(cve, target.component, target.installed, False, Confidence.MEDIUM,
                           "cumulative-update", str(b), (*evidence, ev))
    note = Evidence("note", "NVD lists the product without a build range",
                    "no later build with a known release date is installed, or none is known")
    return Verdict(cve, target.component, target.installed, True, Confidence.LOW, "nvd-cpe",
                   fixed, (*evidence, note))


def _criteria(cv: CompiledVuln) -> Iterator[Cpe]:
    def walk(n: Node) -> Iterator[Cpe]:
        for m in n.matches:
            if m.vulnerable:
                yield m.criteria
        for child in n.children:
            yield from walk(child)

    for c in cv.configs:
        for n in c.nodes:
            yield from walk(n)


def _esxi_gap(state: _Software, cv: CompiledVuln) -> Verdict | None:
    """An ESXi release NVD skipped between two listed levels of its update (medium)."""
    release = state.esxi_release
    if release is None:
        return None
    line = ".".join(release.version.split(".")[:2])
    why = gap_between_levels(release, listed_levels(_criteria(cv), line))
    if why is None:
        return None
    ev = Evidence("nvd-cpe", f"update levels NVD enumerates for ESXi {line}",
                  f"{release.name} ({release.build}): {why}")
    return Verdict(cv.vuln.cve_id, "esxi", str(EsxiBuild(release.build)), True,
                   Confidence.MEDIUM, "nvd-cpe", None, (ev,))


def _esxi_vendor(state: _Software, cv: CompiledVuln) -> Verdict | None:
    release = state.esxi_release
    if release is None or not cv.esxi:
        return None
    result = esxi_verdict(list(cv.esxi), release)
    if result is None:
        return None
    affected, fix, why = result
    ev = Evidence("vendor", f"VMware affected data: {release.version[:3]} lessThan {fix.label}",
                  f"{release.name}: {why}")
    return Verdict(cv.vuln.cve_id, "esxi", str(EsxiBuild(release.build)), affected,
                   Confidence.HIGH, "vendor", fix.label, (ev,))


def _unanalysed(state: _Software, index: AdvisoryIndex, cv: CompiledVuln) -> list[Verdict]:
    cve = cv.vuln.cve_id
    named = set(cv.vendor_components)
    kev = index.kev.get(cve)
    out = []
    for component, target in state.components.items():
        if component not in named and not (kev and component in index.by_component
                                           and cve in index.by_component[component]):
            continue
        if target.upstream_of_package and state.distro:
            dv = _distro(state, index, component, cve)
            if dv is not None:
                out.append(_from_distro(cve, dv[0], dv[1], dv[2]))
                continue
        why = "vendor data" if component in named else f"KEV product {kev.product if kev else ''}"
        ev = Evidence("unanalysed", f"NVD has not analysed {cve} yet",
                      f"{why} names {component}; no version range to compare")
        out.append(Verdict(cve, component, target.installed, True, Confidence.LOW,
                           "unanalysed", None, (ev,)))
    return out


def candidates(state: _Software, index: AdvisoryIndex) -> set[str]:
    """CVE ids whose rules could concern this software."""
    out: set[str] = set()
    for t in state.targets:
        v, p = t.cpe.vendor, t.cpe.product
        if isinstance(v, str) and isinstance(p, str):
            out |= index.by_product.get((v, p), set())
    for component in state.components:
        out |= index.by_component.get(component, set())
    if state.distro:
        for family, *_ in state.packages:
            out |= index.fix_cves.get(family, set())
    return out


def assess_software(software: Software, index: AdvisoryIndex,
                    only: Iterable[str] | None = None) -> list[Verdict]:
    """Every verdict (affected or not) for the candidate CVEs of one software record."""
    state = _Software(software)
    cves = candidates(state, index)
    if only is not None:
        cves &= set(only)
    out: list[Verdict] = []
    for cve in sorted(cves):
        cv = index.vulns.get(cve)
        decided: set[str] = set()
        if cv is not None:
            vendor = _esxi_vendor(state, cv)
            if vendor is not None:
                out.append(vendor)
                decided.add("esxi")
            if cv.configs:
                for v in _nvd_verdicts(state, index, cv):
                    if v.component not in decided:
                        out.append(v)
                        decided.add(v.component)
                if "esxi" in state.components and "esxi" not in decided:
                    gap = _esxi_gap(state, cv)
                    if gap is not None:
                        out.append(gap)
                        decided.add("esxi")
            elif not decided:
                found = _unanalysed(state, index, cv)
                out.extend(found)
                decided.update(v.component for v in found)
        if state.distro:
            for family, package, version, _scheme in state.packages:
                if family in decided or package in decided or cve not in index.fix_cves.get(
                        family, ()):
                    continue
                dv = _distro(state, index, family, cve)
                if dv is not None and dv[0] == package:
                    out.append(_from_distro(cve, package, version, dv[2]))
                    decided.add(family)
    return out


def match_fleet(fleet: Fleet, index: AdvisoryIndex,
                only: Iterable[str] | None = None) -> Iterator[Finding]:
    """Affected verdicts for every host; hosts with identical software share one assessment."""
    only_set = set(only) if only is not None else None
    cache: dict[Software, list[Verdict]] = {}
    for host in fleet.hosts():
        verdicts = cache.get(host.software)
        if verdicts is None:
            verdicts = [v for v in assess_software(host.software, index, only_set) if v.affected]
            cache[host.software] = verdicts
        for v in verdicts:
            yield Finding(host.name, v)
