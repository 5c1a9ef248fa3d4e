"""Hypervisor product maturity: release lines, their support windows, and patches that went bad.

Risk scoring weighs how mature and how well supported the software on a host is. This module
answers three questions from two bundled tables (see ``hvpatch/data/PROVENANCE.md``):

* **Which product line does a host run?** :func:`line_for` maps a host's software record to a
  ``(product, line)`` key such as ``("esxi", "7.0")`` or ``("windows-server", "2019")``.
* **How old is that line, and is it still patched?** :class:`ProductLine` (from
  ``lifecycle.csv``) gives the first release and the end of full support and of security support;
  :meth:`ProductLine.status` says where a given day falls.
* **Has this product shipped patches that were pulled or regressed?** :class:`PulledRelease`
  (from ``pulled_releases.csv``), with :func:`withdrawn_esxi_builds`, :func:`pulled_kbs` and
  :func:`bad_patch_history`.

Date semantics: an end date is the *last* day covered (vendors publish the final patch day), so
the status changes the day after. An empty end date means "no end announced yet". There is no
clock here: ``today`` is always a parameter.

Product keys: ``esxi``, ``windows-server``, ``proxmox-ve``, ``nutanix-aos``, ``xen`` (and
``linux-kernel`` once the source data has kernel end-of-life dates; the bundled table has none).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources import files

from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    HyperVSoftware,
    KvmSoftware,
    ProxmoxSoftware,
    Software,
    XenSoftware,
)
from hvpatch.domain.versions import EsxiBuild, WindowsBuild
from hvpatch.errors import VersionParseError

__all__ = [
    "ProductLine",
    "PulledRelease",
    "SupportStatus",
    "bad_patch_history",
    "line_for",
    "product_line",
    "product_lines",
    "pulled_kbs",
    "pulled_releases",
    "withdrawn_esxi_builds",
]

_DAYS_PER_YEAR = 365.25
_LIFECYCLE_COLUMNS = ["product", "line", "first_release", "support_end", "security_end", "source"]
_PULLED_COLUMNS = [
    "product", "release", "build_or_kb", "event", "event_date", "replacement", "source",
]


class SupportStatus(StrEnum):
    """Where a product line stands on a given day."""

    #: Bug fixes and security fixes are still released.
    SUPPORTED = "supported"
    #: Only security fixes are released (Windows extended support, Xen security-only phase).
    SECURITY_ONLY = "security-only"
    #: No fixes at all any more, security included.
    END_OF_LIFE = "end-of-life"
    #: The day is before the line's first release: the data cannot say.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ProductLine:
    """A release line of a hypervisor product (ESXi 7.0, Windows Server 2019, Xen 4.17, ...).

    ``support_end`` is the last day of full support (bug and security fixes), ``security_end``
    the last day of security fixes; None means the source announces no end yet.
    """

    product: str
    line: str
    first_release: dt.date
    support_end: dt.date | None
    security_end: dt.date | None

    def __post_init__(self) -> None:
        for end in (self.support_end, self.security_end):
            if end is not None and end < self.first_release:
                raise ValueError(f"{self.product} {self.line}: support ends ({end}) "
                                 f"before the first release ({self.first_release})")
        if (self.support_end is not None and self.security_end is not None
                and self.security_end < self.support_end):
            raise ValueError(f"{self.product} {self.line}: security support ends "
                             f"({self.security_end}) before full support ({self.support_end})")

    @property
    def key(self) -> tuple[str, str]:
        """``(product, line)``, the key :func:`product_line` and :func:`line_for` use."""
        return (self.product, self.line)

    def status(self, today: dt.date) -> SupportStatus:
        """The support status on ``today`` (end dates are the last day covered)."""
        if today < self.first_release:
            return SupportStatus.UNKNOWN
        if self.security_end is not None and today > self.security_end:
            return SupportStatus.END_OF_LIFE
        if self.support_end is not None and today > self.support_end:
            return SupportStatus.SECURITY_ONLY
        return SupportStatus.SUPPORTED

    def age_years(self, today: dt.date) -> float:
        """Years from the first release to ``today`` (0.0 before the release)."""
        return max(0, (today - self.first_release).days) / _DAYS_PER_YEAR


def _optional_date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _bundled_rows(name: str, columns: list[str]) -> list[dict[str, str]]:
    """Rows of a bundled CSV (the only I/O in this module: reading package data)."""
    text = (files("hvpatch") / "data" / name).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != columns:
        raise ValueError(f"bundled {name} has columns {reader.fieldnames}, expected {columns}")
    return list(reader)


@cache
def _lines_by_key() -> dict[tuple[str, str], ProductLine]:
    lines = [
        ProductLine(
            product=row["product"],
            line=row["line"],
            first_release=dt.date.fromisoformat(row["first_release"]),
            support_end=_optional_date(row["support_end"]),
            security_end=_optional_date(row["security_end"]),
        )
        for row in _bundled_rows("lifecycle.csv", _LIFECYCLE_COLUMNS)
    ]
    by_key = {line.key: line for line in lines}
    if len(by_key) != len(lines):
        raise ValueError("bundled lifecycle.csv lists a (product, line) twice")
    return by_key


def product_lines() -> tuple[ProductLine, ...]:
    """Every product line in the bundled table, by product then first release."""
    return tuple(_lines_by_key().values())


def product_line(product: str, line: str) -> ProductLine | None:
    """The line ``(product, line)``, e.g. ``("esxi", "8.0")``, or None if the table lacks it."""
    return _lines_by_key().get((product, line))


#: Windows Server line (as endoflife.date names it) by (major, minor, build). 17763 is also
#: Windows Server 1809 (SAC); a Hyper-V host on it is taken to be the LTSC release 2019.
_WINDOWS_LINES: dict[tuple[int, int, int], str] = {
    (6, 0, 6002): "2008-sp2",
    (6, 0, 6003): "2008-sp2",
    (6, 1, 7601): "2008-r2-sp1",
    (6, 2, 9200): "2012",
    (6, 3, 9600): "2012-r2",
    (10, 0, 14393): "2016",
    (10, 0, 16299): "1709-sac",
    (10, 0, 17134): "1803-sac",
    (10, 0, 17763): "2019",
    (10, 0, 18362): "1903-sac",
    (10, 0, 18363): "1909-sac",
    (10, 0, 19041): "2004-sac",
    (10, 0, 19042): "20h2-sac",
    (10, 0, 20348): "2022",
    (10, 0, 25398): "23h2-ac",
    (10, 0, 26100): "2025",
}

_MAJOR = re.compile(r"(\d+)(?:\.|$)")
_MAJOR_MINOR = re.compile(r"(\d+\.\d+)(?:[.\-+~\s]|$)")
_KERNEL_LINE = re.compile(r"2\.6\.\d+|[3-9]\.\d+|\d{2,}\.\d+")


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.match(text.strip())
    return match.group(1) if match else None


def _esxi_line(build: str) -> str | None:
    try:
        release = EsxiBuild.parse(build).release
    except VersionParseError:
        return None
    return None if release is None else release.line


def _windows_line(build: str) -> str | None:
    try:
        parsed = WindowsBuild.parse(build)
    except VersionParseError:
        return None
    return _WINDOWS_LINES.get((parsed.major, parsed.minor, parsed.build))


def _kernel_line(kernel: str) -> str | None:
    match = _KERNEL_LINE.match(kernel.strip())
    return None if match is None else match.group(0)


def _line_key(software: Software) -> tuple[str, str] | None:
    """The ``(product, line)`` a software record names, whether or not the table has it."""
    line: str | None
    if isinstance(software, EsxiSoftware):
        product, line = "esxi", _esxi_line(software.build)
    elif isinstance(software, HyperVSoftware):
        product, line = "windows-server", _windows_line(software.build)
    elif isinstance(software, ProxmoxSoftware):
        product, line = "proxmox-ve", _first(_MAJOR, software.pve_manager)
    elif isinstance(software, XenSoftware):
        product, line = "xen", _first(_MAJOR_MINOR, software.xen)
    elif isinstance(software, AhvSoftware):
        product, line = "nutanix-aos", _first(_MAJOR_MINOR, software.aos)
    elif isinstance(software, KvmSoftware):
        product, line = "linux-kernel", _kernel_line(software.kernel)
    else:  # GenericSoftware: no lifecycle data for embedded/edge products
        return None
    return None if line is None else (product, line)


def line_for(software: Software) -> tuple[str, str] | None:
    """The ``(product, line)`` of the bundled table that a host's software belongs to.

    ESXi: the release line of a build listed in the ESXi build table (``"7.0"``); Hyper-V: the
    Windows Server release by build number (20348 -> ``"2022"``); Proxmox VE: the pve-manager
    major (``"8"``); Xen, XCP-ng, XenServer: the Xen minor line (``"4.17"``); Nutanix AHV: the
    AOS line (``"6.8"``); KVM: the upstream kernel line (``"5.14"``), a distribution kernel
    being judged by its upstream base. None when the version does not say, for generic
    products, and whenever the table has no such line (so a result always resolves with
    :func:`product_line`; the bundled table has no ``linux-kernel`` lines, so KVM gets None).
    """
    key = _line_key(software)
    if key is None or product_line(*key) is None:
        return None
    return key


#: CSV product text prefix -> product key.
_PRODUCT_KEYS: tuple[tuple[str, str], ...] = (
    ("VMware ESXi", "esxi"),
    ("Microsoft Windows Server", "windows-server"),
    ("Xen", "xen"),
    ("Proxmox VE", "proxmox-ve"),
    ("Nutanix AOS", "nutanix-aos"),
)
_WINDOWS_RELEASE = re.compile(r"Windows Server (\d{4})( R2)?\b")
_KB = re.compile(r"KB\d+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PulledRelease:
    """A patch or release that was withdrawn, pulled or shipped a regression (one CSV row).

    Fields are the compiled notes' text as written; ``event_date`` is free text such as
    ``2022-01-13`` or ``2021-11 (exact day not in sources)``.
    """

    product: str
    release: str
    build_or_kb: str
    event: str
    event_date: str
    replacement: str
    source: str

    @property
    def product_key(self) -> str:
        """The product key (``esxi``, ``windows-server``, ``xen``, ...) of the CSV's text."""
        for prefix, key in _PRODUCT_KEYS:
            if self.product.startswith(prefix):
                return key
        raise ValueError(f"unknown product in pulled releases: {self.product!r}")

    @property
    def line(self) -> str | None:
        """The line affected: ``"7.0"`` (ESXi), ``"2012-r2"`` (Windows), ``"4.14"`` (Xen)."""
        if self.product_key == "windows-server":
            match = _WINDOWS_RELEASE.search(self.product)
            return None if match is None else match.group(1) + ("-r2" if match.group(2) else "")
        return _first(_MAJOR_MINOR, self.release)

    @property
    def kb(self) -> str | None:
        """The KB number, upper-case (``KB5009624``), when the row is a Windows update."""
        return self.build_or_kb.upper() if _KB.fullmatch(self.build_or_kb) else None


@cache
def _pulled() -> tuple[PulledRelease, ...]:
    rows = tuple(PulledRelease(**row) for row in _bundled_rows("pulled_releases.csv",
                                                                 _PULLED_COLUMNS))
    for row in rows:
        _ = row.product_key  # fail on load, not later, for a product we cannot map
    return rows


def pulled_releases() -> tuple[PulledRelease, ...]:
    """Every pulled or regressing release in the bundled notes, in file order."""
    return _pulled()


def withdrawn_esxi_builds() -> frozenset[int]:
    """ESXi build numbers VMware withdrew from download (7.0 U3, U3a, U3b)."""
    return frozenset(
        int(row.build_or_kb) for row in _pulled()
        if row.product_key == "esxi" and row.build_or_kb.isdigit()
    )


def pulled_kbs() -> frozenset[str]:
    """Windows update KB numbers that were pulled, upper-case (``KB5009624``)."""
    return frozenset(kb for row in _pulled() if (kb := row.kb) is not None)


def bad_patch_history(product: str, line: str | None = None) -> tuple[PulledRelease, ...]:
    """The pulled or regressing releases of a product key, optionally of one line only."""
    return tuple(
        row for row in _pulled()
        if row.product_key == product and (line is None or row.line == line)
    )
