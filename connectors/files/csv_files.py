"""CSV with a header row: records are dicts of str, optionally converted per field.

The file is read in binary and cut into lines here, so the byte offset after every row
is known exactly; the stdlib ``csv`` reader parses those lines and pulls another one
whenever a quoted field runs over a newline. Invariants:
1. The first row of every file is its header; the header fixes the field names and
   the number of fields every later row must have.
2. ``csv.reader`` never reads ahead of the row it returns, so the line feed's byte
   offset and line count after a row are the place just after that row.
3. ``position()`` is ``{"file": path, "offset": bytes, "line": n}`` like JSON lines;
   resuming reads the header again from the start of the file, then seeks.
4. The encoding must be ASCII-compatible (lines are cut at the byte ``\\n``).
Design: docs/connectors-files.md#csv
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, ClassVar

from connectors.files._output import FileSink, as_mapping
from connectors.files._paths import read_error
from connectors.files._source import FileSource, check_line_encoding, resume_integers
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext

__all__ = ["CsvSink", "CsvSource"]

_BOM = codecs.BOM_UTF8


class _LineFeed:
    """Decoded lines of a binary file for ``csv.reader``, counting bytes and lines.

    A class rather than a generator: a decoding error must not end the iteration.
    """

    __slots__ = ("encoding", "file", "last", "line", "offset")

    def __init__(self, file: IO[bytes], encoding: str, offset: int, line: int) -> None:
        self.file = file
        self.encoding = encoding
        self.offset = offset
        self.line = line
        self.last: bytes = b""
        """The last raw line handed out: what a dead letter shows for a broken row."""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        self.last = raw
        return raw.decode(self.encoding)


class CsvSource(FileSource):
    """Reads CSV files with a header row; one path or a glob, files in sorted order."""

    default_name: ClassVar[str] = "csv"

    def __init__(
        self,
        path_or_glob: str | os.PathLike[str],
        *,
        delimiter: str = ",",
        types: Mapping[str, Callable[[str], Any]] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(path_or_glob)
        self.delimiter = delimiter
        self.types = dict(types or {})
        self.encoding = encoding
        check_line_encoding("CSV source", self.pattern, encoding)
        self._utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
        self._feed: _LineFeed | None = None
        self._reader: Iterator[list[str]] | None = None
        self._header: list[str] = []

    def _place(self) -> dict[str, Any]:
        """``{"offset": byte offset, "line": lines consumed}`` in the current file."""
        feed = self._feed
        offset, line = (feed.offset, feed.line) if feed is not None else (0, 0)
        return {"offset": offset, "line": line}

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` rows as dicts (across files if need be); None at the end."""
        records: list[dict[str, Any]] = []
        cursor, bad_record = self._cursor, self._bad_record
        while len(records) < max_records:
            feed, reader = self._feed, self._reader
            if feed is None or reader is None:
                break
            first_line = feed.line + 1
            try:
                row = next(reader)
            except StopIteration:
                if not cursor.advance():
                    self._reader = None  # keep the feed: position() stays at the end
                    break
                self._enter_file(None)
                continue
            except (csv.Error, UnicodeDecodeError) as exc:
                bad_record(feed.last.rstrip(b"\r\n"), exc, first_line)
                continue
            except OSError as exc:
                raise read_error(cursor.path, exc) from exc
            if not row:
                continue  # a blank line
            if len(row) != len(self._header):
                bad_record(
                    row,
                    ValueError(f"{len(row)} fields where the header has {len(self._header)}"),
                    first_line,
                )
                continue
            record: dict[str, Any] = dict(zip(self._header, row, strict=True))
            if self.types and not self._convert(record, first_line):
                continue
            records.append(record)
        if not records and self._reader is None:
            return None
        return records

    def _forget_file(self) -> None:
        self._reader = None

    def _convert(self, record: dict[str, Any], line: int) -> bool:
        for name, convert in self.types.items():
            try:
                record[name] = convert(record[name])
            except (ValueError, TypeError, ArithmeticError) as exc:
                error = ValueError(f"field {name!r} value {record[name]!r}: {exc}")
                self._bad_record(record, error, line)
                return False
        return True

    def _bad_record(self, raw: object, error: BaseException, line: int) -> None:
        self.context.bad_record(raw, error, f"file {self._cursor.path} line {line}")

    def _enter_file(self, resume: Mapping[str, Any] | None) -> None:
        """Read the header of the newly opened file, then go to ``resume`` if given."""
        file = self._cursor.file
        if file is None:
            self._feed = self._reader = None
            return
        path = self._cursor.path
        try:
            start = len(_BOM) if self._utf8 and file.read(len(_BOM)) == _BOM else 0
            file.seek(start)
            feed = _LineFeed(file, self.encoding, start, 0)
            reader = csv.reader(feed, delimiter=self.delimiter)
            header = next(reader, None)
            while header == []:  # blank lines before the header
                header = next(reader, None)
            if resume is not None:
                feed.offset, feed.line = resume_integers(resume, path, ("offset", "line"), "place")
                file.seek(feed.offset)
                reader = csv.reader(feed, delimiter=self.delimiter)
        except OSError as exc:
            raise read_error(path, exc) from exc
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"CSV file {path!r}: cannot read the header row: {exc}") from exc
        self._header = header or []
        missing = [name for name in self.types if name not in self._header] if header else []
        if missing:
            raise SourceError(
                f"CSV file {path!r}: types= names {missing} but the header has "
                f"{self._header}; fix the field names in types="
            )
        self._feed, self._reader = feed, reader


