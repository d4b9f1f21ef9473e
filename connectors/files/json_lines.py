"""JSON lines: one JSON value per line, read and written in batches with orjson.

The source is on the engine's hot path. It reads the file in chunks of about one
batch, cuts the chunk after its last complete line, and decodes all those lines with
*one* ``orjson.loads`` call by turning the newlines into commas inside ``[...]``: no
per-line objects or calls at all. Only when that fails, or yields a different number
of values than lines, is the batch split into lines and decoded one by one to skip
blank lines and report each bad line with its number. A batch with a run of 19 digits
is decoded line by line too, so that integers beyond 64 bits stay exact
(``streamcore.exact_json``). Invariants:
1. A batch never spans two files and holds at most ``max_records`` records.
2. ``position()`` is ``{"file": path, "offset": bytes, "line": n}``: the byte offset
   just after the last line returned and the number of lines consumed in that file
   (blank and bad lines included), so line ``n + 1`` is read next.
3. ``_buffer[_start:]`` holds the bytes read past ``offset``, with ``_newlines``
   newlines in it; the file's own position is ``offset + len(_buffer) - _start``.
4. The encoding must keep ``\n`` a single byte that no other character contains
   (UTF-8, Latin-1, cp1252, Shift-JIS...), so lines can be cut before decoding.
Design: docs/connectors-files.md#json-lines
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from typing import IO, Any, ClassVar

import orjson

from connectors.files._output import FileSink
from connectors.files._paths import read_error
from connectors.files._source import FileSource, check_line_encoding, resume_integers
from streamcore import exact_json
from streamcore.errors import SinkError
from streamcore.exact_json import may_lose_precision

__all__ = ["JsonLinesSink", "JsonLinesSource"]

_BOM = codecs.BOM_UTF8
_FIRST_GUESS_LINE_BYTES = 128
_MIN_READ_BYTES = 4096


class JsonLinesSource(FileSource):
    """Reads JSON lines from one file or from every file a glob matches, in sorted order."""

    default_name: ClassVar[str] = "json_lines"

    def __init__(self, path_or_glob: str | os.PathLike[str], *, encoding: str = "utf-8") -> None:
        super().__init__(path_or_glob)
        self.encoding = encoding
        # orjson reads UTF-8 bytes as they are; other encodings are decoded first.
        self._utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        if not self._utf8:
            check_line_encoding("JSON lines source", self.pattern, encoding)
        self._buffer = b""
        self._start = 0
        self._newlines = 0
        self._eof = False
        self._offset = 0
        self._line = 0
        self._line_bytes = _FIRST_GUESS_LINE_BYTES

    def _place(self) -> dict[str, Any]:
        """``{"offset": byte offset, "line": lines consumed}`` in the current file."""
        return {"offset": self._offset, "line": self._line}

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """The next up to ``max_records`` records of the current file; None after the last file."""
        cursor = self._cursor
        while True:
            file = cursor.file
            if file is None:
                return None
            try:
                body, lines, consumed = self._take_lines(file, max(1, max_records))
            except OSError as exc:
                raise read_error(cursor.path, exc) from exc
            if not lines:
                if not cursor.advance():
                    return None
                self._enter_file(None)
                continue
            records = None
            try:
                if may_lose_precision(body):
                    pass  # decoded line by line below, big integers exact
                elif self._utf8:
                    records = orjson.loads(b"".join((b"[", body.replace(b"\n", b","), b"]")))
                else:
                    text = body.decode(self.encoding).replace("\n", ",")
                    records = orjson.loads("".join(("[", text, "]")))
            except ValueError:
                pass
            if records is None or len(records) != lines:
                records = self._decode_each(body)
            self._offset += consumed
            self._line += lines
            if records:
                return records

    def _forget_file(self) -> None:
        self._buffer, self._start, self._newlines = b"", 0, 0

    def _take_lines(self, file: IO[bytes], max_records: int) -> tuple[bytes, int, int]:
        """The next up to ``max_records`` lines, their count and the bytes they took.

        The lines come back as one ``bytes`` without the final newline; ``(b"", 0, 0)``
        means the end of the file.
        """
        buffer, start, count = self._buffer, self._start, self._newlines
        if count < max_records and not self._eof:
            # Only here is the buffer copied: consumed bytes are dropped as new ones come.
            buffer = buffer[start:]
            start = 0
            want = max(_MIN_READ_BYTES, self._line_bytes * (max_records - count))
            while True:
                data = file.read(want)
                if not data:
                    self._eof = True
                    break
                buffer += data
                found = data.count(b"\n")
                count += found
                if found:
                    break
                want *= 2  # a line longer than the read: keep going until it ends
            self._buffer = buffer
        if count == 0:
            # At the end of the file: what is left is a last line without a newline.
            body = buffer[start:]
            self._buffer, self._start = b"", 0
            return body, (1 if body else 0), len(body)
        taken = min(count, max_records)
        end = self._nth_newline(buffer, start, count, taken)
        body = buffer[start:end]
        self._start, self._newlines = end + 1, count - taken
        self._line_bytes = max(1, (end + 1 - start) // taken)
        return body, taken, end + 1 - start

    @staticmethod
    def _nth_newline(buffer: bytes, start: int, count: int, n: int) -> int:
        """Index of the ``n``-th of the ``count`` newlines in ``buffer[start:]``."""
        # Search from whichever end is nearer; reads are sized so that one usually is.
        if count - n < n:
            at = len(buffer)
            for _ in range(count - n + 1):
                at = buffer.rindex(b"\n", start, at)
            return at
        at = start - 1
        for _ in range(n):
            at = buffer.index(b"\n", at + 1)
        return at

    def _enter_file(self, resume: Mapping[str, Any] | None) -> None:
        """Place the newly opened file at ``resume`` or at its start (past a UTF-8 BOM)."""
        file = self._cursor.file
        self._offset, self._line = 0, 0
        self._buffer, self._start, self._newlines, self._eof = b"", 0, 0, False
        if file is None:
            return
        try:
            if resume is not None:
                self._offset, self._line = resume_integers(resume, self._cursor.path, ("offset", "line"), "place")
                file.seek(self._offset)
            elif self._utf8 and file.read(len(_BOM)) == _BOM:
                self._offset = len(_BOM)
            else:
                file.seek(0)
        except OSError as exc:
            raise read_error(self._cursor.path, exc) from exc

    def _decode_each(self, body: bytes) -> list[Any]:
        """Decode line by line, skipping blank lines and reporting bad ones."""
        loads, utf8, encoding = exact_json.loads, self._utf8, self.encoding
        path, first_line = self._cursor.path, self._line + 1
        records = []
        for i, line in enumerate(body.split(b"\n")):
            if not line.strip():
                continue
            try:
                records.append(loads(line) if utf8 else loads(line.decode(encoding)))
            except ValueError as exc:
                raw = line.rstrip(b"\r")
                self.context.bad_record(raw, exc, f"file {path} line {first_line + i}")
        return records


def _serialise_namedtuple(value: Any) -> Any:
    """orjson ``default``: namedtuples become objects keyed by field name."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    raise TypeError


