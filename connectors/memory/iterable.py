"""``IterableSource``: any iterable or async iterable as a source, finite or not.

Sync iterables are sliced into batches directly. Async iterables are pumped by a
background task into a small buffer, so a batch can close after ``linger`` without
cancelling the user's iterator mid-step (cancelling an async generator's ``__anext__``
would finish the generator).

Rewinding (checkpoints and restarts):
1. ``position()`` is the count of records read so far, from the start of the input.
2. The source is rewindable when it can produce the same input again: given a
   zero-argument callable (``IterableSource(lambda: gen())``), or a sequence (a list,
   tuple or range, read again from the start).
3. ``open(position=n)`` calls the factory again (or iterates the sequence again) and
   skips the first ``n`` records; an input shorter than ``n`` is a ``SourceError``, since
   it did not give the same records again.
4. A plain iterator or (async) generator object can be read by one run only and cannot
   rewind: running it under checkpointing is refused before the flow starts.
Design: docs/connectors-memory.md#iterablesource
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from itertools import islice
from time import monotonic
from typing import Any

from streamcore.errors import ConfigurationTypeError, SourceError
from streamcore.io import Source, SourceContext

__all__ = ["IterableSource"]

_END = object()

Input = Iterable[Any] | AsyncIterable[Any]


class IterableSource(Source):
    """Reads records from an iterable, an async iterable, or a factory of either.

    ``IterableSource(records)`` reads ``records`` once (a list or tuple may be read again,
    which makes it rewindable); ``IterableSource(lambda: gen())`` calls the factory for
    every run, which makes the source rewindable: under checkpointing it resumes by
    calling the factory again and skipping the records already read.
    """

    default_name = "iterable"

    def __init__(self, iterable: Input | Callable[[], Input], *, buffer: int = 10_000) -> None:
        if isinstance(iterable, Sequence):
            seq = iterable
            self._factory: Callable[[], Input] | None = lambda: seq
            self._iterable: Input | None = None
        elif isinstance(iterable, Iterable | AsyncIterable):
            self._factory, self._iterable = None, iterable
        elif callable(iterable):
            self._factory, self._iterable = iterable, None
        else:
            raise ConfigurationTypeError(
                "IterableSource takes an iterable, an async iterable or a zero-argument "
                f"callable returning one, got {type(iterable).__name__}"
            )
        self._buffer_limit = buffer
        self._sync: Iterator[Any] | None = None
        self._buffer: deque[Any] = deque()
        # Replaced in open(): an asyncio.Event belongs to the loop that first waits on it, and
        # a rewindable source may be run again by another loop (run_sync).
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._count = 0
        self._opened = False

    # Source.rewindable is a class attribute for most sources; here it depends on the input.
    @property
    def rewindable(self) -> bool:  # type: ignore[override]
        """True when given a factory or a sequence: the input can be produced again."""
        return self._factory is not None

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Start iterating, after the first ``position`` records when one is given."""
        self.context = context
        if self._opened and self._factory is None:
            raise SourceError(
                f"source {context.stage!r}: an IterableSource can be read only once; "
                "create a new one for each run"
            )
        skip = self._records_to_skip(position)
        self._opened = True
        await self.close()
        self._buffer.clear()
        self._error = None
        self._count = skip
        self._sync = None
        source = self._fresh_input()
        if isinstance(source, AsyncIterable):
            self._arrived, self._room = asyncio.Event(), asyncio.Event()
            self._room.set()
            self._pump = asyncio.get_running_loop().create_task(
                self._run_pump(aiter(source), skip), name=f"streamcore-pump:{context.stage}"
            )
        else:
            self._sync = iter(source)
            try:
                skipped = sum(1 for _ in islice(self._sync, skip))
            except Exception as exc:
                raise self._iterable_error(exc) from exc
            if skipped < skip:
                raise self._shorter_than_position(skipped, skip)

    def _records_to_skip(self, position: Any | None) -> int:
        if not position:
            return 0
        if self._factory is None:
            raise SourceError(
                f"source {self.context.stage!r}: an IterableSource cannot rewind to a checkpoint "
                "when given an iterator or generator; give it a zero-argument callable that "
                "returns the input again (IterableSource(lambda: gen())) or use a replayable "
                "source (files, Kafka)"
            )
        if not isinstance(position, int) or position < 0:
            raise SourceError(
                f"source {self.context.stage!r}: an IterableSource position is a count of "
                f"records, got {position!r}"
            )
        return position

    def _fresh_input(self) -> Input:
        if self._factory is None:
            assert self._iterable is not None
            return self._iterable
        try:
            made = self._factory()
        except Exception as exc:
            raise SourceError(
                f"source {self.context.stage!r}: the IterableSource factory raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(made, Iterable | AsyncIterable):
            raise SourceError(
                f"source {self.context.stage!r}: the IterableSource factory must return an "
                f"iterable or async iterable, got {type(made).__name__}"
            )
        return made

    def _shorter_than_position(self, got: int, wanted: int) -> SourceError:
        return SourceError(
            f"source {self.context.stage!r}: cannot resume at record {wanted}: the input "
            f"ended after {got} records; the factory must give the same records in the "
            "same order on every call"
        )

    async def _run_pump(self, records: AsyncIterator[Any], skip: int) -> None:
        arrived, room, buf = self._arrived, self._room, self._buffer
        try:
            skipped = 0
            async for item in records:
                if skipped < skip:
                    skipped += 1
                    continue
                buf.append(item)
                arrived.set()
                if len(buf) >= self._buffer_limit:
                    room.clear()
                    await room.wait()
            if skipped < skip:
                self._error = self._shorter_than_position(skipped, skip)
        except Exception as exc:
            self._error = exc
        finally:
            # Cancelled while the generator waits at a ``yield``: run its finally blocks now
            # rather than whenever the loop collects it.
            aclose = getattr(records, "aclose", None)
            if aclose is not None:
                await aclose()
        buf.append(_END)
        arrived.set()

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` records; lingers briefly for more on async iterables."""
        if self._sync is not None:
            try:
                batch = list(islice(self._sync, max_records))
            except Exception as exc:
                raise self._iterable_error(exc) from exc
            self._count += len(batch)
            return batch or None
        return await self._read_async(max_records, timeout_s)

    async def _wait_arrival(self, timeout_s: float) -> bool:
        """Wait for the pump to add something; False after ``timeout_s`` without."""
        self._arrived.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    async def _read_async(self, max_records: int, timeout_s: float) -> list[Any] | None:
        buf = self._buffer
        if not buf and not await self._wait_arrival(timeout_s):
            return []
        # Linger: give a trickling producer a moment to fill the batch.
        deadline = monotonic() + self.context.linger_s
        while len(buf) < max_records and buf[-1] is not _END:
            left = deadline - monotonic()
            if left <= 0 or not await self._wait_arrival(left):
                break
        batch: list[Any] = []
        while buf and len(batch) < max_records:
            if buf[0] is _END:
                break
            batch.append(buf.popleft())
        if len(buf) < self._buffer_limit:
            self._room.set()
        self._count += len(batch)
        if not batch and buf and buf[0] is _END:
            if self._error is not None:
                if isinstance(self._error, SourceError):
                    raise self._error
                raise self._iterable_error(self._error) from self._error
            return None
        return batch

    def _iterable_error(self, error: BaseException) -> SourceError:
        return SourceError(
            f"source {self.context.stage!r}: the iterable raised {type(error).__name__}: {error}"
        )

    def position(self) -> Any:
        """Records read so far, counted from the start of the input."""
        return self._count

    async def close(self) -> None:
        """Stop the pump task, if any, and wait for it to finish."""
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            # asyncio.wait does not raise the pump's CancelledError, so a cancel of our
            # own task while waiting still propagates.
            await asyncio.wait([pump])
