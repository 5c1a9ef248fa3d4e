"""Contract tests of the NVD reader and the safe feed opener, on real NVD records.

Fixtures in ``data/nvd`` are cut from ``../shared/data/nvd`` (see ``data/README.md``); the larger
checks read ``../shared/data`` directly and skip when it is not laid out beside the repository.
"""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.adapters.feeds.jsonstream import JsonArraySplitter
from hvpatch.adapters.feeds.nvd import iter_nvd
from hvpatch.adapters.feeds.reader import FeedLimits, open_feed
from hvpatch.domain.advisories import (
    AnalysisStatus,
    ConfigNode,
    Configuration,
    CvssMetric,
    Vulnerability,
)
from hvpatch.errors import FeedError

DATA = Path(__file__).parent / "data" / "nvd"
SHARED = Path(__file__).parents[2].parent / "shared" / "data"
API_SAMPLE = DATA / "nvdcve-2.0-2015-sample.json"
LEGACY_SAMPLE = DATA / "nvdcve-1.1-2015-sample.json"


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data not present: ../shared/data/{relative}")
    return path


def by_id(vulns: Iterator[Vulnerability]) -> dict[str, Vulnerability]:
    return {v.cve_id: v for v in vulns}


# --- normalisation used to compare the two formats ---------------------------------------------


def _norm_node(node: ConfigNode) -> tuple[Any, ...]:
    return (
        node.operator,
        node.negate,
        tuple(sorted(node.matches, key=repr)),
        tuple(sorted((_norm_node(c) for c in node.children), key=repr)),
    )


def norm_configurations(configs: tuple[Configuration, ...]) -> list[tuple[Any, ...]]:
    """Order-free form: OR/AND members and configurations have no meaningful order."""
    return sorted(
        (
            (c.operator, c.negate, tuple(sorted((_norm_node(n) for n in c.nodes), key=repr)))
            for c in configs
        ),
        key=repr,
    )


def nvd_primary(cvss: tuple[CvssMetric, ...]) -> tuple[CvssMetric, ...]:
    """The NVD's own scores: all that 1.1 carries (2.0 adds CNA scores beside them)."""
    return tuple(m for m in cvss if m.primary and m.source == "nvd@nist.gov")


# --- the three shapes, on real records -------------------------------------------------------


def test_api_feed_records_are_read_in_file_order_with_their_fields() -> None:
    vulns = list(iter_nvd(API_SAMPLE))
    assert [v.cve_id for v in vulns] == ["CVE-2015-3456", "CVE-2015-2336", "CVE-2015-7835"]
    venom = vulns[0]
    assert "Floppy Disk Controller" in venom.description
    assert venom.published == datetime(2015, 5, 13, 18, 59, 0, 157000, tzinfo=UTC)
    assert venom.status is AnalysisStatus.ANALYSED
    assert venom.cwes == ("CWE-119",)
    assert venom.cvss == (
        CvssMetric("2.0", "AV:A/AC:L/Au:S/C:C/I:C/A:C", 7.7, "HIGH", "nvd@nist.gov", True),
    )
    assert len(venom.references) == len(set(venom.references)) == 48
    qemu = venom.configurations[0].nodes[0].matches[0]
    assert qemu.criteria.startswith("cpe:2.3:a:qemu:qemu:") and qemu.vulnerable


def test_api_and_configuration_keeps_the_non_vulnerable_platform() -> None:
    workstation = by_id(iter_nvd(API_SAMPLE))["CVE-2015-2336"]
    anded = [c for c in workstation.configurations if c.operator == "AND"]
    assert len(anded) == 1
    apps, platform = anded[0].nodes
    assert all(m.vulnerable for m in apps.matches)
    assert [(m.criteria.split(":")[3:5], m.vulnerable) for m in platform.matches] == [
        (["microsoft", "windows"], False)
    ]


def test_legacy_feed_gives_the_same_cves() -> None:
    vulns = list(iter_nvd(LEGACY_SAMPLE))
    assert [v.cve_id for v in vulns] == ["CVE-2015-2336", "CVE-2015-3456", "CVE-2015-7835"]
    assert vulns[0].published == datetime(2015, 6, 13, 14, 59, tzinfo=UTC)
    assert all(v.source == "cve@mitre.org" for v in vulns)


