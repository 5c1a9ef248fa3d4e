"""Hyper-V inventory from recorded PowerShell output (``ConvertTo-Json -Depth 4`` of the scripts
the connector runs, Windows Server 2022 build 20348.2527), fed through the runner seam.

The pywinrm transport is not exercised here (test_hyperv_winrm.py does that, against a WinRM
replay server): what is tested is the parsing of what the scripts print, the schema checks and the
error translation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from winrm.exceptions import InvalidCredentialsError

from hvpatch.adapters.connectors.hyperv import HOST_SCRIPT, VMS_SCRIPT, HyperVInventory
from hvpatch.domain.fleet import Criticality, MigrationBlock, PowerState
from hvpatch.domain.software import HyperVSoftware
from hvpatch.errors import DriverError, InputError
from hvpatch.ports.connector import Endpoint

DATA = Path(__file__).parent / "data" / "hyperv"
URLS = "https://hv1.muc1.example:5986/wsman,https://hv2.muc1.example:5986/wsman"


class Recorded:
    """A runner answering each (host, script) with its recorded output."""

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.overrides = overrides or {}

    def __call__(self, url: str, script: str) -> str:
        host = url.split("//")[1].split(".")[0].upper()
        what = {HOST_SCRIPT: "host", VMS_SCRIPT: "vms"}[script]
        self.calls.append((host, what))
        key = f"{host}.{what}"
        return self.overrides.get(key) or (DATA / f"{key}.json").read_text()


def _endpoint() -> Endpoint:
    return Endpoint("hyperv", "muc1", URLS, username="MUC1\\svc-hvpatch", password="pw-123",
                    options={"site": "muc1"})


def test_cluster_nodes_are_read_into_the_expected_fleet(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    runner = Recorded()
    fleet = HyperVInventory(_endpoint(), runner).read()
    assert runner.calls == [("HV1", "host"), ("HV1", "vms"), ("HV2", "host"), ("HV2", "vms")]
    (cluster,) = list(fleet.clusters())
    assert (cluster.site, cluster.name, cluster.family.value) == ("muc1", "HVCL-MUC1", "hyperv")
    hosts = {h.name: h for h in fleet.hosts()}
    assert sorted(hosts) == ["HV1", "HV2"]
    sw = hosts["HV1"].software
    assert sw == HyperVSoftware(build="10.0.20348.2527",
                                kbs=("KB5012170", "KB5039343", "KB5040437"))
    assert sw.label == "Windows Server 2022 10.0.20348.2527"
    assert (hosts["HV1"].cores, hosts["HV1"].memory_mb) == (32, 768 * 1024)
    guests = {g.name: g for _, g in fleet.guests()}
    assert sorted(guests) == ["acme-app-01", "acme-sql-01", "globex-vdi-01", "lab-build-01"]
    sql = guests["acme-sql-01"]
    assert (sql.tenant, sql.criticality, sql.vcpus, sql.memory_mb) == (
        "acme", Criticality.MISSION_CRITICAL, 8, 64 * 1024)
    assert sql.live_migratable
    assert guests["acme-app-01"].memory_mb == 16 * 1024     # dynamic memory: its maximum
    assert guests["globex-vdi-01"].migration_block is MigrationBlock.PCI_PASSTHROUGH
    assert guests["globex-vdi-01"].criticality is Criticality.MEDIUM
    build = guests["lab-build-01"]          # a single VM printed as an object, not an array
    assert (build.tenant, build.power_state) == ("unassigned", PowerState.STOPPED)
    assert build.migration_block is MigrationBlock.LOCAL_DISK   # not a clustered role
    assert "hv3" in caplog.text                                  # node left out of the URLs


def test_a_missing_required_field_is_named() -> None:
    host = json.loads((DATA / "HV2.host.json").read_text())
    del host["UBR"]
    with pytest.raises(InputError) as err:
        HyperVInventory(_endpoint(), Recorded({"HV2.host": json.dumps(host)})).read()
    assert [p.location for p in err.value.problems] == ["hv2.muc1.example.UBR"]
    vms = json.loads((DATA / "HV1.vms.json").read_text())
    del vms[1]["ProcessorCount"]
    with pytest.raises(InputError) as err:
        HyperVInventory(_endpoint(), Recorded({"HV1.vms": json.dumps(vms)})).read()
    assert [p.location for p in err.value.problems] == ["HV1.VM[1].ProcessorCount"]


def test_bad_notes_and_not_json() -> None:
    vms = json.loads((DATA / "HV1.vms.json").read_text())
    vms[0]["Notes"] = "hvpatch:criticality=urgent"
    with pytest.raises(InputError, match="criticality"):
        HyperVInventory(_endpoint(), Recorded({"HV1.vms": json.dumps(vms)})).read()
    with pytest.raises(InputError, match="not JSON"):
        HyperVInventory(_endpoint(), Recorded({"HV1.host": "Get-VMHost : access denied"})
                        ).read()


def test_refused_login_is_a_driver_error_without_the_password() -> None:
    def refuse(url: str, script: str) -> str:
        raise InvalidCredentialsError("the specified credentials were rejected by the server")

    with pytest.raises(DriverError, match="refused") as err:
        HyperVInventory(_endpoint(), refuse).read()
    assert "pw-123" not in str(err.value)
    with pytest.raises(InputError):
        HyperVInventory(Endpoint("hyperv", "x", "hv1.example:5986"))
