"""The KVM-over-SSH driver and the Ansible patch step against a real peer: OpenSSH serving a
Debian root with a local apt repository (``tests/ssh_peer_support.py``).

Everything here goes over real SSH with host key checking on, and every package change is made
by the peer's own apt and dpkg, then read back with dpkg-query outside SSH. The peer needs root,
debootstrap and (the first time) the Debian mirror: without them the tests skip with the reason,
under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hvpatch.adapters.connectors.ansible_step import AnsiblePatchStep
from hvpatch.adapters.connectors.ssh_linux import PatchStep, SshLinuxDriver
from hvpatch.errors import PermanentStepError, TemporaryStepError
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import HypervisorDriver
from ssh_peer_support import (
    FAKE_REBOOT,
    NEW,
    OLD,
    PACKAGE,
    REPO_ROOT,
    Peer,
    driver_options,
)

HOST = "kvm-peer"
PASSWORD = "not-a-real-secret-7f3a"
PLAYBOOK = REPO_ROOT / "examples" / "ansible" / "patch-kvm.yml"


@pytest.fixture
def peer(ssh_peer: Peer) -> Peer:
    """The peer, reset to the old version with no markers before each test."""
    ssh_peer.reset()
    return ssh_peer


def endpoint(peer: Peer, **options: str) -> Endpoint:
    return Endpoint("kvm-ssh", "peer", f"ssh://{peer.address}:{peer.port}", username="root",
                    password=PASSWORD, options=driver_options(peer, HOST, **options))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with(driver: SshLinuxDriver, coro: Any) -> Any:
    try:
        return await coro
    finally:
        await driver.close()


def call(peer: Peer, op: str, *args: Any, patch_step: PatchStep | None = None,
         **options: str) -> Any:
    """One driver operation on a fresh driver (its own event loop, connection closed after)."""
    driver = SshLinuxDriver(endpoint(peer, **options), patch_step=patch_step)
    return run(_with(driver, getattr(driver, op)(*args)))


def dpkg_log_lines(peer: Peer) -> int:
    log = peer.root / "var/log/dpkg.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


@contextlib.contextmanager
def dpkg_locked(peer: Peer) -> Iterator[None]:
    """Hold the peer's dpkg frontend lock as another apt run would (a POSIX lock, as apt's)."""
    with (peer.root / "var/lib/dpkg/lock-frontend").open("a+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


# --- reading -----------------------------------------------------------------------------------

def test_driver_implements_the_port(peer: Peer) -> None:
    driver = SshLinuxDriver(endpoint(peer))
    assert isinstance(driver, HypervisorDriver)
    assert driver.capabilities.rollback and driver.capabilities.stage
    assert not driver.capabilities.live_migration     # no libvirt_uri
    assert run(driver.cluster_settings("c1")) == {}


def test_host_state_reads_the_installed_version_over_ssh(peer: Peer) -> None:
    state = call(peer, "host_state", HOST)
    assert state.reachable and not state.maintenance and not state.reboot_required
    assert state.components == ((PACKAGE, OLD),)
    assert state.boot_id == "boot-1"
    assert state.staged == () and state.guests == ()


def test_default_boot_id_is_the_kernels(peer: Peer) -> None:
    state = call(peer, "host_state", HOST, boot_id_command="cat /proc/sys/kernel/random/boot_id")
    assert state.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_untracked_or_absent_packages_are_left_out(peer: Peer) -> None:
    state = call(peer, "host_state", HOST, packages=f"libvirt-daemon,{PACKAGE},dpkg")
    names = [n for n, _ in state.components]
    assert names == [PACKAGE, "dpkg"]     # libvirt-daemon is not installed on the peer


def test_reboot_required_flag(peer: Peer) -> None:
    (peer.root / "run/reboot-required").write_text("*** System restart required ***\n")
    assert call(peer, "host_state", HOST).reboot_required


def test_unreachable_host_is_reported_not_raised(peer: Peer) -> None:
    from ssh_peer_support import free_port

    state = call(peer, "host_state", HOST, hosts=f"{HOST}=127.0.0.1:{free_port()}")
    assert not state.reachable and state.components == ()


# --- host keys ---------------------------------------------------------------------------------

def _refused(peer: Peer, known_hosts: Path) -> PermanentStepError:
    with pytest.raises(PermanentStepError) as info:
        call(peer, "apply_patch", HOST, ((PACKAGE, NEW),), known_hosts=str(known_hosts))
    return info.value


def test_wrong_host_key_is_refused_and_nothing_changes(peer: Peer, tmp_path: Path) -> None:
    kind, key = peer.other_key.read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{peer.address}]:{peer.port} {kind} {key}\n")
    before = dpkg_log_lines(peer)
    error = _refused(peer, wrong)
    message = str(error)
    assert HOST in message and "ssh-keyscan" in message and str(peer.port) in message
    assert PASSWORD not in message
    assert peer.installed() == OLD and dpkg_log_lines(peer) == before


def test_unknown_host_key_is_refused(peer: Peer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    assert "not trusted" in str(_refused(peer, empty))
    missing = _refused(peer, tmp_path / "absent_known_hosts")
    assert "does not exist" in str(missing) and "ssh-keyscan" in str(missing)
    assert peer.installed() == OLD


# --- packages ----------------------------------------------------------------------------------

def test_apply_patch_upgrades_for_real_and_is_idempotent(peer: Peer) -> None:
    call(peer, "apply_patch", HOST, ((PACKAGE, NEW),))
    assert peer.installed() == NEW
    assert call(peer, "host_state", HOST).components == ((PACKAGE, NEW),)
    with dpkg_locked(peer):     # already there: apt is not even asked, so the lock is no bar
        call(peer, "apply_patch", HOST, ((PACKAGE, NEW),))
    assert peer.installed() == NEW


def test_unknown_version_names_what_the_repository_offers(peer: Peer) -> None:
    with pytest.raises(PermanentStepError) as info:
        call(peer, "apply_patch", HOST, ((PACKAGE, "1:9.9-1"),))
    message = str(info.value)
    assert f"{PACKAGE} 1:9.9-1" in message and OLD in message and NEW in message
    assert peer.installed() == OLD


def test_stage_downloads_without_installing(peer: Peer) -> None:
    call(peer, "stage_patch", HOST, ((PACKAGE, NEW),))
    archives = peer.root / "var/cache/apt/archives"
    assert [p.name for p in archives.glob(f"{PACKAGE}_*.deb")] == \
        [f"{PACKAGE}_{NEW.replace(':', '%3a')}_all.deb"]     # apt's name for the epoch
    assert peer.installed() == OLD
    assert call(peer, "host_state", HOST).staged == ((PACKAGE, NEW),)
    call(peer, "apply_patch", HOST, ((PACKAGE, NEW),))
    state = call(peer, "host_state", HOST)
    assert state.components == ((PACKAGE, NEW),) and state.staged == ()


def test_held_dpkg_lock_is_a_temporary_error(peer: Peer) -> None:
    with dpkg_locked(peer), pytest.raises(TemporaryStepError) as info:
        call(peer, "apply_patch", HOST, ((PACKAGE, NEW),), apt_update="false")
    assert info.value.delay > 0 and "lock" in str(info.value)
    assert peer.installed() == OLD
    call(peer, "apply_patch", HOST, ((PACKAGE, NEW),))          # the retry succeeds
    assert peer.installed() == NEW


def test_rollback_reinstalls_the_recorded_previous_version(peer: Peer) -> None:
    with pytest.raises(PermanentStepError, match="no previous versions recorded"):
        call(peer, "rollback", HOST)
    call(peer, "apply_patch", HOST, ((PACKAGE, NEW),))
    assert peer.installed() == NEW
    call(peer, "rollback", HOST)
    assert peer.installed() == OLD
    with dpkg_locked(peer):
        call(peer, "rollback", HOST)                               # idempotent: apt not asked
    assert peer.installed() == OLD


# --- reboot, readiness, probe, maintenance -----------------------------------------------------

def test_reboot_then_wait_ready_sees_a_new_boot_id(peer: Peer) -> None:
    async def scenario() -> tuple[str, str]:
        driver = SshLinuxDriver(endpoint(peer, reboot_command=FAKE_REBOOT))
        try:
            before = (await driver.host_state(HOST)).boot_id
            await driver.reboot(HOST)
            await driver.wait_ready(HOST, timeout_s=20)
            return before, (await driver.host_state(HOST)).boot_id
        finally:
            await driver.close()

    before, after = run(scenario())
    assert before == "boot-1" and after not in ("", "boot-1")


def test_wait_ready_gives_up_when_the_host_does_not_reboot(peer: Peer) -> None:
    async def scenario() -> None:
        driver = SshLinuxDriver(endpoint(peer, reboot_command="true"))
        try:
            await driver.reboot(HOST)
            await driver.wait_ready(HOST, timeout_s=1)
        finally:
            await driver.close()

    with pytest.raises(PermanentStepError, match="not back within 1 s"):
        run(scenario())


def test_failing_reboot_command_is_permanent(peer: Peer) -> None:
    with pytest.raises(PermanentStepError, match="reboot command failed"):
        call(peer, "reboot", HOST, reboot_command="echo no permission >&2; exit 3")


def test_probe_reports_each_service(peer: Peer) -> None:
    down = call(peer, "probe", HOST)
    assert not down.services_ok and down.services == {"fake-libvirtd": "inactive"}
    peer.service_up()
    up = call(peer, "probe", HOST)
    assert up.services_ok and up.services == {"fake-libvirtd": "active"}


def test_maintenance_marker(peer: Peer) -> None:
    call(peer, "enter_maintenance", HOST)
    call(peer, "enter_maintenance", HOST)                          # idempotent
    assert (peer.root / "var/lib/hvpatch/maintenance").is_file()
    assert call(peer, "host_state", HOST).maintenance
    call(peer, "exit_maintenance", HOST)
    call(peer, "exit_maintenance", HOST)
    assert not call(peer, "host_state", HOST).maintenance


def test_no_libvirt_means_no_guests_and_no_migration(peer: Peer) -> None:
    with pytest.raises(PermanentStepError, match="no libvirt_uri"):
        call(peer, "migrate_guest", "vm1", "kvm-other")


@pytest.fixture
def libvirt_test_uri() -> Iterator[str]:
    """libvirt's test driver; one open connection keeps its state between the driver's calls."""
    libvirt = pytest.importorskip("libvirt")
    keep = libvirt.open("test:///default")
    try:
        yield "test:///default"
    finally:
        dom = keep.lookupByName("test")
        if not dom.isActive():
            dom.create()
        keep.close()


def test_maintenance_is_refused_while_libvirt_guests_run(peer: Peer,
                                                         libvirt_test_uri: str) -> None:
    opts = {"libvirt_uri": libvirt_test_uri}
    state = call(peer, "host_state", HOST, **opts)
    assert [(g.name, g.running) for g in state.guests] == [("test", True)]
    with pytest.raises(PermanentStepError, match="guests still run there: test"):
        call(peer, "enter_maintenance", HOST, **opts)
    assert not (peer.root / "var/lib/hvpatch/maintenance").exists()
    call(peer, "shutdown_guest", "test", **opts)
    assert call(peer, "host_state", HOST, **opts).running_guests() == ()
    call(peer, "enter_maintenance", HOST, **opts)
    assert call(peer, "host_state", HOST, **opts).maintenance
    call(peer, "start_guest", "test", **opts)
    call(peer, "start_guest", "test", **opts)                      # idempotent
    assert call(peer, "host_state", HOST, **opts).running_guests() == ("test",)
    # the test driver cannot migrate: the refusal is translated and names the guest
    with pytest.raises(PermanentStepError, match="migrate guest test from kvm-peer"):
        call(peer, "migrate_guest", "test", "kvm-other", **opts)
    call(peer, "migrate_guest", "test", HOST, **opts)              # already there: nothing


# --- the Ansible patch step --------------------------------------------------------------------

def test_ansible_step_upgrades_the_package_over_ssh(peer: Peer) -> None:
    step = AnsiblePatchStep.for_endpoint(endpoint(peer), PLAYBOOK)
    evidence = run(step.apply(HOST, ((PACKAGE, NEW),)))
    assert peer.installed() == NEW
    assert "Install the target package versions: ok (changed)" in evidence
    assert "Reboot the host: skipped" in evidence


def test_driver_delegates_apply_to_the_patch_step(peer: Peer) -> None:
    step = AnsiblePatchStep.for_endpoint(endpoint(peer), PLAYBOOK)
    call(peer, "apply_patch", HOST, ((PACKAGE, NEW),), patch_step=step)
    assert peer.installed() == NEW
    state = call(peer, "host_state", HOST)
    assert state.components == ((PACKAGE, NEW),)
    call(peer, "rollback", HOST)                    # the driver recorded what the step replaced
    assert peer.installed() == OLD


def test_failing_playbook_names_the_task(peer: Peer) -> None:
    step = AnsiblePatchStep.for_endpoint(endpoint(peer), PLAYBOOK)
    with pytest.raises(PermanentStepError) as info:
        call(peer, "apply_patch", HOST, ((PACKAGE, "1:9.9-1"),), patch_step=step)
    assert "at task 'Install the target package versions'" in str(info.value)
    assert peer.installed() == OLD


def test_ansible_checks_the_host_key(peer: Peer, tmp_path: Path) -> None:
    kind, key = peer.other_key.read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{peer.address}]:{peer.port} {kind} {key}\n")
    step = AnsiblePatchStep.for_endpoint(endpoint(peer, known_hosts=str(wrong)), PLAYBOOK)
    with pytest.raises(PermanentStepError, match="failed on kvm-peer"):
        run(step.apply(HOST, ((PACKAGE, NEW),)))
    assert peer.installed() == OLD
