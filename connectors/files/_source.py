"""What the file sources share: a glob of files read in order, a position, a rewind.

A ``FileSource`` owns a ``FileCursor`` (the sorted paths and the open file) and does the
parts every file format does the same way: ``open`` expands the glob and enters the
file of the position it is given; ``position()`` is ``{"file": path, **place}``, None
before ``open``; ``close`` closes the file. A format writes how to enter a file (read
its header, go to a place in it), what its place in the current file is, and how to
read a batch. Rewinding is ``open`` again with a position ``position()`` returned.
Design: docs/connectors-files.md#sources
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from connectors.files._paths import FileCursor
from streamcore.errors import SourceError
from streamcore.io import Source, SourceContext

__all__ = ["FileSource", "check_line_encoding", "resume_integers"]


class FileSource(Source):
    """A source reading every file a path or glob matches, in sorted order."""

    rewindable: ClassVar[bool] = True

    def __init__(self, path_or_glob: str | os.PathLike[str]) -> None:
        self.pattern = os.fspath(path_or_glob)
        self._cursor = FileCursor(self.pattern)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.pattern!r} {self.position()!r}>"

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Expand the glob and enter the file of ``position`` (a value ``position()`` returned)."""
        await super().open(context, position)
        resume = self._cursor.start(position)
        self._enter_file(resume)

    def position(self) -> dict[str, Any] | None:
        """``{"file": path, ...}`` with the place in that file; None before open."""
        if not self._cursor.paths:
            return None
        return {"file": self._cursor.path, **self._place()}

    async def close(self) -> None:
        """Close the open file."""
        self._cursor.close()
        self._forget_file()

    def _enter_file(self, resume: Mapping[str, Any] | None) -> None:
        """Start reading the cursor's open file (None: past the last), at ``resume`` if given."""
        raise NotImplementedError

    def _place(self) -> dict[str, Any]:
        """Where in the current file reading stands, as ``position()`` stores it."""
        raise NotImplementedError

    def _forget_file(self) -> None:
        """Drop what was read ahead of the closed file."""


def check_line_encoding(kind: str, pattern: str, encoding: str) -> None:
    """A ``SourceError`` unless ``encoding`` writes a newline as the single byte 0x0A."""
    if codecs.lookup(encoding).encode("\n")[0] != b"\n":
        raise SourceError(
            f"{kind} {pattern!r}: encoding {encoding!r} is not supported because it does not "
            "write a newline as the byte 0x0A; use UTF-8 or another ASCII-compatible encoding"
        )


def resume_integers(position: Mapping[str, Any], path: str, names: tuple[str, ...], what: str) -> list[int]:
    """The non-negative integers ``names`` of ``position``, or a ``SourceError`` saying why not.

    ``what`` names a negative value in the message ("place", "count").
    """
    try:
        values = [int(position[name]) for name in names]
    except (KeyError, TypeError, ValueError) as exc:
        quoted = " and ".join(repr(name) for name in names)
        expected = f"{quoted} integers" if len(names) > 1 else f"a {quoted} integer"
        raise SourceError(
            f"cannot resume {path!r} from position {position!r}: expected {expected}, "
            "as returned by position()"
        ) from exc
    if any(value < 0 for value in values):
        raise SourceError(f"cannot resume {path!r} from position {position!r}: negative {what}")
    return values