def test_both_formats_agree_on_what_they_both_carry() -> None:
    api, legacy = by_id(iter_nvd(API_SAMPLE)), by_id(iter_nvd(LEGACY_SAMPLE))
    assert api.keys() == legacy.keys()
    for cve_id, new in api.items():
        old = legacy[cve_id]
        assert norm_configurations(new.configurations) == norm_configurations(old.configurations), (
            cve_id
        )
        assert nvd_primary(new.cvss) == old.cvss, cve_id
        assert new.cwes == old.cwes, cve_id  # CWE-7835 lists its two CWEs in opposite orders
        assert new.description == old.description
        assert new.status == old.status
        assert new.published is not None
        assert new.published.replace(second=0, microsecond=0) == old.published


def test_single_api_cve_object_with_cna_affected_and_ssvc() -> None:
    (vuln,) = iter_nvd(DATA / "CVE-2024-22252.json")
    assert vuln.cve_id == "CVE-2024-22252"
    assert vuln.status is AnalysisStatus.ANALYSED
    assert vuln.ssvc == (
        ("exploitation", "none"),
        ("automatable", "no"),
        ("technicalImpact", "total"),
    )
    esxi = vuln.vendor_affected[0]
    assert (esxi.vendor, esxi.product, esxi.default_status) == ("n/a", "VMware ESXi", "unaffected")
    assert ("affected", "7.0", "ESXi70U3p-23307199", None, "custom") in esxi.versions
    assert len(vuln.vendor_affected) == 8  # 4 from the CNA, 4 from CISA's ADP block
    assert {m.source for m in vuln.cvss} == {"security@vmware.com", "nvd@nist.gov"}
    best = vuln.best_cvss
    assert best is not None and (best.source, best.base_score) == ("nvd@nist.gov", 6.7)


def test_cisa_kev_fields_are_kept() -> None:
    (vuln,) = iter_nvd(DATA / "CVE-2024-37085.json")
    assert vuln.cisa_exploit_add == datetime(2024, 7, 30).date()
    assert vuln.cisa_action_due == datetime(2024, 8, 20).date()
    assert vuln.cisa_required_action.startswith("Apply mitigations per vendor instructions")
    assert vuln.cwes == ("CWE-287", "CWE-305")


def test_received_record_without_configurations_is_unanalysed() -> None:
    (vuln,) = iter_nvd(DATA / "CVE-2024-21545.json")
    assert vuln.status is AnalysisStatus.UNANALYSED
    assert vuln.configurations == ()


@pytest.mark.parametrize(
    ("vuln_status", "with_configurations", "expected"),
    [
        ("Analyzed", True, AnalysisStatus.ANALYSED),
        ("Modified", True, AnalysisStatus.ANALYSED),
        ("Rejected", False, AnalysisStatus.REJECTED),
        ("Received", False, AnalysisStatus.UNANALYSED),
        ("Awaiting Analysis", False, AnalysisStatus.UNANALYSED),
        ("Undergoing Analysis", False, AnalysisStatus.UNANALYSED),
        ("Deferred", False, AnalysisStatus.UNANALYSED),
        ("Deferred", True, AnalysisStatus.ANALYSED),
        ("Undergoing Analysis", True, AnalysisStatus.ANALYSED),
    ],
)
def test_vuln_status_maps_to_analysis_status(
    vuln_status: str, with_configurations: bool, expected: AnalysisStatus
) -> None:
    record = json.loads((DATA / "CVE-2024-37085.json").read_bytes())
    record["vulnStatus"] = vuln_status
    if not with_configurations:
        del record["configurations"]
    (vuln,) = iter_nvd(io.BytesIO(json.dumps(record).encode()), "record.json")
    assert vuln.status is expected


def test_zip_and_gzip_give_the_same_values_as_plain(tmp_path: Path) -> None:
    raw = API_SAMPLE.read_bytes()
    zipped, gzipped = tmp_path / "feed.json.zip", tmp_path / "feed.json.gz"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("nvdcve-2.0-2015.json", raw)
    gzipped.write_bytes(gzip.compress(raw))
    plain = list(iter_nvd(API_SAMPLE))
    assert list(iter_nvd(zipped)) == plain
    assert list(iter_nvd(gzipped)) == plain


def test_compact_api_page_is_read() -> None:
    doc = json.loads(API_SAMPLE.read_bytes())
    compact = orjson.dumps(doc)  # API responses carry no whitespace
    assert list(iter_nvd(io.BytesIO(compact), "page.json")) == list(iter_nvd(API_SAMPLE))


