"""Avro object container files, read and written with fastavro.

Each file carries its writer schema; the source decodes with it (resolved against
``reader_schema`` when one is given). Invariants:
1. ``position()`` is ``{"file": path, "records": n}``: the number of records of that
   file already returned. Resuming skips ``n`` records: whole blocks by their record
   count without decoding them, then the rest of the last block one by one. (Block
   offsets would save reading the skipped blocks, but fastavro only reads a block
   stream from its header onwards.)
2. A file that cannot be decoded is a ``SourceError`` naming it: Avro has no record
   boundaries to skip to, so there is no per-record bad-record path.
3. The sink writes one or more whole blocks per batch; a batch that fails is cut off
   again, so the pending file only ever holds complete batches.
4. Under checkpointing every segment starts with the same header (schema, codec, sync
   marker): fastavro's writer, given a non-empty readable file, reads the header back
   and appends blocks in its terms. ``commit`` appends a segment without its header
   (``skip``), so the published file stays one valid container; a restored sink takes
   the header of the published file and continues it.
Design: docs/connectors-files.md#avro
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.files._output import FileSink, as_mapping
from connectors.files._source import FileSource, resume_integers
from streamcore.errors import SinkError, SourceError

if TYPE_CHECKING:
    from fastavro.write import Writer

__all__ = ["AvroSink", "AvroSource"]

# fastavro is imported where a source opens a file or a sink is created, not with this
# module: it is most of the time ``import connectors.files`` would take, and a job reading
# JSON lines never needs it (docs/performance.md#start-up).


class AvroSource(FileSource):
    """Reads Avro container files; one path or a glob, files in sorted order."""

    default_name: ClassVar[str] = "avro"

    def __init__(
        self, path_or_glob: str | os.PathLike[str], *, reader_schema: Any | None = None
    ) -> None:
        super().__init__(path_or_glob)
        self.reader_schema = reader_schema
        self.writer_schema: Any | None = None
        """The schema stored in the file being read (None before ``open``)."""
        self._blocks: Iterator[Any] | None = None
        self._records: Iterator[Any] | None = None
        self._consumed = 0

    def _place(self) -> dict[str, Any]:
        """``{"records": records of the current file returned}``."""
        return {"records": self._consumed}

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` records (across files if need be); None at the end."""
        out: list[Any] = []
        while len(out) < max_records:
            if self._blocks is None:
                break
            try:
                if self._records is None:
                    block = next(self._blocks, None)
                    if block is None:
                        if not self._cursor.advance():
                            self._blocks = None
                            break
                        self._enter_file(None)
                        continue
                    self._records = iter(block)
                chunk = list(itertools.islice(self._records, max_records - len(out)))
            except SourceError:
                raise
            except Exception as exc:
                raise self._unreadable(exc) from exc
            if not chunk:
                self._records = None
                continue
            out.extend(chunk)
            self._consumed += len(chunk)
        if not out and self._blocks is None:
            return None
        return out

    def _forget_file(self) -> None:
        self._blocks = self._records = None

    def _enter_file(self, resume: Mapping[str, Any] | None) -> None:
        """Read the header of the newly opened file, then skip to ``resume`` if given."""
        file = self._cursor.file
        self._records, self._consumed = None, 0
        if file is None:
            self._blocks = None
            return
        import fastavro

        try:
            blocks = fastavro.block_reader(file, self.reader_schema)
            self.writer_schema = blocks.writer_schema
            self._blocks = iter(blocks)
            if resume is not None:
                [count] = resume_integers(resume, self._cursor.path, ("records",), "count")
                self._skip(count)
        except SourceError:
            raise
        except Exception as exc:
            raise self._unreadable(exc) from exc

    def _skip(self, count: int) -> None:
        assert self._blocks is not None
        while self._consumed < count:
            block = next(self._blocks, None)
            if block is None:
                raise SourceError(
                    f"cannot resume Avro file {self._cursor.path!r} after {count} records: "
                    f"it holds only {self._consumed}; was it rewritten since the checkpoint?"
                )
            if self._consumed + block.num_records <= count:
                self._consumed += block.num_records
                continue
            self._records = iter(block)
            rest = count - self._consumed
            self._consumed += len(list(itertools.islice(self._records, rest)))

    def _unreadable(self, exc: Exception) -> SourceError:
        return SourceError(
            f"cannot read Avro file {self._cursor.path!r}: {type(exc).__name__}: {exc}"
        )


