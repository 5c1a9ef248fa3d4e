"""Advisory data as frozen values: vulnerabilities, their applicability rules, KEV and EPSS.

Every source (NVD 2.0 and 1.1 feeds, CSAF, OSV, XSA) is parsed into these values, so matching
reads one model whatever the feed. A :class:`Vulnerability` keeps what risk and compliance need
(CVSS, CWE, dates, CISA fields, SSVC) and the rules that say which products it affects:
CPE configurations (NVD), vendor ``affected`` blocks (CNA data with fixed builds), and package
ranges (distribution data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

CveId = str


class AnalysisStatus(StrEnum):
    """Whether NVD has analysed the record (unanalysed records have no configurations)."""

    ANALYSED = "analysed"
    UNANALYSED = "unanalysed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class CvssMetric:
    """One CVSS score as published (v2, v3.0, v3.1 or v4.0), with who published it."""

    version: str
    vector: str
    base_score: float
    severity: str
    source: str = ""
    primary: bool = True


@dataclass(frozen=True, slots=True)
class CpeMatchRule:
    """One ``cpeMatch`` entry of an NVD configuration node."""

    criteria: str
    vulnerable: bool
    version_start_including: str | None = None
    version_start_excluding: str | None = None
    version_end_including: str | None = None
    version_end_excluding: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigNode:
    """An AND/OR node of CPE match rules, possibly negated, possibly with child nodes (1.1)."""

    operator: str
    negate: bool
    matches: tuple[CpeMatchRule, ...] = ()
    children: tuple[ConfigNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Configuration:
    """One NVD configuration: its nodes combined by ``operator`` (OR when absent)."""

    operator: str
    negate: bool
    nodes: tuple[ConfigNode, ...]


@dataclass(frozen=True, slots=True)
class VendorAffected:
    """A CNA ``affected`` entry: vendor, product and the version ranges it states.

    ``versions`` holds (status, version, less_than, less_than_or_equal, version_type) tuples as
    CVE JSON 5 writes them; ``status`` is ``affected`` or ``unaffected``.
    """

    vendor: str
    product: str
    versions: tuple[tuple[str, str, str | None, str | None, str | None], ...] = ()
    default_status: str = ""
    package_name: str = ""
    cpes: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """A CVE as hvpatch keeps it."""

    cve_id: CveId
    published: datetime | None
    last_modified: datetime | None
    description: str
    status: AnalysisStatus
    source: str
    cvss: tuple[CvssMetric, ...] = ()
    cwes: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    configurations: tuple[Configuration, ...] = ()
    vendor_affected: tuple[VendorAffected, ...] = ()
    cisa_exploit_add: date | None = None
    cisa_action_due: date | None = None
    cisa_required_action: str = ""
    ssvc: tuple[tuple[str, str], ...] = ()

    @property
    def best_cvss(self) -> CvssMetric | None:
        """The newest CVSS version available, the primary (NVD) score first."""
        if not self.cvss:
            return None
        return max(self.cvss, key=lambda m: (m.version, m.primary))


@dataclass(frozen=True, slots=True)
class KevEntry:
    """A CISA Known Exploited Vulnerabilities catalog entry."""

    cve_id: CveId
    vendor_project: str
    product: str
    name: str
    date_added: date
    due_date: date | None
    required_action: str
    known_ransomware: bool
    notes: str = ""


@dataclass(frozen=True, slots=True)
class EpssScore:
    """FIRST EPSS probability of exploitation in the next 30 days, with its score date."""

    cve_id: CveId
    epss: float
    percentile: float
    score_date: date | None
    model_version: str = ""


class FixStatus(StrEnum):
    """What distribution or vendor data says about one package and one vulnerability."""

    FIXED = "fixed"
    KNOWN_AFFECTED = "known_affected"
    KNOWN_NOT_AFFECTED = "known_not_affected"
    UNDER_INVESTIGATION = "under_investigation"


@dataclass(frozen=True, slots=True)
class PackageFix:
    """Distribution (or vendor) data for one package on one distribution release.

    Read as: on ``distro``, package ``package`` is affected by ``cves`` from ``introduced`` (or
    always, when None) until ``fixed`` (exclusive; never fixed when None), unless ``status`` says
    otherwise. This is what lets hvpatch see backported fixes that upstream version ranges miss.
    """

    source: str
    advisory_id: str
    distro: str
    package: str
    scheme: str
    cves: tuple[CveId, ...]
    status: FixStatus = FixStatus.FIXED
    fixed: str | None = None
    introduced: str | None = None
    published: date | None = None
    title: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class XenAdvisory:
    """A Xen Security Advisory (XSA) from the public list: number, CVEs and public date."""

    number: int
    cves: tuple[CveId, ...]
    public_date: date | None
    title: str = ""
