"""The advisory index: every record compiled once, keyed the ways matching looks things up.

Built from the stored vulnerabilities, distribution fix records and the KEV catalog. NVD
configurations are compiled into :mod:`hvpatch.domain.cpe` values (criteria parsed once), records
are indexed by the (vendor, product) of their criteria and by the component their vendor data or
KEV entry names, and fix records by package family. Records whose data cannot be compiled are
listed in ``skipped`` with the reason instead of failing the whole run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date

from hvpatch.domain.advisories import (
    ConfigNode,
    FixStatus,
    KevEntry,
    PackageFix,
    VendorAffected,
    Vulnerability,
)
from hvpatch.domain.advisories import Configuration as RawConfiguration
from hvpatch.domain.cpe import (
    ConfigResult,
    Configuration,
    Cpe,
    CpeMatchCriterion,
    Node,
    parse_cpe,
)
from hvpatch.domain.matching.esxi import EsxiFix, esxi_fixes
from hvpatch.domain.matching.platform import normalise_distro, package_family
from hvpatch.domain.versions import WindowsBuild
from hvpatch.errors import InputError, VersionParseError

_RHEL = re.compile(r"(?i)red hat enterprise linux (\d+)")


def component_alias(vendor: str, product: str) -> str | None:
    """The hvpatch component a vendor's or KEV's product name stands for, if any."""
    v, p = vendor.strip().lower(), product.strip().lower()
    if "esxi" in p:
        return "esxi"
    if "hyper-v" in p or p.startswith("windows server"):
        return "windows"
    if "libvirt" in p:
        return "libvirt"
    if "qemu" in p:
        return "qemu"
    if "xcp-ng" in p:
        return "xcp-ng"
    if "xenserver" in p or "citrix hypervisor" in p:
        return "xenserver"
    if p == "xen" or v in ("xen", "xen project"):
        return "xen"
    if "proxmox" in p or v == "proxmox":
        return "proxmox_ve"
    if p == "ahv" or "acropolis hypervisor" in p:
        return "ahv"
    return None


def _node(n: ConfigNode) -> Node:
    return Node(
        "AND" if n.operator.upper() == "AND" else "OR",
        n.negate,
        tuple(CpeMatchCriterion(parse_cpe(m.criteria), m.vulnerable, m.version_start_including,
                                m.version_start_excluding, m.version_end_including,
                                m.version_end_excluding) for m in n.matches),
        tuple(_node(c) for c in n.children),
    )


def _redhat_fixes(v: Vulnerability) -> list[PackageFix]:
    """Red Hat's CNA blocks: ``unaffected`` from a version on, per RHEL release and package."""
    out = []
    for block in v.vendor_affected:
        m = _RHEL.search(block.product)
        if not m or not block.package_name or block.vendor.lower() != "red hat":
            continue
        for status, version, less_than, _lte, vtype in block.versions:
            if status == "unaffected" and less_than == "*" and vtype == "rpm":
                out.append(PackageFix("nvd-cna", v.cve_id, f"rhel-{m.group(1)}",
                                      block.package_name, "rpm", (v.cve_id,), FixStatus.FIXED,
                                      version.strip(), title=block.product))
    return out


def _windows_fixes(configs: tuple[Configuration, ...]) -> set[tuple[str, WindowsBuild]]:
    """(product, first fixed build) of every Windows Server build range in ``configs``."""
    out: set[tuple[str, WindowsBuild]] = set()

    def walk(n: Node) -> None:
        for m in n.matches:
            product = m.criteria.product
            if (m.version_end_excluding and isinstance(product, str)
                    and product.startswith("windows_server")):
                with suppress(VersionParseError):
                    out.add((product, WindowsBuild.parse(m.version_end_excluding)))
        for child in n.children:
            walk(child)

    for c in configs:
        for n in c.nodes:
            walk(n)
    return out


def _newer(a: Vulnerability, b: Vulnerability) -> bool:
    """Whether ``a`` is a strictly newer version of the record than ``b``."""
    if a.last_modified is None or b.last_modified is None:
        return False
    return a.last_modified.replace(tzinfo=None) > b.last_modified.replace(tzinfo=None)


