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

Large corpora stay fast because work is shared: a candidate whose configurations cannot give
this software a verdict is dismissed by one memoised look-up (:func:`_relevant`), records with
equal configurations share that decision, and software records offering a configuration the
same platform names share its evaluation through the index (:meth:`_Software.evaluate`).
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
    first_release_after_levels,
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

    def __init__(self, software: Software, index: AdvisoryIndex | None = None) -> None:
        self.software = software
        self.targets = targets(software)
        self.by_cpe = {t.cpe: t for t in self.targets}
        self.platform = Platform(tuple(t.cpe for t in self.targets))
        self.distro = host_distro(software)
        self.packages = host_packages(software)
        self.components = {t.component: t for t in self.targets if not t.context}
        self.products = {(t.cpe.vendor, t.cpe.product) for t in self.targets if not t.context}
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
        self.yields: dict[int, bool] = {}
        # versions compared the plain dotted way: other software offering a configuration the
        # same names gets the same result, so evaluations are shared through the index
        self._index = index if self.compare is compare_dotted else None
        self._offers: dict[tuple[object, object], tuple[int, ...]] = {}

    def evaluate(self, config: Configuration) -> ConfigResult:
        """Evaluate one compiled configuration against this software, memoised by identity."""
        key = id(config)
        result = self._results.get(key)
        if result is None:
            names = self._index.names_seen_by(config) if self._index is not None else None
            if self._index is None or names is None:
                result = evaluate(config, self.platform, self.compare)
            else:
                result = self._shared(self._index, config, names)
            self._results[key] = result
        return result

    def _shared(self, index: AdvisoryIndex, config: Configuration,
                names: tuple[Cpe, ...]) -> ConfigResult:
        """The evaluation of ``config``, shared with software offering it the same names."""
        key = (id(config), *(self._offered(index, n) for n in names))
        result = index.evaluations.get(key)
        if result is None:
            result = evaluate(config, self.platform, self.compare)
            index.evaluations[key] = result
        return result

    def _offered(self, index: AdvisoryIndex, name: Cpe) -> tuple[int, ...]:
        """The platform names a criterion like ``name`` can match, as the index numbers them
        (which names these are depends only on its vendor and product)."""
        key = (name.vendor, name.product)
        offered = self._offers.get(key)
        if offered is None:
            offered = tuple(index.cpe_number(c) for c in self.platform.candidates(name))
            self._offers[key] = offered
        return offered


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
        if fixed is None and component == "esxi" and state.esxi_release is not None:
            release = state.esxi_release
            line = ".".join(release.version.split(".")[:2])
            after = first_release_after_levels(
                release, listed_levels(_criteria(cv.configs), line))
            if after is not None:
                fixed = str(after.build)
                evidence = (*evidence, Evidence(
                    "inferred-fix", f"first ESXi {line} release after the last level NVD lists",
                    f"{after.name} ({after.build})"))
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


def _criteria(configs: tuple[Configuration, ...]) -> Iterator[Cpe]:
    def walk(n: Node) -> Iterator[Cpe]:
        for m in n.matches:
            if m.vulnerable:
                yield m.criteria
        for child in n.children:
            yield from walk(child)

    for c in configs:
        for n in c.nodes:
            yield from walk(n)


def _gap(state: _Software, configs: tuple[Configuration, ...]) -> str | None:
    """Why this ESXi release is one NVD skipped between two levels ``configs`` list, if it is."""
    release = state.esxi_release
    if release is None:
        return None
    line = ".".join(release.version.split(".")[:2])
    return gap_between_levels(release, listed_levels(_criteria(configs), line))


def _esxi_gap(state: _Software, cv: CompiledVuln) -> Verdict | None:
    """An ESXi release NVD skipped between two listed levels of its update (medium)."""
    release = state.esxi_release
    why = _gap(state, cv.configs)
    if release is None or why is None:
        return None
    line = ".".join(release.version.split(".")[:2])
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


def candidates(state: _Software, index: AdvisoryIndex,
               only: set[str] | None = None) -> set[str]:
    """CVE ids whose rules could concern this software (of ``only``, when given)."""
    sets: list[set[str]] = []
    for t in state.targets:
        v, p = t.cpe.vendor, t.cpe.product
        if isinstance(v, str) and isinstance(p, str):
            sets.append(index.by_product.get((v, p), set()))
    sets += [index.by_component.get(component, set()) for component in state.components]
    if state.distro:
        sets += [index.fix_cves.get(family, set()) for family, *_ in state.packages]
    out: set[str] = set()
    for cves in sets:
        out |= cves if only is None else cves & only
    return out


def _hits(state: _Software, index: AdvisoryIndex, config: Configuration) -> bool:
    """Whether ``config`` applies with a vulnerable match on one of the software's components;
    not evaluated when none of its vulnerable criteria names a component's product."""
    named = index.vulnerable_products(config)
    if named is not None and named.isdisjoint(state.products):
        return False
    r = state.evaluate(config)
    return r.applies and any((t := state.by_cpe.get(e.platform_cpe)) is not None
                             and not t.context for e in r.vulnerable)


def _may_yield(state: _Software, index: AdvisoryIndex,
               configs: tuple[Configuration, ...]) -> bool:
    """Whether NVD configurations can give this software a verdict at all: a vulnerable match
    on one of its components, or (ESXi) an update level NVD skipped between listed ones.

    Memoised by the identity of ``configs``: the index interns configuration tuples, so every
    record with the same configurations is decided by one evaluation.
    """
    key = id(configs)
    known = state.yields.get(key)
    if known is None:
        known = any(_hits(state, index, c) for c in configs)
        if not known and "esxi" in state.components:
            known = _gap(state, configs) is not None
        state.yields[key] = known
    return known


def _relevant(state: _Software, index: AdvisoryIndex, cves: set[str]) -> list[str]:
    """The candidates that can give a verdict, sorted: the others are skipped unexamined.

    A record with NVD configurations, no vendor data for this ESXi release and no distribution
    fix for the host's packages gives a verdict only if :func:`_may_yield`; most candidates of
    a large corpus do not, and are dismissed by one memoised look-up.
    """
    distro: set[str] = set()
    if state.distro:
        for family, *_ in state.packages:
            distro |= index.fix_cves.get(family, set())
    vendor = state.esxi_release is not None
    vulns, known = index.vulns, state.yields
    out = []
    for cve in cves:
        cv = vulns.get(cve)
        if cv is None or not cv.configs or (vendor and cv.esxi) or cve in distro:
            out.append(cve)
            continue
        yields = known.get(id(cv.configs))
        if yields is None:
            yields = _may_yield(state, index, cv.configs)
        if yields:
            out.append(cve)
    out.sort()
    return out


def assess_software(software: Software, index: AdvisoryIndex,
                    only: Iterable[str] | None = None) -> list[Verdict]:
    """Every verdict (affected or not) for the candidate CVEs of one software record."""
    state = _Software(software, index)
    only_set = None if only is None else only if isinstance(only, set) else set(only)
    cves = _relevant(state, index, candidates(state, index, only_set))
    out: list[Verdict] = []
    for cve in cves:
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
