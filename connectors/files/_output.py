"""The common part of file sinks: write under ``<path>.pending``, publish atomically.

Invariants:
1. Nothing appears at ``path`` until it is published. Without checkpointing the whole
   output appears at once by ``close()`` at the end of the stream (``fsync`` then
   ``os.replace``), so a reader never sees a torn file; under checkpointing ``path``
   grows by appends, whose last record may be incomplete while one is in progress (or
   after a crash interrupted it, until ``restore`` completes it).
2. ``committed_length()`` is the size of the pending file holding every batch whose
   ``write_batch`` returned, and nothing else: a batch that fails leaves the file at
   that length.
3. Under checkpointing (``context.checkpointing``) ``pre_commit(n)`` seals the pending
   file as segment ``<path>.<n>-<token>.segment`` (``token`` is random per run) and
   starts a new pending file; ``commit`` appends sealed segments to ``path`` in order
   (the first publish of an output moves its segment into place), so ``path`` only
   ever holds committed output. ``close()`` publishes nothing.
4. A checkpoint's state (see ``_Plan``) names the published length ``base`` it builds
   on and every segment sealed since, with its length. The length of ``path`` after
   each segment is therefore known, which makes ``commit`` and ``restore`` idempotent
   and lets them cut off a torn append or output of later checkpoints.
Design: docs/connectors-files.md#sinks, docs/connectors-files.md#checkpoint-hooks
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import IO, Any

from streamcore.errors import SinkError
from streamcore.io import Sink, SinkContext

__all__ = ["FileSink", "as_mapping", "pending_path"]

_STATE_VERSION = 1
_COPY_CHUNK = 1 << 20


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


@dataclasses.dataclass(frozen=True)
class _Segment:
    """A sealed pending file, in the directory of ``path``."""

    name: str
    checkpoint: int
    length: int
    """Size of the segment file."""
    skip: int
    """Leading bytes (a copy of the format's header) left out when appending."""

    def as_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "length": self.length,
            "skip": self.skip,
        }


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one checkpoint publishes: ``segments`` appended, in order, after ``base``
    bytes already committed at ``path``. With ``base == 0`` nothing of this output was
    published when the segments were sealed, and the first segment replaces ``path``
    whole (header included) instead of being appended."""

    base: int
    segments: tuple[_Segment, ...]

    def spans(self) -> list[tuple[_Segment, int, int]]:
        """``(segment, start, end)``: where each segment's bytes lie in ``path``."""
        out, end = [], self.base
        for index, segment in enumerate(self.segments):
            start = end
            whole = self.base == 0 and index == 0
            end += segment.length if whole else segment.length - segment.skip
            out.append((segment, start, end))
        return out

    @property
    def length(self) -> int:
        """Size of ``path`` once every segment is published."""
        spans = self.spans()
        return spans[-1][2] if spans else self.base


