#!/usr/bin/env python3
"""Build the bundled advisory snapshot in src/hvpatch/data/feeds from ../shared/data.

The snapshot is what `hvpatch demo` and `hvpatch feeds import --bundled` read: every hypervisor
NVD record of the shared data (the derived 2.0/1.1 subsets and the per-CVE API records), the
CISA KEV catalog, the EPSS file (with its score date written into a FIRST-style first line),
AlmaLinux OSV and Rocky/CIQ CSAF records for qemu-kvm/libvirt, the Debian qemu and xen
changelogs and the XSA list. Large JSON files are gzip-compressed (hvpatch reads .gz directly).

    python scripts/bundle_feeds.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "hvpatch" / "data" / "feeds"
EPSS_SCORE_DATE = "2026-08-22"  # ../shared/data/epss/PROVENANCE.md: snapshot of 2026-08-22


def _gz(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, gzip.GzipFile(dst, "wb", mtime=0) as fout:
        shutil.copyfileobj(fin, fout)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def build(shared: Path) -> None:
    """Recreate OUT from the shared data folder."""
    if OUT.exists():
        shutil.rmtree(OUT)
    nvd = shared / "nvd"
    for f in sorted((nvd / "derived-hypervisor-subsets").glob("*.json")):
        _gz(f, OUT / "nvd" / (f.name + ".gz"))
    for f in sorted((nvd / "nvd-api-2.0-per-cve").glob("*.json")):
        _copy(f, OUT / "nvd" / "api" / f.name)
    kev = next((shared / "cisa-kev").glob("*/known_exploited_vulnerabilities.json"))
    _gz(kev, OUT / "kev" / "known_exploited_vulnerabilities.json.gz")
    epss = shared / "epss" / "jgamblin-KEV_EPSS" / "epss_kev_nvd.csv"
    (OUT / "epss").mkdir(parents=True)
    (OUT / "epss" / "epss_kev.csv").write_text(
        f"#model_version:unknown,score_date:{EPSS_SCORE_DATE}T00:00:00+0000\n"
        + epss.read_text(encoding="utf-8"), encoding="utf-8")
    for f in sorted((shared / "osv-almalinux-virt" / "advisories").rglob("*.json")):
        _copy(f, OUT / "osv" / f.relative_to(shared / "osv-almalinux-virt" / "advisories"))
    csaf = shared / "csaf" / "ctrliq-rocky-ciq-qemu-kvm" / "csaf"
    for f in sorted(csaf.rglob("*.json")):
        _copy(f, OUT / "csaf" / f.relative_to(csaf))
    for pkg in ("qemu-system-common", "xen-utils-common"):
        _copy(shared / "debian-changelogs" / pkg / "changelog.Debian.gz",
              OUT / "debian" / pkg / "changelog.Debian.gz")
    _copy(shared / "xen-xsa" / "qubesos" / "sec-xsa.yml", OUT / "xsa" / "sec-xsa.yml")


def main() -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    build(p.parse_args().shared)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT.relative_to(ROOT)} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
