"""CSAF 2.0 advisories and VEX documents -> :class:`PackageFix` rows.

Reads one CSAF JSON document or a directory tree of them. Each product id that a vulnerability's
``product_status`` names is resolved through the ``product_tree``: a ``relationships`` entry
joins a package product with a platform product; package, version and arch come from the
package's purl, else its ``product_version`` name read as an RPM NEVRA
(``qemu-kvm-17:8.2.0-11.el9_4.x86_64``), else the nearest ``product_name`` branch and the
``product_version`` name; the distro from the purl, else the platform's CPE
(``cpe:/o:redhat:enterprise_linux:9`` -> ``rhel-9``; CIQ's ``rocky_linux_from_ciq[_lts]:9.4`` ->
``rocky-9``, ``centos_linux_bridge:7.9`` -> ``centos-7``), else the platform's or branches'
names ("Rocky Linux 10.2 from CIQ" -> ``rocky-10``). ``advisory_id`` is ``tracking.id``
(``CRLSA-2024:2135``, ``CIQSA-LTS-9-4-2026:0065``, a CVE id for a per-CVE VEX document).
A product with no distro (the OASIS examples: Cisco IOS, "Example Company ABC 4.2") gives a row
with ``distro=""``, ``scheme=""`` and its full product name as ``package``: VEX statements are
kept without passing for distro packages.

Statuses: ``fixed``/``first_fixed`` -> fixed at the product's version; ``known_affected``,
``first_affected``, ``last_affected`` -> known_affected; ``known_not_affected``;
``under_investigation``; ``recommended`` -> fixed, for products listed under no other status.
Only fixed rows carry the product's version, with one rule: a known_affected product named by a
``vendor_fix`` remediation gets as ``fixed`` the lowest version of the same package (or product
line) on the same platform among the fixed products of that remediation, else of the
vulnerability's fixed lists. Products that differ only by arch give one row (if arches disagree
on the version: x86_64, then src, then noarch, then the others); rows are then merged per
(distro, package, status, fixed) with their CVE ids united. Malformed documents raise
:class:`FeedError` naming the file, the document and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hvpatch.adapters.feeds.osv import (
    distro_id,
    iter_json_paths,
    load_json,
    parse_day,
    parse_package_url,
    scheme_of,
    sort_cves,
    split_nevra,
)
from hvpatch.adapters.feeds.reader import DEFAULT_LIMITS, FeedLimits, MiB, feed_name
from hvpatch.domain.advisories import FixStatus, PackageFix
from hvpatch.domain.cpe import parse_cpe
from hvpatch.domain.versions import parse_version
from hvpatch.errors import FeedError, InputError

SOURCE = "csaf"
MAX_DOCUMENT_BYTES = 512 * MiB  # Red Hat kernel advisories reach ~100 MB
_MAX_DEPTH = 64

_STATUS = {
    "fixed": FixStatus.FIXED,
    "first_fixed": FixStatus.FIXED,
    "known_affected": FixStatus.KNOWN_AFFECTED,
    "first_affected": FixStatus.KNOWN_AFFECTED,
    "last_affected": FixStatus.KNOWN_AFFECTED,
    "known_not_affected": FixStatus.KNOWN_NOT_AFFECTED,
    "under_investigation": FixStatus.UNDER_INVESTIGATION,
}
_FIXED_LISTS = ("fixed", "first_fixed")
_ARCH_RANK = {"x86_64": 0, "src": 1, "noarch": 2}
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}")
#: (CPE vendor, product pattern) -> distro family.
_CPE_FAMILIES = (
    ("redhat", re.compile(r"enterprise_linux|rhel"), "rhel"),
    ("rocky", re.compile(r"rocky"), "rocky"),
    ("resf", re.compile(r"rocky"), "rocky"),
    ("ciq", re.compile(r"rocky_linux"), "rocky"),
    ("ciq", re.compile(r"centos"), "centos"),
    ("centos", re.compile(r"centos"), "centos"),
    ("almalinux", re.compile(r"almalinux"), "almalinux"),
    ("oracle", re.compile(r"linux"), "ol"),
    ("debian", re.compile(r"debian_linux"), "debian"),
    ("canonical", re.compile(r"ubuntu_linux"), "ubuntu"),
    ("fedoraproject", re.compile(r"fedora"), "fedora"),
)
#: Distribution names in product names, then the release within 40 non-digits.
_NAME_FAMILIES = tuple(
    (re.compile(rf"{name}\D{{0,40}}?(\d+(?:\.\d+)?)", re.I), family)
    for name, family in (
        ("red hat enterprise linux", "rhel"),
        ("rocky linux", "rocky"),
        ("almalinux", "almalinux"),
        ("centos", "centos"),
        ("oracle linux", "ol"),
        ("debian", "debian"),
        ("ubuntu", "ubuntu"),
    )
)


@dataclass(frozen=True, slots=True)
class _Product:
    """A product of the tree: its name, identification helpers and the branches above it."""

    name: str
    purl: str = ""
    cpe: str = ""
    path: tuple[tuple[str, str], ...] = ()  # (category, name) from the root to the product


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What a product id stands for."""

    distro: str
    package: str
    scheme: str
    version: str | None
    arch: str
    platform: str
    line: str = ""  # what versions of the same thing share: the package or the product name