class JsonLinesSink(FileSink):
    """Writes each record as one JSON line; the file appears at ``path`` when the stream
    ends (under checkpointing: grows at each committed checkpoint).

    Serialises what orjson does natively (dict, list, tuple as list, str, int, float,
    bool, None, dataclasses, datetime, UUID, enum) plus namedtuples as objects.
    """

    default_name: ClassVar[str] = "json_lines"

    def write_batch(self, records: list[Any]) -> None:
        """Serialise the whole batch, then write it with one call (all or nothing)."""
        dumps, option, default = orjson.dumps, orjson.OPT_APPEND_NEWLINE, _serialise_namedtuple
        try:
            data = b"".join([dumps(r, default=default, option=option) for r in records])
        except TypeError as exc:
            raise self._unserialisable(records, exc) from exc
        if data:
            self._append(data)

    def _unserialisable(self, records: list[Any], exc: TypeError) -> SinkError:
        for index, record in enumerate(records):
            try:
                orjson.dumps(record, default=_serialise_namedtuple)
            except TypeError as found:
                return SinkError(
                    f"JSON lines sink {self.path!r}: cannot serialise record {index} of the "
                    f"batch (type {type(record).__name__}): {found}; convert it to dicts, lists "
                    "and plain values in a map() before the sink"
                )
        return SinkError(f"JSON lines sink {self.path!r}: cannot serialise the batch: {exc}")
