"""Technical impact class of a vulnerability on a hypervisor, derived from the record's data.

A hypervisor bug matters by what it lets an attacker do to the host: escape from a guest
(owning every guest), take over the management plane (owning the host, often the cluster),
take the host down, or read across guests. The class is derived from, in order: a per-CVE
override (for the cases the data gets wrong), the description's words, the CVSS vector (scope
change, attack vector, privileges, C/I/A) and the weakness (CWE). The reason is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hvpatch.domain.advisories import Vulnerability


class ImpactClass(StrEnum):
    """What a successful exploit gives, seen from the host."""

    VM_ESCAPE = "vm-escape"
    MGMT_PLANE = "management-plane"
    HOST_DOS = "host-dos"
    INFO_DISCLOSURE = "info-disclosure"
    OTHER = "other"

    @property
    def total(self) -> bool:
        """SSVC technical impact: total control of the host (escape, management takeover)."""
        return self in (ImpactClass.VM_ESCAPE, ImpactClass.MGMT_PLANE)


_ESCAPE = re.compile(
    r"(?i)(escape|guest[- ]to[- ]host|execute code (?:as|on) the (?:host|virtual machine's vmx)"
    r"|vmx process|on the host|host os|host kernel|hypervisor memory|privileged domain|dom0"
    r"|break out|sandbox)")
_MGMT = re.compile(
    r"(?i)(openslp|\bslp\b|\bcim\b|management (?:interface|network|plane|api|agent)|host client"
    r"|web (?:interface|ui|console)|xapi|winrm|rest api|vcenter|remote code execution"
    r"|authentication bypass|api endpoint|https? )")
_DOS_CWES = frozenset({"CWE-400", "CWE-401", "CWE-770", "CWE-835", "CWE-674", "CWE-404",
                       "CWE-617", "CWE-476", "CWE-369"})
_INFO_CWES = frozenset({"CWE-200", "CWE-203", "CWE-208", "CWE-1300", "CWE-209", "CWE-524",
                        "CWE-908"})
_MEMORY_CWES = frozenset({"CWE-787", "CWE-416", "CWE-119", "CWE-120", "CWE-122", "CWE-125",
                          "CWE-190", "CWE-415", "CWE-824"})


@dataclass(frozen=True, slots=True)
class Vector:
    """The CVSS v3/v4 base metrics hvpatch reads (missing ones are empty strings)."""

    av: str = ""
    ac: str = ""
    pr: str = ""
    ui: str = ""
    scope_changed: bool = False
    c: str = ""
    i: str = ""
    a: str = ""

    @property
    def automatable(self) -> bool:
        """Network-reachable without privileges or user action, low complexity."""
        return self.av == "N" and self.ac == "L" and self.pr == "N" and self.ui == "N"


def parse_vector(vector: str) -> Vector:
    """Read a CVSS 3.x or 4.0 vector string (unknown metrics are ignored)."""
    parts = dict(p.split(":", 1) for p in vector.split("/") if ":" in p)
    if "VC" in parts:  # CVSS 4.0: vulnerable system vs subsequent system impacts
        sub = any(parts.get(k, "N") != "N" for k in ("SC", "SI", "SA"))
        return Vector(parts.get("AV", ""), parts.get("AC", ""), parts.get("PR", ""),
                      "N" if parts.get("UI", "N") == "N" else "R", sub, parts.get("VC", ""),
                      parts.get("VI", ""), parts.get("VA", ""))
    return Vector(parts.get("AV", ""), parts.get("AC", ""), parts.get("PR", ""),
                  parts.get("UI", ""), parts.get("S") == "C", parts.get("C", ""),
                  parts.get("I", ""), parts.get("A", ""))


def vector_of(v: Vulnerability) -> Vector:
    """The best CVSS v3+ vector of the record (v2 vectors are too coarse and are ignored)."""
    best = None
    for m in v.cvss:
        if m.version.startswith(("3", "4")) and (best is None or (m.primary, m.version) > (
                best.primary, best.version)):
            best = m
    return parse_vector(best.vector) if best else Vector()


# components that *are* a management plane: a network-reachable bug in them is one
MGMT_COMPONENTS = frozenset({"proxmox_ve", "xcp-ng", "xenserver", "citrix-hypervisor", "aos"})


def classify(v: Vulnerability, override: ImpactClass | None = None,
             component: str = "") -> tuple[ImpactClass, str]:
    """The impact class of ``v`` and why. Order of the rules:

    1. the per-CVE override;
    2. the CVSS impact metrics when they are one-sided: availability only is a host DoS,
       confidentiality only is a disclosure (descriptions of DoS bugs often say "on the host");
    3. the component hit is a management plane (Proxmox VE, XAPI, AOS) reached over the
       network; a management service named in the description (OpenSLP, CIM, web UI, APIs)
       reached over the (adjacent) network; or a network attack with few privileges gaining
       C/I;
    4. escape wording in the description (VMX process, guest to host, sandbox, dom0) or a
       scope change from a local/adjacent attacker with C/I impact;
    5. the weakness (CWE): DoS and disclosure classes, then memory corruption reachable from a
       guest; otherwise "other".
    """
    if override is not None:
        return override, "per-CVE override file"
    text = v.description
    vec = vector_of(v)
    cwes = set(v.cwes)
    none = ("N", "")
    if vec.a in ("H", "L") and vec.c in none and vec.i in none and vec.av:
        return ImpactClass.HOST_DOS, "CVSS impact on availability only"
    if vec.c in ("H", "L") and vec.i in none and vec.a in none and vec.av:
        return ImpactClass.INFO_DISCLOSURE, "CVSS impact on confidentiality only"
    if component in MGMT_COMPONENTS and vec.av in ("N", "A"):
        return ImpactClass.MGMT_PLANE, (f"network-reachable bug in {component}, a management "
                                        "plane")
    mgmt = _MGMT.search(text)
    if mgmt and vec.av in ("N", "A"):
        return ImpactClass.MGMT_PLANE, (f"management service reached over the network "
                                        f"(AV:{vec.av}), description: {mgmt.group(0)!r}")
    if vec.av == "N" and vec.pr in ("N", "L") and (vec.c == "H" or vec.i == "H"):
        return ImpactClass.MGMT_PLANE, f"network attack with {vec.pr} privileges gaining C/I"
    escape = _ESCAPE.search(text)
    if escape and vec.av != "N":
        return ImpactClass.VM_ESCAPE, f"description: {escape.group(0)!r}"
    if vec.scope_changed and (vec.c == "H" or vec.i == "H") and vec.av in ("L", "A"):
        return ImpactClass.VM_ESCAPE, "CVSS scope change from a local/adjacent attacker (S:C)"
    if cwes & _DOS_CWES:
        return ImpactClass.HOST_DOS, f"weakness {sorted(cwes & _DOS_CWES)[0]}"
    if cwes & _INFO_CWES:
        return ImpactClass.INFO_DISCLOSURE, f"weakness {sorted(cwes & _INFO_CWES)[0]}"
    if cwes & _MEMORY_CWES and vec.av in ("L", "A") and vec.i == "H":
        return ImpactClass.VM_ESCAPE, (f"memory corruption ({sorted(cwes & _MEMORY_CWES)[0]}) "
                                       "reachable from a guest")
    if escape:
        return ImpactClass.VM_ESCAPE, f"description: {escape.group(0)!r}"
    return ImpactClass.OTHER, "no escape, management, DoS or disclosure signal in the data"
