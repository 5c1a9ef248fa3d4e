"""A whole rollout on a real platform: the engine drives the kvm-ssh connection's driver
against the real SSH peer (a Debian root behind OpenSSH, ``ssh_peer_support``), as
``hvpatch rollout start PLAN --connection NAME`` does: precheck, maintenance, stage, apply (a
real apt upgrade), reboot and wait (the peer's stand-in reboot), verify (the live version read
back and stored), regression checks, exit maintenance -- recorded step by step, with an intact
audit chain and the credential nowhere in the store."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, PlanRow, RolloutStepRow
from hvpatch.adapters.store.plan_codec import plan_to_dict
from hvpatch.domain.fleet import Cluster, Family, Fleet, Host, Ring, Site, Tenant
from hvpatch.domain.planning.campaign import build_campaign
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.targets import TargetChoice
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.domain.software import KvmSoftware, Package
from hvpatch.errors import InputError
from hvpatch.orchestration.runner import connection_spec, drive, start_rollout
from hvpatch.services.audit import verify_store
from hvpatch.services.connections import add_connection
from hvpatch.services.inventory import get_host, import_fleet
from hvpatch.services.rollouts import rollout_status
from rollout_support import NOW
from ssh_peer_support import FAKE_REBOOT, NEW, OLD, PACKAGE, Peer, driver_options

HOST = "kvm-peer"


def _fleet() -> Fleet:
    software = KvmSoftware(distro="debian-12", qemu="7.2.0", libvirt="9.0.0", kernel="6.1.0",
                           packages=(Package(PACKAGE, OLD),))
    host = Host(HOST, "lab", "kvm-a", software, cores=8, memory_mb=65536, ring="prod")
    return Fleet(rings=(Ring("prod", 1),), tenants=(Tenant("t1"),), sites=(Site(
        "lab", clusters=(Cluster("kvm-a", "lab", Family.KVM, ring="prod", ha_reserve_hosts=0,
                                 hosts=(host,)),)),))


def _plan(store: Store) -> None:
    fleet = _fleet()
    import_fleet(store, fleet, source="test", sha256="")
    target = TargetChoice("kvm debian-12", f"{PACKAGE} {NEW}", NEW, "test", ((PACKAGE, NEW),))
    plan = build_campaign(fleet, {HOST: target}, (), plan_policy_from_dict({
        "ha_reserve_hosts": 0, "rings": {"prod": {"soak_hours": 0.0, "approval": False}}}),
        name="kvm-patch", created=NOW, emergency=False, requester="alice")
    with store.session() as s:
        s.add(PlanRow(name="kvm-patch", created=NOW, requester="alice", scope="test",
                      emergency=False, status="draft", summary={}, data=plan_to_dict(plan)))
        s.commit()


def _connect(store: Store, peer: Peer, key_copy: Path) -> None:
    add_connection(store, "kvm-lab", kind="kvm-ssh",
                   url=f"ssh://root@{peer.address}:{peer.port}", actor="alice",
                   username="root", options=driver_options(
                       peer, HOST, key_file=str(key_copy), reboot_command=FAKE_REBOOT,
                       poll_interval_s="0.2"))


def test_a_rollout_patches_the_real_host_over_ssh(peer_up: Peer, sqlite_url: str,
                                                  tmp_path: Path) -> None:
    store = Store(sqlite_url)
    _plan(store)
    key = tmp_path / "key"
    key.write_bytes(peer_up.key_file.read_bytes())
    key.chmod(0o600)
    _connect(store, peer_up, key)
    name = start_rollout(store, "kvm-patch", requester="alice", name="kvm-rollout",
                         policy=RolloutPolicy(checks=(
                             "reachable", "version-is-target", "guests-running",
                             "services-healthy", "no-guest-lost")),
                         driver=connection_spec(store, "kvm-lab"))
    state = asyncio.run(drive(store, name, heartbeat_s=0.2))
    status = rollout_status(store, name)
    assert state == "completed", (status["reason"], status["recent_failures"])
    installed = subprocess.run(["chroot", str(peer_up.root), "dpkg-query", "-W", "-f=${Version}",
                                PACKAGE], capture_output=True, text=True, check=True).stdout
    assert installed == NEW                                      # really upgraded
    assert not (peer_up.root / "var/lib/hvpatch/maintenance").exists()   # out of maintenance
    host = get_host(store, HOST)
    assert {p.name: p.version for p in host.software.packages}[PACKAGE] == NEW  # verified
    with store.session() as s:
        steps = [(r.step, r.state) for r in s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.host == HOST).order_by(RolloutStepRow.id))]
    done = [st for st, state_ in steps if state_ == "finished"]
    for step in ("precheck", "enter-maintenance", "stage", "apply", "reboot", "wait-ready",
                 "verify", "checks", "exit-maintenance"):
        assert step in done, steps
    assert verify_store(store).ok
    with store.session() as s:
        trail = " ".join(str(d) for d in s.scalars(select(AuditRow.details)))
    assert peer_up.key_file.read_text()[:60] not in trail
    store.close()


def test_a_connection_without_a_remediation_driver_is_refused(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    add_connection(store, "inv-only", kind="libvirt", url="test:///default", actor="alice")
    with pytest.raises(InputError, match="no remediation driver"):
        connection_spec(store, "inv-only")
    store.close()
