"""Tell what kind of feed a file is by looking at its first bytes (and, for changelogs, its name).

``hvpatch feeds import`` takes files or whole mirror directories; this is how it knows which
reader to use for each file, and which files (READMEs, licences, JSON schemas) to skip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hvpatch.adapters.feeds.reader import open_feed
from hvpatch.errors import FeedError, FeedFileError

KINDS = ("nvd", "kev", "epss", "csaf", "osv", "xsa", "debian-changelog")
_SNIFF = 256 * 1024
_SKIP_NAMES = re.compile(r"(?i)^(readme|license|licence|copying|provenance|sha256sums|index)")


def _head(path: Path) -> bytes:
    with open_feed(path) as stream:
        return stream.read(_SNIFF)


def detect_kind(path: Path) -> str | None:
    """The feed kind of ``path``, or None when it is not a feed hvpatch reads."""
    name = path.name.lower()
    if _SKIP_NAMES.match(name) or name.endswith((".md", ".html", ".txt", ".sh", ".py")):
        return None
    if name.startswith("changelog") and ("debian" in name or path.parent.name):
        return "debian-changelog" if name.startswith("changelog.debian") else None
    try:
        head = _head(path)
    except FeedError:
        return None
    text = head.decode("utf-8", errors="replace")
    stripped = text.lstrip("\ufeff \t\r\n")
    if name.endswith((".yml", ".yaml")):
        return "xsa" if re.search(r"(?m)^-?\s*xsa:\s*\d+", text) else None
    if stripped.startswith("#model_version") or re.match(r"(?i)\"?cve\"?\s*,", stripped):
        return "epss"
    if not stripped.startswith(("{", "[")):
        return None
    if re.search(r'"\$schema"\s*:', text[:2000]) and '"properties"' in text:
        return None  # a JSON schema, not data
    if '"catalogVersion"' in text and '"vulnerabilities"' in text:
        return "kev"
    if '"csaf_version"' in text:
        return "csaf"
    if '"CVE_Items"' in text or '"NVD_CVE"' in text or re.search(r'"cve"\s*:\s*\{', text):
        return "nvd"
    if '"descriptions"' in text and re.search(r'"id"\s*:\s*"CVE-', text):
        return "nvd"
    if '"affected"' in text and '"modified"' in text and re.search(r'"id"\s*:', text):
        return "osv"
    if re.search(r'"xsa"\s*:\s*\d+', text):
        return "xsa"
    return None


def walk(paths: list[Path]) -> Iterator[tuple[Path, str | None]]:
    """Every file under ``paths`` (sorted, recursively) with its kind (None: not a feed)."""
    for p in paths:
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                yield f, detect_kind(f)
        elif p.exists():
            yield p, detect_kind(p)
        else:
            raise FeedFileError(f"{p}: no such file or directory")
