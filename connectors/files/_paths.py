"""Which files a file source reads, in which order, and where a saved position resumes.

A source names one path or a glob. A glob is expanded once, at ``open``, into regular
files in sorted (string) order; that order is the stream's order. Invariants:
1. A glob that matches nothing, or a single path that does not exist, is a
   ``SourceError`` at ``open`` naming the pattern.
2. A position names its file by path, never by index, so a glob that gains or loses
   files between runs still resumes in the right file: every file sorting before the
   saved path was read completely, the saved file resumes at the saved place, and
   files sorting after it are read from their start.
3. Only one file is open at a time.
Design: docs/connectors-files.md#positions
"""

from __future__ import annotations

import bisect
import glob
import logging
import os
from collections.abc import Mapping
from typing import IO, Any

from streamcore.errors import SourceError

__all__ = ["FileCursor", "expand", "has_magic", "read_error"]

log = logging.getLogger("connectors.files")

_MAGIC = frozenset("*?[")


def has_magic(pattern: str) -> bool:
    """True when ``pattern`` contains glob wildcards."""
    return not _MAGIC.isdisjoint(pattern)


def expand(pattern: str) -> list[str]:
    """The files ``pattern`` names, in reading order; raises ``SourceError`` if none."""
    if not has_magic(pattern):
        if not os.path.isfile(pattern):
            raise SourceError(f"no such file: {pattern!r}; check the path given to the source")
        return [pattern]
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not paths:
        raise SourceError(
            f"glob {pattern!r} matches no files; check the pattern and the working directory"
        )
    return paths


class FileCursor:
    """The list of files of one source and the binary file currently open.

    The format modules own what a place *inside* a file means (byte offset, record
    count); the cursor owns the file list and moving from one file to the next.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.paths: list[str] = []
        self.index = 0
        self.file: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<FileCursor {self.pattern!r} file={self.index}/{len(self.paths)}>"

    @property
    def path(self) -> str:
        """The path of the current file (the last one once every file is read)."""
        return self.paths[min(self.index, len(self.paths) - 1)]

    def start(self, position: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Expand the pattern and open the file to read first.

        Returns ``position`` when reading resumes inside the file it names (the caller
        then moves to the place inside it), or None when the opened file is read from
        its start.
        """
        self.paths = expand(self.pattern)
        if position is None:
            self.index = 0
            self._open_current()
            return None
        try:
            saved = str(position["file"])
        except (KeyError, TypeError) as exc:
            raise SourceError(
                f"source for {self.pattern!r} cannot resume from position {position!r}: "
                "expected a mapping with a 'file' key, as returned by position()"
            ) from exc
        self.index = bisect.bisect_left(self.paths, saved)
        inside = self.index < len(self.paths) and self.paths[self.index] == saved
        if not inside:
            log.warning(
                "resume file gone pattern=%r file=%r next=%r",
                self.pattern,
                saved,
                self.paths[self.index] if self.index < len(self.paths) else None,
            )
        self._open_current()
        return position if inside else None

    def advance(self) -> bool:
        """Close the current file and open the next; False when none is left."""
        self.close()
        self.index += 1
        return self._open_current()

    def close(self) -> None:
        """Close the current file, if one is open."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def _open_current(self) -> bool:
        if self.index >= len(self.paths):
            return False
        path = self.paths[self.index]
        try:
            self.file = open(path, "rb")  # noqa: SIM115 - held open across batches
        except OSError as exc:
            raise SourceError(
                f"cannot open {path!r} (from {self.pattern!r}): {exc.strerror}"
            ) from exc
        return True


def read_error(path: str, exc: OSError) -> SourceError:
    """The error for an I/O failure while reading ``path``."""
    err = SourceError(f"cannot read {path!r}: {exc.strerror or exc}")
    err.__cause__ = exc
    return err
