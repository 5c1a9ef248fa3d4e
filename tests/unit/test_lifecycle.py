"""Product maturity: lifecycle lines, support status, host-to-line mapping, pulled patches.

The known dates come from the shared data set (endoflife.date pages, Xen's per-branch
SUPPORT.md, the pulled-patches notes); "today" in these tests is 2026-11-29, the day that data
set was collected.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import sys
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest

from hvpatch.domain.lifecycle import (
    _WINDOWS_LINES,
    ProductLine,
    PulledRelease,
    SupportStatus,
    _line_key,
    bad_patch_history,
    line_for,
    product_line,
    product_lines,
    pulled_kbs,
    pulled_releases,
    withdrawn_esxi_builds,
)
from hvpatch.domain.software import (
    AhvSoftware,
    EsxiSoftware,
    GenericSoftware,
    HyperVSoftware,
    KvmSoftware,
    ProxmoxSoftware,
    Software,
    XenSoftware,
)
from hvpatch.domain.versions import esxi_release

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
TODAY = dt.date(2026, 11, 29)
COLUMNS = ["product", "line", "first_release", "support_end", "security_end", "source"]


def bundled_rows() -> list[dict[str, str]]:
    text = (files("hvpatch") / "data" / "lifecycle.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == COLUMNS
    return list(reader)


ROWS = bundled_rows()


def line(product: str, name: str) -> ProductLine:
    found = product_line(product, name)
    assert found is not None, f"{product} {name} missing from lifecycle.csv"
    return found


# --- the bundled table ------------------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row['product']}-{row['line']}")
def test_every_row_parses_into_a_product_line(row: dict[str, str]) -> None:
    parsed = line(row["product"], row["line"])
    assert parsed.first_release.isoformat() == row["first_release"]
    assert (parsed.support_end.isoformat() if parsed.support_end else "") == row["support_end"]
    assert (parsed.security_end.isoformat() if parsed.security_end else "") == row["security_end"]
    assert row["source"] and not row["source"].startswith("/")
    assert (SHARED / row["source"]).exists() or not SHARED.is_dir()
    assert parsed.status(TODAY) in SupportStatus


def test_table_covers_each_product_and_keys_are_unique() -> None:
    keys = [item.key for item in product_lines()]
    assert len(keys) == len(set(keys)) == len(ROWS)
    assert {product for product, _ in keys} == {
        "esxi", "windows-server", "proxmox-ve", "nutanix-aos", "xen",
    }
    assert {name for product, name in keys if product == "esxi"} >= {
        "6.5", "6.7", "7.0", "8.0", "9.0", "9.1",
    }
    assert {name for product, name in keys if product == "windows-server"} >= {
        "2012", "2012-r2", "2016", "2019", "2022", "2025", "23h2-ac",
    }
    assert {name for product, name in keys if product == "xen"} == {
        f"4.{minor}" for minor in range(10, 23)
    }


def test_linux_kernel_lines_are_absent_because_the_source_has_no_end_dates() -> None:
    # release-data/linux-kernel.json has per-version dates but an empty "releases" map.
    assert not [item for item in product_lines() if item.product == "linux-kernel"]


def test_unknown_line_is_none() -> None:
    assert product_line("esxi", "4.1") is None
    assert product_line("hyper-v", "2019") is None


# --- known facts and statuses -------------------------------------------------------------------


def test_esxi_7_0_ended_with_general_support() -> None:
    esxi70 = line("esxi", "7.0")
    assert esxi70.first_release == dt.date(2020, 4, 2)
    assert esxi70.support_end == esxi70.security_end == dt.date(2025, 10, 2)
    assert esxi70.status(TODAY) is SupportStatus.END_OF_LIFE
    assert esxi70.status(dt.date(2025, 10, 2)) is SupportStatus.SUPPORTED  # last day covered
    assert esxi70.status(dt.date(2025, 10, 3)) is SupportStatus.END_OF_LIFE


def test_esxi_8_0_is_supported() -> None:
    esxi80 = line("esxi", "8.0")
    assert (esxi80.first_release, esxi80.support_end) == (dt.date(2022, 10, 11),
                                                          dt.date(2027, 10, 11))
    assert esxi80.status(TODAY) is SupportStatus.SUPPORTED


def test_windows_server_2016_is_in_extended_support() -> None:
    ws2016 = line("windows-server", "2016")
    assert ws2016.first_release == dt.date(2016, 10, 15)
    assert ws2016.support_end == dt.date(2022, 1, 11)   # mainstream end
    assert ws2016.security_end == dt.date(2027, 1, 12)  # extended end
    assert ws2016.status(TODAY) is SupportStatus.SECURITY_ONLY
    assert ws2016.status(dt.date(2027, 1, 13)) is SupportStatus.END_OF_LIFE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2012", SupportStatus.END_OF_LIFE),
        ("2012-r2", SupportStatus.END_OF_LIFE),  # paid ESU (to 2026-10-13) is not counted
        ("2019", SupportStatus.SECURITY_ONLY),
        ("2022", SupportStatus.SECURITY_ONLY),  # mainstream ended 2026-10-13
        ("2025", SupportStatus.SUPPORTED),
        ("23h2-ac", SupportStatus.END_OF_LIFE),
    ],
)
def test_windows_server_statuses(name: str, expected: SupportStatus) -> None:
    assert line("windows-server", name).status(TODAY) is expected


def test_xen_4_17_dates_from_its_support_md() -> None:
    xen417 = line("xen", "4.17")
    assert xen417.first_release == dt.date(2022, 12, 12)
    assert xen417.support_end == dt.date(2024, 6, 12)
    assert xen417.security_end == dt.date(2027, 12, 12)
    assert xen417.status(TODAY) is SupportStatus.SECURITY_ONLY
    assert line("xen", "4.16").status(TODAY) is SupportStatus.END_OF_LIFE
    assert line("xen", "4.22").status(TODAY) is SupportStatus.SUPPORTED


def test_proxmox_major_without_announced_end_is_supported() -> None:
    pve9 = line("proxmox-ve", "9")
    assert pve9.support_end is None and pve9.security_end is None
    assert pve9.status(TODAY) is SupportStatus.SUPPORTED
    assert line("proxmox-ve", "8").status(TODAY) is SupportStatus.END_OF_LIFE  # 2026-08-31


def test_nutanix_aos_ends_at_end_of_maintenance() -> None:
    aos68 = line("nutanix-aos", "6.8")
    assert aos68.support_end == aos68.security_end == dt.date(2025, 5, 31)
    assert aos68.status(TODAY) is SupportStatus.END_OF_LIFE
    assert line("nutanix-aos", "7.5").status(TODAY) is SupportStatus.SUPPORTED


def test_status_before_the_first_release_is_unknown() -> None:
    assert line("esxi", "9.1").status(dt.date(2026, 1, 1)) is SupportStatus.UNKNOWN


def test_age_in_years() -> None:
    esxi70 = line("esxi", "7.0")
    assert esxi70.age_years(dt.date(2026, 4, 2)) == pytest.approx(6.0, abs=0.01)
    assert esxi70.age_years(dt.date(2020, 1, 1)) == 0.0
    assert line("xen", "4.22").age_years(TODAY) < line("xen", "4.10").age_years(TODAY)


def test_status_values_are_readable_text() -> None:
    assert [str(s) for s in SupportStatus] == [
        "supported", "security-only", "end-of-life", "unknown",
    ]


def test_only_security_end_known_or_only_support_end_known() -> None:
    released = dt.date(2020, 1, 1)
    security_only = ProductLine("x", "1", released, None, dt.date(2021, 1, 1))
    assert security_only.status(dt.date(2022, 1, 1)) is SupportStatus.END_OF_LIFE
    open_security = ProductLine("x", "1", released, dt.date(2021, 1, 1), None)
    assert open_security.status(dt.date(2022, 1, 1)) is SupportStatus.SECURITY_ONLY


def test_inconsistent_dates_are_rejected() -> None:
    with pytest.raises(ValueError, match="security support ends"):
        ProductLine("x", "1", dt.date(2020, 1, 1), dt.date(2022, 1, 1), dt.date(2021, 1, 1))
    with pytest.raises(ValueError, match="before the first release"):
        ProductLine("x", "1", dt.date(2020, 1, 1), dt.date(2019, 1, 1), None)


# --- host software -> line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("software", "expected"),
    [
        (EsxiSoftware("19193900"), ("esxi", "7.0")),  # 7.0 Update 3c
        (EsxiSoftware("18644231"), ("esxi", "7.0")),  # withdrawn 7.0 Update 3
        (EsxiSoftware("ESXi 8.0 Update 2b"), ("esxi", "8.0")),
        (EsxiSoftware("25557999"), ("esxi", "9.1")),
        (EsxiSoftware("12345678"), None),  # not in the build table
        (EsxiSoftware("not a build"), None),
        (HyperVSoftware("10.0.14393.6897"), ("windows-server", "2016")),
        (HyperVSoftware("10.0.17763.5576"), ("windows-server", "2019")),
        (HyperVSoftware("10.0.20348.2340"), ("windows-server", "2022")),
        (HyperVSoftware("10.0.26100.1742"), ("windows-server", "2025")),
        (HyperVSoftware("6.3.9600.21620"), ("windows-server", "2012-r2")),
        (HyperVSoftware("6.2.9200.24710"), ("windows-server", "2012")),
        (HyperVSoftware("10.0.25398.830"), ("windows-server", "23h2-ac")),
        (HyperVSoftware("10.0.22631.1"), None),  # a client build
        (ProxmoxSoftware("8.2.4", "8.1.5-6", "6.8.12-4-pve"), ("proxmox-ve", "8")),
        (ProxmoxSoftware("9.0.3", "10.0.2-4", "6.14.8-2-pve"), ("proxmox-ve", "9")),
        (XenSoftware("4.17.3"), ("xen", "4.17")),
        (XenSoftware("4.13.5", "xcp-ng", "8.2.1"), ("xen", "4.13")),
        (XenSoftware("4.14.0+88-g1d1d1f5391"), ("xen", "4.14")),
        (XenSoftware("4.9.4"), None),  # before SUPPORT.md existed (4.10)
        (AhvSoftware("20230302.100173", "6.8.1"), ("nutanix-aos", "6.8")),
        (AhvSoftware("20230302.100173", "6.10.1.14"), ("nutanix-aos", "6.10")),
        (AhvSoftware("20230302.100173"), None),  # AOS not reported
        (KvmSoftware("rhel-9", "8.2.0", "10.0.0", "5.14.0-427.13.1.el9_4.x86_64"), None),
        (GenericSoftware("acme", "edgevisor", "2.4.1"), None),
    ],
    ids=lambda value: repr(value).replace("Software", "").replace(" ", ""),
)
def test_line_for(software: Software, expected: tuple[str, str] | None) -> None:
    assert line_for(software) == expected
    if expected is not None:
        assert product_line(*expected) is not None


def test_kvm_names_the_upstream_kernel_line_which_the_table_lacks() -> None:
    kvm = KvmSoftware("rhel-9", "8.2.0", "10.0.0", "5.14.0-427.13.1.el9_4.x86_64")
    assert _line_key(kvm) == ("linux-kernel", "5.14")
    old = KvmSoftware("centos-6", "0.12.1", "0.10.2", "2.6.32-754.el6.x86_64")
    assert _line_key(old) == ("linux-kernel", "2.6.32")
    assert line_for(kvm) is None


def test_every_windows_build_maps_to_a_line_of_the_table() -> None:
    for name in _WINDOWS_LINES.values():
        assert product_line("windows-server", name) is not None, name


# --- pulled and regressing releases ---------------------------------------------------------------


def test_withdrawn_esxi_builds() -> None:
    withdrawn = withdrawn_esxi_builds()
    assert withdrawn == {18644231, 18825058, 18905247}
    for build in withdrawn:  # the ESXi build table agrees
        release = esxi_release(build)
        assert release is not None and release.withdrawn and release.line == "7.0"


def test_pulled_kbs_are_upper_case_kb_numbers() -> None:
    assert pulled_kbs() == {"KB5009624", "KB5009557", "KB5009555"}


def test_bad_patch_history_per_product_and_line() -> None:
    assert [r.build_or_kb for r in bad_patch_history("esxi")] == [
        "18644231", "18825058", "18905247",
    ]
    assert [r.kb for r in bad_patch_history("windows-server", "2019")] == ["KB5009557"]
    assert [r.line for r in bad_patch_history("windows-server")] == ["2012-r2", "2019", "2022"]
    xen = bad_patch_history("xen")
    assert [(r.line, r.build_or_kb) for r in xen] == [("4.14", "Debian #994899")]
    assert bad_patch_history("esxi", "8.0") == ()
    assert bad_patch_history("proxmox-ve") == ()


def test_pulled_release_rows_keep_their_text() -> None:
    rows = pulled_releases()
    assert len(rows) == 7
    kb = next(r for r in rows if r.build_or_kb == "KB5009624")
    assert kb.event_date == "2022-01-13"
    assert kb.product.startswith("Microsoft Windows Server 2012 R2")
    assert all(r.source for r in rows)


def test_unknown_product_text_is_refused() -> None:
    row = PulledRelease("Acme Visor", "1.0", "1", "pulled", "2024-01-01", "", "notes")
    with pytest.raises(ValueError, match="unknown product"):
        _ = row.product_key


# --- the bundled files are exactly what the script derives ----------------------------------------

needs_shared = pytest.mark.skipif(
    not (SHARED / "endoflife-date").is_dir(), reason="../shared/data is not available"
)


def _derive_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "derive_lifecycle", REPO / "scripts" / "derive_lifecycle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_bundled_lifecycle_is_exactly_what_the_script_derives() -> None:
    script = _derive_script()
    rows, notes = script.derive(SHARED)
    bundled = (files("hvpatch") / "data" / "lifecycle.csv").read_text(encoding="utf-8")
    assert script.render(rows) == bundled
    assert any("linux-kernel skipped" in note for note in notes)


@needs_shared
def test_bundled_pulled_releases_is_a_byte_for_byte_copy() -> None:
    bundled = (files("hvpatch") / "data" / "pulled_releases.csv").read_bytes()
    assert bundled == (SHARED / "pulled-patches" / "pulled_releases.csv").read_bytes()


@needs_shared
def test_check_mode_flags_a_stale_file_and_accepts_a_fresh_one(tmp_path: Path) -> None:
    script = _derive_script()
    output, pulled = tmp_path / "lifecycle.csv", tmp_path / "pulled_releases.csv"
    output.write_text("product,line\n", encoding="utf-8")
    args = ["--shared", str(SHARED), "--output", str(output), "--pulled-output", str(pulled)]
    assert script.main([*args, "--check"]) == 1
    assert output.read_text(encoding="utf-8") == "product,line\n"  # --check writes nothing
    assert script.main(args) == 0
    first = output.read_bytes()
    assert script.main([*args, "--check"]) == 0
    assert script.main(args) == 0 and output.read_bytes() == first  # deterministic rerun
