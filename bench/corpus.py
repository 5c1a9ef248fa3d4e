"""The benchmark corpora: the real NVD 2.0 yearly feeds, and a synthetic full-size corpus.

The real feeds are the four NVD JSON 2.0 yearly files in ``../shared/data`` (27,436 records,
179 MB of JSON). The full NVD holds about 380,000 records; the synthetic corpus has that many by
replicating the real records under new CVE ids, in two forms:

* :func:`write_feeds` writes NVD 2.0 feed files (zip or plain JSON), byte for byte the real files
  with only the ``"id"`` of each record rewritten (and, for a last partial file, the array cut
  short), so parsing them costs what parsing real feeds costs;
* :func:`replicate` makes the same records in memory from parsed ones (``dataclasses.replace``
  of the id), giving values equal to what parsing the written files gives, without the parse.

A replica's id keeps the year and moves the number out of the real range:
``CVE-2015-3456`` becomes ``CVE-2015-10003456`` in replica 1, ``CVE-2015-20003456`` in replica 2.
Replica 0 is the real records under their own ids.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from hvpatch.domain.advisories import Vulnerability

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
YEARLY = DATA / "nvd" / "nvd-json-2.0-yearly-feeds"
FULL_SIZE = 380_000
_STRIDE = 10_000_000

_ID = re.compile(rb'"id" : "CVE-(\d{4})-(\d+)"')
_RECORD_START = re.compile(rb'\{\s*"cve" : \{')
_COUNTS = re.compile(rb'"(resultsPerPage|totalResults)" : \d+')


def real_feeds() -> list[Path]:
    """The real yearly feed files, or [] when ``../shared/data`` is not there."""
    return sorted(YEARLY.glob("nvdcve-2.0-*.json.zip")) if YEARLY.is_dir() else []


def replica_id(cve_id: str, replica: int) -> str:
    """The id of ``cve_id`` in replica ``replica`` (0: unchanged)."""
    if replica == 0:
        return cve_id
    _, year, number = cve_id.split("-")
    return f"CVE-{year}-{replica * _STRIDE + int(number)}"


def read_feed(path: Path) -> bytes:
    """The JSON bytes of a feed file (the single member of a zip, or the file itself)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.infolist()[0])
    return path.read_bytes()


def _rewrite(doc: bytes, replica: int, keep: int | None) -> bytes:
    """``doc`` with every record id moved to ``replica``; only the first ``keep`` records."""
    if replica:
        def new_id(m: re.Match[bytes]) -> bytes:
            number = replica * _STRIDE + int(m.group(2))
            return b'"id" : "CVE-%s-%d"' % (m.group(1), number)
        doc = _ID.sub(new_id, doc)
    if keep is not None:
        starts = [m.start() for m in _RECORD_START.finditer(doc)]
        if keep < len(starts):
            cut = doc.rindex(b"}", 0, starts[keep]) + 1
            doc = doc[:cut] + b" ]\n}\n"
            doc = _COUNTS.sub(lambda m: b'"%s" : %d' % (m.group(1), keep), doc, count=2)
    return doc


def _plan(sources: Sequence[tuple[Path, int]], records: int) -> Iterator[tuple[Path, int, int]]:
    """(source, replica, records to keep) until ``records`` are planned."""
    left, replica = records, 0
    while left > 0:
        for path, count in sources:
            if left <= 0:
                return
            take = min(count, left)
            yield path, replica, take
            left -= take
        replica += 1


def write_feeds(sources: Sequence[Path], records: int, out: Path, *,
                compress: bool = True) -> list[Path]:
    """Write ``records`` records as NVD 2.0 feed files under ``out``; return their paths.

    Each file is one real ``source`` file with its ids moved to a replica (zip members are
    deflated at level 1 unless ``compress`` is false, then plain ``.json`` files are written).
    """
    out.mkdir(parents=True, exist_ok=True)
    docs = {p: read_feed(p) for p in sources}
    counts = [(p, len(_ID.findall(docs[p]))) for p in sources]
    written = []
    for path, replica, keep in _plan(counts, records):
        full = dict(counts)[path]
        doc = _rewrite(docs[path], replica, keep if keep < full else None)
        stem = path.name.split(".json")[0]
        name = f"{stem}-r{replica:02d}.json"
        if compress:
            target = out / f"{name}.zip"
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                z.writestr(name, doc)
        else:
            target = out / name
            target.write_bytes(doc)
        written.append(target)
    return written


def replicate(base: Sequence[Vulnerability], records: int) -> list[Vulnerability]:
    """``records`` records: ``base`` (replica 0), then replicas 1, 2, ... under new ids."""
    out: list[Vulnerability] = []
    replica = 0
    while len(out) < records:
        for v in base:
            if len(out) >= records:
                break
            out.append(v if replica == 0 else
                       dataclasses.replace(v, cve_id=replica_id(v.cve_id, replica)))
        replica += 1
    return out
