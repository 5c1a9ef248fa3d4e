"""Distribution data decides for distribution packages: backported fixes are not vulnerable.

Upstream ranges say "QEMU < 8.2.0 is vulnerable"; a distribution that backported the fix into
its 7.2 package says "fixed in 1:7.2+dfsg-7+deb12u3". For a host whose QEMU comes from that
package, the distribution's word wins. Which fix applies to a host when several exist (a main
stream and extended-support branches, or a changelog's whole history) is decided by
:func:`decide`, documented there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hvpatch.domain.advisories import FixStatus, PackageFix
from hvpatch.domain.matching.platform import RHEL_FAMILY
from hvpatch.domain.versions import DebianVersion, RpmVersion, Version, parse_version
from hvpatch.errors import VersionParseError


class Confidence(StrEnum):
    """How sure a verdict is: exact data for this host (high) down to a heuristic (low)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


def distro_match(host: str, fix: str) -> Confidence | None:
    """How well a fix record's distribution applies to the host's (None: not at all)."""
    if not host or not fix:
        return None
    if host == fix:
        return Confidence.HIGH
    h_name, _, h_ver = host.partition("-")
    f_name, _, f_ver = fix.partition("-")
    if h_name == f_name == "debian" and not f_ver:
        return Confidence.HIGH  # a changelog entry without a suite suffix: the package lineage
    if h_name in RHEL_FAMILY and f_name in RHEL_FAMILY and h_ver == f_ver:
        return Confidence.MEDIUM  # rebuilds of the same RHEL release share package versions
    return None


def _with_epoch(version: str, installed: str, scheme: str) -> str:
    """Give an epoch-less RPM version the installed package's epoch.

    Some advisory data (CIQ's VEX files, for instance) writes ``8.2.0-11.el9_2.92ciq_lts.4``
    for a package whose real version is ``17:8.2.0-...``; compared as written, epoch 0 would
    make every installed epoch-17 package look newer than the fix.
    """
    if scheme == "rpm" and ":" not in version and ":" in installed:
        return f"{installed.split(':', 1)[0]}:{version}"
    return version


def _upstream(v: Version) -> str:
    if isinstance(v, RpmVersion):
        return v.version
    if isinstance(v, DebianVersion):
        return v.upstream.split("+")[0].split("~")[0]
    return str(v)


@dataclass(frozen=True, slots=True)
class DistroVerdict:
    """What distribution data says about one package and one CVE on one host."""

    affected: bool
    confidence: Confidence
    fixed_in: str | None
    reason: str
    fix: PackageFix


def _verdict(affected: bool, p: tuple[Version, PackageFix, Confidence, str],
             installed: str) -> DistroVerdict:
    _v, fix, conf, fixed = p
    op = "<" if affected else ">="
    return DistroVerdict(affected, conf, fixed,
                         f"installed {installed} {op} {fixed} ({fix.source} {fix.advisory_id})",
                         fix)


def decide(fixes: list[tuple[PackageFix, Confidence]], installed: str,
           scheme: str) -> DistroVerdict | None:
    """Judge ``installed`` against the fix records that apply to the host.

    The host's own distribution's records decide first (high confidence), then those of
    rebuilds of the same release (medium): another stream's fix never clears a host whose own
    distribution says otherwise. Within one level, rules in order:

    1. a ``known_not_affected`` record clears the host;
    2. fixed records on the *same upstream version* as the installed package decide by plain
       comparison -- that is where backports live (``7.2+dfsg-7+deb12u3`` vs ``...deb12u5``);
    3. otherwise a fix newer than the installed version means affected (fixed in the oldest
       such fix), and fixes only on older upstream versions mean the newer upstream has it;
    4. ``known_affected`` without any fix means affected with no fixed version.

    Records whose versions do not parse in the host's scheme are ignored; a record whose
    ``introduced`` version is newer than the installed one does not apply. Ties between
    records at one version are broken by advisory id, so the result does not depend on the
    order of the records; the fixed version is reported with the installed package's epoch
    when the record omits it.
    """
    try:
        have = parse_version(scheme, installed)
    except VersionParseError:
        return None
    ordered = sorted(fixes, key=lambda fc: (fc[0].source, fc[0].advisory_id, fc[0].fixed or ""))
    for level in (Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW):
        verdict = _decide([fc for fc in ordered if fc[1] is level], have, installed, scheme)
        if verdict is not None:
            return verdict
    return None


def _decide(fixes: list[tuple[PackageFix, Confidence]], have: Version, installed: str,
            scheme: str) -> DistroVerdict | None:
    for fix, conf in fixes:
        if fix.status is FixStatus.KNOWN_NOT_AFFECTED:
            return DistroVerdict(False, conf, None,
                                 f"{fix.source} {fix.advisory_id}: known not affected", fix)
    parsed: list[tuple[Version, PackageFix, Confidence, str]] = []
    for fix, conf in fixes:
        if fix.status is not FixStatus.FIXED or not fix.fixed:
            continue
        fixed = _with_epoch(fix.fixed, installed, scheme)
        try:
            version = parse_version(scheme, fixed)
            if fix.introduced and parse_version(
                    scheme, _with_epoch(fix.introduced, installed, scheme)) > have:
                continue
        except VersionParseError:
            continue
        parsed.append((version, fix, conf, fixed))
    if parsed:
        same = [p for p in parsed if _upstream(p[0]) == _upstream(have)]
        if same:
            covering = [p for p in same if p[0] <= have]
            if covering:
                return _verdict(False, max(covering, key=lambda p: p[0]), installed)
            return _verdict(True, min(same, key=lambda p: p[0]), installed)
        newer = [p for p in parsed if p[0] > have]
        if newer:
            return _verdict(True, min(newer, key=lambda p: p[0]), installed)
        return _verdict(False, max(parsed, key=lambda p: p[0]), installed)
    for fix, conf in fixes:
        if fix.status is FixStatus.KNOWN_AFFECTED:
            return DistroVerdict(True, conf, None, f"{fix.source} {fix.advisory_id}: known "
                                 "affected, no fix listed", fix)
    return None