class AvroSink(FileSink):
    """Writes records (dicts, dataclasses, namedtuples) to an Avro container file.

    ``schema`` is an Avro schema as a dict (or JSON-like list/str). With ``validate``
    (the default) a record that does not match the schema is a ``SinkError`` naming
    the field; ``validate=False`` is about twice as fast but lets fastavro coerce some
    mismatches (a float written to a long is truncated).
    """

    default_name: ClassVar[str] = "avro"

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: Any,
        *,
        codec: str = "null",
        validate: bool = True,
    ) -> None:
        super().__init__(path)
        self.schema = schema
        self.codec = codec
        self.validate = validate
        import fastavro

        try:
            self._parsed = fastavro.parse_schema(schema)
        except Exception as exc:
            raise SinkError(f"Avro sink {self.path!r}: invalid schema: {exc}") from exc
        self._writer: Writer | None = None
        self._writer_class = fastavro.write.Writer
        """fastavro's writer class, kept here since fastavro is not a module-level import."""
        self._header = b""
        """The header of the output being written (every segment starts with it)."""
        self._published_header: bytes | None = None
        """The header of the output a restore found at ``path``, to continue it."""

    def _started(self) -> None:
        if self._published_header is not None and self._checkpointing:
            self._continue(self._published_header)
            return
        file = self._writable()
        try:
            self._writer = self._writer_class(file, self._parsed, codec=self.codec, validator=self.validate)
            self._writer.flush()
        except ValueError as exc:
            raise SinkError(f"Avro sink {self.path!r}: {exc}") from exc
        self._length = file.tell()
        file.seek(0)
        self._header = file.read(self._length)
        self._skip = self._length

    def _rotated(self) -> None:
        self._continue(self._header)

    def _continue(self, header: bytes) -> None:
        """Start the pending file with ``header`` and append blocks after it.

        fastavro's writer reads the header of a non-empty readable file and writes
        blocks with its schema, codec and sync marker, so the bytes after the header
        can be appended to the published file.
        """
        file = self._writable()
        try:
            file.write(header)
            file.flush()
            self._writer = self._writer_class(file, self._parsed, codec=self.codec, validator=self.validate)
        except Exception as exc:
            raise SinkError(f"Avro sink {self.path!r}: cannot continue the output: {exc}") from exc
        self._header = header
        self._skip = self._length = file.tell()

    def _sealing(self) -> None:
        # Batches are flushed as whole blocks already; this keeps segments at block ends.
        file = self._writable()
        assert self._writer is not None
        self._writer.flush()
        self._length = file.tell()

    def _restored(self, state: Mapping[str, Any] | None, published: int) -> None:
        self._published_header = _read_header(self.path) if published > 0 else None

    def write_batch(self, records: list[Any]) -> None:
        """Encode the batch into blocks and write them; a failing batch leaves no trace."""
        file = self._writable()
        writer = self._writer
        assert writer is not None
        written, record = 0, None
        try:
            for record in records:
                writer.write(record if type(record) is dict else _as_record(record))
                written += 1
            writer.flush()
        except Exception as exc:
            self._rollback(file)
            if not self._broken:
                # A fresh writer over the cut file reads the header back and drops the
                # half-encoded block the failed one still holds.
                self._writer = self._writer_class(file, self._parsed, validator=self.validate)
            raise SinkError(
                f"Avro sink {self.path!r}: cannot write record {written} of the batch "
                f"(type {type(record).__name__}): {exc}; make the records match the schema"
            ) from exc
        self._length = file.tell()


def _as_record(record: Any) -> Any:
    mapping = as_mapping(record)
    return dict(mapping) if mapping is not None else record


_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16


def _read_header(path: str) -> bytes:
    """The header of the Avro container file at ``path``: magic, metadata, sync marker."""
    try:
        with open(path, "rb") as file:
            if file.read(len(_MAGIC)) != _MAGIC:
                raise SinkError(f"Avro sink: {path!r} is not an Avro container file")
            while (count := _read_long(file)) != 0:  # metadata map blocks
                if count < 0:
                    count = -count
                    _read_long(file)  # the block's size in bytes
                for _ in range(2 * count):  # key and value, both length-prefixed
                    _read_exactly(file, _read_long(file))
            _read_exactly(file, _SYNC_SIZE)
            length = file.tell()
            file.seek(0)
            return file.read(length)
    except OSError as exc:
        raise SinkError(f"Avro sink: cannot read the header of {path!r}: {exc}") from exc


def _read_long(file: Any) -> int:
    """One zig-zag varint, as Avro encodes ``long``."""
    shift = result = 0
    while True:
        byte = _read_exactly(file, 1)[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise SinkError("Avro sink: malformed header (varint too long)")


def _read_exactly(file: Any, count: int) -> bytes:
    data = file.read(count)
    if count < 0 or len(data) != count:
        raise SinkError("Avro sink: truncated or malformed header in the published file")
    return data