def _products(configs: tuple[Configuration, ...]) -> tuple[tuple[str, str], ...]:
    """The literal (vendor, product) pairs of every criterion, once each: the candidate keys."""
    out: dict[tuple[str, str], None] = {}

    def walk(n: Node) -> None:
        for m in n.matches:
            vendor, product = m.criteria.vendor, m.criteria.product
            if isinstance(vendor, str) and isinstance(product, str):
                out[(vendor, product)] = None
        for child in n.children:
            walk(child)

    for c in configs:
        for n in c.nodes:
            walk(n)
    return tuple(out)


def _vulnerable_products(config: Configuration) -> frozenset[tuple[str, str]] | None:
    out: set[tuple[str, str]] = set()
    wild = False

    def walk(n: Node) -> None:
        nonlocal wild
        for m in n.matches:
            if m.vulnerable:
                vendor, product = m.criteria.vendor, m.criteria.product
                if m.criteria.text("vendor") == vendor and m.criteria.text("product") == product:
                    out.add((vendor, product))
                else:
                    wild = True
        for child in n.children:
            walk(child)

    for n in config.nodes:
        walk(n)
    return None if wild else frozenset(out)


def _distinct_names(config: Configuration) -> tuple[Cpe, ...]:
    seen: dict[tuple[object, object], Cpe] = {}

    def walk(n: Node) -> None:
        for m in n.matches:
            seen.setdefault((m.criteria.vendor, m.criteria.product), m.criteria)
        for child in n.children:
            walk(child)

    for n in config.nodes:
        walk(n)
    return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class CompiledVuln:
    """A vulnerability with its configurations compiled and its vendor data pre-read."""

    vuln: Vulnerability
    configs: tuple[Configuration, ...]
    esxi: tuple[EsxiFix, ...]
    vendor_components: frozenset[str]


