"""The common part of file sinks: write under ``<path>.pending``, publish atomically.

Invariants:
1. Nothing appears at ``path`` until ``close()`` at the end of the stream; then the
   whole output appears at once (``fsync`` then ``os.replace``), so a reader never
   sees a torn file.
2. ``committed_length()`` is the size of the pending file holding every batch whose
   ``write_batch`` returned, and nothing else: a batch that fails leaves the file at
   that length. The checkpoint hooks (docs) will record and truncate to this length.
Design: docs/connectors-files.md#sinks
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import IO, Any

from streamcore.errors import SinkError
from streamcore.io import Sink, SinkContext

__all__ = ["FileSink", "as_mapping", "pending_path"]


def pending_path(path: str) -> str:
    """Where a sink writing ``path`` keeps its output until it is published."""
    return path + ".pending"


def as_mapping(record: Any) -> Mapping[str, Any] | None:
    """``record`` as a field-name mapping (dict, dataclass, namedtuple), else None."""
    if isinstance(record, Mapping):
        return record
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if isinstance(record, tuple) and hasattr(record, "_asdict"):
        return record._asdict()
    return None


class FileSink(Sink):
    """A sink that owns one output file, written under ``<path>.pending``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.pending_path = pending_path(self.path)
        self._file: IO[bytes] | None = None
        self._length = 0
        self._broken = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} committed_length={self._length}>"

    async def open(self, context: SinkContext) -> None:
        """Start a fresh pending file (an earlier run's leftover is overwritten)."""
        await super().open(context)
        if self._file is not None:
            self._file.close()
        try:
            # A missing output directory is created, as users of file sinks expect.
            parent = os.path.dirname(self.pending_path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            # w+b: readable as well, which the Avro writer needs to reopen for append.
            self._file = open(self.pending_path, "w+b")  # noqa: SIM115 - held across batches
        except OSError as exc:
            raise SinkError(
                f"sink {self.path!r}: cannot create {self.pending_path!r}: {exc.strerror}; "
                "check that the directory exists and is writable"
            ) from exc
        self._length = 0
        self._broken = False
        self._started()

    def committed_length(self) -> int:
        """Bytes of output holding every completed batch (what a checkpoint would keep)."""
        return self._length

    async def close(self) -> None:
        """Flush, fsync and atomically move the pending file to ``path``."""
        file = self._file
        if file is None:
            return
        if self._broken:
            # Its content is unknown; leave it as .pending for inspection, never publish it.
            self._file = None
            file.close()
            return
        try:
            self._finishing()
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise SinkError(f"sink {self.path!r}: cannot flush the output: {exc}") from exc
        finally:
            self._file = None
            file.close()
        try:
            os.replace(self.pending_path, self.path)
        except OSError as exc:
            raise SinkError(
                f"sink {self.path!r}: cannot move {self.pending_path!r} into place: {exc.strerror}"
            ) from exc
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def _append(self, data: bytes) -> None:
        """Write one complete batch and count it as committed."""
        file = self._writable()
        try:
            file.write(data)
        except OSError as exc:
            self._rollback(file)
            raise SinkError(f"sink {self.path!r}: cannot write: {exc.strerror or exc}") from exc
        self._length += len(data)

    def _writable(self) -> IO[bytes]:
        if self._file is None:
            raise SinkError(f"sink {self.path!r} is not open; write_batch needs open() first")
        if self._broken:
            raise SinkError(
                f"sink {self.path!r} cannot write: an earlier failed batch could not be undone"
            )
        return self._file

    def _rollback(self, file: IO[bytes]) -> None:
        """Cut the pending file back to the last complete batch (or mark it broken)."""
        try:
            file.truncate(self._length)
            file.seek(self._length)
        except OSError:
            self._broken = True

    def _started(self) -> None:
        """Hook: the pending file was just created."""

    def _finishing(self) -> None:
        """Hook: the stream ended; write whatever the format still buffers."""


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; some filesystems refuse, which only weakens
    # durability after a power loss, not atomicity.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
