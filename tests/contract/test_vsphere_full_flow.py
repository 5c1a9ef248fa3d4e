"""The whole product against the vCenter simulator: sync, assess, plan, roll out, verify.

A vsphere connection to govmomi's vCenter simulator (``tests/peers/vcsim/main.go``, started here
with ``-patch-hook``) is synced into a fresh store over verified TLS, with the password as a
credential reference; the bundled advisory snapshot is imported, findings refreshed and risk
assessed; a campaign is planned with ``create_plan`` and rolled out through the vSphere driver by
the engine, as ``hvpatch rollout start PLAN --connection NAME`` does: evacuation by vMotion,
maintenance mode, the patch step (a local script calling the peer's install hook), the reboot
(``RebootHost_Task``, which the peer adds to vcsim), verification against the live build, checks,
exit from maintenance.

What the simulator's ESXi hosts report, ESXi 6.5 U1 (build 5969303), matches advisories of the
bundled snapshot, but none of them names a fixed 6.5 build the bundled build table knows (6.5 is
past its end of support): the planner refuses on its own, and the campaign overrides the line's
target to its newest release (``latest``), as a user with 6.5 hosts must. Verification then closes
only the findings that no longer match the new build; those fixed only on 7.0 stay open. Two
standalone hosts have nowhere to move their VMs; as an operator would, the test powers those VMs
off in vCenter before the sync.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim
from sqlalchemy import select

from hvpatch.adapters.connectors.vsphere import VSphereDriver
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, ConnectionRow, RolloutStepRow
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.rollout import RolloutPolicy
from hvpatch.errors import PermanentStepError, PlanError
from hvpatch.orchestration.runner import connection_spec, drive, start_rollout
from hvpatch.ports.connector import Endpoint
from hvpatch.services.audit import verify_store
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.connections import add_connection, resolve_endpoint, sync
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import list_findings, refresh_findings
from hvpatch.services.inventory import load_fleet
from hvpatch.services.plans import create_plan
from hvpatch.services.risk import assess_risk
from hvpatch.services.rollouts import rollout_status
from vcsim_support import VcsimPeer, build_vcsim, start_vcsim, stop_vcsim

OLD = "5969303"        # ESXi 6.5 U1, what every vcsim host reports
LATEST_65 = "20502893"  # ESXi650-202210001, the newest 6.5 release of the bundled build table
STANDALONE = ("DC0_H0", "DC1_H0")
PASSWORD_VAR = "HVPATCH_TEST_VCSIM_PASSWORD"

#: the patch step: POST the host and target build to the peer's install hook
PATCH_SCRIPT = '''\
import os, sys, urllib.parse, urllib.request
hook, host, *targets = sys.argv[1:]
build = os.environ["HVPATCH_ESXI_BUILD"]
assert f"esxi={build}" in targets, targets
data = urllib.parse.urlencode({"host": host, "build": build}).encode()
with urllib.request.urlopen(hook + "/install", data, timeout=30) as answer:
    print(answer.read().decode().strip())
'''


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsimPeer]:
    """A simulator of this module's own: the rollout changes its hosts for good."""
    proc, started = start_vcsim(build_vcsim(), tmp_path_factory.mktemp("vcsim-flow"),
                                "-patch-hook")
    try:
        assert started.hook_url, "the peer did not start its install hook"
        yield started
    finally:
        stop_vcsim(proc)


def _power_off_standalone_vms(peer: VcsimPeer) -> list[str]:
    u = urlsplit(peer.url)
    si = SmartConnect(host=u.hostname, port=u.port, path=u.path, user=peer.username,
                      pwd=peer.password,
                      sslContext=ssl.create_default_context(cafile=peer.ca_file))
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder,
                                                       [vim.VirtualMachine], True)
        try:
            vms = [vm for vm in view.view if vm.runtime.host.name in STANDALONE]
        finally:
            view.DestroyView()
        for vm in vms:
            if vm.runtime.powerState == "poweredOn":
                WaitForTask(vm.PowerOffVM_Task())
        return sorted(vm.name for vm in vms)
    finally:
        Disconnect(si)


