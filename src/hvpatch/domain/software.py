"""What a host runs, per hypervisor family, and the components matching looks at.

Each family records the software the way its vendor talks about it (an ESXi build, a Windows build
and its KBs, the distribution packages that carry QEMU and libvirt, ...). ``components()``
turns that into a flat list of (name, version scheme, version) that advisories are matched
against; versions are kept as text here and parsed, once and validated, by
:mod:`hvpatch.domain.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from hvpatch.domain.versions import EsxiBuild, WindowsBuild, parse_version
from hvpatch.errors import Problem, VersionParseError


@dataclass(frozen=True, slots=True, order=True)
class Component:
    """One versioned thing on a host that an advisory can name."""

    name: str
    scheme: str
    version: str


@dataclass(frozen=True, slots=True, order=True)
class Package:
    """A distribution package installed on a host (dpkg or rpm)."""

    name: str
    version: str


def _packages_components(packages: tuple[Package, ...], scheme: str) -> list[Component]:
    return [Component(p.name, scheme, p.version) for p in packages]


def _check(scheme: str, value: str, where: str, problems: list[Problem]) -> None:
    try:
        parse_version(scheme, value)
    except VersionParseError as exc:
        problems.append(Problem(where, str(exc).splitlines()[0]))


@dataclass(frozen=True, slots=True)
class EsxiSoftware:
    """VMware ESXi: the build number says it all (version and update level follow from it)."""

    family: ClassVar[str] = "esxi"
    build: str

    def components(self) -> list[Component]:
        """The ESXi build."""
        return [Component("esxi", "esxi", self.build)]

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("esxi", self.build, "build", out)
        return out

    @property
    def label(self) -> str:
        """E.g. ``ESXi 7.0 Update 3c (19193900)``."""
        build = EsxiBuild.parse(self.build)
        release = build.release
        return f"{release.name} ({build.build})" if release else f"ESXi build {build.build}"


@dataclass(frozen=True, slots=True)
class HyperVSoftware:
    """Hyper-V on Windows Server: build.UBR and the installed KBs."""

    family: ClassVar[str] = "hyperv"
    build: str
    kbs: tuple[str, ...] = ()

    def components(self) -> list[Component]:
        """The Windows build, then each KB as a present/absent marker."""
        return [Component("windows", "windows", self.build)] + [
            Component(kb.upper(), "kb", "installed") for kb in self.kbs
        ]

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("windows", self.build, "build", out)
        for i, kb in enumerate(self.kbs):
            digits = kb.upper().removeprefix("KB")
            if not digits.isdigit():
                out.append(Problem(f"kbs[{i}]",
                                   f"not a KB number: {kb!r} (expected e.g. KB5034129)"))
        return out

    @property
    def label(self) -> str:
        """E.g. ``Windows Server 2022 10.0.20348.2340``."""
        return f"{WindowsBuild.parse(self.build).product} {self.build}"


@dataclass(frozen=True, slots=True)
class KvmSoftware:
    """KVM/QEMU with libvirt on a Linux distribution, and the packages that carry them."""

    family: ClassVar[str] = "kvm"
    distro: str
    qemu: str
    libvirt: str
    kernel: str
    packages: tuple[Package, ...] = ()

    @property
    def package_scheme(self) -> str:
        """``deb`` for Debian-family distributions, ``rpm`` for the others."""
        return package_scheme_for(self.distro)

    def components(self) -> list[Component]:
        """Upstream QEMU, libvirt and kernel versions, then the distribution packages."""
        return [
            Component("qemu", "dotted", self.qemu),
            Component("libvirt", "dotted", self.libvirt),
            Component("linux_kernel", "dotted", self.kernel),
            *_packages_components(self.packages, self.package_scheme),
        ]

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        for name in ("qemu", "libvirt", "kernel"):
            _check("dotted", getattr(self, name), name, out)
        for i, p in enumerate(self.packages):
            _check(self.package_scheme, p.version, f"packages[{i}].version", out)
        return out

    @property
    def label(self) -> str:
        """E.g. ``KVM QEMU 8.2.0 / libvirt 10.0.0 on rhel-9``."""
        return f"KVM QEMU {self.qemu} / libvirt {self.libvirt} on {self.distro}"


@dataclass(frozen=True, slots=True)
class ProxmoxSoftware:
    """Proxmox VE: pve-manager, its QEMU build and kernel (all Debian packages)."""

    family: ClassVar[str] = "proxmox"
    pve_manager: str
    pve_qemu_kvm: str
    kernel: str
    packages: tuple[Package, ...] = ()

    def components(self) -> list[Component]:
        """pve-manager, QEMU (upstream part of pve-qemu-kvm), kernel, then packages."""
        return [
            Component("proxmox_ve", "dotted", self.pve_manager),
            Component("qemu", "dotted", self.pve_qemu_kvm.split("-")[0]),
            Component("pve-qemu-kvm", "deb", self.pve_qemu_kvm),
            Component("linux_kernel", "dotted", self.kernel),
            *_packages_components(self.packages, "deb"),
        ]

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("dotted", self.pve_manager, "pve_manager", out)
        _check("deb", self.pve_qemu_kvm, "pve_qemu_kvm", out)
        _check("dotted", self.kernel, "kernel", out)
        for i, p in enumerate(self.packages):
            _check("deb", p.version, f"packages[{i}].version", out)
        return out

    @property
    def label(self) -> str:
        """E.g. ``Proxmox VE 8.2.4 (QEMU 8.1.5-6)``."""
        return f"Proxmox VE {self.pve_manager} (QEMU {self.pve_qemu_kvm})"


XEN_PRODUCTS = ("xen", "xcp-ng", "xenserver", "citrix-hypervisor")


@dataclass(frozen=True, slots=True)
class XenSoftware:
    """Xen, XCP-ng, XenServer / Citrix Hypervisor: Xen version, product release and packages."""

    family: ClassVar[str] = "xen"
    xen: str
    product: str = "xen"
    product_version: str = ""
    distro: str = ""
    packages: tuple[Package, ...] = ()

    @property
    def package_scheme(self) -> str:
        """XCP-ng and XenServer dom0 are CentOS-based (rpm); Xen on Debian uses deb."""
        if self.product in ("xcp-ng", "xenserver", "citrix-hypervisor"):
            return "rpm"
        return package_scheme_for(self.distro or "debian")

    def components(self) -> list[Component]:
        """Xen, the product release when there is one, then the dom0 packages."""
        out = [Component("xen", "dotted", self.xen)]
        if self.product != "xen" and self.product_version:
            out.append(Component(self.product, "dotted", self.product_version))
        return out + _packages_components(self.packages, self.package_scheme)

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("dotted", self.xen, "xen", out)
        if self.product not in XEN_PRODUCTS:
            out.append(
                Problem("product", f"unknown Xen product {self.product!r} "
                        f"(expected one of {', '.join(XEN_PRODUCTS)})")
            )
        if self.product_version:
            _check("dotted", self.product_version, "product_version", out)
        for i, p in enumerate(self.packages):
            _check(self.package_scheme, p.version, f"packages[{i}].version", out)
        return out

    @property
    def label(self) -> str:
        """E.g. ``XCP-ng 8.2.1 (Xen 4.13.5)``."""
        if self.product == "xen":
            return f"Xen {self.xen}"
        names = {"xcp-ng": "XCP-ng", "xenserver": "XenServer",
                 "citrix-hypervisor": "Citrix Hypervisor"}
        return f"{names[self.product]} {self.product_version} (Xen {self.xen})".replace("  ", " ")


@dataclass(frozen=True, slots=True)
class AhvSoftware:
    """Nutanix AHV and the AOS release that manages it."""

    family: ClassVar[str] = "ahv"
    ahv: str
    aos: str = ""

    def components(self) -> list[Component]:
        """AHV, and AOS when known."""
        out = [Component("ahv", "dotted", self.ahv)]
        if self.aos:
            out.append(Component("aos", "dotted", self.aos))
        return out

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("dotted", self.ahv, "ahv", out)
        if self.aos:
            _check("dotted", self.aos, "aos", out)
        return out

    @property
    def label(self) -> str:
        """E.g. ``Nutanix AHV 20230302.100173 (AOS 6.8)``."""
        return f"Nutanix AHV {self.ahv}" + (f" (AOS {self.aos})" if self.aos else "")


@dataclass(frozen=True, slots=True)
class GenericSoftware:
    """An embedded or edge hypervisor known by vendor, product and version."""

    family: ClassVar[str] = "generic"
    vendor: str
    product: str
    version: str

    def components(self) -> list[Component]:
        """The product itself, named ``vendor:product`` as CPEs name it."""
        return [Component(f"{self.vendor}:{self.product}", "dotted", self.version)]

    def problems(self) -> list[Problem]:
        """Fields whose value does not parse."""
        out: list[Problem] = []
        _check("dotted", self.version, "version", out)
        for name in ("vendor", "product"):
            if not getattr(self, name).strip():
                out.append(Problem(name, "must not be empty"))
        return out

    @property
    def label(self) -> str:
        """E.g. ``acme edgevisor 2.4.1``."""
        return f"{self.vendor} {self.product} {self.version}"


Software = (
    EsxiSoftware
    | HyperVSoftware
    | KvmSoftware
    | ProxmoxSoftware
    | XenSoftware
    | AhvSoftware
    | GenericSoftware
)

SOFTWARE_BY_FAMILY: dict[str, type[Software]] = {
    cls.family: cls
    for cls in (EsxiSoftware, HyperVSoftware, KvmSoftware, ProxmoxSoftware, XenSoftware,
                AhvSoftware, GenericSoftware)
}

_DEB_DISTROS = ("debian", "ubuntu", "proxmox")


def package_scheme_for(distro: str) -> str:
    """Version scheme of a distribution's packages: ``deb`` or ``rpm``."""
    return "deb" if distro.lower().startswith(_DEB_DISTROS) else "rpm"


