"""The whole product against the real SSH peer (``ssh_peer_support``), as a user runs it on a
``kvm-ssh`` connection: ``inventory sync`` (the SSH inventory reads the host), ``feeds import
--bundled`` and ``findings refresh`` (the bundled Debian changelog of qemu judges the installed
``qemu-system-x86``), ``assess``, ``plan create`` (the planner picks the target from the
advisories), ``rollout start --connection`` (a real apt upgrade over SSH), then what the user
sees: the package upgraded on the host, the findings it fixes closed, the audit chain intact and
no secret in the store.

Also the SSH inventory on its own: what it reads from the peer, guests through libvirt's test
driver, and the host key policy it shares with the driver.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.connectors import inventory_source
from hvpatch.adapters.connectors.ssh_inventory import SshInventory, upstream_version
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import Base
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.domain.software import KvmSoftware
from hvpatch.errors import PermanentStepError
from hvpatch.orchestration.runner import connection_spec, drive, start_rollout
from hvpatch.ports.connector import Endpoint, InventorySource
from hvpatch.services.audit import verify_store
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.connections import add_connection, sync
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import list_findings, refresh_findings
from hvpatch.services.inventory import get_host
from hvpatch.services.plans import create_plan
from hvpatch.services.risk import assess_risk
from hvpatch.services.rollouts import rollout_status
from ssh_peer_support import FAKE_REBOOT, LATEST, NEW, OLD, PACKAGE, Peer, driver_options

HOST = "kvm-peer"
PASSWORD = "kvm-ssh-full-flow-not-a-secret-91c2"


@pytest.fixture
def peer(peer_up: Peer) -> Peer:
    return peer_up


def _options(peer: Peer, key_file: Path, **extra: str) -> dict[str, str]:
    return driver_options(peer, HOST, key_file=str(key_file), site="lab", cluster="kvm-a",
                          ring="prod", reboot_command=FAKE_REBOOT, poll_interval_s="0.2",
                          **extra)


def _endpoint(peer: Peer, **extra: str) -> Endpoint:
    return Endpoint("kvm-ssh", "kvm-lab", f"ssh://root@{peer.address}:{peer.port}",
                    username="root", password=PASSWORD,
                    options=_options(peer, peer.key_file, **extra))


def _meminfo_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


# --- the SSH inventory on its own ------------------------------------------------------------

def test_upstream_version_of_package_versions() -> None:
    assert upstream_version(OLD) == "7.2"
    assert upstream_version("17:8.2.0-11.el9_4.3") == "8.2.0"
    assert upstream_version("9.0.0-4+deb12u1") == "9.0.0"
    assert upstream_version("10.0.0") == "10.0.0"
    assert upstream_version("git20240101") == "0"


def test_inventory_reads_the_host_over_ssh(peer: Peer) -> None:
    source = inventory_source(_endpoint(peer))       # the registry knows kind kvm-ssh
    assert isinstance(source, SshInventory) and isinstance(source, InventorySource)
    try:
        fleet = source.read()
    finally:
        source.close()
    [site] = fleet.sites
    [cluster] = site.clusters
    [host] = cluster.hosts
    assert (site.name, cluster.name, cluster.ring, host.name, host.ring) == (
        "lab", "kvm-a", "prod", HOST, "prod")
    software = host.software
    assert isinstance(software, KvmSoftware)
    assert software.distro == "debian-12"                 # the root's /etc/os-release
    assert software.kernel == os.uname().release          # the chroot shares the kernel
    assert software.qemu == "7.2"                         # no qemu binary: its package's version
    assert software.libvirt == "0"                        # no libvirt at all on the peer
    assert [(p.name, p.version) for p in software.packages] == [(PACKAGE, OLD)]
    assert host.memory_mb == _meminfo_mb()                # /proc is the machine's
    assert 1 <= host.cores <= (os.cpu_count() or 1)
    assert host.guests == () and fleet.tenants == ()      # no libvirt_uri: no guests


def test_inventory_reads_the_version_installed_now(peer: Peer) -> None:
    peer.chroot(f"apt-get install -y -q --no-install-recommends '{PACKAGE}={NEW}'")
    [host] = SshInventory(_endpoint(peer)).read().hosts()
    assert isinstance(host.software, KvmSoftware)
    assert [(p.name, p.version) for p in host.software.packages] == [(PACKAGE, NEW)]


def test_inventory_reads_guests_through_libvirt(peer: Peer) -> None:
    pytest.importorskip("libvirt")
    [host] = SshInventory(_endpoint(peer, libvirt_uri="test:///default",
                                    default_tenant="acme")).read().hosts()
    assert [g.name for g in host.guests] == ["test"]      # the test driver's one domain
    assert host.guests[0].tenant == "acme"


def test_inventory_refuses_an_untrusted_host_key(peer: Peer, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    key_type, key = peer.other_key.read_text().split()[:2]
    wrong.write_text(f"[{peer.address}]:{peer.port} {key_type} {key}\n")
    with pytest.raises(PermanentStepError, match=f"SSH host key of {HOST}") as info:
        SshInventory(_endpoint(peer, known_hosts=str(wrong))).read()
    assert PASSWORD not in str(info.value)


# --- the full flow -----------------------------------------------------------------------------

def _store_text(store: Store) -> str:
    """Every value of every table, as text."""
    with store.session() as s:
        return "\n".join(str(tuple(row)) for table in Base.metadata.sorted_tables
                         for row in s.execute(select(table)))


def test_sync_assess_plan_and_roll_out_on_the_real_host(
        peer: Peer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(sqlite_url)
    key = tmp_path / "key"
    key.write_bytes(peer.key_file.read_bytes())
    key.chmod(0o600)
    monkeypatch.setenv("HVPATCH_TEST_KVM_SSH_PASSWORD", PASSWORD)
    add_connection(store, "kvm-lab", kind="kvm-ssh", url=f"ssh://root@{peer.address}:{peer.port}",
                   actor="alice", username="root", credential="env:HVPATCH_TEST_KVM_SSH_PASSWORD",
                   options=_options(peer, key))

    # sync: the host as it really is
    _summary, info = sync(store, "kvm-lab", actor="alice")
    assert info["counts"]["hosts"] == 1
    synced = get_host(store, HOST)
    assert isinstance(synced.software, KvmSoftware)
    assert synced.software.distro == "debian-12"
    assert [(p.name, p.version) for p in synced.software.packages] == [(PACKAGE, OLD)]

    # assess against the bundled advisories
    import_feeds(store, [bundled_feeds_dir()])
    refresh_findings(store, full=True)
    before = list_findings(store, host=HOST)
    qemu = {f["cve"]: f for f in before if f["component"] == PACKAGE}
    assert qemu, before                                   # the changelog's fixes apply to u5
    assert all(f["installed"] == OLD and f["confidence"] == "high" for f in qemu.values())
    assert all(f["source"] == "distro" for f in qemu.values())
    fixed_in = {f["fixed_in"] for f in qemu.values()}
    assert NEW in fixed_in and LATEST in fixed_in         # fixed in u6, ... up to u18
    risk = assess_risk(store)
    assert risk.hosts == 1 and risk.by_decision          # a decision for the host

    # plan: the planner picks the target from the advisories
    _plan_id, plan = create_plan(store, requester="alice", name="kvm-full", policy=(
        plan_policy_from_dict({"ha_reserve_hosts": 0, "rings": {
            "prod": {"soak_hours": 0.0, "approval": False}}})))
    [step] = [h for w in plan.waves() for h in w.hosts]
    assert step.host == HOST and step.components == ((PACKAGE, LATEST),), step

    # roll out through the kvm-ssh connection
    name = start_rollout(store, "kvm-full", requester="alice", name="kvm-full-rollout",
                         policy=RolloutPolicy(checks=(
                             "reachable", "version-is-target", "guests-running",
                             "services-healthy", "no-guest-lost")),
                         driver=connection_spec(store, "kvm-lab"))
    state = asyncio.run(drive(store, name, heartbeat_s=0.2))
    status = rollout_status(store, name)
    assert state == "completed", (status["reason"], status["recent_failures"])

    # what the user notices
    assert peer.installed() == LATEST                     # really upgraded, says dpkg
    assert status["findings_closed"] >= len(qemu) > 0
    after = {(f["cve"], f["component"]): f for f in list_findings(store, host=HOST, state="all")}
    for cve in qemu:
        assert after[(cve, PACKAGE)]["state"] == "closed", after[(cve, PACKAGE)]
    others = [f for f in before if f["component"] != PACKAGE]   # kernel, libvirt: untouched
    assert all(after[(f["cve"], f["component"])]["state"] == "open" for f in others)
    _summary, info = sync(store, "kvm-lab", actor="alice")      # a new sync agrees
    refresh_findings(store, full=True)
    assert not [f for f in list_findings(store, host=HOST) if f["component"] == PACKAGE]
    host = get_host(store, HOST)
    assert [(p.name, p.version) for p in host.software.packages] == [(PACKAGE, LATEST)]
    assert verify_store(store).ok
    text = _store_text(store)
    assert PASSWORD not in text
    key_body = "".join(peer.key_file.read_text().splitlines()[1:-1])   # base64, one line
    middle = key_body[len(key_body) // 2:len(key_body) // 2 + 60]     # private key material
    assert middle not in text.replace("\\n", "").replace("\n", "")
    store.close()
