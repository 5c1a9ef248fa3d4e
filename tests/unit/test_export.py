"""Writing a fleet as an inventory file: reading it back gives the same fleet."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hvpatch.adapters.inventory.export import fleet_to_document, write_inventory
from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.domain.fleet import (
    Cluster,
    Exposure,
    Family,
    Fleet,
    Guest,
    GuestName,
    Host,
    HostName,
    Ring,
    Site,
    Tenant,
    TenantName,
)
from hvpatch.domain.generator import generate_fleet
from hvpatch.domain.software import KvmSoftware, Package
from hvpatch.errors import InputError


@pytest.fixture(scope="module")
def small() -> Fleet:
    return generate_fleet(40, 21)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_round_trip_through_a_file_gives_an_equal_fleet(
    small: Fleet, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"fleet{suffix}"
    write_inventory(small, path)
    assert read_inventory(path).fleet == small


def test_csv_round_trip_keeps_sites_clusters_hosts_and_guests(small: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    write_inventory(small, path)
    back = read_inventory(path).fleet
    assert back.sites == small.sites
    assert {t.name for t in back.tenants} == {g.tenant for _, g in small.guests()}


def test_hand_made_fleet_with_non_default_settings_round_trips(tmp_path: Path) -> None:
    software = KvmSoftware(
        "ubuntu-24.04",
        "8.2.2",
        "10.0.0",
        "6.8.0-31-generic",
        (Package("qemu-system-x86", "1:8.2.2+ds-0ubuntu1"),),
    )
    guest = Guest(GuestName("vm1"), TenantName("acme"), 2, 4096)
    host = Host(
        HostName("h1"),
        "lab",
        "c1",
        software,
        16,
        65536,
        Exposure.ISOLATED,
        ring="canary",
        cpu_group="amd-genoa",
        guests=(guest,),
    )
    fleet = Fleet(
        rings=(Ring("canary", 0, "first"), Ring("everyone", 1)),
        tenants=(Tenant(TenantName("acme")), Tenant(TenantName("idle"), "no guests")),
        sites=(
            Site(
                "lab",
                "Europe/Berlin",
                (Cluster("c1", "lab", Family.KVM, "everyone", 1.5, 8.0, 0, (host,)),),
            ),
        ),
    )
    path = tmp_path / "fleet.json"
    write_inventory(fleet, path)
    assert read_inventory(path).fleet == fleet


def test_default_valued_fields_are_left_out(small: Fleet) -> None:
    doc = fleet_to_document(small)
    assert "rings" not in doc  # the default rings
    cluster = doc["sites"][0]["clusters"][0]
    assert "memory_overcommit" not in cluster and "cpu_overcommit" not in cluster
    hosts = [h for s in doc["sites"] for c in s["clusters"] for h in c["hosts"]]
    assert all("ring" not in h for h in hosts)
    assert all(h.get("exposure", "isolated") != "internal" for h in hosts)
    guests = [g for h in hosts for g in h.get("guests", [])]
    assert all(
        g.get("criticality") != "medium" and g.get("power_state") != "running" for g in guests
    )
    assert any(set(g) == {"name", "tenant", "vcpus", "memory_mb"} for g in guests)


def test_json_is_indented_when_small_and_compact_when_large(tmp_path: Path) -> None:
    small_path, large_path = tmp_path / "small.json", tmp_path / "large.json"
    write_inventory(generate_fleet(10, 1), small_path)
    write_inventory(generate_fleet(300, 1), large_path)
    assert b'\n  "sites"' in small_path.read_bytes()
    assert large_path.read_bytes().count(b"\n") == 1
    assert orjson.loads(large_path.read_bytes())["version"] == 1


def test_format_can_be_forced_and_unknown_extensions_are_refused(
    small: Fleet, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.txt"
    with pytest.raises(InputError):
        write_inventory(small, path)
    write_inventory(small, path, fmt="yaml")
    assert read_inventory(path, fmt="yaml").fleet == small


def test_a_failed_write_raises_input_error_and_leaves_nothing_behind(
    small: Fleet, tmp_path: Path
) -> None:
    target = tmp_path / "missing-dir" / "fleet.json"
    with pytest.raises(InputError) as info:
        write_inventory(small, target)
    assert str(target) in str(info.value.problems[0])
    assert not (tmp_path / "missing-dir").exists()
