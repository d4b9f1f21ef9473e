"""QueueSource and QueueSink: pushing records into a running flow and pulling results out."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import (
    ListSink,
    QueueClosedError,
    QueueSink,
    QueueSinkAbortedError,
    QueueSource,
)
from streamcore.io import SourceContext

DEADLINE_S = 20.0


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` with a deadline (the loop runs meanwhile)."""
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


async def pull(sink: QueueSink, into: list[Any]) -> None:
    async for record in sink:
        into.append(record)


def doubling_flow(src: QueueSource, out: Any, name: str = "queues") -> sc.Dataflow:
    flow = sc.Dataflow(name)
    flow.source(src, name="in").map(lambda x: x * 2, name="double").sink(out, name="out")
    return flow


async def test_records_put_in_come_out_in_order_and_the_loop_ends_when_the_source_is_closed() -> None:
    src, out = QueueSource(maxsize=100), QueueSink(maxsize=100)
    flow = doubling_flow(src, out)
    got: list[int] = []
    async with asyncio.timeout(DEADLINE_S):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(flow.run())
            tg.create_task(pull(out, got))
            for i in range(1_000):
                await src.put(i)
            src.close()
    assert got == [i * 2 for i in range(1_000)]


async def test_results_come_out_as_they_are_made_before_the_stream_ends() -> None:
    src, out = QueueSource(maxsize=10), QueueSink(maxsize=10)
    run = asyncio.create_task(doubling_flow(src, out).run())
    results = aiter(out)
    try:
        async with asyncio.timeout(DEADLINE_S):
            await src.put(1)
            assert await anext(results) == 2
            src.put_nowait(5)
            assert await anext(results) == 10
        assert not run.done()
        await src.close()  # close() also works awaited
        async with asyncio.timeout(DEADLINE_S):
            with pytest.raises(StopAsyncIteration):
                await anext(results)
            await run
    finally:
        run.cancel()


async def test_put_nowait_raises_queue_full_and_put_waits_until_the_flow_makes_room() -> None:
    src, out = QueueSource(maxsize=3), ListSink()
    for i in range(3):
        src.put_nowait(i)
    with pytest.raises(asyncio.QueueFull):
        src.put_nowait(3)
    waiting = asyncio.create_task(src.put(3))
    await wait_until(lambda: bool(src._putters), "put() waits for room")
    assert not waiting.done() and src.qsize() == 3
    run = asyncio.create_task(doubling_flow(src, out).run())
    async with asyncio.timeout(DEADLINE_S):
        await waiting  # the flow read the queue, which made room
        src.close()
        await run
    assert out.items == [0, 2, 4, 6]


async def test_a_slow_reader_of_the_queue_sink_holds_the_producer_back() -> None:
    src, out = QueueSource(maxsize=10), QueueSink(maxsize=10)
    flow = sc.Dataflow("held-back", mailbox_capacity=10)
    flow.source(src, batch_size=5).sink(out)
    run = asyncio.create_task(flow.run())
    producer = asyncio.create_task(_put_range(src, 1_000))
    try:
        # Nobody reads the sink: its buffer, the mailbox and the queue fill, then put() waits.
        await wait_until(lambda: src.full() and bool(src._putters), "the producer is held back")
        assert out.qsize() <= 10 + 5
        got: list[int] = []
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(producer, pull(out, got), run)
        assert got == list(range(1_000))
    finally:
        run.cancel()
        producer.cancel()


async def _put_range(src: QueueSource, n: int) -> None:
    for i in range(n):
        await src.put(i)
    src.close()


async def test_put_after_close_raises_queue_closed_error() -> None:
    src = QueueSource(maxsize=2)
    src.close()
    with pytest.raises(QueueClosedError, match=r"^put\(\) on a QueueSource after close\(\)"):
        src.put_nowait(1)
    with pytest.raises(QueueClosedError):
        await src.put(1)
    assert isinstance(QueueClosedError("x"), sc.StreamcoreError)


async def test_a_producer_waiting_for_room_raises_once_the_flow_stopped_reading_normally() -> None:
    src = QueueSource(maxsize=1)
    await src.open(SourceContext("in"))
    src.put_nowait(0)
    waiting = asyncio.create_task(src.put(1))
    await wait_until(lambda: bool(src._putters), "put() waits for room")
    await src.release()  # as the runtime does when the stream ended or a stop was asked for
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(QueueClosedError, match="the flow reading it has stopped"):
            await waiting
    with pytest.raises(QueueClosedError):
        await src.put(2)


async def test_a_producer_waiting_for_room_waits_through_a_failed_attempt_for_the_restart() -> None:
    src = QueueSource(maxsize=1)
    await src.open(SourceContext("in"))
    src.put_nowait(0)
    waiting = asyncio.create_task(src.put(1))
    await wait_until(lambda: bool(src._putters), "put() waits for room")

    running = asyncio.Event()

    async def failed_attempt() -> None:
        # The runtime releases sources from actor tasks it is cancelling.
        try:
            running.set()
            await asyncio.Event().wait()
        finally:
            await src.release()

    attempt = asyncio.create_task(failed_attempt())
    async with asyncio.timeout(DEADLINE_S):
        await running.wait()
    attempt.cancel()
    await asyncio.wait([attempt])
    assert not waiting.done()
    await src.open(SourceContext("in"))  # the restart
    async with asyncio.timeout(DEADLINE_S):
        assert await src.read_batch(10, DEADLINE_S) == [0]
        await waiting
    assert src.qsize() == 1


