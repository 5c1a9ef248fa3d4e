"""XAPI inventory through the real XenAPI SDK (its XML-RPC transport) against a local XML-RPC
server replaying recorded ``get_all_records`` answers (tests/contract/data/xapi) in XenAPI's wire
format: ``{"Status": "Success", "Value": ...}``, failures as ``ErrorDescription`` lists."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from hvpatch.adapters.connectors import inventory_source
from hvpatch.domain.fleet import Criticality, MigrationBlock, PowerState
from hvpatch.domain.software import XenSoftware
from hvpatch.errors import DriverError, InputError
from hvpatch.ports.connector import Endpoint

DATA = Path(__file__).parent / "data" / "xapi"
PASSWORD = "xapi-Secret-9d81"
SESSION = "OpaqueRef:5d4c3b2a-session-0001"


class FakeXapi:
    """Answers XenAPI calls from recorded records, checking the session reference."""

    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records
        self.calls: list[str] = []

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        self.calls.append(method)
        if method == "session.login_with_password":
            if params[:2] != ("root", PASSWORD):
                return {"Status": "Failure", "ErrorDescription": [
                    "SESSION_AUTHENTICATION_FAILED", str(params[0]), "Authentication failure"]}
            return {"Status": "Success", "Value": SESSION}
        if not params or params[0] != SESSION:
            return {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", str(params)]}
        cls, _, call = method.partition(".")
        if method == "session.logout":
            return {"Status": "Success", "Value": ""}
        if call == "get_all_records" and cls in self.records:
            return {"Status": "Success", "Value": self.records[cls]}
        return {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", method]}


class _Quiet(SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[SimpleXMLRPCServer] = []

    def start(records: dict[str, Any]) -> tuple[str, FakeXapi]:
        server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=_Quiet,
                                    allow_none=False, logRequests=False)
        fake = FakeXapi(records)
        server.register_instance(fake)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", fake

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _records(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text())["records"])


def _endpoint(url: str, password: str = PASSWORD, **options: str) -> Endpoint:
    return Endpoint("xapi", "ams1", url, username="root", password=password,
                    options={"site": "ams1", **options})


def test_xcpng_pool_is_read_into_the_expected_fleet(serve: Any) -> None:
    url, fake = serve(_records("xcpng-pool.json"))
    source = inventory_source(_endpoint(url))
    fleet = source.read()
    source.close()
    assert fake.calls[0] == "session.login_with_password"
    assert fake.calls[-1] == "session.logout"
    (cluster,) = list(fleet.clusters())
    assert (cluster.site, cluster.name, cluster.family.value) == ("ams1", "xcp-ams1", "xen")
    hosts = {h.name: h for h in fleet.hosts()}
    assert sorted(hosts) == ["xcp1", "xcp2"]
    assert hosts["xcp1"].coordinator and not hosts["xcp2"].coordinator
    sw = hosts["xcp1"].software
    assert sw == XenSoftware(xen="4.13.5-9.40", product="xcp-ng", product_version="8.2.1")
    assert sw.label == "XCP-ng 8.2.1 (Xen 4.13.5-9.40)"
    assert (hosts["xcp1"].cores, hosts["xcp1"].memory_mb) == (16, 384 * 1024)
    placed = {g.name: h.name for h, g in fleet.guests()}
    # templates, snapshots and control domains are not guests; a halted VM goes to its affinity
    # host, one without any to the pool master
    assert placed == {"acme-erp-01": "xcp1", "globex-render-01": "xcp2",
                      "globex-cache-01": "xcp2", "acme-batch-01": "xcp2", "lab-01": "xcp1"}
    guests = {g.name: g for _, g in fleet.guests()}
    erp = guests["acme-erp-01"]
    assert (erp.tenant, erp.criticality, erp.vcpus, erp.memory_mb) == (
        "acme", Criticality.MISSION_CRITICAL, 4, 16384)
    assert erp.live_migratable                      # its disk is on the shared NFS SR
    assert guests["globex-render-01"].migration_block is MigrationBlock.PCI_PASSTHROUGH
    assert guests["globex-cache-01"].migration_block is MigrationBlock.CPU_PINNING
    assert guests["globex-cache-01"].criticality is Criticality.MEDIUM
    batch = guests["acme-batch-01"]
    assert batch.migration_block is MigrationBlock.LOCAL_DISK and "Local storage" in \
        batch.migration_note
    assert batch.power_state is PowerState.STOPPED
    assert guests["lab-01"].power_state is PowerState.SUSPENDED
    assert guests["lab-01"].tenant == "unassigned"
    assert {t.name for t in fleet.tenants} == {"acme", "globex", "unassigned"}


def test_xenserver8_single_host(serve: Any) -> None:
    url, _ = serve(_records("xenserver8-host.json"))
    fleet = inventory_source(_endpoint(url, cluster="lon1-xs")).read()
    (host,) = list(fleet.hosts())
    assert (host.name, host.cluster, host.cores, host.coordinator) == (
        "xs8-lon1", "lon1-xs", 24, True)
    assert host.software == XenSoftware(xen="4.17.4-3", product="xenserver",
                                        product_version="8.4.0")
    assert [g.tenant for g in host.guests] == ["initech"]


def test_refused_login_names_no_secret(serve: Any) -> None:
    url, _ = serve(_records("xcpng-pool.json"))
    with pytest.raises(DriverError, match="login refused") as err:
        inventory_source(_endpoint(url, password="wrong-one")).read()
    assert "wrong-one" not in str(err.value)


def test_a_missing_required_field_is_named(serve: Any) -> None:
    records = copy.deepcopy(_records("xcpng-pool.json"))
    del records["host"]["OpaqueRef:7c3e1f2a-0002-4b8e-9a61-222222222222"]["software_version"][
        "xen"]
    url, _ = serve(records)
    with pytest.raises(InputError) as err:
        inventory_source(_endpoint(url)).read()
    assert [p.location for p in err.value.problems] == [
        "host[b1c2d3e4-0002-4000-8000-000000000002].software_version.xen"]


def test_bad_criticality_and_unreachable(serve: Any) -> None:
    records = copy.deepcopy(_records("xcpng-pool.json"))
    records["VM"]["OpaqueRef:vm-a"]["other_config"]["hvpatch-criticality"] = "urgent"
    url, _ = serve(records)
    with pytest.raises(InputError) as err:
        inventory_source(_endpoint(url)).read()
    assert err.value.problems[0].location == "VM[a-1].other_config.hvpatch-criticality"
    with pytest.raises(DriverError, match="unreachable"):
        inventory_source(_endpoint("http://127.0.0.1:1")).read()