@dataclass
class AdvisoryIndex:
    """Lookup structures over every advisory record; see the module docstring."""

    vulns: dict[str, CompiledVuln] = field(default_factory=dict)
    by_product: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    by_component: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    fixes: dict[str, list[PackageFix]] = field(default_factory=lambda: defaultdict(list))
    fix_cves: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    kev: dict[str, KevEntry] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    windows_builds: dict[str, list[tuple[WindowsBuild, date, str]]] = field(
        default_factory=lambda: defaultdict(list))
    _compiled: dict[RawConfiguration, Configuration] = field(default_factory=dict, repr=False)
    # keyed by the identity of interned values (compiled configurations and tuples of them)
    _config_sets: dict[tuple[int, ...], tuple[Configuration, ...]] = field(
        default_factory=dict, repr=False, compare=False)
    _set_keys: dict[int, tuple[tuple[tuple[str, str], ...],
                               tuple[tuple[str, WindowsBuild], ...]]] = field(
        default_factory=dict, repr=False, compare=False)
    _names: dict[int, tuple[Cpe, ...]] = field(default_factory=dict, repr=False, compare=False)
    _vulnerable: dict[int, frozenset[tuple[str, str]] | None] = field(
        default_factory=dict, repr=False, compare=False)
    _cpe_numbers: dict[Cpe, int] = field(default_factory=dict, repr=False, compare=False)
    evaluations: dict[tuple[object, ...], ConfigResult] = field(
        default_factory=dict, repr=False, compare=False)
    """Evaluations shared by the software records matched against this index (see
    :meth:`names_seen_by`); filled by the matching engine, and safe to clear."""

    @classmethod
    def build(cls, vulns: Iterable[Vulnerability], fixes: Iterable[PackageFix] = (),
              kev: Iterable[KevEntry] = ()) -> AdvisoryIndex:
        """Index everything given."""
        index = cls()
        for k in kev:
            index.kev[k.cve_id] = k
            alias = component_alias(k.vendor_project, k.product)
            if alias:
                index.by_component[alias].add(k.cve_id)
        for f in fixes:
            index.add_fix(f)
        for v in vulns:
            index.add(v)
        return index

    def add_fix(self, fix: PackageFix) -> None:
        """Index one distribution fix record under its package family."""
        family = package_family(fix.package)
        if family is None:
            return
        normalised = PackageFix(fix.source, fix.advisory_id, normalise_distro(fix.distro),
                                fix.package, fix.scheme, fix.cves, fix.status, fix.fixed,
                                fix.introduced, fix.published, fix.title, fix.url)
        self.fixes[family].append(normalised)
        self.fix_cves[family].update(fix.cves)

    def add(self, v: Vulnerability) -> None:
        """Compile and index one vulnerability.

        Of two records with one CVE id the newer (by ``last_modified``) is kept, whatever the
        order they come in; the index entries of the older stay, which only widens the
        candidate pre-filter.
        """
        old = self.vulns.get(v.cve_id)
        if old is not None and _newer(old.vuln, v):
            return
        try:
            configs = tuple(self._compile(c) for c in v.configurations)
        except InputError as exc:
            self.skipped.append((v.cve_id, str(exc).splitlines()[0]))
            configs = ()
        # records with equal configurations share one tuple: matching memoises by its identity,
        # and what the index reads from it is read once
        configs = self._config_sets.setdefault(tuple(map(id, configs)), configs)
        keys = self._set_keys.get(id(configs))
        if keys is None:
            keys = (_products(configs), tuple(_windows_fixes(configs)))
            self._set_keys[id(configs)] = keys
        products, windows = keys
        components = frozenset(
            a for a in (component_alias(b.vendor, b.product or b.package_name)
                        for b in v.vendor_affected) if a)
        self.vulns[v.cve_id] = CompiledVuln(v, configs, tuple(esxi_fixes(v.vendor_affected)),
                                            components)
        for key in products:
            self.by_product[key].add(v.cve_id)
        if v.published is not None:
            for product, build in windows:
                self.windows_builds[product].append((build, v.published.date(), v.cve_id))
        for comp in components:
            self.by_component[comp].add(v.cve_id)
        for fix in _redhat_fixes(v):
            self.add_fix(fix)

    def _compile(self, raw: RawConfiguration) -> Configuration:
        """Compile a configuration once: records that share one (a CVE and its re-issues,
        replicated corpora) share the compiled value, so evaluations can be memoised by it."""
        done = self._compiled.get(raw)
        if done is None:
            done = Configuration("AND" if raw.operator.upper() == "AND" else "OR", raw.negate,
                                 tuple(_node(n) for n in raw.nodes))
            self._compiled[raw] = done
            self._names[id(done)] = _distinct_names(done)
            self._vulnerable[id(done)] = _vulnerable_products(done)
        return done

    def vulnerable_products(self, config: Configuration) -> frozenset[tuple[str, str]] | None:
        """The (vendor, product) pairs of a compiled ``config``'s vulnerable criteria; None when
        one of them names no literal vendor or product (it could match anything) or when this
        index did not compile ``config``."""
        return self._vulnerable.get(id(config))

    def cpe_number(self, cpe: Cpe) -> int:
        """A number for ``cpe``, the same for equal names: a cheap key for shared evaluations."""
        return self._cpe_numbers.setdefault(cpe, len(self._cpe_numbers))

    def names_seen_by(self, config: Configuration) -> tuple[Cpe, ...] | None:
        """One criterion name per distinct (vendor, product) that a compiled ``config`` names.

        Which of a platform's names a configuration can match depends only on these (see
        :meth:`hvpatch.domain.cpe.Platform.candidates`), so two platforms that offer it the same
        names get the same evaluation. None for a configuration this index did not compile.
        """
        return self._names.get(id(config))


def vendor_blocks(v: Vulnerability, component: str) -> list[VendorAffected]:
    """The vendor ``affected`` blocks of ``v`` that name ``component``."""
    return [b for b in v.vendor_affected
            if component_alias(b.vendor, b.product or b.package_name) == component]
