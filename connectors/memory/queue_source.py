"""``QueueSource``: records pushed in by the program that runs the flow.

An asyncio application feeds a running flow with ``await src.put(record)`` (waits while
the queue is full: the flow's backpressure reaches the producer) or ``put_nowait``
(raises ``asyncio.QueueFull``), and ends the stream with ``src.close()``: the flow reads
what was put before, then sees the end of its input.

Invariants:
1. Records are read in the order they were put; none is dropped. The queue holds at
   most ``maxsize`` records.
2. ``position()`` is the number of records the flow has taken from the queue (counting
   from the first record ever put, across restarts of the source).
3. When the flow stops reading normally (its stream ended, or it was asked to stop), a
   ``put`` that waits or would wait raises ``QueueClosedError``: nothing would make room.
   After a failure or a cancel it goes on waiting, since a restart policy may run the
   flow again, which reads on; a program ties its producer to the run (one
   ``asyncio.TaskGroup`` with ``flow.run()``, or cancelling it when the run ends).
4. The source can be checkpointed only if the program says how to read records again:
   ``rewind=`` (a callable taking a position and returning the records from there on,
   e.g. read back from the program's own log; restarted within one process, only the
   records taken from the queue since that position are read from it, since the queue
   still holds the rest) or ``replay=True`` (the source keeps the
   records read since the last complete checkpoint in memory, which serves restarts
   within one process only). Without either, running it under checkpointing is refused
   before the flow starts.
Design: docs/connectors-memory.md#queuesource-and-queuesink
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from itertools import islice
from time import monotonic
from typing import Any

from streamcore.errors import ConfigurationError, SourceError
from streamcore.io import Source, SourceContext

__all__ = ["QueueClosedError", "QueueSource"]

Rewind = Callable[[int], Iterable[Any] | AsyncIterable[Any]]


class QueueClosedError(SourceError):
    """``put`` on a ``QueueSource`` that was closed, or whose flow has stopped reading."""


class _Done(Awaitable[None]):
    """An awaitable that is already finished, so ``close()`` works with or without ``await``."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that finishes at once


