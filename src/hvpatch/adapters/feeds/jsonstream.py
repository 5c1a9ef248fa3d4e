"""Streaming the records of a large JSON feed one by one, exactly and fast.

See :class:`JsonArraySplitter`. Every failure is a :class:`FeedError` naming the file, the
record's index and byte offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

import orjson

from hvpatch.adapters.feeds.reader import MiB
from hvpatch.errors import FeedError

_WS = frozenset(b" \t\r\n")
_COMMA, _QUOTE, _BACKSLASH = ord(","), ord('"'), ord("\\")
_OPENERS = frozenset(b"{[")
_STRUCTURAL = re.compile(rb'[\[\]{}"]')
_FIRST_KEY = re.compile(rb'\{\s*"([A-Za-z0-9_]{1,64})"\s*:')
_RECORD_ID = re.compile(rb'"(?:id|ID)"\s*:\s*"([^"\\]{1,64})"')


@dataclass(frozen=True, slots=True)
class JsonRecord:
    """One element of the streamed array, with its position (``offset`` -1 when not known)."""

    index: int
    offset: int
    value: Any


class JsonArraySplitter:
    """Streams the elements of one top-level array of a JSON object, one parsed value at a time.

    Memory stays bounded by ``max_record_bytes`` plus one read chunk, whatever the feed size.
    The fast path learns the first key of the first element (``"cve"`` in NVD feeds) and cuts
    the byte stream at each next ``{ "<key>":``; a cut is accepted only if orjson parses the
    span before the separating comma as one complete value. Because JSON's grammar is
    unambiguous, every accepted span is exactly an array element. Any span that does not parse
    (a nested key, an odd layout, a broken record) is re-scanned exactly (strings and escapes
    honoured) to find where the element ends, so valid documents always split correctly and
    invalid ones fail with the record index and byte offset. The envelope before and after the
    array is validated too, so a truncated file is always detected.

    Call :meth:`start` first: it returns the array key found, or None when the document is not
    an envelope with one of ``array_keys`` (then :attr:`document` holds it, read whole under the
    cap). Then iterate :meth:`records`; afterwards :attr:`envelope` holds the other keys.
    """

    def __init__(
        self,
        stream: BinaryIO,
        name: str,
        array_keys: tuple[str, ...],
        max_record_bytes: int = 64 * MiB,
        chunk_size: int = 1 * MiB,
    ) -> None:
        self.name = name
        self.document: Any = None
        self.envelope: dict[str, Any] = {}
        self._stream = stream
        self._max = max_record_bytes
        self._chunk = chunk_size
        alternatives = b"|".join(re.escape(k.encode()) for k in array_keys)
        self._key_re = re.compile(rb'"(' + alternatives + rb')"\s*:\s*\[')
        self._array_keys = array_keys
        self._buf = b""
        self._pos = 0
        self._base = 0
        self._eof = False
        self._prologue = b""
        self._key: str | None = None
        self._memory_records: list[Any] | None = None

    # -- buffer -----------------------------------------------------------------------------

    def _fill(self) -> int:
        """Drop consumed bytes, read one chunk; return how far indexes shift (-1 at EOF)."""
        if self._eof:
            return -1
        try:
            chunk = self._stream.read(self._chunk)
        except OSError as exc:
            raise FeedError(f"{self.name}: cannot read: {exc}") from exc
        if not chunk:
            self._eof = True
            return -1
        shift = self._pos
        self._buf = self._buf[shift:] + chunk
        self._base += shift
        self._pos = 0
        return shift

    def _fail(self, index: int, pos: int, message: str) -> FeedError:
        hint = _RECORD_ID.search(self._buf, pos, pos + 4096)
        rid = f" ({hint.group(1).decode(errors='replace')})" if hint else ""
        return FeedError(f"{self.name}: record #{index}{rid} at byte {self._base + pos}: {message}")

    # -- envelope ---------------------------------------------------------------------------

    def start(self) -> str | None:
        """Read up to the opening bracket of the array; return its key (None: not an envelope)."""
        if self._fill() >= 0 and self._buf.startswith(b"\xef\xbb\xbf"):
            self._pos = 3  # a UTF-8 byte order mark, which JSON parsers refuse
        match = self._key_re.search(self._buf, self._pos)
        while match is None:
            if len(self._buf) > self._max:
                raise FeedError(
                    f"{self.name}: larger than {self._max} bytes with no record array before; "
                    "refused"
                )
            searched = max(self._pos, len(self._buf) - 64)
            shift = self._fill()
            if shift < 0:
                return self._whole_document()
            match = self._key_re.search(self._buf, searched - shift)
        prologue = self._buf[self._pos : match.end()]
        try:
            head = orjson.loads(prologue + b"]}")
        except orjson.JSONDecodeError:
            return self._whole_document()  # the key is nested or the layout is unusual
        if not isinstance(head, dict):
            return self._whole_document()
        self._key = match.group(1).decode()
        self._prologue = prologue
        self._pos = match.end()
        self.envelope = head
        return self._key

    def _whole_document(self) -> str | None:
        while self._fill() >= 0:
            if len(self._buf) > self._max:
                raise FeedError(f"{self.name}: document larger than {self._max} bytes; refused")
        try:
            doc = orjson.loads(self._buf[self._pos :])
        except orjson.JSONDecodeError as exc:
            at = self._base + self._pos + exc.pos
            raise FeedError(f"{self.name}: invalid JSON at byte {at}: {exc.msg}") from exc
        self._buf = b""
        if isinstance(doc, dict):
            for key, value in doc.items():
                if key in self._array_keys and isinstance(value, list):
                    self._key, self._memory_records = str(key), value
                    self.envelope = {k: v for k, v in doc.items() if k != key}
                    return self._key
        self.document = doc
        return None

    def _finish(self, pos: int, index: int) -> None:
        """Validate what follows the array (``pos`` is at its closing bracket)."""
        self._buf, self._base, self._pos = self._buf[pos:], self._base + pos, 0
        while self._fill() >= 0:
            if len(self._buf) > self._max:
                raise FeedError(f"{self.name}: more than {self._max} bytes after the records")
        try:
            doc = orjson.loads(self._prologue + self._buf)
        except orjson.JSONDecodeError as exc:
            raise FeedError(
                f"{self.name}: invalid or truncated JSON after the last record "
                f"(#{index - 1}), near byte {self._base}: {exc.msg}"
            ) from exc
        self.envelope = {k: v for k, v in doc.items() if k != self._key}

    # -- records ----------------------------------------------------------------------------

    def records(self) -> Iterator[JsonRecord]:
        """Yield the array's elements in order; raise :class:`FeedError` at the first bad one."""
        if self._memory_records is not None:
            for index, value in enumerate(self._memory_records):
                yield JsonRecord(index, -1, value)
            return
        if self._key is None:
            return
        index = 0
        pos = self._skip_ws(self._pos, index)
        if self._buf[pos] == ord("]"):
            self._finish(pos, index)
            return
        self._pos = pos
        marker, pos = self._learn_marker(pos)
        while True:
            if self._buf[pos] != ord("{"):
                raise self._fail(index, pos, "expected a JSON object")
            value, pos, last = self._next_value(pos, index, marker)
            yield JsonRecord(index, self._base + self._pos, value)
            index += 1
            if last:
                self._finish(pos, index)
                return
            self._pos = pos

    def _skip_ws(self, pos: int, index: int) -> int:
        while True:
            buf = self._buf
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return pos
            shift = self._fill()
            if shift < 0:
                raise self._fail(index, pos, "file ends inside the record array (truncated)")
            pos -= shift

    def _learn_marker(self, pos: int) -> tuple[re.Pattern[bytes] | None, int]:
        """The pattern that starts every element, from the first element's first key."""
        while len(self._buf) - pos < 256 and (shift := self._fill()) >= 0:
            pos -= shift
        first = _FIRST_KEY.match(self._buf, pos)
        if first is None:
            return None, pos
        return re.compile(rb'\{\s*"' + re.escape(first.group(1)) + rb'"\s*:'), pos

    def _next_value(
        self, pos: int, index: int, marker: re.Pattern[bytes] | None
    ) -> tuple[Any, int, bool]:
        """Parse the element at ``pos``; return it, where the next starts, and if it was last."""
        self._pos = pos
        search_from = pos + 1
        while marker is not None:
            buf = self._buf
            found = marker.search(buf, search_from)
            if found is None:
                if self._eof or len(buf) - pos > self._max:
                    break
                search_from = max(pos + 1, len(buf) - 128)
                shift = self._fill()
                pos, search_from = pos - shift, search_from - shift
                continue
            end = found.start()
            k = end - 1
            while buf[k] in _WS:
                k -= 1
            if buf[k] != _COMMA or end - pos > self._max:
                break
            try:
                return orjson.loads(buf[pos:k]), end, False
            except orjson.JSONDecodeError:
                break
        return self._slow_value(index)

    def _slow_value(self, index: int) -> tuple[Any, int, bool]:
        """Find the element's end exactly, parse it, and read the separator after it."""
        end = self._scan_end(index)
        pos = self._pos
        try:
            value = orjson.loads(self._buf[pos:end])
        except orjson.JSONDecodeError as exc:
            raise self._fail(
                index, pos, f"invalid JSON at byte {self._base + pos + exc.pos}: {exc.msg}"
            ) from exc
        after = self._skip_ws(end, index)
        sep = self._buf[after]
        if sep == ord("]"):
            return value, after, True
        if sep != _COMMA:
            raise self._fail(index, self._pos, "expected ',' or ']' after the record")
        return value, self._skip_ws(after + 1, index + 1), False

    def _scan_end(self, index: int) -> int:
        """Index just past the object starting at ``self._pos`` (brackets and strings honoured)."""
        i, depth, in_string = self._pos + 1, 1, False
        while True:
            buf = self._buf
            if in_string:
                q = buf.find(b'"', i)
                while q >= 0:
                    b = q - 1
                    while buf[b] == _BACKSLASH:
                        b -= 1
                    if (q - 1 - b) % 2 == 0:
                        break
                    q = buf.find(b'"', q + 1)
                if q >= 0:
                    i, in_string = q + 1, False
                    continue
                i = len(buf)
            else:
                found = _STRUCTURAL.search(buf, i)
                if found is not None:
                    j = found.start()
                    c = buf[j]
                    i = j + 1
                    if c == _QUOTE:
                        in_string = True
                    elif c in _OPENERS:
                        depth += 1
                    else:
                        depth -= 1
                        if depth == 0:
                            return i
                    continue
                i = len(buf)
            if i - self._pos > self._max:
                self._raise_bad_record(index, at_eof=False)
            shift = self._fill()
            if shift < 0:
                self._raise_bad_record(index, at_eof=True)
            i -= shift

    def _raise_bad_record(self, index: int, at_eof: bool) -> NoReturn:
        """The record never ends: report where its JSON goes wrong, else truncation or size."""
        pos = self._pos
        span = self._buf[pos:]
        try:
            orjson.loads(span)
        except orjson.JSONDecodeError as exc:
            if at_eof or exc.pos < len(span):
                at = self._base + pos + exc.pos
                message = f"invalid or truncated JSON at byte {at}: {exc.msg}"
                raise self._fail(index, pos, message) from exc
        if at_eof:
            raise self._fail(index, pos, "file ends inside this record (truncated)")
        raise self._fail(index, pos, f"record larger than {self._max} bytes")