def test_byte_order_mark_is_accepted() -> None:
    for path in (API_SAMPLE, DATA / "CVE-2024-37085.json"):
        with_bom = io.BytesIO(b"\xef\xbb\xbf" + path.read_bytes())
        assert list(iter_nvd(with_bom, path.name)) == list(iter_nvd(path))


def test_envelope_with_a_nested_lookalike_key_is_still_read_exactly() -> None:
    doc = json.loads(API_SAMPLE.read_bytes())
    odd = {"meta": {"vulnerabilities": [{"cve": "not a record"}]}, **doc}
    assert list(iter_nvd(io.BytesIO(json.dumps(odd).encode()), "odd.json")) == list(
        iter_nvd(API_SAMPLE)
    )


# --- streaming: exact splitting, bounded memory -------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(alphabet='ab{}[]",:\\ \n"cve', max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["cve", "id", "x", '{"cve":']), inner, max_size=4)
    ),
    max_leaves=12,
)
_records = st.lists(
    st.dictionaries(st.sampled_from(["cve", "id", "nodes"]), _json, min_size=1, max_size=3),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(records=_records, indent=st.sampled_from([None, 1, 2]), chunk=st.integers(1, 64))
def test_splitter_yields_exactly_the_array_elements(
    records: list[dict[str, Any]], indent: int | None, chunk: int
) -> None:
    """Whatever the keys, nesting, strings and chunking, the split equals a full parse."""
    doc = {"format": "NVD_CVE", "vulnerabilities": records, "after": {"cve": [1]}}
    text = json.dumps(doc, indent=indent).encode()
    splitter = JsonArraySplitter(
        io.BytesIO(text),
        "doc.json",
        ("vulnerabilities",),
        max_record_bytes=1 << 20,
        chunk_size=chunk,
    )
    assert splitter.start() == "vulnerabilities"
    assert [r.value for r in splitter.records()] == records
    assert splitter.envelope == {"format": "NVD_CVE", "after": {"cve": [1]}}


class _RepeatingFeed(io.RawIOBase):
    """A 2.0 feed of ``count`` copies of one record, generated on the fly (never in memory)."""

    def __init__(self, record: bytes, count: int) -> None:
        super().__init__()
        self._parts = self._generate(record, count)
        self._pending = b""

    @staticmethod
    def _generate(record: bytes, count: int) -> Iterator[bytes]:
        yield b'{"format":"NVD_CVE","vulnerabilities":['
        for i in range(count):
            yield record + (b"," if i < count - 1 else b"")
        yield b"]}"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._parts, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def test_memory_stays_bounded_while_the_feed_grows() -> None:
    record = orjson.dumps({"cve": json.loads((DATA / "CVE-2024-22252.json").read_bytes())})
    count = 3000  # about 33 MB of JSON
    tracemalloc.start()
    try:
        seen = sum(1 for _ in iter_nvd(io.BufferedReader(_RepeatingFeed(record, count)), "big"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert len(record) * count > 30_000_000
    assert peak < 8_000_000, f"peak {peak} bytes while streaming {len(record) * count}"


# --- hostile and broken input -------------------------------------------------------------------


def test_invalid_record_names_file_index_cve_and_offset(tmp_path: Path) -> None:
    text = API_SAMPLE.read_text(encoding="utf-8")
    second = text.index('"id": "CVE-2015-2336"')
    broken = text[:second] + text[second:].replace('"vulnStatus": "', '"vulnStatus": ', 1)
    path = tmp_path / "broken.json"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(FeedError, match=r"broken\.json: record #1 \(CVE-2015-2336\) at byte \d+"):
        list(iter_nvd(path))


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.97, 0.9999])
def test_truncated_feed_is_refused(tmp_path: Path, keep: float) -> None:
    raw = API_SAMPLE.read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(FeedError, match=r"cut\.json"):
        list(iter_nvd(path))


def test_truncated_zip_is_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "feed.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("feed.json", API_SAMPLE.read_bytes())
    data = zipped.read_bytes()
    zipped.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeedError, match=r"feed\.zip"):
        list(iter_nvd(zipped))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["cve"].pop("id"), r"record #1 \(id unknown\).*missing field 'id'"),
        (
            lambda r: r["cve"]["configurations"][0]["nodes"][0]["cpeMatch"][0].update(criteria=7),
            r"record #1 \(CVE-2015-2336\).*criteria must be a string",
        ),
        (
            lambda r: r["cve"]["metrics"]["cvssMetricV2"][0]["cvssData"].pop("baseScore"),
            r"record #1 \(CVE-2015-2336\).*missing field 'baseScore'",
        ),
        (lambda r: r["cve"].update(published="yesterday"), r"record #1 .*yesterday"),
    ],
)
def test_wrong_schema_is_refused_naming_the_record(edit: Any, message: str) -> None:
    doc = json.loads(API_SAMPLE.read_bytes())
    edit(doc["vulnerabilities"][1])
    with pytest.raises(FeedError, match=message):
        list(iter_nvd(io.BytesIO(json.dumps(doc, indent=1).encode()), "edited.json"))


