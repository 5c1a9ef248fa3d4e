"""Contract tests of the distribution feed readers: OSV, CSAF, XSA lists, Debian changelogs.

Fixtures in ``data/distro`` are small copies of real records (see ``data/distro/PROVENANCE.md``);
the full data sets are read from ``../shared/data`` when present, else those tests skip.
Hostile inputs are written by the tests into temporary directories.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.adapters.feeds.csaf import iter_csaf
from hvpatch.adapters.feeds.debian_changelog import iter_debian_changelog
from hvpatch.adapters.feeds.osv import iter_osv, split_nevra
from hvpatch.adapters.feeds.xsa import iter_xsa
from hvpatch.domain.advisories import FixStatus, PackageFix, XenAdvisory
from hvpatch.errors import FeedError

DATA = Path(__file__).parent / "data" / "distro"
SHARED = Path(__file__).parents[2].parent / "shared" / "data"
ALSA_2135_CVES = (
    "CVE-2023-3019",
    "CVE-2023-3255",
    "CVE-2023-5088",
    "CVE-2023-6683",
    "CVE-2023-42467",
)
FIXED, AFFECTED = FixStatus.FIXED, FixStatus.KNOWN_AFFECTED


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data not present: ../shared/data/{relative}")
    return path


def write_json(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def by(rows: list[PackageFix], **fields: Any) -> list[PackageFix]:
    return [r for r in rows if all(getattr(r, k) == v for k, v in fields.items())]


# --- OSV ---------------------------------------------------------------------------------------


def test_osv_alsa_2024_2135_fixes_qemu_kvm_on_almalinux_9() -> None:
    rows = list(iter_osv(DATA / "osv" / "ALSA-2024-2135.json"))
    assert len(rows) == 20 and {(r.distro, r.scheme, r.status) for r in rows} == {
        ("almalinux-9", "rpm", FIXED)
    }
    assert by(rows, package="qemu-kvm") == [
        PackageFix(
            source="osv",
            advisory_id="ALSA-2024:2135",
            distro="almalinux-9",
            package="qemu-kvm",
            scheme="rpm",
            cves=ALSA_2135_CVES,
            fixed="17:8.2.0-11.el9_4",
            published=date(2024, 4, 30),
            title="Moderate: qemu-kvm security update",
            url="https://errata.almalinux.org/9/ALSA-2024-2135.html",
        )
    ]


def test_osv_module_stream_keeps_one_row_per_module_build() -> None:
    rows = list(iter_osv(DATA / "osv" / "ALSA-2024-4420-cut.json"))
    assert sorted(r.fixed or "" for r in by(rows, package="libvirt")) == [
        "8.0.0-23.2.module_el8.10.0+3867+f3f9981a",
        "8.0.0-23.2.module_el8.10.0+3869+b8959270",
    ]
    assert by(rows, package="qemu-kvm")[0].fixed == "15:6.2.0-50.module_el8.10.0+3869+b8959270"
    assert {(r.distro, r.cves) for r in rows} == {("almalinux-8", ("CVE-2024-4467",))}


def test_osv_ecosystems_ranges_and_aliases(tmp_path: Path) -> None:
    def affected(ecosystem: str, events: list[dict[str, str]], kind: str = "ECOSYSTEM") -> Any:
        pkg = {"ecosystem": ecosystem, "name": "xen"}
        return {"package": pkg, "ranges": [{"type": kind, "events": events}]}

    record = {
        "id": "DSA-9999-1",
        "aliases": ["cve-2025-58150", "GHSA-xxxx"],
        "related": ["CVE-2025-58150", "CVE-2026-23553"],
        "affected": [
            affected("Debian:12", [{"introduced": "0"}, {"fixed": "4.17.7-0+deb12u1"}]),
            affected(
                "Ubuntu:Pro:22.04:LTS", [{"introduced": "4.16.0"}, {"last_affected": "4.16.9"}]
            ),
            affected("Rocky Linux:9", [{"introduced": "0"}]),
            affected("Red Hat:rhel_aus:8.4::appstream", [{"introduced": "0"}, {"fixed": "1:2-3"}]),
            affected("PyPI", [{"introduced": "0"}, {"fixed": "1.0"}]),
            affected("Debian:12", [{"introduced": "abc"}], kind="GIT"),
        ],
    }
    withdrawn = dict(record, id="DSA-9998-1", withdrawn="2026-01-01T00:00:00Z")
    rows = list(iter_osv(write_json(tmp_path, "dsa.json", [record, withdrawn])))
    got = [(r.distro, r.scheme, r.status, r.introduced, r.fixed) for r in rows]
    assert got == [
        ("debian-12", "deb", FIXED, None, "4.17.7-0+deb12u1"),
        ("ubuntu-22.04", "deb", AFFECTED, "4.16.0", None),
        ("rocky-9", "rpm", AFFECTED, None, None),
        ("rhel-8", "rpm", FIXED, None, "1:2-3"),
    ]
    assert {r.cves for r in rows} == {("CVE-2025-58150", "CVE-2026-23553")}


def test_osv_walks_a_tree_in_sorted_order_with_compressed_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden.json").write_text("not json")
    data = (DATA / "osv" / "ALSA-2024-2135.json").read_bytes()
    (tmp_path / "b" / "one.json.gz").write_bytes(gzip.compress(data))
    (tmp_path / "a.json").write_bytes((DATA / "osv" / "ALSA-2024-4420-cut.json").read_bytes())
    ids = [r.advisory_id for r in iter_osv(tmp_path)]
    assert ids[0] == "ALSA-2024:4420" and ids[-1] == "ALSA-2024:2135" and len(ids) == 25


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b'{"id": "ALSA-1", "affected": [', "invalid JSON"),
        ({"affected": []}, r"record #0: 'id' must be"),
        ({"id": "ALSA-1", "affected": {"x": 1}}, r"ALSA-1: affected: expected a list"),
        ({"id": "ALSA-1", "affected": [{"package": {"name": "x"}}]}, r"affected\[0\].package"),
        (
            {
                "id": "ALSA-1",
                "affected": [
                    {
                        "package": {"ecosystem": "AlmaLinux:9", "name": "x"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"a": "1", "b": "2"}]}],
                    }
                ],
            },
            r"ALSA-1: affected\[0\].ranges\[0\].events\[0\]: expected an object with one key",
        ),
        ({"id": "ALSA-1", "published": "yesterday"}, r"ALSA-1: published: invalid date"),
        ({"id": "ALSA-1", "related": [7]}, r"related\[0\]: expected a string"),
        ("a string", r"record #0: expected a JSON object"),
    ],
)
def test_osv_malformed_records_are_refused(tmp_path: Path, record: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(record if isinstance(record, bytes) else json.dumps(record).encode())
    with pytest.raises(FeedError, match=r"bad\.json: .*" + message):
        list(iter_osv(path))


def test_osv_missing_path_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file or directory"):
        list(iter_osv(tmp_path / "nowhere"))


def test_osv_full_almalinux_virt_set() -> None:
    rows = list(iter_osv(shared("osv-almalinux-virt")))
    assert len(rows) == 2990 and len({r.advisory_id for r in rows}) == 42
    assert Counter(r.distro for r in rows) == {
        "almalinux-8": 2477,
        "almalinux-9": 441,
        "almalinux-10": 72,
    }
    (qemu,) = by(rows, advisory_id="ALSA-2024:2135", package="qemu-kvm")
    assert (qemu.distro, qemu.fixed, qemu.cves) == (
        "almalinux-9",
        "17:8.2.0-11.el9_4",
        ALSA_2135_CVES,
    )
    assert not by(rows, advisory_id="ALBA-2022:0361")[0].cves  # bug-fix advisories name no CVE


# --- CSAF --------------------------------------------------------------------------------------


def test_csaf_fixtures_map_products_to_distro_packages() -> None:
    rows = list(iter_csaf(DATA / "csaf"))
    (qemu,) = by(rows, advisory_id="CRLSA-2024:2135", package="qemu-kvm")  # x86_64+aarch64+src
    assert qemu == PackageFix(
        source="csaf",
        advisory_id="CRLSA-2024:2135",
        distro="rocky-9",
        package="qemu-kvm",
        scheme="rpm",
        cves=ALSA_2135_CVES,
        fixed="17:8.2.0-11.el9_4",
        published=date(2024, 5, 10),
        title="Moderate: qemu-kvm security update",
        url="https://github.com/ctrliq/advisories/blob/main/csaf/advisories/rocky/2024/crlsa-2024_2135.json",
    )
    bridge = by(rows, advisory_id="CIQSA-CBR-7-9-2026:0082")
    assert {(r.distro, r.package, r.fixed) for r in bridge} >= {
        ("centos-7", "qemu-kvm", "10:1.5.3-176.el7_9.ciqcbr.1")
    }
    telnet = by(rows, advisory_id="RHSA-2022:0011", package="telnet")
    assert [(r.distro, r.fixed, r.cves) for r in telnet] == [
        ("rhel-7", "1:0.17-65.el7_6", ("CVE-2020-10188",))
    ]


def test_csaf_vex_statuses_are_kept_for_generic_products() -> None:
    rows = list(iter_csaf(DATA / "csaf" / "2022-evd-uc-01-na-001.json"))
    assert [(r.distro, r.package, r.scheme, r.status, r.fixed, r.cves) for r in rows] == [
        ("", "Example Company ABC 4.2", "", FixStatus.KNOWN_NOT_AFFECTED, None, ("CVE-2021-44228",))
    ]
    multi = {r.status: r.cves for r in iter_csaf(DATA / "csaf" / "2022-evd-uc-03-ms-001.json")}
    assert set(multi) == set(FixStatus)
    assert "CVE-2020-11897" in multi[FixStatus.KNOWN_NOT_AFFECTED]
    assert "CVE-2020-11898" in multi[FixStatus.KNOWN_AFFECTED]


def test_csaf_vendor_fix_gives_known_affected_its_fixed_version() -> None:
    rows = list(iter_csaf(DATA / "csaf" / "bsi-2022-0001.json"))
    affected = by(rows, status=AFFECTED)
    assert len(affected) == 5 and {r.fixed for r in affected} == {"1.0.0-rc2"}
    assert by(rows, status=FIXED)[0].package == "CSAF Tools CVRF-CSAF-Converter 1.0.0-rc2"


def _synthetic_csaf() -> dict[str, Any]:
    """A CSAF document with purls, arch disagreement, recommended and a vendor fix."""

    def version(pid: str, purl: str) -> dict[str, Any]:
        helper = {"purl": purl}
        product = {"name": pid, "product_id": pid, "product_identification_helper": helper}
        return {"category": "product_version", "name": pid, "product": product}

    base = "pkg:rpm/rocky/qemu-kvm@8.2.0-11.el9_4.{}?arch={}&epoch=17&distro=rocky-9.4"
    branches = [
        version("kvm-x86-6", base.format(6, "x86_64")),
        version("kvm-arm-7", base.format(7, "aarch64")),
        version("kvm-x86-5", base.format(5, "x86_64")),
        version("kvm-x86-4", base.format(4, "x86_64")),
        version("xen-deb", "pkg:deb/debian/xen@4.17.3%2B10-1~deb12u1?arch=amd64&distro=bookworm"),
    ]
    status = {
        "fixed": ["kvm-x86-6", "kvm-arm-7", "kvm-x86-5"],
        "known_affected": ["kvm-x86-4"],
        "recommended": ["kvm-x86-6", "xen-deb"],
    }
    remediation = {"category": "vendor_fix", "details": "update", "product_ids": ["kvm-x86-4"]}
    vuln = {"cve": "CVE-2024-7409", "product_status": status, "remediations": [remediation]}
    tracking = {"id": "SYN-1", "initial_release_date": "2026-01-02T03:04:05Z"}
    document = {"csaf_version": "2.0", "title": "synthetic", "tracking": tracking}
    return {"document": document, "product_tree": {"branches": branches}, "vulnerabilities": [vuln]}


def test_csaf_purls_arch_preference_and_remediation(tmp_path: Path) -> None:
    rows = list(iter_csaf(write_json(tmp_path, "syn.json", _synthetic_csaf())))
    got = {(r.distro, r.package, r.scheme, r.status, r.fixed) for r in rows}
    assert got == {
        ("rocky-9", "qemu-kvm", "rpm", FIXED, "17:8.2.0-11.el9_4.6"),  # x86_64 wins over aarch64
        ("rocky-9", "qemu-kvm", "rpm", FIXED, "17:8.2.0-11.el9_4.5"),
        ("rocky-9", "qemu-kvm", "rpm", AFFECTED, "17:8.2.0-11.el9_4.5"),  # lowest fixed version
        # recommended, and listed under no other status
        ("debian-12", "xen", "deb", FIXED, "4.17.3+10-1~deb12u1"),
    }
    assert {r.published for r in rows} == {date(2026, 1, 2)}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["vulnerabilities"][0]["product_status"]["fixed"].append("nope"),
            "'nope' is not defined",
        ),
        (lambda d: d["vulnerabilities"][0].update(cve="CVE-1"), r"vulnerabilities\[0\].cve"),
        (lambda d: d["document"].update(csaf_version="1.2"), "is not 2.x"),
        (lambda d: d["document"].pop("tracking"), "document.tracking: expected an object"),
        (lambda d: d["product_tree"].update(branches={}), "product_tree.branches: expected a list"),
        (lambda d: d.update(vulnerabilities=[7]), r"vulnerabilities\[0\]: expected an object"),
    ],
)
def test_csaf_malformed_documents_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    document = _synthetic_csaf()
    edit(document)
    with pytest.raises(FeedError, match=r"syn\.json.*" + message):
        list(iter_csaf(write_json(tmp_path, "syn.json", document)))


def test_csaf_hostile_trees_fail_cleanly(tmp_path: Path) -> None:
    deep: dict[str, Any] = {"category": "vendor", "name": "x"}
    for _ in range(200):
        deep = {"category": "vendor", "name": "x", "branches": [deep]}
    document = _synthetic_csaf()
    document["product_tree"]["branches"].append(deep)
    with pytest.raises(FeedError, match="nested deeper than"):
        list(iter_csaf(write_json(tmp_path, "syn.json", document)))
    cyclic = _synthetic_csaf()
    relation = {"category": "default_component_of", "product_reference": "a"}
    cyclic["product_tree"]["relationships"] = [
        {
            **relation,
            "relates_to_product_reference": "kvm-x86-6",
            "full_product_name": {"name": "a", "product_id": "a"},
        },
    ]
    cyclic["vulnerabilities"][0]["product_status"] = {"fixed": ["a"]}
    with pytest.raises(FeedError, match="nested too deep"):
        list(iter_csaf(write_json(tmp_path, "cyc.json", cyclic)))


def test_csaf_full_sets_parse_and_keep_what_the_data_says() -> None:
    rows = list(iter_csaf(shared("csaf")))  # the JSON schema in the tree is skipped
    assert len(rows) == 767
    assert {r.distro for r in rows} == {"", "centos-7", "rhel-7", "rocky-8", "rocky-9", "rocky-10"}
    (lts,) = by(rows, advisory_id="CIQSA-LTS-9-4-2026:0065", package="qemu-kvm")
    assert (lts.distro, lts.fixed, lts.cves) == (
        "rocky-9",
        "17:8.2.0-11.1.el9_4.94ciq_lts.6",
        ("CVE-2024-7409",),
    )
    (rocky10,) = by(rows, advisory_id="CRLSA-2026:18479", package="qemu-kvm")  # no CPE, by name
    assert (rocky10.distro, rocky10.fixed) == ("rocky-10", "18:10.1.0-16.el10_2")
    oasis = {r.advisory_id for r in rows if r.distro == ""}
    assert len(oasis) == 17 and "cisco-sa-20180328-smi2" in oasis
    with pytest.raises(FeedError, match="not a CSAF document"):
        list(iter_csaf(shared("csaf/oasis-tcs-csaf-examples/json_schema/csaf_json_schema.json")))


def test_osv_and_csaf_agree_on_the_same_rhel_rebuilds() -> None:
    osv = list(iter_osv(shared("osv-almalinux-virt/advisories/almalinux9")))
    csaf = list(iter_csaf(shared("csaf/ctrliq-rocky-ciq-qemu-kvm/csaf/advisories/rocky")))
    fixed: dict[str, tuple[str | None, str | None]] = {}
    for number in ("2022:7967", "2024:2135", "2024:9136"):
        (alma,) = by(osv, advisory_id=f"ALSA-{number}", package="qemu-kvm")
        (rocky,) = by(csaf, advisory_id=f"CRLSA-{number}", package="qemu-kvm")
        assert alma.cves == rocky.cves, number
        fixed[number] = (alma.fixed, rocky.fixed)
    assert fixed == {  # the rebuilds share versions, except AlmaLinux's earlier 9.5 build
        "2022:7967": ("17:7.0.0-13.el9", "17:7.0.0-13.el9"),
        "2024:2135": ("17:8.2.0-11.el9_4", "17:8.2.0-11.el9_4"),
        "2024:9136": ("17:9.0.0-10.el9_5", "17:9.0.0-10.el9_5.2"),
    }


@settings(max_examples=200, deadline=None)
@given(
    name=st.from_regex(r"[a-z][a-z0-9+]{0,8}(-[a-z][a-z0-9]{0,5}){0,3}", fullmatch=True),
    epoch=st.sampled_from(["", "1:", "17:"]),
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True),
    release=st.from_regex(r"[0-9]{1,3}(\.el[0-9](_[0-9])?)?(\.[0-9])?", fullmatch=True),
    arch=st.sampled_from(["", ".x86_64", ".src", ".noarch"]),
)
def test_nevra_split_inverts_its_join(
    name: str, epoch: str, version: str, release: str, arch: str
) -> None:
    got = split_nevra(f"{name}-{epoch}{version}-{release}{arch}")
    assert got == (name, f"{epoch}{version}-{release}", arch.lstrip("."))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(document=json_values, shape=st.sampled_from(["csaf", "osv"]))
def test_arbitrary_json_never_escapes_as_a_foreign_exception(
    tmp_path_factory: pytest.TempPathFactory, document: Any, shape: str
) -> None:
    if shape == "csaf" and isinstance(document, dict):
        document = {"document": {"csaf_version": "2.0", "tracking": {"id": "X"}}, **document}
    path = write_json(tmp_path_factory.mktemp("fuzz"), "doc.json", document)
    with contextlib.suppress(FeedError):
        list(iter_csaf(path) if shape == "csaf" else iter_osv(path))


# --- XSA ---------------------------------------------------------------------------------------


def test_xsa_qubes_list_cut() -> None:
    advisories = list(iter_xsa(DATA / "xsa" / "sec-xsa-cut.yml"))
    assert [a.number for a in advisories] == [1, 2, 80, 477, 492, 508]  # 79 is "unused"
    assert advisories[3] == XenAdvisory(477, (), date(2026, 1, 27), "")


def test_xsa_official_json_shape() -> None:
    advisories = list(iter_xsa(DATA / "xsa" / "xsa-synthetic.json"))
    assert advisories[0] == XenAdvisory(
        477,
        ("CVE-2025-58150",),
        date(2026, 1, 27),
        "x86: buffer overrun with shadow paging + tracing",
    )
    assert [(a.number, len(a.cves)) for a in advisories] == [(477, 1), (492, 2), (508, 0)]


@pytest.mark.parametrize("wrap", [lambda x: x, lambda x: {"xsas": x}, lambda x: [{"xsas": x}]])
def test_xsa_json_envelopes(tmp_path: Path, wrap: Any) -> None:
    entries = [
        {"xsa": 7, "title": "t", "cve": ["CVE-2012-0217"], "public_time": "2012-06-12T16:00:00Z"}
    ]
    (only,) = iter_xsa(write_json(tmp_path, "xsa.json", wrap(entries)))
    assert only == XenAdvisory(7, ("CVE-2012-0217",), date(2012, 6, 12), "t")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.yml", "- xsa: 1\n  date: 2011-03-14\n- xsa: 1\n  date: 2011-03-15\n", "already given"),
        ("x.yml", "- xsa: 1\n  date: someday\n", r"entry #0: XSA-1: invalid date"),
        ("x.yml", "- xsa: yes\n  date: 2011-03-14\n", "must be a number"),
        ("x.yml", "- xsa: 1\n\tdate: 2011-03-14\n", r"invalid YAML at line 2: found .*tab"),
        ("x.yml", "xsa: 1\n", "expected a list"),
        ("x.json", '[{"xsa": 2, "cve": ["XSA-2"]}]', r"'XSA-2' is not a CVE id"),
        ("x.json", '[{"xsa": 2, "cve": [', "invalid JSON"),
    ],
)
def test_xsa_malformed_lists_are_refused(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(FeedError, match=rf"{name}: .*{message}"):
        list(iter_xsa(tmp_path / name))


def test_xsa_full_qubes_list() -> None:
    advisories = list(iter_xsa(shared("xen-xsa/qubesos/sec-xsa.yml")))
    assert len(advisories) == 492  # 502 entries, 10 numbers never used
    assert (advisories[0].number, advisories[-1].number) == (1, 508)
    assert next(a for a in advisories if a.number == 477).public_date == date(2026, 1, 27)


# --- Debian changelogs -------------------------------------------------------------------------

XEN_CUT = DATA / "debian" / "xen-utils-common.changelog.Debian"
QEMU_CUT = DATA / "debian" / "qemu-system-common.changelog.Debian"


def test_debian_xen_changelog_xsa_477_fixed_in_4_17_7(tmp_path: Path) -> None:
    gz = tmp_path / "changelog.Debian.gz"
    gz.write_bytes(gzip.compress(XEN_CUT.read_bytes()))
    rows = list(iter_debian_changelog(gz, "xen-utils-common", "debian-12"))
    assert [r.advisory_id for r in rows] == [
        "4.17.7+13-g2445b30a44-0+deb12u1",
        "4.17.7-0+deb12u1",
        "4.17.3+10-g091466ba55-1",
        "4.17.2+55-g0b56bed864-1",
    ]
    row = rows[1]
    assert (row.distro, row.package, row.scheme, row.status) == (
        "debian-12",
        "xen-utils-common",
        "deb",
        FIXED,
    )
    assert (row.fixed, row.published) == ("4.17.7-0+deb12u1", date(2026, 8, 1))
    assert "CVE-2025-58150" in row.cves and len(row.cves) == 30
    assert row.title.startswith("xen 4.17.7-0+deb12u1 (bookworm-security): XSA-477, XSA-479,")
    assert "XSA-508" in row.title  # fixed, no CVE
    listed = {x for r in rows for x in re.findall(r"XSA-[0-9]+", r.title)}
    assert not listed & {"XSA-478", "XSA-481", "XSA-513", "XSA-522"}  # "not listed, because..."
    assert len(listed) == 10 + 24 + 3 + 7  # per entry, as the changelog lists them


def test_debian_unstable_fix_counts_at_its_stable_rebuild() -> None:
    rows = list(iter_debian_changelog(XEN_CUT, "xen-utils-common", "debian-12"))
    (rebuilt,) = by(rows, advisory_id="4.17.3+10-g091466ba55-1")
    assert rebuilt.fixed == "4.17.3+10-g091466ba55-1~deb12u1"
    assert rebuilt.cves == ("CVE-2023-46837", "CVE-2023-46839", "CVE-2023-46840")
    assert rebuilt.published == date(2024, 2, 4)
    (unstable,) = by(rows, advisory_id="4.17.2+55-g0b56bed864-1")
    assert unstable.fixed == "4.17.2+55-g0b56bed864-1" and unstable.distro == "debian-12"


def test_debian_distro_argument_without_release_means_the_package_release() -> None:
    rows = list(iter_debian_changelog(XEN_CUT, "xen-utils-common", "debian"))
    assert {r.distro for r in rows} == {"debian-12"}
    assert rows == list(iter_debian_changelog(XEN_CUT, "xen-utils-common", "debian-12"))


def test_debian_later_mentions_are_not_fixes() -> None:
    rows = list(iter_debian_changelog(QEMU_CUT, "qemu-system-common", "debian-12"))
    assert [r.advisory_id for r in rows] == ["1:7.2+dfsg-7+deb12u6", "1:7.2+dfsg-7+deb12u4"]
    u6, u4 = rows
    assert u4.cves == ("CVE-2023-3019", "CVE-2023-6683", "CVE-2023-6693")
    assert "CVE-2023-6683" not in u6.cves  # "(Closes: CVE-2023-6683, already fixed in debian)"
    # "fixed by 7.2+dfsg-7+deb12u3" names an entry this cut lacks: credited where it is said
    assert {"CVE-2023-5088", "CVE-2024-24474", "CVE-2023-3301"} <= set(u6.cves)


def test_debian_full_changelogs() -> None:
    def read(package: str) -> list[PackageFix]:
        path = shared(f"debian-changelogs/{package}/changelog.Debian.gz")
        return list(iter_debian_changelog(path, package, "debian-12"))

    xen, qemu = read("xen-utils-common"), read("qemu-system-common")
    assert (len(xen), sum(len(r.cves) for r in xen)) == (26, 217)
    assert (len(qemu), sum(len(r.cves) for r in qemu)) == (36, 97)
    for rows in (xen, qemu):
        credited = [c for r in rows for c in r.cves]
        assert len(credited) == len(set(credited))  # each CVE once, at its first fix
    (x477,) = [r for r in xen if "CVE-2025-58150" in r.cves]
    assert x477.fixed == "4.17.7-0+deb12u1"
    fixed_at = {c: r.fixed for r in qemu for c in r.cves}
    assert fixed_at["CVE-2023-5088"] == "1:7.2+dfsg-7+deb12u3"  # "fixed by 7.2+dfsg-7+deb12u3"
    assert fixed_at["CVE-2023-3301"] == "1:7.2+dfsg-7+deb12u1"
    assert fixed_at["CVE-2024-7409"] == "1:7.2+dfsg-7+deb12u8"


STANZA = (
    "{src} ({version}) {dist}; urgency=medium\n\n  * Fix CVE-2024-0001.\n\n"
    " -- A B <a@b.c>  Mon, 01 Jan 2024 00:00:00 +0000\n"
)


@pytest.mark.parametrize(
    ("version", "dist", "distro"),
    [
        ("4.14.6-1+deb11u3", "bullseye-security", "debian-11"),
        ("4.17.3-1~bpo12+1", "bookworm-backports", "debian-12"),
        ("1:6.2+dfsg-2ubuntu6.22", "jammy-security", "ubuntu-22.04"),
        ("1:8.2.2+ds-0ubuntu1~24.04.1", "UNRELEASED", "ubuntu-24.04"),
        ("4.20.0-1", "unstable", "debian-13"),
    ],
)
def test_debian_distro_from_version_then_dist_then_argument(
    tmp_path: Path, version: str, dist: str, distro: str
) -> None:
    path = tmp_path / "changelog"
    path.write_text(STANZA.format(src="xen", version=version, dist=dist))
    (row,) = iter_debian_changelog(path, "xen-utils-common", "debian-13")
    assert (row.distro, row.fixed, row.cves) == (distro, version, ("CVE-2024-0001",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  * orphan line\n", r"line 1: text outside an entry"),
        (
            STANZA.format(src="xen", version="1.0-1", dist="sid").rsplit(" -- ", 1)[0],
            "no trailer line",
        ),
        ("xen 1.0-1 unstable urgency=low\n", r"line 1: expected an entry header"),
        (STANZA.format(src="xen", version="a.0-1", dist="sid"), r"line 1: bad version 'a.0-1'"),
        (STANZA + STANZA.split("\n", 1)[0] + "\n", "the file may be truncated"),
        ("", "no changelog entries"),
        (
            "xen (1.0-1) sid; urgency=low\n  * x\nxen (0.9-1) sid; urgency=low\n",
            "line 3: new entry before",
        ),
    ],
)
def test_debian_malformed_changelogs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "changelog"
    path.write_text(
        text.replace("{src}", "xen").replace("{version}", "1-1").replace("{dist}", "sid")
    )
    with pytest.raises(FeedError, match=rf"changelog: .*{message}"):
        list(iter_debian_changelog(path, "xen-utils-common", "debian-12"))


def test_debian_truncated_gzip_is_a_feed_error(tmp_path: Path) -> None:
    path = tmp_path / "changelog.Debian.gz"
    path.write_bytes(gzip.compress(XEN_CUT.read_bytes())[:200])
    with pytest.raises(FeedError, match=r"changelog\.Debian\.gz"):
        list(iter_debian_changelog(path, "xen-utils-common", "debian-12"))


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("xen (1.0-1)sid;urgency=\n *-CVE-2024-XSA")), max_size=300
    )
)
def test_arbitrary_changelog_text_never_escapes_as_a_foreign_exception(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "changelog"
    path.write_text(text)
    with contextlib.suppress(FeedError):
        list(iter_debian_changelog(path, "xen-utils-common", "debian-12"))
