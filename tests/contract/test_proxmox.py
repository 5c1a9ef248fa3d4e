"""Proxmox VE inventory through the real proxmoxer + requests transport, over real TLS, against a
local server replaying recorded PVE 8.2.4 API answers (tests/contract/data/proxmox)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_server import ReplayServer, Reply, make_ca_and_cert

from hvpatch.adapters.connectors import inventory_source
from hvpatch.adapters.connectors.proxmox import parse_tags
from hvpatch.domain.fleet import Criticality, MigrationBlock, PowerState
from hvpatch.domain.software import ProxmoxSoftware
from hvpatch.errors import DriverError, InputError
from hvpatch.ports.connector import Endpoint

DATA = Path(__file__).parent / "data" / "proxmox" / "cluster.json"
SECRET = "5f2c1b7e-0d7a-4b9e-9c1a-3e7f0a9d4c21"


def _serve(server: ReplayServer, responses: dict[str, Any]) -> None:
    for path, body in responses.items():
        server.route(path, Reply.json(body))


@pytest.fixture
def recorded() -> dict[str, Any]:
    return dict(json.loads(DATA.read_text())["responses"])


@pytest.fixture
def pve(tmp_path: Path, recorded: dict[str, Any]) -> Iterator[tuple[ReplayServer, Path]]:
    ca, cert, key = make_ca_and_cert(tmp_path)
    with ReplayServer(tls=(cert, key)) as server:
        _serve(server, recorded)
        yield server, ca


def _endpoint(server: ReplayServer, cert: Path, **kw: Any) -> Endpoint:
    port = server.url.rsplit(":", 1)[1]
    base: dict[str, Any] = {"username": "hvpatch@pve!inventory", "password": SECRET,
                            "ca_file": str(cert), "options": {"site": "fra1"}}
    base.update(kw)
    return Endpoint("proxmox", "pve-fra1", f"https://127.0.0.1:{port}", **base)


def test_cluster_is_read_into_the_expected_fleet(pve: tuple[ReplayServer, Path]) -> None:
    server, cert = pve
    source = inventory_source(_endpoint(server, cert))
    fleet = source.read()
    source.close()
    (site,) = fleet.sites
    (cluster,) = site.clusters
    assert (site.name, cluster.name, cluster.family.value) == ("fra1", "pve-fra1", "proxmox")
    hosts = {h.name: h for h in fleet.hosts()}
    assert sorted(hosts) == ["pve1", "pve2"]
    sw = hosts["pve1"].software
    assert isinstance(sw, ProxmoxSoftware)
    assert (sw.pve_manager, sw.pve_qemu_kvm, sw.kernel) == ("8.2.4", "8.1.5-6", "6.8.8-2-pve")
    assert {p.name for p in sw.packages} >= {"proxmox-ve", "qemu-server", "corosync"}
    assert "pve-kernel-helper" not in {p.name for p in sw.packages}   # not installed
    assert (hosts["pve1"].cores, hosts["pve1"].memory_mb) == (32, 512 * 1024)
    assert (hosts["pve2"].cores, hosts["pve2"].memory_mb) == (16, 256 * 1024)
    guests = {g.name: g for _, g in fleet.guests()}
    assert sorted(guests) == ["acme-db-01", "acme-dns-01", "acme-web-01", "globex-ci-01",
                              "globex-gpu-01", "lab-scratch"]      # the template is left out
    assert (guests["acme-web-01"].tenant, guests["acme-web-01"].criticality) == (
        "acme", Criticality.HIGH)
    assert guests["acme-web-01"].live_migratable and guests["acme-web-01"].memory_mb == 4096
    assert guests["acme-db-01"].criticality is Criticality.MISSION_CRITICAL
    assert guests["acme-db-01"].migration_block is MigrationBlock.CPU_PINNING
    assert guests["globex-gpu-01"].migration_block is MigrationBlock.PCI_PASSTHROUGH
    assert guests["globex-ci-01"].migration_block is MigrationBlock.LOCAL_DISK
    assert guests["globex-ci-01"].power_state is PowerState.STOPPED
    assert guests["lab-scratch"].live_migratable          # a cdrom ISO on local does not pin
    assert guests["lab-scratch"].tenant == "unassigned"
    assert guests["acme-dns-01"].migration_block is MigrationBlock.OTHER
    assert {t.name for t in fleet.tenants} == {"acme", "globex", "unassigned"}
    # the token went in PVE's header, over TLS verified against the given CA file
    auth = {r.headers.get("authorization") for r in server.requests}
    assert auth == {f"PVEAPIToken=hvpatch@pve!inventory={SECRET}"}


def test_untrusted_certificate_is_refused_and_insecure_warns(
        pve: tuple[ReplayServer, Path], caplog: pytest.LogCaptureFixture) -> None:
    server, cert = pve
    with pytest.raises(DriverError, match="TLS certificate not trusted") as err:
        inventory_source(_endpoint(server, cert, ca_file="")).read()
    assert SECRET not in str(err.value)
    with caplog.at_level(logging.WARNING):
        fleet = inventory_source(_endpoint(server, cert, ca_file="", verify_tls=False)).read()
    assert len(list(fleet.hosts())) == 2
    assert "TLS certificate verification is OFF" in caplog.text and SECRET not in caplog.text


def test_a_missing_required_field_is_named(tmp_path: Path, recorded: dict[str, Any]) -> None:
    broken = copy.deepcopy(recorded)
    del broken["/api2/json/nodes/pve2/status"]["data"]["pveversion"]
    ca, cert, key = make_ca_and_cert(tmp_path)
    with ReplayServer(tls=(cert, key)) as server:
        _serve(server, broken)
        with pytest.raises(InputError) as err:
            inventory_source(_endpoint(server, ca)).read()
    assert [p.location for p in err.value.problems] == ["nodes/pve2/status.pveversion"]


def test_refused_token_is_a_driver_error(pve: tuple[ReplayServer, Path]) -> None:
    server, cert = pve
    server.fail("/api2/json/version", Reply.json({"data": None}, status=401), times=None)
    with pytest.raises(DriverError, match="refused") as err:
        inventory_source(_endpoint(server, cert)).read()
    assert SECRET not in str(err.value)


def test_tags_and_bad_url() -> None:
    assert parse_tags("tenant-acme;crit-low", default_tenant="x", where="q") == (
        "acme", Criticality.LOW)
    with pytest.raises(InputError, match="crit-"):
        parse_tags("crit-urgent", default_tenant="x", where="q")
    with pytest.raises(InputError):
        inventory_source(Endpoint("proxmox", "p", "http://pve1:8006"))

