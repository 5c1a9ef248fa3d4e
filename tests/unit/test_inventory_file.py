"""Reading inventory files: good files give a fleet, bad ones name every problem and its place."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hvpatch.adapters.inventory.file import read_inventory
from hvpatch.errors import InputError

EXAMPLES = Path(__file__).parents[2] / "examples"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        read_inventory(path)
    return [str(p) for p in info.value.problems]


def test_example_yaml_has_every_family() -> None:
    fleet = read_inventory(EXAMPLES / "inventory.yaml").fleet
    assert {h.family.value for h in fleet.hosts()} == {
        "esxi", "hyperv", "kvm", "proxmox", "xen", "ahv", "generic"}
    h = next(h for h in fleet.hosts() if h.name == "fra1-esx-01-h01")
    assert h.memory_mb == 1024 * 1024 and h.ring == "prod"
    pinned = next(g for g in h.guests if g.name == "globex-db-01")
    assert pinned.migration_block is not None and "NVMe" in pinned.migration_note
    assert [r.name for r in fleet.rings] == ["test", "dev", "staging", "prod"]


def test_example_csv_groups_rows_into_hosts() -> None:
    fleet = read_inventory(EXAMPLES / "inventory.csv").fleet
    hosts = {h.name: h for h in fleet.hosts()}
    assert len(hosts) == 3
    assert [g.name for g in hosts["nyc3-esx-01-h01"].guests] == ["acme-pos-01", "globex-erp-01"]
    assert hosts["nyc3-esx-01-h03"].guests == ()
    assert {t.name for t in fleet.tenants} == {"acme", "globex"}


def test_yaml_problems_carry_line_and_path(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.yaml", """\
        sites:
          - name: s1
            clusters:
              - name: c1
                family: esxi
                hosts:
                  - name: h1
                    cores: -4
                    memory_gb: 64
                    software: {build: "19193900"}
                    guests:
                      - {name: g1, tenant: t, vcpus: 2, memory_gb: lots}
                  - name: h1
                    cores: 8
                    memory_gb: 64
                    exposure: public
                    software: {build: "banana"}
        """)
    found = problems(p)
    text = "\n".join(found)
    assert f"{p}:8: sites[0].clusters[0].hosts[0].cores" in text
    assert "greater than 0" in text
    assert f"{p}:12: sites[0].clusters[0].hosts[0].guests[0]" in text and "memory_gb" in text
    assert "sites[0].clusters[0].hosts[1].exposure" in text
    assert len(found) == 3  # schema errors are reported before cross-checks


def test_cross_checks_name_duplicates_unknown_rings_tenants_and_versions(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.yaml", """\
        tenants: [acme]
        sites:
          - name: s1
            clusters:
              - name: c1
                family: esxi
                ring: production
                hosts:
                  - name: h1
                    cores: 4
                    memory_gb: 64
                    software: {build: "banana"}
                    guests:
                      - {name: g1, tenant: acmee, vcpus: 2, memory_gb: 4}
                  - name: h1
                    cores: 4
                    memory_gb: 64
                    software: {build: "19193900", qemu: "8.2.0"}
        """)
    text = "\n".join(problems(p))
    assert "unknown ring 'production'" in text and ":7: " in text
    assert "unknown tenant 'acmee'" in text
    assert "duplicate host 'h1'" in text
    assert "hosts[0].software.build" in text and "banana" in text
    assert "unknown field for esxi software" in text


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"sites": [\n  {"name": "s1",}\n]}')
    found = problems(p)
    assert found[0].startswith(f"{p}:2:")


def test_json_schema_errors_are_located_by_line(tmp_path: Path) -> None:
    doc = {"sites": [{"name": "s1", "clusters": [{"name": "c1", "family": "hyperv", "hosts": [
        {"name": "h1", "cores": 8, "memory_mb": 1000, "software": {"build": "10.0.x"}}]}]}]}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc, indent=2))
    found = problems(p)
    assert len(found) == 1 and "software.build" in found[0] and f"{p}:" in found[0]


def test_csv_conflicting_host_rows_are_named_by_row_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.csv", """\
        site,cluster,family,host,cores,memory_gb,software.build,guest,tenant,vcpus,guest_memory_gb
        s1,c1,esxi,h1,64,512,19193900,g1,t1,2,4
        s1,c1,esxi,h1,32,512,19193900,g2,t1,2,4
        """)
    found = problems(p)
    assert found == [f"{p}: row 3, column cores: host 'h1' has '64' in row 2, here '32'"]


def test_csv_schema_error_points_at_row_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.csv", """\
        site,cluster,family,host,cores,memory_gb,software.build,guest,tenant,vcpus,guest_memory_gb
        s1,c1,esxi,h1,64,512,19193900,g1,t1,2,4
        s1,c1,esxi,h1,64,512,19193900,g2,t1,two,4
        """)
    found = problems(p)
    assert len(found) == 1 and found[0].startswith(f"{p}: row 3, column vcpus")


def test_missing_csv_column_and_unknown_extension(tmp_path: Path) -> None:
    no_host = write(tmp_path, "a.csv", "site,cluster,family\n")
    assert "column 'host' is required" in problems(no_host)[0]
    assert "expected a .yaml" in problems(write(tmp_path, "a.txt", "x"))[0]
    assert "No such file" in problems(tmp_path / "missing.yaml")[0]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in problems(write(tmp_path, "a.yaml", "- 1\n- 2\n"))[0]
