"""CPE 2.3 names, NVD match criteria and configurations (NISTIR 7695 naming, 7696 matching).

This is the base of advisory matching. NVD states which products a CVE affects as
*configurations* of CPE *match criteria* (``cpe:2.3:o:vmware:esxi:7.0:update_3c:*:...``,
``cpe:2.3:a:qemu:qemu:*:...`` with ``versionEndExcluding: 8.2.0``); a host is described by
concrete CPE names (its *platform*). The pieces:

* :class:`Cpe` - the eleven WFN attributes, each :data:`ANY`, :data:`NA` or a value string;
  :func:`parse_cpe` reads the 2.3 formatted string and the 2.2 URI, :func:`format_cpe` writes
  the formatted string (``parse_cpe(format_cpe(x)) == x``).
* :func:`compare_attribute`, :func:`compare_cpes`, :func:`name_relation` and
  :func:`cpe_matches` - NISTIR 7696 relations (:class:`Relation`), wildcards included.
* :class:`CpeMatchCriterion` and :func:`criterion_matches` - a name plus an NVD version
  range, ordered by an injected comparator (default :func:`compare_dotted`).
* :class:`Node`, :class:`Configuration`, :class:`Platform` and :func:`evaluate` - whether a
  configuration applies to a host, and the vulnerable matches that show it
  (:class:`ConfigResult`, :class:`MatchEvidence`).

Values are lower case (CPE matching is case-insensitive). In a value string only ``\\\\``,
``\\*`` and ``\\?`` are quoted; an unquoted ``*`` or run of ``?`` at either end is a wildcard.
Bad input raises :class:`~hvpatch.errors.InputError` naming the name and the attribute.
"""

from __future__ import annotations

from hvpatch.domain.cpe._binding import parse_cpe
from hvpatch.domain.cpe._config import (
    ConfigResult,
    Configuration,
    MatchEvidence,
    Node,
    Operator,
    Platform,
    evaluate,
)
from hvpatch.domain.cpe._criteria import (
    CpeMatchCriterion,
    VersionCompare,
    compare_dotted,
    criterion_matches,
    in_range,
)
from hvpatch.domain.cpe._matching import (
    Relation,
    compare_attribute,
    compare_cpes,
    cpe_matches,
    name_relation,
)
from hvpatch.domain.cpe._wfn import (
    ANY,
    ATTRIBUTES,
    NA,
    AttributeValue,
    Cpe,
    Logical,
    format_cpe,
)

__all__ = [
    "ANY",
    "ATTRIBUTES",
    "NA",
    "AttributeValue",
    "ConfigResult",
    "Configuration",
    "Cpe",
    "CpeMatchCriterion",
    "Logical",
    "MatchEvidence",
    "Node",
    "Operator",
    "Platform",
    "Relation",
    "VersionCompare",
    "compare_attribute",
    "compare_cpes",
    "compare_dotted",
    "cpe_matches",
    "criterion_matches",
    "evaluate",
    "format_cpe",
    "in_range",
    "name_relation",
    "parse_cpe",
]