def iter_csaf(
    path: str | os.PathLike[str], *, limits: FeedLimits = DEFAULT_LIMITS
) -> Iterator[PackageFix]:
    """Yield the package rows of every CSAF document in a file or a directory tree.

    In a directory, JSON objects without a ``document`` member (a provider's
    ``provider-metadata.json``, the CSAF JSON schema) are not advisories and are skipped; a file
    given by name must be a CSAF document.
    """
    walking = os.path.isdir(path)
    for file in iter_json_paths(path):
        name = feed_name(file)
        document = load_json(file, limits, MAX_DOCUMENT_BYTES)
        if walking and isinstance(document, dict) and "document" not in document:
            continue
        where = name
        meta = document.get("document") if isinstance(document, dict) else None
        tracking = meta.get("tracking") if isinstance(meta, dict) else None
        if isinstance(tracking, dict) and isinstance(tracking.get("id"), str):
            where = f"{name}: {tracking['id']}"
        try:
            yield from _document_rows(document)
        except (ValueError, TypeError, KeyError) as exc:
            raise FeedError(f"{where}: {exc}") from exc


def _document_rows(doc: Any) -> list[PackageFix]:
    if not isinstance(doc, dict) or not isinstance(doc.get("document"), dict):
        raise ValueError("not a CSAF document (no 'document' object)")
    meta = doc["document"]
    if not str(meta.get("csaf_version", "")).startswith("2."):
        raise ValueError(f"csaf_version {meta.get('csaf_version')!r} is not 2.x")
    tracking = _obj(meta, "tracking", "document")
    advisory_id = tracking.get("id")
    if not isinstance(advisory_id, str) or not advisory_id:
        raise ValueError("document.tracking.id must be a non-empty string")
    published = parse_day(
        tracking.get("initial_release_date") or tracking.get("current_release_date"),
        "document.tracking.initial_release_date",
    )
    title = meta.get("title") if isinstance(meta.get("title"), str) else ""
    url = _self_url(meta, advisory_id)
    tree = _Tree(doc.get("product_tree") or {})
    rows: dict[tuple[str, str, str, FixStatus, str | None], set[str]] = {}
    for i, vuln in enumerate(_list(doc, "vulnerabilities", "")):
        _vulnerability_rows(vuln, f"vulnerabilities[{i}]", tree, rows)
    return [
        PackageFix(
            source=SOURCE,
            advisory_id=advisory_id,
            distro=distro,
            package=package,
            scheme=scheme,
            cves=sort_cves(cves),
            status=status,
            fixed=fixed,
            published=published,
            title=title.strip(),
            url=url,
        )
        for (distro, package, scheme, status, fixed), cves in rows.items()
    ]


def _vulnerability_rows(
    vuln: Any,
    where: str,
    tree: _Tree,
    rows: dict[tuple[str, str, str, FixStatus, str | None], set[str]],
) -> None:
    if not isinstance(vuln, dict):
        raise ValueError(f"{where}: expected an object")
    cve = vuln.get("cve")
    if cve is not None and (not isinstance(cve, str) or not _CVE.fullmatch(cve)):
        raise ValueError(f"{where}.cve: {cve!r} is not a CVE id")
    cves = {cve} if cve else set()
    statuses = vuln.get("product_status") or {}
    if not isinstance(statuses, dict):
        raise ValueError(f"{where}.product_status: expected an object")
    listed: dict[str, list[str]] = {}
    for key, ids in statuses.items():
        if not isinstance(ids, list) or not all(isinstance(p, str) for p in ids):
            raise ValueError(f"{where}.product_status.{key}: expected a list of product ids")
        listed[key] = ids
    others = {p for key, ids in listed.items() if key != "recommended" for p in ids}
    chosen: list[tuple[FixStatus, str]] = [
        (_STATUS[key], pid) for key, ids in listed.items() if key in _STATUS for pid in ids
    ]
    chosen += [(FixStatus.FIXED, p) for p in listed.get("recommended", []) if p not in others]
    remedied = _vendor_fixes(vuln, where, {p for k in _FIXED_LISTS for p in listed.get(k, [])})
    fixed_pool = [p for k in _FIXED_LISTS for p in listed.get(k, [])]
    # (status, platform, distro, package, scheme) -> {version: best arch rank}
    groups: dict[tuple[FixStatus, str, str, str, str], dict[str | None, int]] = {}
    for status, pid in chosen:
        product = tree.resolve(pid, f"{where}.product_status")
        version = product.version if status is FixStatus.FIXED else None
        if status is FixStatus.KNOWN_AFFECTED and pid in remedied:
            pool = [tree.resolve(p, where) for p in (remedied[pid] or fixed_pool)]
            version = _lowest_fix(product, pool)
        key = (status, product.platform, product.distro, product.package, product.scheme)
        versions = groups.setdefault(key, {})
        rank = _ARCH_RANK.get(product.arch, 3 if not product.arch else 4)
        versions[version] = min(rank, versions.get(version, rank))
    for (status, _platform, distro, package, scheme), versions in groups.items():
        best = min(versions.values())
        for version, rank in versions.items():
            if rank == best:
                rows.setdefault((distro, package, scheme, status, version), set()).update(cves)


