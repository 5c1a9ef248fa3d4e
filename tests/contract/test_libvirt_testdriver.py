"""KVM inventory through the real libvirt-python against libvirt's built-in test driver:
``test:///default`` and a node file of ours (tests/contract/data/libvirt/node.xml)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvpatch.adapters.connectors import inventory_source
from hvpatch.domain.fleet import Criticality, Fleet, MigrationBlock, PowerState
from hvpatch.domain.software import KvmSoftware
from hvpatch.errors import DriverError, InputError
from hvpatch.ports.connector import Endpoint

try:
    import libvirt
except ImportError as exc:  # pragma: no cover - depends on the installation
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(f"CI=true requires libvirt-python: {exc}") from exc
    pytest.skip(f"libvirt-python is not installed: {exc}", allow_module_level=True)

NODE = Path(__file__).parent / "data" / "libvirt" / "node.xml"
NODE_URI = f"test://{NODE.resolve()}"


def _read(url: str, **options: str) -> Fleet:
    source = inventory_source(Endpoint("libvirt", "lab", url, options=options))
    try:
        return source.read()
    finally:
        source.close()


def test_default_test_driver() -> None:
    fleet = _read("test:///default")
    conn = libvirt.openReadOnly("test:///default")
    expected_name, info = conn.getHostname(), conn.getInfo()
    conn.close()
    (host,) = list(fleet.hosts())
    assert (host.name, host.site, host.cluster) == (expected_name, "lab", "lab")
    assert host.cores == info[4] * info[5] * info[6] == 8
    assert host.memory_mb == info[1]
    assert isinstance(host.software, KvmSoftware)
    assert host.software.libvirt.count(".") == 2 and host.software.qemu == "0.0.2"
    assert [(g.name, g.power_state, g.vcpus, g.tenant) for g in host.guests] == [
        ("test", PowerState.RUNNING, 2, "unassigned")]


def test_node_file_is_read_into_the_expected_fleet() -> None:
    fleet = _read(NODE_URI, hostname="kvm1", site="fra1", cluster="kvm-a", ring="prod",
                  kernel="6.1.0-21-amd64", distro="debian-12")
    (host,) = list(fleet.hosts())
    assert (host.name, host.site, host.cluster, host.ring) == ("kvm1", "fra1", "kvm-a", "prod")
    assert (host.cores, host.memory_mb) == (16, 128 * 1024)
    assert host.software.kernel == "6.1.0-21-amd64" and host.software.distro == "debian-12"
    guests = {g.name: g for g in host.guests}
    assert sorted(guests) == ["acme-archive-01", "acme-db-01", "acme-web-01",
                              "globex-build-01", "globex-gpu-01", "scratch-01"]
    web = guests["acme-web-01"]
    assert (web.tenant, web.criticality, web.vcpus, web.memory_mb) == (
        "acme", Criticality.HIGH, 2, 4096)
    assert web.live_migratable                          # its disk is on Ceph (rbd)
    assert guests["acme-db-01"].criticality is Criticality.MISSION_CRITICAL
    assert guests["acme-db-01"].migration_block is MigrationBlock.CPU_PINNING
    assert guests["globex-gpu-01"].migration_block is MigrationBlock.PCI_PASSTHROUGH
    assert "0000:3b:00" in guests["globex-gpu-01"].migration_note
    build = guests["globex-build-01"]
    assert build.migration_block is MigrationBlock.LOCAL_DISK
    assert "/var/lib/libvirt/images/globex-build-01.qcow2" in build.migration_note
    assert guests["acme-archive-01"].power_state is PowerState.STOPPED
    assert guests["scratch-01"].power_state is PowerState.SUSPENDED
    assert guests["scratch-01"].tenant == "unassigned"
    assert {t.name for t in fleet.tenants} == {"acme", "globex", "unassigned"}


def test_shared_paths_option_and_a_cluster_of_uris() -> None:
    fleet = _read(f"{NODE_URI},test:///default", hostname="kvm1,kvm2",
                  shared_paths="/var/lib/libvirt/images")
    hosts = {h.name: h for h in fleet.hosts()}
    assert sorted(hosts) == ["kvm1", "kvm2"]
    build = next(g for g in hosts["kvm1"].guests if g.name == "globex-build-01")
    assert build.live_migratable
    with pytest.raises(InputError, match="same host"):
        _read(f"{NODE_URI},{NODE_URI}")


def test_bad_metadata_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "node.xml"
    bad.write_text(NODE.read_text().replace('criticality="low"', 'criticality="urgent"', 1))
    with pytest.raises(InputError) as err:
        _read(f"test://{bad}", hostname="kvm1")
    assert err.value.problems[0].location == "kvm1/globex-build-01.metadata.criticality"


def test_libvirt_errors_are_driver_errors(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="Connection refused"):
        _read("qemu+tcp://127.0.0.1:1/system")
    with pytest.raises(DriverError, match="cannot open test://"):
        _read(f"test://{tmp_path / 'missing.xml'}")