def software_to_dict(software: Software) -> dict[str, Any]:
    """Plain dict of a software record (packages as ``{name, version}``), for storage."""
    out: dict[str, Any] = {}
    for f in fields(software):
        value = getattr(software, f.name)
        if f.name == "packages":
            value = [{"name": p.name, "version": p.version} for p in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def software_from_dict(family: str, data: dict[str, Any]) -> Software:
    """Inverse of :func:`software_to_dict`; the caller has validated the fields."""
    cls = SOFTWARE_BY_FAMILY[family]
    kwargs = dict(data)
    if "packages" in kwargs:
        kwargs["packages"] = tuple(Package(p["name"], p["version"]) for p in kwargs["packages"])
    if "kbs" in kwargs:
        kwargs["kbs"] = tuple(kwargs["kbs"])
    return cls(**kwargs)


def _field_for(software: Software, component: str) -> str | None:
    """The software field that holds ``component``'s version, None for packages and KBs."""
    if isinstance(software, GenericSoftware):
        return "version" if component == f"{software.vendor}:{software.product}" else None
    if isinstance(software, XenSoftware) and component == software.product != "xen":
        return "product_version"
    return {
        "esxi": "build", "windows": "build", "qemu": "qemu", "libvirt": "libvirt",
        "linux_kernel": "kernel", "proxmox_ve": "pve_manager", "pve-qemu-kvm": "pve_qemu_kvm",
        "xen": "xen", "ahv": "ahv", "aos": "aos",
    }.get(component) if component != "qemu" or isinstance(software, KvmSoftware) else None


def upgraded(software: Software, components: tuple[tuple[str, str], ...]) -> Software:
    """``software`` after installing ``components`` (``(component, version)`` pairs).

    A component that is a field of the family's record (the ESXi or Windows build, QEMU,
    libvirt, the kernel, Xen, AHV, ...) sets that field; a Windows KB (``KB5034439``) is added to
    the KBs; anything else is a distribution package, replaced or added where the family keeps
    packages. This is what a host runs after a rollout applied its target, and what verification
    re-matches advisories against.
    """
    changes: dict[str, Any] = {}
    packages = {p.name: p.version for p in getattr(software, "packages", ())}
    kbs = list(getattr(software, "kbs", ()))
    for component, version in components:
        name = _field_for(software, component)
        if name is not None and name in {f.name for f in fields(software)}:
            changes[name] = version
        elif isinstance(software, HyperVSoftware):
            if component.upper().startswith("KB") and component.upper() not in kbs:
                kbs.append(component.upper())
        elif hasattr(software, "packages"):
            packages[component] = version
    if hasattr(software, "packages"):
        changes["packages"] = tuple(Package(n, v) for n, v in sorted(packages.items()))
    if isinstance(software, HyperVSoftware):
        changes["kbs"] = tuple(kbs)
    return replace(software, **changes)