class FileSink(Sink):
    """A sink that owns one output file, written under ``<path>.pending``."""

    supports_checkpoints = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.pending_path = pending_path(self.path)
        self._file: IO[bytes] | None = None
        self._length = 0
        self._broken = False
        # Checkpointing (see the module docstring).
        self._skip = 0
        """Leading bytes of the pending file that only repeat the format's header."""
        self._token = os.urandom(6).hex()  # as secrets.token_hex, without importing hmac and hashlib
        self._base = 0
        """Bytes at ``path`` known to be committed."""
        self._unpublished: list[_Segment] = []
        """Segments sealed and not known to be published, in order."""
        self._sealed_any = False
        """Whether this output has a sealed or published segment (its start)."""
        self._last_sealed: int | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} committed_length={self._length}>"

    @property
    def _checkpointing(self) -> bool:
        context = getattr(self, "context", None)
        return bool(getattr(context, "checkpointing", False))

    async def open(self, context: SinkContext) -> None:
        """Start a fresh pending file (an earlier run's leftover is overwritten)."""
        await super().open(context)
        if self._file is not None:
            self._file.close()
        self._token = os.urandom(6).hex()  # as secrets.token_hex, without importing hmac and hashlib
        self._last_sealed = None
        self._create_pending()
        self._started()

    def committed_length(self) -> int:
        """Bytes of output holding every completed batch (what a checkpoint would keep)."""
        return self._length

    async def close(self) -> None:
        """Flush, fsync and atomically move the pending file to ``path``.

        Under checkpointing only the handle is closed and the pending file (never
        part of a checkpoint) removed: output is published by ``commit`` alone.
        """
        file = self._file
        if file is None:
            return
        if self._checkpointing:
            self._file = None
            file.close()
            _remove(self.pending_path)
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
        _fsync_directory(self._directory())

    # -- checkpoint hooks ----------------------------------------------------------

    async def restore(self, state: Any | None) -> None:
        """Make ``path`` hold exactly what the checkpoint of ``state`` committed.

        Finishes that checkpoint's publish if a crash interrupted it, cuts off what
        later checkpoints appended, and deletes every segment and pending file. With
        ``state=None`` (a fresh start) only the leftovers are deleted; a file at ``path``
        from an earlier run stays until the first commit replaces it. Idempotent.
        """
        if self._file is not None:
            self._file.close()
            self._file = None
        if state is None:
            self._discard_leftovers()
            published = 0
            self._sealed_any = False
        else:
            plan = self._plan(state)
            published = self._publish(plan)
            self._truncate_published(published)
            self._discard_leftovers()
            self._sealed_any = published > 0 or bool(plan.segments)
        self._base = published
        self._unpublished = []
        self._restored(state, published)

    def pre_commit(self, checkpoint_id: int) -> dict[str, Any]:
        """Seal the batches written since the last call as the segment of
        ``checkpoint_id`` (flushed, fsynced, renamed) and start a new pending file.

        Returns ``{"version", "base", "segments": [{"name", "checkpoint", "length",
        "skip"}, ...]}`` (plus format fields): every segment not yet known to be
        published, so that committing this checkpoint also publishes those of
        abandoned earlier ones. Nothing is sealed when nothing was written since the
        last segment.
        """
        if self._file is not None:
            self._sealing()
            if self._length > self._skip or not self._sealed_any:
                self._seal(checkpoint_id)
        return self._state()

    def commit(self, checkpoint_id: int, state: Any) -> None:
        """Publish the segments of ``state`` not yet at ``path``, in order, then delete
        them. Idempotent; works after ``close()``; never shortens ``path``."""
        plan = self._plan(state)
        self._publish(plan)
        names = {segment.name for segment in plan.segments}
        if plan.length >= self._base:
            self._base = plan.length
            self._unpublished = [s for s in self._unpublished if s.name not in names]

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "base": self._base,
            "segments": [segment.as_state() for segment in self._unpublished],
        }
        state.update(self._state_extra())
        return state

    def _plan(self, state: Any) -> _Plan:
        try:
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"unknown version {state.get('version')!r}")
            base = int(state["base"])
            segments = tuple(
                _Segment(str(s["name"]), int(s["checkpoint"]), int(s["length"]), int(s["skip"]))
                for s in state["segments"]
            )
            if base < 0 or any(
                s.length < 0 or not 0 <= s.skip <= s.length or os.sep in s.name for s in segments
            ):
                raise ValueError("negative length or bad name")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SinkError(
                f"sink {self.path!r}: checkpoint state {state!r} is not one this sink "
                f"returned from pre_commit: {exc}"
            ) from exc
        return _Plan(base, segments)

    def _seal(self, checkpoint_id: int) -> None:
        """Make the pending file the segment of ``checkpoint_id``; start a new one."""
        file = self._writable()
        if checkpoint_id == self._last_sealed:
            raise SinkError(f"sink {self.path!r}: checkpoint {checkpoint_id} is already sealed")
        name = f"{os.path.basename(self.path)}.{checkpoint_id}-{self._token}.segment"
        segment = _Segment(name, checkpoint_id, self._length, self._skip)
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise SinkError(f"sink {self.path!r}: cannot flush the output: {exc}") from exc
        self._file = None
        file.close()
        try:
            os.rename(self.pending_path, self._in_directory(name))
        except OSError as exc:
            raise SinkError(
                f"sink {self.path!r}: cannot seal {self.pending_path!r} as {name!r}: {exc.strerror}"
            ) from exc
        _fsync_directory(self._directory())
        self._unpublished.append(segment)
        self._sealed_any = True
        self._last_sealed = checkpoint_id
        self._create_pending()
        self._rotated()

    def _publish(self, plan: _Plan) -> int:
        """Bring ``path`` up to ``plan.length``: publish what is missing, in order.

        A segment whose end ``path`` already reaches was published (and may be gone);
        a ``path`` ending inside a segment holds a torn append, cut off and redone.
        """
        spans = plan.spans()
        if not spans:
            return plan.base
        directory = self._directory()
        if plan.base == 0:
            first = spans[0][0]
            source = self._in_directory(first.name)
            if os.path.exists(source):
                # Nothing of this output is published yet: whatever is at path (an
                # earlier run's file) is replaced.
                self._check_size(source, first)
                try:
                    os.replace(source, self.path)
                except OSError as exc:
                    raise self._publish_error(first, exc) from exc
                _fsync_directory(directory)
        try:
            with open(self.path, "r+b") as out:
                size = os.fstat(out.fileno()).st_size
                # With base 0 the first segment is at path already: moved there above
                # or by an earlier commit (a segment exists until it is published).
                floor = spans[0][2] if plan.base == 0 else plan.base
                if size < floor:
                    raise SinkError(
                        f"sink {self.path!r}: holds {size} bytes but {floor} were "
                        "committed; was it modified or replaced outside the sink?"
                    )
                for segment, start, end in spans[1:] if plan.base == 0 else spans:
                    if size >= end:
                        continue
                    if size != start:
                        out.truncate(start)  # a torn append
                    out.seek(start)
                    self._append_segment(out, segment)
                    size = end
                out.flush()
                os.fsync(out.fileno())
        except FileNotFoundError as exc:
            raise SinkError(
                f"sink {self.path!r}: the published file is missing though checkpointed "
                "output was published to it; was it deleted outside the sink?"
            ) from exc
        except OSError as exc:
            raise SinkError(f"sink {self.path!r}: cannot publish: {exc}") from exc
        for segment, _, _ in spans:
            _remove(self._in_directory(segment.name))
        _fsync_directory(directory)
        return plan.length

    def _append_segment(self, out: IO[bytes], segment: _Segment) -> None:
        source = self._in_directory(segment.name)
        try:
            with open(source, "rb") as data:
                self._check_size(source, segment)
                data.seek(segment.skip)
                _copy(data, out, segment.length - segment.skip)
        except FileNotFoundError as exc:
            raise SinkError(
                f"sink {self.path!r}: cannot publish segment {segment.name!r} of checkpoint "
                f"{segment.checkpoint}: it is gone and {self.path!r} does not hold it yet"
            ) from exc

    def _check_size(self, source: str, segment: _Segment) -> None:
        size = os.stat(source).st_size
        if size != segment.length:
            raise SinkError(
                f"sink {self.path!r}: segment {segment.name!r} holds {size} bytes, "
                f"{segment.length} were sealed; refusing to publish it"
            )

    def _publish_error(self, segment: _Segment, exc: OSError) -> SinkError:
        return SinkError(
            f"sink {self.path!r}: cannot publish segment {segment.name!r}: {exc.strerror or exc}"
        )

    def _truncate_published(self, length: int) -> None:
        """Cut ``path`` back to ``length`` (output of checkpoints after the restored one)."""
        try:
            with open(self.path, "r+b") as out:
                if os.fstat(out.fileno()).st_size > length:
                    out.truncate(length)
                    out.flush()
                    os.fsync(out.fileno())
        except FileNotFoundError:
            if length:
                raise SinkError(
                    f"sink {self.path!r}: the published file is missing; cannot restore "
                    f"the {length} bytes the checkpoint committed"
                ) from None
        except OSError as exc:
            raise SinkError(f"sink {self.path!r}: cannot truncate: {exc}") from exc

    def _discard_leftovers(self) -> None:
        """Delete this sink's pending file and every segment (none is needed any more)."""
        directory = self._directory()
        segment_name = re.compile(
            re.escape(os.path.basename(self.path)) + r"\.\d+-[0-9a-f]+\.segment"
        )
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SinkError(f"sink {self.path!r}: cannot list {directory!r}: {exc}") from exc
        for name in names:
            if segment_name.fullmatch(name):
                _remove(os.path.join(directory, name))
        _remove(self.pending_path)
        _fsync_directory(directory)

    def _directory(self) -> str:
        return os.path.dirname(self.path) or "."

    def _in_directory(self, name: str) -> str:
        return os.path.join(os.path.dirname(self.path), name)

    # -- the pending file ----------------------------------------------------------

    def _create_pending(self) -> None:
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
        self._skip = 0
        self._broken = False

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

    # -- format hooks --------------------------------------------------------------

    def _started(self) -> None:
        """Hook: ``open`` just created the pending file (continuing the output when a
        ``restore`` found published output)."""

    def _rotated(self) -> None:
        """Hook: a new pending file follows a sealed segment of the same output."""

    def _finishing(self) -> None:
        """Hook: the stream ended; write whatever the format still buffers."""

    def _sealing(self) -> None:
        """Hook: ``pre_commit`` is about to seal the pending file."""
        self._finishing()

    def _state_extra(self) -> dict[str, Any]:
        """Hook: format fields added to the checkpoint state."""
        return {}

    def _restored(self, state: Mapping[str, Any] | None, published: int) -> None:
        """Hook: ``restore`` left ``published`` bytes of the output of ``state`` at path."""


def _copy(source: IO[bytes], target: IO[bytes], count: int) -> None:
    """Copy exactly ``count`` bytes from ``source`` to ``target``."""
    while count > 0:
        chunk = source.read(min(count, _COPY_CHUNK))
        if not chunk:
            raise OSError(f"segment ended {count} bytes early")
        target.write(chunk)
        count -= len(chunk)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SinkError(f"cannot delete {path!r}: {exc.strerror or exc}") from exc


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