async def test_the_queue_sink_loop_raises_when_the_flow_fails_instead_of_hanging() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("bad record")
        return x

    src, out = QueueSource(), QueueSink()
    flow = sc.Dataflow("sink-sees-failure")
    flow.source(src, batch_size=1).map(boom, name="boom").sink(out)
    for i in range(5):
        src.put_nowait(i)
    got: list[int] = []
    run = asyncio.create_task(flow.run())
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(QueueSinkAbortedError, match="the flow stopped before the end of its stream"):
            await pull(out, got)
        with pytest.raises(sc.StageError):
            await run
    assert got == [0, 1, 2]


async def test_the_queue_sink_loop_raises_when_the_flow_is_cancelled() -> None:
    src, out = QueueSource(), QueueSink()
    run = asyncio.create_task(doubling_flow(src, out).run())
    await src.put(1)
    got: list[int] = []
    consumer = asyncio.create_task(pull(out, got))
    await wait_until(lambda: got == [2], "the first result arrives")
    run.cancel()
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(QueueSinkAbortedError):
            await consumer
        with pytest.raises(asyncio.CancelledError):
            await run


async def test_checkpointing_a_queue_source_that_cannot_rewind_is_refused_before_it_runs() -> None:
    src, out = QueueSource(), QueueSink()
    src.put_nowait("kept")
    flow = doubling_flow(src, out, "refused")
    # The runtime's set-up check of Source.rewindable, with the source's own hint.
    with pytest.raises(sc.SetupError, match=r"'in' \(QueueSource\) cannot rewind.*give QueueSource\(rewind=\.\.\.\)"):
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore()))
    assert src.qsize() == 1  # nothing was read
    assert repr(out).endswith("open>")  # the sink was never closed or aborted
    assert not src.rewindable
    assert QueueSource(replay=True).rewindable and QueueSource(rewind=lambda p: []).rewindable


async def checkpoint_complete(store: sc.MemoryStateStore, flow: str) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while await store.get(f"{flow}/index") is None:
            await asyncio.sleep(0.01)


class FailOn:
    """Raises once, on the record ``value``."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.failed = False

    def __call__(self, x: int) -> int:
        if x == self.value and not self.failed:
            self.failed = True
            raise RuntimeError("injected failure")
        return x


@pytest.mark.parametrize("how", ["replay", "rewind"])
async def test_a_rewindable_queue_source_restarts_from_its_checkpoint(how: str) -> None:
    # Records 0..999 are read and checkpointed; record 1500 fails the flow once; the
    # restart reads again from the checkpoint's position, not from the start nor from
    # where the failed attempt stopped.
    total, poison = 3_000, 1_500
    log: list[int] = []  # the program's own record of what it put

    def rewind(position: int) -> list[int]:
        return log[position:]

    src = QueueSource(maxsize=100, replay=True) if how == "replay" else QueueSource(maxsize=100, rewind=rewind)
    store = sc.MemoryStateStore()
    name = f"queue-{how}-{uuid.uuid4().hex[:8]}"
    out = ListSink()
    flow = sc.Dataflow(name)
    flow.source(src, name="in", batch_size=50).map(FailOn(poison), name="fail").sink(out)

    async def produce() -> None:
        for i in range(total):
            if i == 1_000:
                await checkpoint_complete(store, name)
            log.append(i)
            await src.put(i)
        src.close()

    async with asyncio.timeout(DEADLINE_S):
        await asyncio.gather(
            flow.run(checkpoint=sc.Checkpointing(store, interval=0.02), restart=sc.RestartPolicy(1, delay=0.0)),
            produce(),
        )
    seen = Counter(out.items)
    assert set(seen) == set(range(total))
    assert sum(n - 1 for n in seen.values()) < poison  # not replayed from the start


async def test_a_replay_buffer_cannot_serve_a_position_it_never_held() -> None:
    # A new process (a new QueueSource) has nothing in memory for position 7.
    src = QueueSource(replay=True)
    store = sc.MemoryStateStore()
    name = f"queue-new-process-{uuid.uuid4().hex[:8]}"
    first = QueueSource(replay=True)
    for i in range(7):
        first.put_nowait(i)
    first.close()
    flow = sc.Dataflow(name)
    flow.source(first, name="in").sink(ListSink())
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.02))
    again = sc.Dataflow(name)
    again.source(src, name="in").sink(ListSink())
    with pytest.raises(sc.SourceError, match=r"replay buffer holds records 0 to 0, not position 7; .* give rewind="):
        await again.run(checkpoint=sc.Checkpointing(store, interval=0.02))
