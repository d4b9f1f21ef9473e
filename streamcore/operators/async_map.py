"""Async enrichment: ``map`` / ``filter`` / ``flat_map`` with an ``async def`` under a bound
on the calls in flight, across batches.

Protocol (docs/joins.md#async-enrichment):
1. ``on_batch`` queues one call per record for at most ``concurrency`` worker tasks, so
   at most that many calls run at once; it waits while ``2 * concurrency`` records are
   taken in and not yet emitted (that wait is the stage's backpressure).
2. Ordered, the stage keeps one queue of calls and watermark marks in arrival order and
   emits its done prefix, passing a mark's watermark on when the mark reaches the front.
   Unordered, it keeps segments (the calls between two watermarks, closed by the mark):
   the first segment's calls are emitted as they finish, and once none is left running
   its mark goes on and the next segment becomes first. Either way nothing is emitted
   past a watermark that arrived after it, and each call costs O(1).
3. Calls run in a pool of at most ``concurrency`` worker tasks fed from a queue (no task
   per record); an emitter task emits what became ready, under the lock every push
   downstream takes, so output never interleaves.
4. A barrier (``snapshot_state``) and the end of the stream wait for every call and
   emit everything: a checkpoint holds nothing in flight.
5. A call that raised or timed out after its retries follows ``on_error``. With
   ``"fail"`` the error fails the flow at the stage's next message (batch, watermark,
   barrier or end).
Design: docs/joins.md#async-enrichment
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamcore.graph.nodes import AsyncOpNode, Node
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.registry import StepContext
from streamcore.runtime.steps import Step, stage_error
from streamcore.state.snapshot import StepSnapshot

__all__ = ["AsyncMapStatistics", "AsyncMapStep", "build_step"]


@dataclass(frozen=True)
class AsyncMapStatistics:
    """Calls of one async stage."""

    in_flight: int
    """Calls started and not yet emitted."""
    completed: int
    failed: int
    """Records whose calls failed after their retries (skipped, dead-lettered or fatal)."""
    retries: int
    timeouts: int


class _Call:
    __slots__ = ("done", "error", "record", "result", "segment", "timestamp")

    def __init__(self, record: Any, timestamp: int | None, segment: _Segment | None) -> None:
        self.record = record
        self.timestamp = timestamp
        self.segment = segment
        """Unordered mode: the segment the call belongs to."""
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _Mark:
    __slots__ = ("watermark_ms",)

    def __init__(self, watermark_ms: float) -> None:
        self.watermark_ms = watermark_ms


class _Segment:
    """Unordered mode: the calls between two watermarks, and the mark that closes them."""

    __slots__ = ("mark", "ready", "waiting")

    def __init__(self) -> None:
        self.waiting = 0
        """Calls started in this segment and not finished."""
        self.ready: list[_Call] = []
        """Finished calls, in the order they finished."""
        self.mark: _Mark | None = None


class AsyncMapStep(Step):
    """One async stateless stage with bounded concurrency (see the module docstring)."""

    def __init__(self, node: AsyncOpNode, on_failure: Callable[..., None]) -> None:
        assert node.fn is not None
        self.name = node.name
        self.stage = StatelessStage(node.name, node.op, node.fn, node.on_error)
        self.fn = node.fn
        self.op = node.op
        self.on_failure = on_failure
        self.concurrency = node.concurrency
        self.ordered = node.ordered
        self.timeout_s = None if node.timeout_ms is None else node.timeout_ms / 1000
        self.retry = node.retry
        self.queue: deque[_Call | _Mark] = deque()
        """Ordered mode: calls and marks in arrival order."""
        self.segments: deque[_Segment] = deque([_Segment()])
        self.work: asyncio.Queue[_Call] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self._idle_workers = 0
        """Workers waiting on ``work``."""
        self.capacity = 2 * self.concurrency
        """Records taken in and not yet emitted, at most: ``concurrency`` running, the rest
        queued for a worker or finished and waiting for their turn (ordered)."""
        self.running = 0
        """Calls queued or running (not finished)."""
        self._all_done = asyncio.Event()
        self._direct = self.timeout_s is None and self.retry is None
        self.calls = 0
        self.completed = 0
        self.failed = 0
        self.retries = 0
        self.timeouts = 0
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        """A call finished (wakes the emitter)."""
        self._room = asyncio.Event()
        """A call was emitted, or the stage failed (wakes ``on_batch`` waiting for a slot)."""
        self._timed = False
        self._emitter: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def open(self) -> None:
        self._emitter = asyncio.get_running_loop().create_task(self._emit_loop(), name=f"streamcore:{self.name}:emit")

    async def close(self) -> None:
        await self._stop()

    async def abort(self) -> None:
        await self._stop()

    async def _stop(self) -> None:
        tasks = list(self.workers)
        self.workers, self._idle_workers = [], 0
        if self._emitter is not None:
            tasks.append(self._emitter)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.queue.clear()
        self.segments = deque([_Segment()])
        self._emitter = None

    # -- calls -----------------------------------------------------------------------

    async def _call(self, record: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                if self.timeout_s is None:
                    return await self.fn(record)
                async with asyncio.timeout(self.timeout_s):
                    return await self.fn(record)
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    self.timeouts += 1
                if self.retry is None or self.retry.decide(exc, attempt) != "retry":
                    raise
                self.retries += 1
                # The retry policy's backoff is the point of this wait.
                await asyncio.sleep(self.retry.delay_after_s(attempt))

    async def _work_loop(self) -> None:
        """One worker: takes calls from the queue, one at a time."""
        direct = self._direct
        while True:
            self._idle_workers += 1
            try:
                call = await self.work.get()
            finally:
                self._idle_workers -= 1
            try:
                call.result = await (self.fn(call.record) if direct else self._call(call.record))
            except Exception as exc:
                call.error = exc
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the stage is stopping
                call.error = exc  # the lookup cancelled itself: a failed call like any other
            call.done = True
            segment = call.segment
            if segment is not None:
                segment.waiting -= 1
                segment.ready.append(call)
            self.running -= 1
            if not self.running:
                self._all_done.set()
            self._changed.set()

    async def _emit_loop(self) -> None:
        # Step 3.
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._error is not None:
                continue
            try:
                await self._flush()
            except Exception as exc:
                self._error = exc  # raised by the actor's next call into this step
                self._room.set()

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # -- the step protocol ---------------------------------------------------------------

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        self._check()
        self._timed = timestamps is not None
        loop = asyncio.get_running_loop()
        for i, record in enumerate(records):
            # Step 1.
            while self.calls >= self.capacity:
                self._room.clear()
                await self._flush()
                if self.calls < self.capacity:
                    break
                await self._room.wait()
                self._check()
            if self.ordered:
                call = _Call(record, None if timestamps is None else timestamps[i], None)
                self.queue.append(call)
            else:
                segment = self.segments[-1]
                segment.waiting += 1
                call = _Call(record, None if timestamps is None else timestamps[i], segment)
            self.running += 1
            self.work.put_nowait(call)
            if self.work.qsize() > self._idle_workers and len(self.workers) < self.concurrency:
                # More waiting records than idle workers: one more worker, up to the bound.
                self.workers.append(loop.create_task(self._work_loop(), name=f"streamcore:{self.name}:call"))
            self.calls += 1
        await self._flush()

    async def on_watermark(self, timestamp_ms: float) -> None:
        self._check()
        if self.ordered:
            self.queue.append(_Mark(timestamp_ms))
        else:
            self.segments[-1].mark = _Mark(timestamp_ms)
            self.segments.append(_Segment())
        await self._flush()

    async def on_end(self) -> None:
        self._check()
        await self._drain()
        await self.next.on_end()

    async def _drain(self) -> None:
        # Step 4.
        if self.running:
            self._all_done.clear()
            await self._all_done.wait()
        await self._flush()
        self._check()

    async def _flush(self) -> None:
        """Step 2: emit what is ready."""
        async with self._lock:
            while True:
                out, out_ts, mark = self._take_ready()
                if out:
                    await self.next.on_batch(out, out_ts)
                if mark is None:
                    return
                await self.next.on_watermark(mark.watermark_ms)

    def _take_ready(self) -> tuple[list[Any], list[int] | None, _Mark | None]:
        """The results ready to go (up to the first mark that can go, and that mark)."""
        out: list[Any] = []
        out_ts: list[int] | None = [] if self._timed else None
        queue = self.queue
        mark: _Mark | None = None
        if self.ordered:
            while queue:
                head = queue[0]
                if isinstance(head, _Mark):
                    mark = queue.popleft()  # type: ignore[assignment]
                    break
                if not head.done:
                    break
                queue.popleft()
                self._result(head, out, out_ts)
        else:
            segments = self.segments
            segment = segments[0]
            if segment.ready:
                ready, segment.ready = segment.ready, []
                for call in ready:
                    self._result(call, out, out_ts)
            if segment.waiting == 0 and segment.mark is not None:
                segments.popleft()
                mark = segment.mark
        return out, out_ts, mark

    def _result(self, call: _Call, out: list[Any], out_ts: list[int] | None) -> None:
        self.calls -= 1
        self._room.set()
        error = call.error
        if error is not None:
            self.failed += 1
            if self.stage.on_error == "fail":
                raise stage_error(self.name, call.record, error) from error
            self.on_failure(self.stage, call.record if self.stage.on_error == "dead_letter" else None, error)
            return
        self.completed += 1
        result = call.result
        if self.op == "map":
            produced = [result]
        elif self.op == "filter":
            produced = [call.record] if result else []
        else:
            produced = list(result)
        out.extend(produced)
        if out_ts is not None:
            out_ts.extend([call.timestamp] * len(produced))  # type: ignore[list-item]

    # -- checkpoints: a barrier drains the stage ------------------------------------------

    def enable_checkpoints(self) -> None:
        """Nothing to track: the stage holds no state at a barrier."""

    async def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """Step 4: wait for the calls in flight and emit them before the barrier goes on."""
        await self._drain()
        return StepSnapshot(None)

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Nothing to restore."""

    def statistics(self) -> AsyncMapStatistics:
        """Calls in flight and counters."""
        return AsyncMapStatistics(self.calls, self.completed, self.failed, self.retries, self.timeouts)


def build_step(node: Node, ctx: StepContext) -> Step:
    """The step of an async map, filter or flat_map node (registered by the package)."""
    assert isinstance(node, AsyncOpNode)
    return AsyncMapStep(node, ctx.on_failure)