def _vendor_fixes(vuln: dict[str, Any], where: str, fixed: set[str]) -> dict[str, list[str]]:
    """Affected product id -> the fixed product ids named by its ``vendor_fix`` remediations."""
    out: dict[str, list[str]] = {}
    for i, rem in enumerate(_list(vuln, "remediations", where)):
        if not isinstance(rem, dict) or rem.get("category") != "vendor_fix":
            continue
        ids = rem.get("product_ids") or []
        if not isinstance(ids, list) or not all(isinstance(p, str) for p in ids):
            raise ValueError(f"{where}.remediations[{i}].product_ids: expected a list of ids")
        fixes = [p for p in ids if p in fixed]
        for pid in ids:
            if pid not in fixed:
                out.setdefault(pid, []).extend(fixes)
    return out


def _lowest_fix(affected: _Resolved, pool: list[_Resolved]) -> str | None:
    """The lowest version of the same package (or product line) on the same platform."""
    line = (affected.platform, affected.distro, affected.line)
    same = [p for p in pool if p.version and (p.platform, p.distro, p.line) == line]
    if not same:
        return None
    versions = sorted({p.version for p in same if p.version})
    if affected.scheme:
        try:
            return min(versions, key=lambda v: parse_version(affected.scheme, v))
        except InputError:
            pass  # a version the scheme refuses: fall back to the arch preference
    return min(same, key=lambda p: _ARCH_RANK.get(p.arch, 4)).version


class _Tree:
    """The product tree, indexed by product id."""

    def __init__(self, tree: Any) -> None:
        if not isinstance(tree, dict):
            raise ValueError("product_tree: expected an object")
        self.products: dict[str, _Product] = {}
        self.relations: dict[str, tuple[str, str, str]] = {}
        self._cache: dict[str, _Resolved] = {}
        for i, full in enumerate(_list(tree, "full_product_names", "product_tree")):
            self._add(full, (), f"product_tree.full_product_names[{i}]")
        self._walk(_list(tree, "branches", "product_tree"))
        for i, rel in enumerate(_list(tree, "relationships", "product_tree")):
            where = f"product_tree.relationships[{i}]"
            if not isinstance(rel, dict):
                raise ValueError(f"{where}: expected an object")
            full = _obj(rel, "full_product_name", where)
            pid, comp, plat = (
                full.get("product_id"),
                rel.get("product_reference"),
                rel.get("relates_to_product_reference"),
            )
            if not all(isinstance(x, str) and x for x in (pid, comp, plat)):
                raise ValueError(f"{where}: product ids must be non-empty strings")
            self.relations[str(pid)] = (str(comp), str(plat), str(full.get("name") or pid))

    def _walk(self, branches: list[Any]) -> None:
        stack: list[tuple[Any, tuple[tuple[str, str], ...], str]] = [
            (b, (), f"product_tree.branches[{i}]") for i, b in enumerate(branches)
        ]
        while stack:
            branch, path, where = stack.pop()
            if not isinstance(branch, dict):
                raise ValueError(f"{where}: expected an object")
            if len(path) >= _MAX_DEPTH:
                raise ValueError(f"{where}: branches nested deeper than {_MAX_DEPTH}")
            here = (*path, (str(branch.get("category", "")), str(branch.get("name", ""))))
            if "product" in branch:
                self._add(branch["product"], here, f"{where}.product")
            for i, child in enumerate(_list(branch, "branches", where)):
                stack.append((child, here, f"{where}.branches[{i}]"))

    def _add(self, product: Any, path: tuple[tuple[str, str], ...], where: str) -> None:
        if not isinstance(product, dict):
            raise ValueError(f"{where}: expected an object")
        pid, name = product.get("product_id"), product.get("name")
        if not isinstance(pid, str) or not pid or not isinstance(name, str):
            raise ValueError(f"{where}: 'product_id' and 'name' must be strings")
        helper = product.get("product_identification_helper") or {}
        if not isinstance(helper, dict):
            raise ValueError(f"{where}.product_identification_helper: expected an object")
        purl, cpe = helper.get("purl") or "", helper.get("cpe") or ""
        if not isinstance(purl, str) or not isinstance(cpe, str):
            raise ValueError(f"{where}.product_identification_helper: purl/cpe must be strings")
        self.products[pid] = _Product(name, purl, cpe, path)

    def resolve(self, pid: str, where: str, depth: int = 0) -> _Resolved:
        """What ``pid`` names; ValueError when the tree does not define it."""
        if pid in self._cache:
            return self._cache[pid]
        if depth > 4:
            raise ValueError(f"{where}: relationships nested too deep (cyclic?) at {pid!r}")
        if pid in self.relations:
            comp_id, plat_id, full_name = self.relations[pid]
            if comp_id in self.products:
                comp = _component(self.products[comp_id])
            else:
                comp = self.resolve(comp_id, where, depth + 1)  # a relationship of a relationship
            platform = self.products.get(plat_id)
            if platform is None and plat_id not in self.relations:
                raise ValueError(f"{where}: product id {plat_id!r} is not defined")
            distro = comp.distro or (_platform_distro(platform) if platform else "")
            result = _package(comp, distro, full_name, plat_id)
        elif pid in self.products:
            product = self.products[pid]
            comp = _component(product)
            result = _package(comp, comp.distro or _platform_distro(product), product.name, "")
        else:
            raise ValueError(f"{where}: product id {pid!r} is not defined in the product tree")
        self._cache[pid] = result
        return result


