"""Streams between tasks: a generator task's items flow to streaming consumers through mailboxes.

Each edge from a generator task to a ``streaming=True`` task is an ``Inlet`` around one
bounded ``Mailbox``, so a slow consumer holds its producer back (the engine's usual
backpressure). The producer's ``Emitter`` also keeps every item, because the stream is
the producer's output too (for non-streaming consumers, ``outputs`` and the store).

Invariants:
1. Items reach every consumer in the order they were yielded, then one ``EndOfStream``.
2. ``Inlet.consumed`` counts items handed to the consumer, so a retried consumer replays
   exactly those from the producer's kept items and then continues live.
3. A consumer that is done closes its mailboxes; a producer then stops sending to it
   instead of blocking forever.
4. While a producer waits for room it gives back its concurrency slot (``on_block``),
   so a consumer that reads its inputs in any order cannot deadlock the run.
Design: docs/batch.md#streaming
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

from streamcore.errors import MailboxClosedError, MailboxFullError, PipelineError
from streamcore.runtime.mailbox import Mailbox
from streamcore.runtime.messages import Batch, EndOfStream

__all__ = ["AbandonedError", "BlockingStreamReader", "Emitter", "Inlet", "StreamReader"]


class AbandonedError(Exception):
    """Raised into a task body that kept running after its try was given up (timed out)."""


class Inlet:
    """The stream from one producer task into one streaming consumer."""

    __slots__ = (
        "_pending",
        "consumed",
        "consumer",
        "ended",
        "generation",
        "mailbox",
        "preloaded",
        "producer",
        "source_items",
    )

    def __init__(self, producer: str, consumer: str, capacity: int) -> None:
        self.producer = producer
        self.consumer = consumer
        self.mailbox = Mailbox(capacity, name=f"{producer}->{consumer}")
        self.consumed = 0
        self.generation = 0
        """Bumped for every try of the consumer; readers of earlier tries stop working."""
        self.ended = False
        self.source_items: list[Any] = []
        """The producer's kept items (replayed to a retried consumer)."""
        self.preloaded: list[Any] | None = None
        """Set when the producer's whole output is known up front (resumed): no mailbox."""
        self._pending: deque[Any] = deque()

    def preload(self, items: list[Any]) -> None:
        """Serve ``items`` from memory: the producer will not run."""
        self.preloaded = items
        self.source_items = items

    def reader(self) -> StreamReader:
        """An async iterator for a new try of the consumer."""
        self.generation += 1
        return StreamReader(self)

    async def next_item(self) -> Any:
        """The next item not yet handed out; ``StopAsyncIteration`` at the end."""
        if self.preloaded is not None:
            if self.consumed < len(self.preloaded):
                self.consumed += 1
                return self.preloaded[self.consumed - 1]
            raise StopAsyncIteration
        while not self._pending:
            if self.ended:
                raise StopAsyncIteration
            try:
                message = await self.mailbox.receive()
            except MailboxClosedError:
                raise PipelineError(
                    f"the stream from task {self.producer!r} to {self.consumer!r} was cut off "
                    "before its end"
                ) from None
            if isinstance(message, Batch):
                self._pending.extend(message.records)
            elif isinstance(message, EndOfStream):
                self.ended = True
        self.consumed += 1
        return self._pending.popleft()

    def close(self) -> None:
        """The consumer is done: the producer must not wait for it any more."""
        self.mailbox.close()


class StreamReader(AsyncIterator[Any]):
    """What a streaming task receives for a generator dependency: ``async for item in it``."""

    def __init__(self, inlet: Inlet) -> None:
        self._inlet = inlet
        self._generation = inlet.generation
        # Items an earlier try of this consumer already took, replayed first.
        self._replay = inlet.source_items[: inlet.consumed]
        self._replayed = 0

    def __repr__(self) -> str:
        return f"<StreamReader {self._inlet.producer}->{self._inlet.consumer} consumed={self._inlet.consumed}>"

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> Any:
        if self._generation != self._inlet.generation:
            # An abandoned try (timed out in its thread) must not take a newer try's items.
            raise AbandonedError(f"this try of task {self._inlet.consumer!r} was given up")
        if self._replayed < len(self._replay):
            self._replayed += 1
            return self._replay[self._replayed - 1]
        return await self._inlet.next_item()


def _run_on_loop(coroutine: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop) -> Any:
    """Run ``coroutine`` on ``loop`` from a worker thread and wait for its value."""
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError:
        # The run (and its loop) ended while an abandoned thread was still going.
        coroutine.close()
        raise AbandonedError("the pipeline run this thread belonged to has ended") from None
    return future.result()


class BlockingStreamReader(Iterator[Any]):
    """A ``StreamReader`` for a streaming task running in a worker thread: a plain iterator."""

    def __init__(self, reader: StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._reader = reader
        self._loop = loop

    def __iter__(self) -> BlockingStreamReader:
        return self

    def __next__(self) -> Any:
        try:
            return _run_on_loop(self._next(), self._loop)
        except StopAsyncIteration:
            raise StopIteration from None

    async def _next(self) -> Any:
        return await self._reader.__anext__()


class Emitter:
    """The output side of one try of a generator task."""

    __slots__ = ("abandoned", "items", "on_block", "on_unblock", "outlets", "producer", "sent")

    def __init__(
        self,
        producer: str,
        outlets: list[Inlet],
        on_block: Callable[[], None],
        on_unblock: Callable[[], Awaitable[None]],
    ) -> None:
        self.producer = producer
        self.items: list[Any] = []
        self.outlets = [inlet for inlet in outlets if not inlet.mailbox.closed]
        self.on_block = on_block
        self.on_unblock = on_unblock
        self.abandoned = False
        self.sent = 0
        """Items delivered to at least one consumer: a try that sent items cannot be retried."""
        for inlet in outlets:
            inlet.source_items = self.items

    @property
    def live(self) -> bool:
        """True when some consumer reads items as they come."""
        return bool(self.outlets)

    async def emit(self, item: Any) -> None:
        """Keep ``item`` and send it to every consumer, waiting for room (backpressure)."""
        if self.abandoned:
            raise AbandonedError(f"task {self.producer!r} was given up; its items are discarded")
        self.items.append(item)
        if not self.outlets:
            return
        self.sent += 1
        for inlet in tuple(self.outlets):
            batch = Batch([item])
            try:
                inlet.mailbox.send_nowait(batch)
                continue
            except MailboxFullError:
                pass
            except MailboxClosedError:
                self.outlets.remove(inlet)
                continue
            self.on_block()
            try:
                await inlet.mailbox.send(batch)
            except MailboxClosedError:
                self.outlets.remove(inlet)
            # Not in a ``finally``: a cancelled try must not wait for a slot on its way out.
            await self.on_unblock()

    def emit_from_thread(self, item: Any, loop: asyncio.AbstractEventLoop) -> None:
        """``emit`` for a generator running in a worker thread; blocks that thread for room."""
        if self.abandoned:
            raise AbandonedError(f"task {self.producer!r} was given up; its items are discarded")
        if not self.outlets:
            # Nobody reads live: keeping the item needs no trip through the loop.
            self.items.append(item)
            return
        _run_on_loop(self.emit(item), loop)

    def finish(self) -> None:
        """Tell every consumer the stream is complete."""
        for inlet in self.outlets:
            with contextlib.suppress(MailboxClosedError):
                inlet.mailbox.send_control(EndOfStream())

    def cut_off(self) -> None:
        """The producer failed for good: consumers must not wait for more."""
        self.abandoned = True
        for inlet in self.outlets:
            inlet.close()
