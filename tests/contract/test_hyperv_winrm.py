"""Hyper-V inventory through the real pywinrm transport (``winrm.Session.run_ps`` over requests),
over real TLS with Basic authentication, against a local WinRM replay server
(tests/contract/winrm_replay.py) that answers the WS-Management shell exchange and prints the
recorded PowerShell outputs of tests/contract/data/hyperv/ for the scripts the connector sends.

Not covered: NTLM, Kerberos and CredSSP (message-level encryption), and a real Windows host."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from replay_server import make_ca_and_cert
from test_hyperv import DATA, Recorded
from test_hyperv import _endpoint as _seam_endpoint
from winrm_replay import WinRmReplay

from hvpatch.adapters.connectors.hyperv import HOST_SCRIPT, VMS_SCRIPT, HyperVInventory
from hvpatch.errors import DriverError, InputError
from hvpatch.ports.connector import Endpoint

USER, PASSWORD = "hvpatch-ro", "Winrm-pw-8472"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _servers(tmp: Path, scripts: dict[str, list[str]]) -> tuple[Path, list[WinRmReplay]]:
    ca, cert, key = make_ca_and_cert(tmp)
    servers = []
    for host, which in scripts.items():
        texts = {"host": HOST_SCRIPT, "vms": VMS_SCRIPT}
        recorded = {texts[w]: (DATA / f"{host}.{w}.json").read_bytes() for w in which}
        servers.append(WinRmReplay(cert, key, USER, PASSWORD, recorded,
                                   keys={texts[w]: f"{host}.{w}" for w in which}))
    return ca, servers


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[Path, list[WinRmReplay]]]:
    ca, servers = _servers(tmp_path, {"HV1": ["host", "vms"], "HV2": ["host", "vms"]})
    with servers[0], servers[1]:
        yield ca, servers


def _endpoint(servers: list[WinRmReplay], ca: Path | None, **kw: Any) -> Endpoint:
    base: dict[str, Any] = {"username": USER, "password": PASSWORD,
                            "ca_file": str(ca) if ca else "",
                            "options": {"site": "muc1", "transport": "basic", "timeout": "5"}}
    base.update(kw)
    return Endpoint("hyperv", "muc1", ",".join(s.url for s in servers), **base)


def test_read_through_pywinrm_gives_the_seam_fleet(
        hosts: tuple[Path, list[WinRmReplay]]) -> None:
    ca, servers = hosts
    fleet = HyperVInventory(_endpoint(servers, ca)).read()
    assert fleet == HyperVInventory(_seam_endpoint(), Recorded()).read()
    assert len(list(fleet.guests())) == 4
    for server, host in zip(servers, ["HV1", "HV2"], strict=True):
        log = server.exchanges
        # per script: Create, Command, Receive (until Done), Signal, Delete -- one shell each
        assert [a for a, _ in groupby(e.action for e in log)] == [
            "Create", "Command", "Receive", "Signal", "Delete"] * 2
        assert [e.script for e in log if e.action == "Command"] == [f"{host}.host",
                                                                     f"{host}.vms"]
        for _, script in groupby(log, key=lambda e: e.shell_id):
            shell = list(script)
            assert len({e.shell_id for e in shell}) == 1 and len(shell) >= 5
            command_ids = {e.command_id for e in shell if e.action != "Create"
                           and e.action != "Delete"}
            assert len(command_ids) == 1 and "" not in command_ids
        assert server.open_shells == 0
        # Basic auth with the connection's user on every request, over TLS to the given CA
        assert {h.split()[0] for h in server.auth_headers} == {"Basic"}
        assert len(server.auth_headers) == len(log)
    # the recorded VM lists are longer than one Receive's chunk: several Receives, like WinRM
    receives = [e for e in servers[0].exchanges if e.action == "Receive"]
    assert len(receives) > 2


def test_wrong_password_is_a_clear_auth_error_without_the_password(
        hosts: tuple[Path, list[WinRmReplay]]) -> None:
    ca, servers = hosts
    wrong = "Not-the-pw-1234"
    with pytest.raises(DriverError, match=r"login to 127\.0\.0\.1 refused") as err:
        HyperVInventory(_endpoint(servers, ca, password=wrong)).read()
    assert wrong not in str(err.value) and PASSWORD not in str(err.value)
    assert servers[0].auth_headers and servers[0].exchanges == []    # refused before Create


def test_tls_without_the_ca_is_refused(hosts: tuple[Path, list[WinRmReplay]]) -> None:
    _, servers = hosts
    with pytest.raises(DriverError, match=r"TLS certificate of 127\.0\.0\.1 not trusted") as err:
        HyperVInventory(_endpoint(servers, None)).read()
    assert PASSWORD not in str(err.value)
    assert servers[0].auth_headers == []                   # the password never left the client


def test_a_script_the_replay_does_not_know_fails_with_its_stderr(tmp_path: Path) -> None:
    ca, servers = _servers(tmp_path, {"HV1": ["host"]})    # no recorded output for VMS_SCRIPT
    with servers[0], pytest.raises(DriverError, match=r"failed \(exit 1\): replay: no recorded"):
        HyperVInventory(_endpoint(servers, ca)).read()
    assert [e.script for e in servers[0].exchanges if e.action == "Command"] == ["HV1.host", ""]
    assert servers[0].open_shells == 0


def test_transport_option_is_checked() -> None:
    with pytest.raises(InputError, match="not a WinRM transport"):
        HyperVInventory(Endpoint("hyperv", "x", "https://hv1.example:5986/wsman",
                                 options={"transport": "plaintext"}))
    with pytest.raises(InputError, match="in clear"):
        HyperVInventory(Endpoint("hyperv", "x", "http://hv1.example:5985/wsman",
                                 options={"transport": "basic"}))
