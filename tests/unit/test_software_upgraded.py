"""What a host runs after a rollout installs target components."""

from __future__ import annotations

from hvpatch.domain.software import (
    EsxiSoftware,
    HyperVSoftware,
    KvmSoftware,
    Package,
    XenSoftware,
    upgraded,
)


def test_family_fields_packages_and_kbs() -> None:
    assert upgraded(EsxiSoftware("21930508"), (("esxi", "24585291"),)).build == "24585291"
    kvm = KvmSoftware("rocky-9", "8.2.0", "10.0.0", "5.14.0",
                      (Package("qemu-kvm", "8.2.0-11.el9"),))
    new = upgraded(kvm, (("qemu", "9.0.0"), ("qemu-kvm", "9.0.0-1.el9"),
                         ("edk2-ovmf", "2024-1.el9")))
    assert new.qemu == "9.0.0" and new.libvirt == "10.0.0"
    assert dict((p.name, p.version) for p in new.packages) == {
        "qemu-kvm": "9.0.0-1.el9", "edk2-ovmf": "2024-1.el9"}
    hv = upgraded(HyperVSoftware("10.0.20348.2227", ("KB1",)),
                  (("windows", "10.0.20348.2340"), ("kb5035857", "installed")))
    assert hv.build == "10.0.20348.2340" and hv.kbs == ("KB1", "KB5035857")
    xcp = upgraded(XenSoftware("4.17.3", "xcp-ng", "8.3.0"), (("xcp-ng", "8.3.1"),))
    assert xcp.product_version == "8.3.1" and xcp.xen == "4.17.3"


def test_nothing_to_install_changes_nothing() -> None:
    sw = EsxiSoftware("21930508")
    assert upgraded(sw, ()) == sw