class QueueSource(Source):
    """A bounded queue that a running flow reads: ``put`` records in, ``close()`` to end.

    ``rewind`` or ``replay=True`` make the source rewindable (see the module docstring);
    without either, a flow with ``checkpoint=`` refuses it before starting.
    """

    default_name = "queue"
    rewind_hint = (
        "give QueueSource(rewind=...) a function that reads the records from a position "
        "again (e.g. from your own log), or replay=True to keep them in memory for restarts "
        "in this process, or run without checkpoint="
    )

    def __init__(self, maxsize: int = 10_000, *, rewind: Rewind | None = None, replay: bool = False) -> None:
        if maxsize < 1:
            raise ConfigurationError(f"QueueSource maxsize must be at least 1 record, got {maxsize}")
        if rewind is not None and replay:
            raise ConfigurationError("QueueSource takes rewind= or replay=True, not both")
        self.maxsize = maxsize
        self._rewind = rewind
        self._replay: deque[Any] | None = deque() if replay else None
        self._replay_base = 0
        """Position of the first record in ``_replay`` (the last complete checkpoint's)."""
        self._queue: deque[Any] = deque()
        self._closed = False
        self._reading = False
        self._finished = False
        """The flow stopped reading normally: a ``put`` that would wait raises."""
        self._putters: deque[asyncio.Future[None]] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._again: Iterator[Any] | AsyncIterator[Any] | None = None
        """Records read again after a restore, before the queue (``rewind`` / ``replay``)."""
        self._again_left: int | None = None
        self._count = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "reading" if self._reading else "idle"
        return f"<QueueSource {len(self._queue)}/{self.maxsize} {state} position={self._count}>"

    # Source.rewindable is a class attribute for most sources; here it depends on the options.
    @property
    def rewindable(self) -> bool:  # type: ignore[override]
        """True when given ``rewind=`` or ``replay=True``."""
        return self._rewind is not None or self._replay is not None

    def qsize(self) -> int:
        """Records put and not yet read by the flow."""
        return len(self._queue)

    def full(self) -> bool:
        """Whether a ``put`` would wait now."""
        return len(self._queue) >= self.maxsize

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    # -- the producer's side ------------------------------------------------------------

    def put_nowait(self, record: Any) -> None:
        """Put ``record`` in, or raise ``asyncio.QueueFull`` when the queue is full."""
        self._check_open()
        if self.full() or self._putters:
            raise asyncio.QueueFull
        self._append(record)

    async def put(self, record: Any) -> None:
        """Put ``record`` in, waiting while the queue is full (the flow is behind)."""
        self._check_open()
        if not self.full() and not self._putters:
            self._append(record)
            return
        self._check_waitable()
        waiter = asyncio.get_running_loop().create_future()
        self._putters.append(waiter)
        try:
            while True:
                await waiter
                self._check_open()
                self._check_waitable()
                if not self.full():
                    break
                waiter = asyncio.get_running_loop().create_future()
                self._putters[0] = waiter
        except BaseException:
            # Cancelled or refused while waiting: hand the turn to the next producer.
            try:
                self._putters.remove(waiter)
            except ValueError:
                pass
            self._wake_putter()
            raise
        self._putters.popleft()
        self._append(record)
        self._wake_putter()

    def close(self) -> Awaitable[None]:  # type: ignore[override]
        """End the stream: the flow reads what was put, then its input ends.

        Works with or without ``await``. Later ``put`` calls raise ``QueueClosedError``.
        The runtime does not call this (it calls ``release``), so a failed and restarted
        flow goes on reading.
        """
        self._closed = True
        self._wake_reader()
        self._release_putters()
        return _Done()

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError("put() on a QueueSource after close(); its stream has ended")

    def _check_waitable(self) -> None:
        if self._finished:
            raise QueueClosedError(
                "the QueueSource is full and the flow reading it has stopped; nothing will make room"
            )

    def _append(self, record: Any) -> None:
        self._queue.append(record)
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def _wake_putter(self) -> None:
        if self._putters and not self.full() and not self._putters[0].done():
            self._putters[0].set_result(None)

    def _release_putters(self) -> None:
        for waiter in self._putters:
            if not waiter.done():
                waiter.set_result(None)

    # -- the flow's side ----------------------------------------------------------------

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Start reading; under a restored checkpoint, first read again from ``position``."""
        self.context = context
        self._reading, self._finished = True, False
        self._again = None
        if position is None:
            return
        if not isinstance(position, int) or position < 0:
            raise SourceError(f"source {context.stage!r}: a QueueSource position is a record count, got {position!r}")
        if self._rewind is not None:
            again = self._rewind(position)
            if not isinstance(again, Iterable | AsyncIterable):
                raise SourceError(
                    f"source {context.stage!r}: QueueSource rewind= must return an iterable or async "
                    f"iterable of the records from position {position} on, got {type(again).__name__}"
                )
            self._again = aiter(again) if isinstance(again, AsyncIterable) else iter(again)
            # Restarted in the same process, the queue still holds what this source had
            # not taken yet: read again only the records taken since ``position``.
            self._again_left = self._count - position if self._count else None
        elif self._replay is not None:
            self._again = iter(self._replayed_from(position))
            self._again_left = None
        self._count = position

    def _replayed_from(self, position: int) -> list[Any]:
        assert self._replay is not None
        held_to = self._replay_base + len(self._replay)
        if not self._replay_base <= position <= held_to:
            raise SourceError(
                f"source {self.context.stage!r}: the QueueSource replay buffer holds records "
                f"{self._replay_base} to {held_to}, not position {position}; it lives in memory "
                "and serves restarts within one process only: give rewind= to read records "
                "again from your own log"
            )
        held = list(self._replay)
        cut = position - self._replay_base
        # What is read again is appended to the buffer again as it is read.
        self._replay = deque(held[:cut])
        return held[cut:]

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` records; ``[]`` after ``timeout_s`` without; None once closed and read."""
        if self._again is not None:
            batch = await self._read_again(max_records)
            if batch:
                return self._taken(batch)
        queue = self._queue
        if not queue:
            if self._closed:
                return None
            if not await self._wait_for_records(timeout_s):
                return []
        # Linger: a producer putting one record at a time gets a moment to fill the batch.
        deadline = monotonic() + self.context.linger_s
        while len(queue) < max_records and not self._closed:
            left = deadline - monotonic()
            if left <= 0 or not await self._wait_for_records(left):
                break
        n = min(max_records, len(queue))
        batch = [queue.popleft() for _ in range(n)]
        self._wake_putter()
        if not batch and self._closed:
            return None
        return self._taken(batch)

    async def _read_again(self, max_records: int) -> list[Any]:
        again, left = self._again, self._again_left
        want = max_records if left is None else min(max_records, left)
        batch: list[Any] = []
        if want > 0 and isinstance(again, AsyncIterator):
            async for record in again:
                batch.append(record)
                if len(batch) >= want:
                    break
        elif want > 0 and isinstance(again, Iterator):
            batch = list(islice(again, want))
        if left is not None:
            self._again_left = left - len(batch)
        if len(batch) < want or want == 0 or self._again_left == 0:
            self._again = None  # read through: the queue comes next
        return batch

    def _taken(self, batch: list[Any]) -> list[Any]:
        self._count += len(batch)
        if self._replay is not None:
            self._replay.extend(batch)
        return batch

    async def _wait_for_records(self, timeout_s: float) -> bool:
        """Wait until something is put (or ``close()``); False after ``timeout_s`` without."""
        self._reader = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._reader
        except TimeoutError:
            return False
        finally:
            self._reader = None
        return True

    def position(self) -> Any:
        """Records taken from the queue so far (see the module docstring)."""
        return self._count

    def commit_offsets(self, position: Any) -> None:
        """A checkpoint holding ``position`` is complete: forget replayed records before it."""
        if self._replay is not None and isinstance(position, int):
            drop = min(len(self._replay), position - self._replay_base)
            for _ in range(max(0, drop)):
                self._replay.popleft()
            self._replay_base = max(self._replay_base, position)

    async def release(self) -> None:
        """The flow stopped reading. After a normal stop, producers waiting for room raise;
        after a failure or a cancel (the runtime cancels every actor then) they go on
        waiting for a restart to read on."""
        self._reading = False
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            self._finished = True
            self._release_putters()
