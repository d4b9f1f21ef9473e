"""``QueueSink``: a flow's output, pulled by the program that runs it with ``async for``.

``async for record in sink`` yields records as the flow writes them and ends when the
flow's stream ends. The flow writes into a bounded buffer: when the program reads more
slowly than the flow produces, ``write_batch`` waits and the flow is held back
(backpressure), so nothing is dropped and memory stays bounded.

Invariants:
1. Records come out in the order they were written; none is dropped.
2. The buffer holds at most ``maxsize`` records, plus at most one batch: a batch is
   admitted while there is room for one more record.
3. The loop ends when the stream ends (``close()`` by the runtime, after every record
   was read). When the flow stops without ending its stream (it failed, was cancelled,
   or stopped at a checkpoint: ``abort()``), the loop yields what was written, then
   raises ``QueueSinkAbortedError``: a consumer can never take a cut stream for a whole one.
4. A flow restarted under a restart policy opens the sink again; a new ``async for``
   then goes on with the records of the new attempt.
Design: docs/connectors-memory.md#queuesource-and-queuesink
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from streamcore.errors import ConfigurationError, SinkError
from streamcore.io import Sink, SinkContext

__all__ = ["QueueSink", "QueueSinkAbortedError"]

_OPEN, _ENDED, _ABORTED = "open", "ended", "aborted"


class QueueSinkAbortedError(SinkError):
    """The flow writing to a ``QueueSink`` stopped before the end of its stream."""


class QueueSink(Sink):
    """A bounded buffer of a flow's output, read with ``async for``."""

    default_name = "queue_sink"

    def __init__(self, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ConfigurationError(f"QueueSink maxsize must be at least 1 record, got {maxsize}")
        self.maxsize = maxsize
        self._buffer: deque[Any] = deque()
        self._state = _OPEN
        self._writer: asyncio.Future[None] | None = None
        self._readers: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<QueueSink {len(self._buffer)}/{self.maxsize} {self._state}>"

    def qsize(self) -> int:
        """Records written and not yet read."""
        return len(self._buffer)

    # -- the flow's side ----------------------------------------------------------------

    async def open(self, context: SinkContext) -> None:
        """Start (or, after a restart, start again) taking the flow's output."""
        self.context = context
        self._state = _OPEN

    async def write_batch(self, records: list[Any]) -> None:
        """Add a batch, waiting while the buffer is full (the reader is behind)."""
        while len(self._buffer) >= self.maxsize:
            self._writer = asyncio.get_running_loop().create_future()
            try:
                await self._writer
            finally:
                self._writer = None
        self._buffer.extend(records)
        self._wake_readers()

    async def close(self) -> None:
        """The stream ended: readers finish once they have read everything."""
        self._state = _ENDED
        self._wake_readers()

    async def abort(self) -> None:
        """The flow stopped without ending its stream: readers raise after the rest."""
        self._state = _ABORTED
        self._wake_readers()

    def _wake_readers(self) -> None:
        readers, self._readers = self._readers, []
        for waiter in readers:
            if not waiter.done():
                waiter.set_result(None)

    # -- the program's side -------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._records()

    async def _records(self) -> AsyncIterator[Any]:
        buffer = self._buffer
        while True:
            while buffer:
                record = buffer.popleft()
                if self._writer is not None and not self._writer.done() and len(buffer) < self.maxsize:
                    self._writer.set_result(None)
                yield record
            if self._state == _ENDED:
                return
            if self._state == _ABORTED:
                raise QueueSinkAbortedError(
                    f"QueueSink {self._stage()}: the flow stopped before the end of its stream "
                    "(it failed, was cancelled or was suspended); flow.run() or run.wait() "
                    "says why"
                )
            waiter = asyncio.get_running_loop().create_future()
            self._readers.append(waiter)
            await waiter

    def _stage(self) -> str:
        context = getattr(self, "context", None)
        return repr(context.stage) if context is not None else "(never opened)"