def _component(product: _Product) -> _Resolved:
    """Package, version, arch (and distro, from a purl) of a product, before any platform."""
    versions = [name for cat, name in product.path if cat == "product_version"]
    arches = [name for cat, name in product.path if cat == "architecture"]
    arch = arches[-1] if arches else ""
    if purl := parse_package_url(product.purl):
        distro, package, kind, version, purl_arch = purl
        return _Resolved(distro, package, kind, version, purl_arch or arch, "", package)
    nevra = split_nevra(versions[-1]) if versions else None
    if nevra is not None:
        name, evr, nevra_arch = nevra
        return _Resolved("", name, "rpm", evr, nevra_arch or arch, "", name)
    names = [name for cat, name in product.path if cat in ("product_name", "product_family")]
    package = names[-1] if names else ""
    version = versions[-1] if versions else None
    return _Resolved("", package, "", version, arch, "", package or product.name)


def _package(comp: _Resolved, distro: str, full_name: str, platform: str) -> _Resolved:
    """The final product: a distro package, or a generic product named by its full name."""
    scheme = comp.scheme or scheme_of(distro.rsplit("-", 1)[0])
    if distro and comp.package and scheme:
        return _Resolved(
            distro, comp.package, scheme, comp.version, comp.arch, platform, comp.package
        )
    return _Resolved("", full_name, "", comp.version, comp.arch, platform, comp.line or full_name)


def _platform_distro(platform: _Product) -> str:
    """The distro of a platform product, from its CPE, then its and its branches' names."""
    if platform.cpe:
        try:
            cpe = parse_cpe(platform.cpe)
        except InputError:
            cpe = None
        if cpe is not None:
            vendor, product = cpe.text("vendor") or "", cpe.text("product") or ""
            version = cpe.text("version") or ""
            for cpe_vendor, pattern, family in _CPE_FAMILIES:
                if vendor == cpe_vendor and pattern.search(product):
                    if found := distro_id(family, version):
                        return found
                    break
    for text in (platform.name, *(name for _, name in reversed(platform.path))):
        for pattern, family in _NAME_FAMILIES:
            if match := pattern.search(text):
                return distro_id(family, match.group(1))
    return ""


def _self_url(meta: dict[str, Any], advisory_id: str) -> str:
    refs = [r for r in meta.get("references") or [] if isinstance(r, dict)]
    urls = [(r.get("category"), r.get("url")) for r in refs if isinstance(r.get("url"), str)]
    for category, url in urls:
        if category == "self":
            return str(url)
    return next((str(u) for _, u in urls if advisory_id in str(u)), "")


def _obj(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{key}: expected an object")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where + '.' if where else ''}{key}: expected a list")
    return value