class CsvSink(FileSink):
    """Writes records (dicts, dataclasses, namedtuples) as CSV rows under one header row.

    ``fieldnames`` default to the keys of the first record. A record with a field not in
    ``fieldnames`` is a ``SinkError``; a missing field is written empty, as is None.
    """

    default_name: ClassVar[str] = "csv"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fieldnames: list[str] | None = None,
        delimiter: str = ",",
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(path)
        self.fieldnames = list(fieldnames) if fieldnames is not None else None
        self.delimiter = delimiter
        self.encoding = encoding
        self._text = io.StringIO()
        self._writer: csv.DictWriter[str] | None = None
        self._given_fieldnames = self.fieldnames
        self._header_published = False
        """A restore found the header (and rows) at ``path``: continue without one."""

    async def open(self, context: SinkContext) -> None:
        """Create the pending file; the header is written with the first batch."""
        self._writer = None
        await super().open(context)

    def _started(self) -> None:
        if self._header_published and self._checkpointing:
            assert self.fieldnames is not None
            self._writer = self._dict_writer(self.fieldnames)

    def _state_extra(self) -> dict[str, Any]:
        return {"fieldnames": self.fieldnames}

    def _restored(self, state: Mapping[str, Any] | None, published: int) -> None:
        given = self._given_fieldnames
        self._header_published = published > 0
        if not self._header_published:
            self.fieldnames = list(given) if given is not None else None
            return
        assert state is not None
        stored = state.get("fieldnames")
        if stored is not None and not (
            isinstance(stored, list) and all(isinstance(name, str) for name in stored)
        ):
            raise SinkError(f"CSV sink {self.path!r}: bad fieldnames {stored!r} in the state")
        if stored is not None and given is not None and stored != given:
            raise SinkError(
                f"CSV sink {self.path!r}: the restored output has the columns {stored} but "
                f"fieldnames are {given}; keep the fieldnames of the checkpointed run"
            )
        names = stored if stored is not None else given
        if names is None:
            raise SinkError(
                f"CSV sink {self.path!r}: the checkpoint state names no fieldnames for the "
                "published output; pass fieldnames="
            )
        self.fieldnames = list(names)

    def write_batch(self, records: list[Any]) -> None:
        """Format the whole batch, then write it with one call (all or nothing)."""
        if not records and (self._writer is not None or self.fieldnames is None):
            return
        rows = [r if type(r) is dict else self._row(i, r) for i, r in enumerate(records)]
        text = self._text
        text.seek(0)
        text.truncate()
        writer = self._writer
        if writer is None:
            if self.fieldnames is None:
                self.fieldnames = list(rows[0])
            writer = self._dict_writer(self.fieldnames)
            writer.writeheader()
        try:
            writer.writerows(rows)
        except ValueError as exc:
            raise self._unwritable(rows, exc) from exc
        data = text.getvalue().encode(self.encoding)
        self._append(data)
        self._writer = writer

    def _dict_writer(self, fieldnames: list[str]) -> csv.DictWriter[str]:
        return csv.DictWriter(self._text, fieldnames, delimiter=self.delimiter, lineterminator="\n")

    def _finishing(self) -> None:
        if self._writer is None and self.fieldnames is not None:
            # An empty stream with known fields still gets its header row.
            self.write_batch([])

    def _row(self, index: int, record: Any) -> Mapping[str, Any]:
        row = as_mapping(record)
        if row is None:
            raise SinkError(
                f"CSV sink {self.path!r}: record {index} of the batch has type "
                f"{type(record).__name__}; write dicts, dataclasses or namedtuples"
            )
        return row

    def _unwritable(self, rows: list[Mapping[str, Any]], exc: ValueError) -> SinkError:
        names = set(self.fieldnames or ())
        for index, row in enumerate(rows):
            extra = [key for key in row if key not in names]
            if extra:
                return SinkError(
                    f"CSV sink {self.path!r}: record {index} of the batch has fields {extra} "
                    f"that are not in fieldnames {self.fieldnames}; pass fieldnames= or "
                    "drop them in a map() before the sink"
                )
        return SinkError(f"CSV sink {self.path!r}: cannot write the batch: {exc}")