@pytest.mark.parametrize(
    "document", [b'{"foo": 1}', b"[1, 2]", b'"CVE-2015-3456"', b"", b'{"vulnerabilities": [1]}']
)
def test_documents_that_are_not_nvd_are_refused(document: bytes) -> None:
    with pytest.raises(FeedError, match=r"odd\.json"):
        list(iter_nvd(io.BytesIO(document), "odd.json"))


class _EndlessString(io.RawIOBase):
    """A record whose description never ends: reading it all would exhaust memory."""

    def __init__(self) -> None:
        super().__init__()
        self.served = 0
        self._head = b'{"vulnerabilities": [{"cve": {"id": "CVE-2099-0001", "descriptions": "'

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._head or b"A" * len(buffer)
        self._head = b""
        n = min(len(buffer), len(chunk))
        buffer[:n] = chunk[:n]
        self.served += n
        return n


def test_huge_token_fails_fast_under_the_record_cap() -> None:
    source = _EndlessString()
    with pytest.raises(FeedError, match=r"endless\.json: record #0 \(CVE-2099-0001\).*larger than"):
        list(iter_nvd(io.BufferedReader(source), "endless.json", max_record_bytes=2 << 20))
    assert source.served < 8 << 20  # stopped soon after the cap, not at end of stream


def test_single_record_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "CVE-2099-0002.json"
    path.write_bytes(b'{"id": "CVE-2099-0002", "descriptions": "' + b"B" * (3 << 20) + b'"}')
    with pytest.raises(FeedError, match="larger than"):
        list(iter_nvd(path, max_record_bytes=1 << 20))


# --- the safe opener: zip bombs and odd archives -----------------------------------------------


def _zip_of_zeros(path: Path, size: int, members: int = 1) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            archive.writestr(f"part{i}.json", b"0" * size)
    return path


def test_zip_member_declaring_more_than_the_limit_is_refused(tmp_path: Path) -> None:
    bomb = _zip_of_zeros(tmp_path / "bomb.zip", 10 << 20)
    with (
        pytest.raises(FeedError, match=r"bomb\.zip: zip member 'part0.json' declares"),
        open_feed(bomb, FeedLimits(max_bytes=1 << 20)),
    ):
        pass


def test_zip_with_a_bomb_ratio_is_refused(tmp_path: Path) -> None:
    bomb = _zip_of_zeros(tmp_path / "bomb.zip", 10 << 20)  # ~1000:1
    with (
        pytest.raises(FeedError, match="compression ratio above 200"),
        open_feed(bomb, FeedLimits(ratio_floor_bytes=1 << 20)),
    ):
        pass


def test_zip_whose_header_lies_about_its_size_is_stopped(tmp_path: Path) -> None:
    bomb = _zip_of_zeros(tmp_path / "liar.zip", 10 << 20)
    data = bytearray(bomb.read_bytes())
    # Rewrite the declared size (local header and central directory) to 1000 bytes.
    real = (10 << 20).to_bytes(4, "little")
    assert data.count(real) == 2
    bomb.write_bytes(bytes(data).replace(real, (1000).to_bytes(4, "little")))
    with pytest.raises(FeedError, match=r"liar\.zip"), open_feed(bomb) as stream:
        stream.read()


def test_gzip_bomb_is_stopped_at_the_byte_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b"0" * (10 << 20)))
    with (
        pytest.raises(FeedError, match=r"bomb\.json\.gz: more than 1048576 bytes"),
        open_feed(bomb, FeedLimits(max_bytes=1 << 20, max_ratio=1e9)) as stream,
    ):
        while stream.read(1 << 16):
            pass


def test_gzip_bomb_is_stopped_by_its_ratio(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b"0" * (10 << 20)))
    with (
        pytest.raises(FeedError, match="ratio above 200"),
        open_feed(bomb, FeedLimits(ratio_floor_bytes=1 << 20)) as stream,
    ):
        while stream.read(1 << 16):
            pass


