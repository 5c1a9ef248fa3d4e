"""Advisory ingest: read feed files into the store, streaming, idempotent, atomic per import.

One ``import_feeds`` call is one transaction: every record of every file goes in, or -- when any
file is malformed -- nothing does, and the error names the file and the record. Records are
upserted by natural key with a content hash, so re-importing the same files changes nothing, and
each changed record gets ``changed_at`` = this import's time, which is what incremental
re-assessment looks at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from hvpatch.adapters.feeds.detect import walk
from hvpatch.adapters.store.codec import content_hash, encode_vuln, products_of
from hvpatch.adapters.store.db import BulkWrite, Store
from hvpatch.adapters.store.models import (
    EpssRow,
    FeedImportRow,
    KevRow,
    PackageFixRow,
    VulnerabilityRow,
    VulnProductRow,
    XsaRow,
)
from hvpatch.domain.advisories import EpssScore, KevEntry, PackageFix, Vulnerability, XenAdvisory
from hvpatch.errors import FeedError, FeedFileError

BATCH = 1000


@dataclass
class FileResult:
    """What one file contributed."""

    path: str
    kind: str
    records: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0


@dataclass
class FeedImportReport:
    """The outcome of one import: per file, and the files skipped as not being feeds."""

    files: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    at: datetime | None = None

    def totals(self) -> dict[str, int]:
        """Sums over every file."""
        return {k: sum(getattr(f, k) for f in self.files)
                for k in ("records", "added", "changed", "unchanged")}

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"files": [vars(f) for f in self.files], "skipped": self.skipped,
                "totals": self.totals()}


def _utc(when: datetime | None) -> datetime:
    """Comparable UTC datetime (SQLite hands back naive UTC values; None sorts first)."""
    if when is None:
        return datetime.min
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Upsert:
    """Insert-or-update of rows keyed by one unique column, comparing a content hash."""

    def __init__(self, s: Session, model: Any, key: str, res: FileResult, now: datetime) -> None:
        self.s, self.model, self.key, self.res, self.now = s, model, key, res, now

    def apply(self, rows: list[dict[str, Any]], *, newest: str | None = None) -> None:
        """Upsert ``rows``.

        With ``newest`` (a datetime column), a row older than the stored one is left alone, so
        the same CVE in two feeds (a 1.1 and a 2.0 file, a yearly feed and an API page) keeps
        its newest version whatever the order of the files.
        """
        by_key: dict[Any, dict[str, Any]] = {}
        for r in rows:
            k = r[self.key]
            if k not in by_key or not newest or _utc(r[newest]) >= _utc(by_key[k][newest]):
                by_key[k] = r
        self.res.records += len(rows)
        col = getattr(self.model, self.key)
        cols = [self.model.id, col, self.model.content_hash]
        if newest:
            cols.append(getattr(self.model, newest))
        existing = {r[1]: r for r in self.s.execute(select(*cols).where(col.in_(list(by_key))))}
        new, changed = [], []
        for k, row in by_key.items():
            old = existing.get(k)
            if old is None:
                new.append(row)
            elif old[2] != row["content_hash"] and (
                    not newest or _utc(row[newest]) >= _utc(old[3])):
                changed.append({"id": old[0], **row})
            else:
                self.res.unchanged += 1
        self.res.unchanged += len(rows) - len(by_key)
        if changed:
            self.s.execute(update(self.model), changed)
        if new:
            self.s.execute(insert(self.model), new)
        self.res.added += len(new)
        self.res.changed += len(changed)


_VULN_COLUMNS = ("cve_id", "source", "status", "published", "last_modified", "content_hash",
                 "changed_at", "data")
_LAST_MODIFIED, _HASH = _VULN_COLUMNS.index("last_modified"), _VULN_COLUMNS.index("content_hash")
NVD_BATCH = 2000


def _vuln_rows(items: Iterable[Vulnerability], now: datetime,
               ) -> Iterator[tuple[tuple[Any, ...], set[tuple[str, str]]]]:
    """(row in ``_VULN_COLUMNS`` order, products) per record; each record serialised once."""
    for v in items:
        data, digest = encode_vuln(v)
        yield ((v.cve_id, v.source[:32], v.status.value, v.published, v.last_modified, digest,
                now, data), products_of(v))


def _import_nvd(s: Session, items: Iterable[Vulnerability], res: FileResult, now: datetime) -> None:
    """Upsert NVD records by CVE id, keeping the newest version of each (see ``_Upsert``)."""
    conn = s.connection()
    v, p = VulnerabilityRow, VulnProductRow
    add = BulkWrite(conn, v, _VULN_COLUMNS, verbatim=("data",))
    change = BulkWrite(conn, v, _VULN_COLUMNS, verbatim=("data",), key="id")
    add_products = BulkWrite(conn, p, ("vuln_id", "vendor", "product"))
    for batch in _batches(_vuln_rows(items, now), NVD_BATCH):
        by_key: dict[str, tuple[tuple[Any, ...], set[tuple[str, str]]]] = {}
        for item in batch:
            k = item[0][0]
            if k not in by_key or _utc(item[0][_LAST_MODIFIED]) >= _utc(
                    by_key[k][0][_LAST_MODIFIED]):
                by_key[k] = item
        res.records += len(batch)
        res.unchanged += len(batch) - len(by_key)
        existing = {r[0]: r for r in conn.execute(
            select(v.cve_id, v.id, v.content_hash, v.last_modified)
            .where(v.cve_id.in_(list(by_key))))}
        new: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        written: list[tuple[int, set[tuple[str, str]]]] = []
        for k, (row, products) in by_key.items():
            old = existing.get(k)
            if old is None:
                new.append(row)
            elif old[2] != row[_HASH] and _utc(row[_LAST_MODIFIED]) >= _utc(old[3]):
                changed.append((*row, old[1]))
                written.append((old[1], products))
            else:
                res.unchanged += 1
        if changed:
            change(changed)
            conn.execute(delete(p).where(p.vuln_id.in_([i for i, _ in written])))
        if new:
            add(new)  # (a driver-level executemany cannot return the new ids: read them back)
            ids = conn.execute(select(v.cve_id, v.id).where(v.cve_id.in_([r[0] for r in new])))
            written += [(i, by_key[k][1]) for k, i in ids]
        res.added += len(new)
        res.changed += len(changed)
        rows = [(i, vendor[:128], product[:255])
                for i, products in written for vendor, product in sorted(products)]
        if rows:
            add_products(rows)


def _kev_rows(items: Iterable[KevEntry], now: datetime) -> Iterator[dict[str, Any]]:
    for k in items:
        row = {"cve_id": k.cve_id, "vendor_project": k.vendor_project, "product": k.product,
               "name": k.name, "date_added": k.date_added, "due_date": k.due_date,
               "required_action": k.required_action, "known_ransomware": k.known_ransomware,
               "notes": k.notes}
        yield {**row, "content_hash": content_hash({**row, "date_added": str(k.date_added),
                                                    "due_date": str(k.due_date)}),
               "changed_at": now}


def _epss_rows(items: Iterable[EpssScore]) -> Iterator[dict[str, Any]]:
    for e in items:
        yield {"cve_id": e.cve_id, "epss": e.epss, "percentile": e.percentile,
               "score_date": e.score_date, "model_version": e.model_version}


def _import_epss(s: Session, items: Iterable[EpssScore], res: FileResult) -> None:
    """EPSS keeps the newest score per CVE: an older file never overwrites a newer score."""
    for batch in _batches(_epss_rows(items)):
        rows = {r["cve_id"]: r for r in batch}
        existing = {r.cve_id: r for r in s.scalars(select(EpssRow).where(
            EpssRow.cve_id.in_(list(rows))))}
        new, changed = [], []
        for cve, r in rows.items():
            old = existing.get(cve)
            if old is None:
                new.append(r)
            elif (old.score_date and r["score_date"] and r["score_date"] < old.score_date) or (
                    (old.epss, old.percentile, old.score_date, old.model_version)
                    == (r["epss"], r["percentile"], r["score_date"], r["model_version"])):
                res.unchanged += 1
            else:
                changed.append({"id": old.id, **r})
        res.records += len(batch)
        res.added += len(new)
        res.changed += len(changed)
        if changed:
            s.execute(update(EpssRow), changed)
        if new:
            s.execute(insert(EpssRow), new)


def _fix_rows(items: Iterable[PackageFix], now: datetime) -> Iterator[dict[str, Any]]:
    for f in items:
        row = {"source": f.source[:32], "advisory_id": f.advisory_id[:128], "distro": f.distro,
               "package": f.package, "scheme": f.scheme, "status": f.status.value,
               "fixed": f.fixed, "introduced": f.introduced, "published": f.published,
               "cves": sorted(f.cves), "title": f.title, "url": f.url}
        key = content_hash({k: row[k] for k in ("source", "advisory_id", "distro", "package",
                                                 "status", "fixed", "introduced")})
        yield {**row, "key": key, "changed_at": now,
               "_hash": content_hash({k: str(v) for k, v in row.items()})}


def _import_fixes(s: Session, items: Iterable[PackageFix], res: FileResult, now: datetime) -> None:
    for batch in _batches(_fix_rows(items, now)):
        by_key = {r["key"]: r for r in batch}
        existing = {r.key: r for r in s.scalars(select(PackageFixRow).where(
            PackageFixRow.key.in_(list(by_key))))}
        new, changed = [], []
        for k, r in by_key.items():
            h = r.pop("_hash")
            old = existing.get(k)
            if old is None:
                new.append(r)
            elif content_hash({c: str(getattr(old, c)) for c in (
                    "source", "advisory_id", "distro", "package", "scheme", "status", "fixed",
                    "introduced", "published", "cves", "title", "url")}) != h:
                changed.append({"id": old.id, **r})
            else:
                res.unchanged += 1
        res.records += len(batch)
        res.added += len(new)
        res.changed += len(changed)
        if changed:
            s.execute(update(PackageFixRow), changed)
        if new:
            s.execute(insert(PackageFixRow), new)


def _import_xsa(s: Session, items: Iterable[XenAdvisory], res: FileResult, now: datetime) -> None:
    for batch in _batches(items):
        rows = {x.number: {"number": x.number, "cves": list(x.cves),
                           "public_date": x.public_date, "title": x.title} for x in batch}
        existing = {r.number: r for r in s.scalars(select(XsaRow).where(
            XsaRow.number.in_(list(rows))))}
        new, changed = [], []
        for n, r in rows.items():
            old = existing.get(n)
            if old is None:
                new.append(r)
            elif (old.cves, old.public_date, old.title) != (r["cves"], r["public_date"],
                                                            r["title"]):
                # a list without CVEs or titles (Qubes' list) never erases richer data
                merged = {"cves": r["cves"] or old.cves, "title": r["title"] or old.title,
                          "public_date": r["public_date"] or old.public_date}
                if (merged["cves"], merged["title"], merged["public_date"]) != (
                        old.cves, old.title, old.public_date):
                    changed.append({"id": old.id, "number": n, **merged})
                else:
                    res.unchanged += 1
            else:
                res.unchanged += 1
        res.records += len(rows)
        res.added += len(new)
        res.changed += len(changed)
        if changed:
            s.execute(update(XsaRow), changed)
        if new:
            s.execute(insert(XsaRow), new)


def _reader(kind: str, path: Path, epss_date: date | None) -> Iterable[Any]:
    if kind == "nvd":
        from hvpatch.adapters.feeds.nvd import iter_nvd
        return iter_nvd(path)
    if kind == "kev":
        from hvpatch.adapters.feeds.kev import iter_kev
        return iter_kev(path)
    if kind == "epss":
        from hvpatch.adapters.feeds.epss import iter_epss
        return iter_epss(path, default_score_date=epss_date)
    if kind == "csaf":
        from hvpatch.adapters.feeds.csaf import iter_csaf
        return iter_csaf(path)
    if kind == "osv":
        from hvpatch.adapters.feeds.osv import iter_osv
        return iter_osv(path)
    if kind == "xsa":
        from hvpatch.adapters.feeds.xsa import iter_xsa
        return iter_xsa(path)
    if kind == "debian-changelog":
        from hvpatch.adapters.feeds.debian_changelog import iter_debian_changelog
        return iter_debian_changelog(path, package=path.parent.name, distro="debian")
    raise FeedError(f"{path}: unknown feed kind {kind!r}")


def _import_one(s: Session, kind: str, path: Path, res: FileResult, now: datetime,
                epss_date: date | None) -> None:
    items = _reader(kind, path, epss_date)
    if kind == "nvd":
        _import_nvd(s, items, res, now)
    elif kind == "kev":
        up = _Upsert(s, KevRow, "cve_id", res, now)
        for batch in _batches(_kev_rows(items, now)):
            up.apply(batch)
    elif kind == "epss":
        _import_epss(s, items, res)
    elif kind in ("csaf", "osv", "debian-changelog"):
        _import_fixes(s, items, res, now)
    elif kind == "xsa":
        _import_xsa(s, items, res, now)


def import_feeds(store: Store, paths: list[Path], *, epss_date: date | None = None,
                 now: datetime | None = None,
                 progress: Callable[[Path, str], None] | None = None) -> FeedImportReport:
    """Import every feed file under ``paths`` in one transaction; see the module docstring."""
    now = now or datetime.now(UTC)
    report = FeedImportReport(at=now)
    files = list(walk(paths))
    with store.session() as s:
        for path, kind in files:
            if kind is None:
                report.skipped.append(str(path))
                continue
            if progress:
                progress(path, kind)
            res = FileResult(str(path), kind)
            try:
                _import_one(s, kind, path, res, now, epss_date)
            except FeedError as exc:
                raise FeedFileError(f"{exc}; nothing was imported") from exc
            report.files.append(res)
            s.add(FeedImportRow(at=now, kind=kind, path=str(path), sha256=_sha256(path),
                                records=res.records, added=res.added, changed=res.changed,
                                unchanged=res.unchanged))
        if not report.files:
            raise FeedError("no feed files found in " + ", ".join(str(p) for p in paths)
                            + " (expected NVD, KEV, EPSS, CSAF, OSV, XSA or Debian changelog)")
        s.commit()
    store.analyze(VulnerabilityRow, VulnProductRow, KevRow, EpssRow, PackageFixRow, XsaRow)
    return report


def feed_status(store: Store) -> dict[str, Any]:
    """Counts and freshness of what the store holds, per feed kind."""
    with store.session() as s:
        def count(model: Any) -> int:
            return s.scalar(select(func.count()).select_from(model)) or 0

        last = {k: (at, n) for k, at, n in s.execute(
            select(FeedImportRow.kind, func.max(FeedImportRow.at), func.count())
            .group_by(FeedImportRow.kind))}
        newest_mod = s.scalar(select(func.max(VulnerabilityRow.last_modified)))
        epss_date = s.scalar(select(func.max(EpssRow.score_date)))
        unanalysed = s.scalar(select(func.count()).select_from(VulnerabilityRow)
                              .where(VulnerabilityRow.status == "unanalysed")) or 0
        return {
            "vulnerabilities": count(VulnerabilityRow), "unanalysed": unanalysed,
            "newest_last_modified": newest_mod, "kev": count(KevRow), "epss": count(EpssRow),
            "epss_score_date": epss_date, "package_fixes": count(PackageFixRow),
            "xsa": count(XsaRow),
            "imports": {k: {"last": at, "files": n} for k, (at, n) in sorted(last.items())},
        }
