"""Safe reading of feed files: plain, zip or gzip, with limits against hostile archives.

Feeds come from the network or from whoever copied them, so nothing here trusts a size that a
header states. :func:`open_feed` yields a binary stream that stops with :class:`FeedError` as soon
as more than ``max_bytes`` come out of it, or as soon as the bytes out exceed ``max_ratio`` times
the compressed bytes read (past ``ratio_floor_bytes``): a zip bomb fails fast instead of filling
memory or disk. :func:`read_capped` reads a whole small document under a cap, and
:mod:`.jsonstream` streams the records of a large JSON feed one by one.

Every failure is a :class:`FeedError` that names the file.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from hvpatch.errors import FeedError

GiB = 1 << 30
MiB = 1 << 20

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
# What zipfile, gzip and zlib raise on damaged or unsupported archives (RuntimeError: encrypted
# member; NotImplementedError: unsupported compression method; EOFError: truncated stream).
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """Limits applied while reading a feed file.

    ``max_bytes`` caps the decompressed size (and a plain file's size); ``max_members`` caps the
    entries of a zip; a decompression ratio above ``max_ratio`` is refused once more than
    ``ratio_floor_bytes`` came out (small, highly compressible files stay legal).
    """

    max_bytes: int = 4 * GiB
    max_members: int = 16
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * MiB


DEFAULT_LIMITS = FeedLimits()


def feed_name(source: str | os.PathLike[str]) -> str:
    """The name used for a file in error messages (its path as given, never resolved)."""
    return os.fspath(source)


class _CappedReader(io.RawIOBase):
    """A read-only raw stream that enforces the byte and ratio limits on what it passes on."""

    def __init__(
        self,
        inner: _Readable,
        name: str,
        limits: FeedLimits,
        compressed_pos: Callable[[], int] | None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._name = name
        self._limits = limits
        self._compressed_pos = compressed_pos
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        # Ask for at most one byte beyond the cap: enough to know the cap is exceeded.
        want = min(len(view), self._limits.max_bytes - self._count + 1)
        try:
            data = self._inner.read(want)
        except _ARCHIVE_ERRORS as exc:
            raise FeedError(f"{self._name}: cannot read: {exc}") from exc
        n = len(data)
        view[:n] = data
        self._count += n
        self._check()
        return n

    def _check(self) -> None:
        limits = self._limits
        if self._count > limits.max_bytes:
            raise FeedError(
                f"{self._name}: more than {limits.max_bytes} bytes after decompression; "
                "refused (size limit)"
            )
        if self._compressed_pos is None or self._count <= limits.ratio_floor_bytes:
            return
        packed = max(self._compressed_pos(), 1)
        if self._count / packed > limits.max_ratio:
            raise FeedError(
                f"{self._name}: decompression ratio above {limits.max_ratio:g} "
                f"({self._count} bytes from {packed}); refused as a likely zip bomb"
            )


def _pick_zip_member(archive: zipfile.ZipFile, name: str, limits: FeedLimits) -> zipfile.ZipInfo:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise FeedError(f"{name}: zip has {len(infos)} entries, more than {limits.max_members}")
    files = [i for i in infos if not i.is_dir()]
    if len(files) == 1:
        member = files[0]
    else:
        json_members = [i for i in files if i.filename.lower().endswith(".json")]
        if len(json_members) != 1:
            raise FeedError(
                f"{name}: zip must hold one file or exactly one .json file, "
                f"found {[i.filename for i in files]}"
            )
        member = json_members[0]
    if member.file_size > limits.max_bytes:
        raise FeedError(
            f"{name}: zip member {member.filename!r} declares {member.file_size} bytes, "
            f"more than the limit {limits.max_bytes}"
        )
    if member.file_size > limits.ratio_floor_bytes and member.file_size > limits.max_ratio * max(
        member.compress_size, 1
    ):
        raise FeedError(
            f"{name}: zip member {member.filename!r} declares a compression ratio above "
            f"{limits.max_ratio:g}; refused as a likely zip bomb"
        )
    return member


@contextmanager
def open_feed(
    path: str | os.PathLike[str], limits: FeedLimits = DEFAULT_LIMITS
) -> Iterator[BinaryIO]:
    """Open a feed file as a binary stream, decompressing zip and gzip transparently.

    The format is recognised by its magic bytes (so ``.json.zip``, ``.json.gz`` and plain
    ``.json``/``.csv`` all work whatever their name). A zip must hold a single file or exactly one
    ``.json`` member. Raises :class:`FeedError` naming the file on any problem, including limits
    exceeded part-way through reading.
    """
    name = feed_name(path)
    with ExitStack() as stack:
        try:
            raw = stack.enter_context(Path(path).open("rb"))
            magic = raw.read(4)
            raw.seek(0)
            inner: _Readable
            compressed_pos: Callable[[], int] | None
            if magic.startswith(_ZIP_MAGIC):
                archive = stack.enter_context(zipfile.ZipFile(raw))
                member = _pick_zip_member(archive, name, limits)
                inner = stack.enter_context(archive.open(member))
                start = member.header_offset
                compressed_pos = lambda: raw.tell() - start  # noqa: E731
            elif magic.startswith(_GZIP_MAGIC):
                inner = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
                compressed_pos = raw.tell
            else:
                inner = raw
                compressed_pos = None
        except _ARCHIVE_ERRORS as exc:
            raise FeedError(f"{name}: cannot open: {exc}") from exc
        capped = _CappedReader(inner, name, limits, compressed_pos)
        yield io.BufferedReader(capped, buffer_size=256 * 1024)


def read_capped(stream: BinaryIO, name: str, max_bytes: int) -> bytes:
    """Read a whole stream, failing with :class:`FeedError` if it holds more than ``max_bytes``."""
    try:
        data = stream.read(max_bytes + 1)
    except _ARCHIVE_ERRORS as exc:
        raise FeedError(f"{name}: cannot read: {exc}") from exc
    if len(data) > max_bytes:
        raise FeedError(f"{name}: document larger than {max_bytes} bytes; refused")
    return data