def test_zip_with_too_many_members_is_refused(tmp_path: Path) -> None:
    many = _zip_of_zeros(tmp_path / "many.zip", 10, members=20)
    with pytest.raises(FeedError, match="20 entries, more than 16"), open_feed(many):
        pass


def test_zip_picks_its_one_json_member(tmp_path: Path) -> None:
    path = tmp_path / "feed.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.txt", b"hello")
        archive.writestr("nvdcve-2.0-2015.json", API_SAMPLE.read_bytes())
    assert len(list(iter_nvd(path))) == 3


def test_zip_with_two_json_members_is_refused(tmp_path: Path) -> None:
    two = _zip_of_zeros(tmp_path / "two.zip", 10, members=2)
    with pytest.raises(FeedError, match=r"exactly one \.json"), open_feed(two):
        pass


def test_missing_file_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"absent\.json"):
        list(iter_nvd(tmp_path / "absent.json"))


# --- the real data in ../shared/data ------------------------------------------------------------

# Content NVD changed between the 1.1 snapshot (2021-09) and the 2.0 snapshot (2026-04). These are
# data differences, not format ones: each was checked by hand against both files.
CONFIGURATIONS_CHANGED = {
    "CVE-2015-0235": "PHP ranges added, an Oracle CPE removed",
    "CVE-2015-3209": "Arista EOS CPEs added",
    "CVE-2015-3214": "Red Hat OpenStack, Arista and other CPEs added",
    "CVE-2015-5165": "Red Hat, SUSE and other CPEs added",
    "CVE-2015-5239": "Arista EOS CPEs added",
    "CVE-2015-5278": "Arista EOS CPEs added",
    "CVE-2015-5745": "Arista EOS CPEs added",
    "CVE-2015-6815": "SUSE SDK CPEs moved from part o to part a; Arista added",
    "CVE-2015-6855": "Arista EOS CPE added",
}
CVSS_CHANGED = {
    "CVE-2015-5165": "NVD rescored v2 from 5.0 to 9.3",
    "CVE-2015-6855": "NVD added a v3.1 score",
}
CWES_CHANGED = {"CVE-2015-5165": "NVD reclassified CWE-200 as CWE-908"}


def test_parity_of_all_2015_cves_in_both_formats() -> None:
    subsets = "nvd/derived-hypervisor-subsets/"
    api = by_id(iter_nvd(shared(subsets + "nvdcve-2.0-2015-hypervisor-subset.json")))
    legacy = by_id(iter_nvd(shared(subsets + "nvdcve-1.1-2015-hypervisor-subset.json")))
    assert api.keys() == legacy.keys() and len(api) == 110
    config_diff, cvss_diff, cwe_diff = set(), set(), set()
    for cve_id, new in api.items():
        old = legacy[cve_id]
        if norm_configurations(new.configurations) != norm_configurations(old.configurations):
            config_diff.add(cve_id)
        if nvd_primary(new.cvss) != old.cvss:
            cvss_diff.add(cve_id)
        if new.cwes != old.cwes:
            cwe_diff.add(cve_id)
        assert new.description == old.description, cve_id
        assert new.status == old.status, cve_id
        assert new.published is not None
        assert new.published.replace(second=0, microsecond=0) == old.published, cve_id
    assert config_diff == CONFIGURATIONS_CHANGED.keys()
    assert cvss_diff == CVSS_CHANGED.keys()
    assert cwe_diff == CWES_CHANGED.keys()
    nested = [
        i
        for i in api
        if i not in config_diff and any(c.operator == "AND" for c in api[i].configurations)
    ]
    assert len(nested) >= 5  # 1.1 AND-with-children nodes map onto 2.0 AND configurations


def test_every_per_cve_api_record_parses() -> None:
    folder = shared("nvd/nvd-api-2.0-per-cve")
    for path in sorted(folder.glob("CVE-*.json")):
        (vuln,) = iter_nvd(path)
        assert vuln.cve_id == path.stem


def test_yearly_zip_streams_every_record() -> None:
    path = shared("nvd/nvd-json-2.0-yearly-feeds/nvdcve-2.0-2015.json.zip")
    ids = [v.cve_id for v in iter_nvd(path)]
    assert len(ids) == len(set(ids)) == 8779  # the feed's totalResults
    assert "CVE-2015-3456" in ids
