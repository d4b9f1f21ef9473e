"""``IterableSource``: any iterable or async iterable as a source, finite or not.

Sync iterables are sliced into batches directly. Async iterables are pumped by a
background task into a small buffer, so a batch can close after ``linger`` without
cancelling the user's iterator mid-step (cancelling an async generator's ``__anext__``
would finish the generator).
It cannot rewind: ``position()`` is a count of records, useful for statistics only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from itertools import islice
from time import monotonic
from typing import Any

from streamcore.errors import SourceError
from streamcore.io import Source, SourceContext

__all__ = ["IterableSource"]

_END = object()


class IterableSource(Source):
    """Reads records from an iterable or async iterable."""

    default_name = "iterable"
    rewindable = False

    def __init__(self, iterable: Iterable[Any] | AsyncIterable[Any], *, buffer: int = 10_000) -> None:
        if not isinstance(iterable, Iterable | AsyncIterable):
            raise TypeError(f"IterableSource takes an iterable or async iterable, got {type(iterable).__name__}")
        self._iterable = iterable
        self._buffer_limit = buffer
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        self._buffer: deque[Any] = deque()
        self._arrived: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._count = 0
        self._opened = False

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Start iterating (an iterable can be read by one flow run only)."""
        self.context = context
        if self._opened:
            raise SourceError(
                f"source {context.stage!r}: an IterableSource can be read only once; "
                "create a new one for each run"
            )
        if position:
            raise SourceError(
                f"source {context.stage!r}: an IterableSource cannot rewind to a checkpoint; "
                "use a replayable source (files, Kafka) for exactly-once recovery"
            )
        self._opened = True
        if isinstance(self._iterable, AsyncIterable):
            self._async = aiter(self._iterable)
            self._arrived = asyncio.Event()
            self._room = asyncio.Event()
            self._room.set()
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())
        else:
            self._sync = iter(self._iterable)

    async def _run_pump(self) -> None:
        assert self._async is not None and self._arrived is not None and self._room is not None
        try:
            async for item in self._async:
                self._buffer.append(item)
                self._arrived.set()
                if len(self._buffer) >= self._buffer_limit:
                    self._room.clear()
                    await self._room.wait()
        except Exception as exc:
            self._error = exc
        self._buffer.append(_END)
        self._arrived.set()

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

    async def _read_async(self, max_records: int, timeout_s: float) -> list[Any] | None:
        assert self._arrived is not None and self._room is not None
        buf = self._buffer
        if not buf:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except TimeoutError:
                return []
        # Linger: give a trickling producer a moment to fill the batch.
        deadline = monotonic() + self.context.linger_s
        while len(buf) < max_records and buf[-1] is not _END:
            left = deadline - monotonic()
            if left <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                break
        batch: list[Any] = []
        while buf and len(batch) < max_records:
            item = buf[0]
            if item is _END:
                break
            batch.append(buf.popleft())
        if len(buf) < self._buffer_limit:
            self._room.set()
        self._count += len(batch)
        if not batch and buf and buf[0] is _END:
            if self._error is not None:
                raise self._iterable_error(self._error) from self._error
            return None
        return batch

    def _iterable_error(self, error: BaseException) -> SourceError:
        return SourceError(
            f"source {self.context.stage!r}: the iterable raised {type(error).__name__}: {error}"
        )

    def position(self) -> Any:
        """Records read so far (informational: this source cannot rewind)."""
        return self._count

    async def close(self) -> None:
        """Stop the pump task, if any."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass
