"""Version schemes as first-class values, and what we know about ESXi releases.

Each product family numbers its releases its own way; each gets one class here, registered in
:data:`SCHEMES` under a short name:

========  =================  ===========================================================
name      class              example
========  =================  ===========================================================
esxi      :class:`EsxiBuild`      ``19193900``, ``7.0.3-19193900``, ``ESXi 7.0 Update 3c``
windows   :class:`WindowsBuild`   ``10.0.20348.2340``
deb       :class:`DebianVersion`  ``1:8.2.2+ds-0ubuntu1~22.04.1`` (dpkg order)
rpm       :class:`RpmVersion`     ``17:6.2.0-11.el9_4.6`` (rpmvercmp order)
dotted    :class:`DottedVersion`  ``8.2.0``, ``6.8.12-4-pve``, ``9.0.0-rc1``
========  =================  ===========================================================

Every version is immutable, hashable and totally ordered within its scheme (comparing two
schemes with ``<`` raises :class:`TypeError`); ``parse(str(v)) == v``; and
:meth:`Version.coarse_key` is a monotone integer for SQL pre-filters. Bad input raises
:class:`~hvpatch.errors.VersionParseError` saying what was given and what was expected.
Parsing is cached per string, since matching parses the same strings over and over.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hvpatch.domain.versions._base import Version, shown
from hvpatch.domain.versions._debian import DebianVersion
from hvpatch.domain.versions._dotted import DottedVersion
from hvpatch.domain.versions._esxi import (
    EsxiBuild,
    EsxiRelease,
    esxi_release,
    esxi_release_at_or_before,
    esxi_releases,
)
from hvpatch.domain.versions._rpm import RpmVersion
from hvpatch.domain.versions._windows import WindowsBuild
from hvpatch.errors import VersionParseError

__all__ = [
    "SCHEMES",
    "DebianVersion",
    "DottedVersion",
    "EsxiBuild",
    "EsxiRelease",
    "RpmVersion",
    "Version",
    "WindowsBuild",
    "esxi_release",
    "esxi_release_at_or_before",
    "esxi_releases",
    "parse_version",
]

#: Every version scheme by its registry name.
SCHEMES: Mapping[str, type[Version]] = MappingProxyType(
    {
        EsxiBuild.scheme: EsxiBuild,
        WindowsBuild.scheme: WindowsBuild,
        DebianVersion.scheme: DebianVersion,
        RpmVersion.scheme: RpmVersion,
        DottedVersion.scheme: DottedVersion,
    }
)


def parse_version(scheme: str, text: str) -> Version:
    """Parse ``text`` as a version of the named scheme.

    Raises :class:`~hvpatch.errors.VersionParseError` for an unknown scheme (naming the known
    ones) or for text the scheme does not accept.
    """
    cls = SCHEMES.get(scheme) if isinstance(scheme, str) else None
    if cls is None:
        known = ", ".join(sorted(SCHEMES))
        raise VersionParseError(
            f"unknown version scheme: {shown(scheme)} (expected one of: {known}); "
            f"cannot parse {shown(text)}"
        )
    return cls.parse(text)