def test_sync_assess_plan_and_roll_out_through_vcenter(
        peer: VcsimPeer, sqlite_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = _power_off_standalone_vms(peer)
    assert len(stopped) == 4, stopped
    store = Store(sqlite_url)
    script = tmp_path / "esxi-patch.py"
    script.write_text(PATCH_SCRIPT)
    monkeypatch.setenv(PASSWORD_VAR, peer.password)

    # 1. connect (TLS verified against the peer's CA, the password by reference) and sync
    add_connection(store, "vc-lab", kind="vsphere", url=peer.url, actor="alice",
                   username=peer.username, credential=f"env:{PASSWORD_VAR}",
                   ca_file=peer.ca_file, options={
                       "patch_command": shlex.join([sys.executable, str(script), peer.hook_url]),
                       "poll_interval_s": "0.1"})
    summary, info = sync(store, "vc-lab", actor="alice")
    assert info["verify_tls"] is True
    assert summary.added["hosts"] == 14 and summary.added["guests"] == 12
    hosts = {h.name: h for h in load_fleet(store).hosts()}
    assert {h.software.components()[0].version for h in hosts.values()} == {OLD}

    # 2. the bundled advisories: every ESXi host has open findings, and a decision
    import_feeds(store, [bundled_feeds_dir()])
    refreshed = refresh_findings(store)
    assert refreshed.hosts == 14 and refreshed.open_total > 0
    before = list_findings(store)
    assert {f["host"] for f in before} == set(hosts)
    assert {f["installed"] for f in before} == {f"6.5.0-{OLD}"}
    risk = assess_risk(store)
    assert risk.hosts == 14

    # 3. plan: no advisory names a fixed 6.5 build, so the planner refuses until the line's
    # target is overridden; then it picks the line's newest release from the build table
    policy = plan_policy_from_dict({
        "ha_reserve_hosts": 0,
        "rings": {"prod": {"soak_hours": 0.0, "approval": False}}})
    with pytest.raises(PlanError, match=r"no fix on line esxi 6\.5"):
        create_plan(store, requester="alice", name="refused", policy=policy)
    _, plan = create_plan(store, requester="alice", name="esxi65", policy=policy,
                          overrides={"esxi 6.5": "latest"})
    planned = {h.host: h for w in plan.waves() for h in w.hosts}
    assert set(planned) == set(hosts), plan.skipped
    assert {(h.current, h.target) for h in planned.values()} == {
        (f"ESXi 6.5 U1 ({OLD})", f"ESXi650-202210001 ({LATEST_65})")}
    assert {h.components for h in planned.values()} == {(("esxi", LATEST_65),)}
    moves = plan.moves()
    assert moves and not set(stopped) & {m.guest for m in moves}   # vMotion, not the stopped

    # 4. roll it out through the vSphere driver, on the real clock. vcsim accepts a cluster
    # reconfigure but ignores drsConfig (docs/vsphere.md), so no cluster setting is held.
    name = start_rollout(store, "esxi65", requester="alice", name="esxi65-rollout",
                         policy=RolloutPolicy(
                             checks=("reachable", "version-is-target", "guests-running",
                                     "services-healthy", "no-guest-lost"),
                             cluster_settings={}, retry_backoff_s=1.0),
                         driver=connection_spec(store, "vc-lab"))
    state = asyncio.run(drive(store, name, heartbeat_s=0.2))
    status = rollout_status(store, name)
    assert state == "completed", (status["reason"], status["recent_failures"])
    assert status["hosts"] == {"done": 14}, status["hosts"]

    # 5. what a user notices: every host runs the target, read back live through the driver
    async def live() -> dict[str, tuple[str, bool, bool]]:
        driver = VSphereDriver(resolve_endpoint(store, "vc-lab"))
        try:
            out = {}
            for host in sorted(planned):
                st = await driver.host_state(host)
                out[host] = (dict(st.components)["esxi"], st.maintenance, st.reboot_required)
            return out
        finally:
            await driver.close()

    assert asyncio.run(live()) == {h: (LATEST_65, False, False) for h in planned}
    with store.session() as s:
        steps = [(r.host, r.step, r.state) for r in s.scalars(
            select(RolloutStepRow).order_by(RolloutStepRow.id))]
        evidence = {r.host: r.evidence for r in s.scalars(select(RolloutStepRow).where(
            RolloutStepRow.step == "reboot", RolloutStepRow.state == "finished"))}
        moved = [m for e in s.scalars(select(RolloutStepRow.evidence).where(
            RolloutStepRow.step == "evacuate", RolloutStepRow.state == "finished"))
            for m in (e or {}).get("moved", ())]
    for host in planned:
        done = [st for h, st, state_ in steps if h == host and state_ == "finished"]
        for step in ("precheck", "enter-maintenance", "apply", "reboot", "wait-ready",
                     "verify", "checks", "exit-maintenance"):
            assert step in done, (host, steps)
        assert "boot_id_before" in evidence[host], evidence[host]   # really rebooted
    assert len(moved) >= len(moves), moved   # the plan's vMotions (RelocateVM_Task) happened
    # ... and a fresh sync from vCenter records it too
    sync(store, "vc-lab", actor="alice")
    assert {h.software.components()[0].version for h in load_fleet(store).hosts()} == {LATEST_65}

    # findings that matched only the old build are closed by verification; the others stay
    assert status["findings_closed"] > 0
    closed = list_findings(store, state="closed")
    assert len(closed) == status["findings_closed"]
    assert {f["host"] for f in closed} == set(planned)
    still_open = list_findings(store)
    assert still_open and {f["installed"] for f in still_open} == {f"6.5.0-{LATEST_65}"}
    assert len(closed) + len(still_open) == len(before)
    assert {f["cve"] for f in still_open} >= {"CVE-2021-21995"}   # fixed only in 7.0

    # the audit chain verifies; the password is nowhere in the store
    assert verify_store(store).ok
    with store.session() as s:
        trail = " ".join(str(d) for d in s.scalars(select(AuditRow.details)))
        rows = " ".join(str((r.url, r.username, r.credential, r.options))
                        for r in s.scalars(select(ConnectionRow)))
        evidence_text = " ".join(str(e) for e in s.scalars(select(RolloutStepRow.evidence)))
    assert f"env:{PASSWORD_VAR}" in rows
    for text in (trail, rows, evidence_text):
        assert peer.password not in text
    store.close()
    db = Path(urlsplit(sqlite_url).path)
    for f in db.parent.glob(db.name + "*"):
        assert peer.password.encode() not in f.read_bytes(), f


def test_the_peer_refuses_an_install_or_reboot_outside_maintenance(peer: VcsimPeer) -> None:
    """The stand-ins behave as ESXi and vCenter do, so the rollout above had to do its part."""
    answer = subprocess.run([sys.executable, "-c", PATCH_SCRIPT, peer.hook_url, "DC1_C0_H0",
                             f"esxi={LATEST_65}"], capture_output=True, text=True,
                            env={**os.environ, "HVPATCH_ESXI_BUILD": LATEST_65})
    assert answer.returncode != 0 and "409" in answer.stderr, answer

    async def reboot() -> None:
        driver = VSphereDriver(_endpoint(peer))
        try:
            await driver.reboot("DC1_C0_H0")
        finally:
            await driver.close()

    with pytest.raises(PermanentStepError, match=r"rebooting DC1_C0_H0 failed: .*InvalidState"):
        asyncio.run(reboot())


def test_a_standalone_host_has_no_cluster_settings_to_hold(peer: VcsimPeer) -> None:
    """The inventory makes a standalone host a cluster of its own: the engine reads its settings
    before a rollout (to hold DRS), so the driver answers with none instead of failing."""
    async def settings() -> None:
        driver = VSphereDriver(_endpoint(peer))
        try:
            assert await driver.cluster_settings("DC0_H0") == {}
            await driver.set_cluster_settings("DC0_H0", {})          # nothing to change
            with pytest.raises(PermanentStepError, match="DC0_H0 is a standalone host"):
                await driver.set_cluster_settings("DC0_H0", {"drs_automation": "manual"})
            with pytest.raises(PermanentStepError, match="no ComputeResource named 'nope'"):
                await driver.cluster_settings("nope")
        finally:
            await driver.close()

    asyncio.run(settings())


def _endpoint(peer: VcsimPeer) -> Endpoint:
    return Endpoint("vsphere", "vc-lab", peer.url, username=peer.username,
                    password=peer.password, ca_file=peer.ca_file)
