"""Generator tasks stream to streaming consumers: pipelined, with mailbox backpressure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from streamcore.batch import Pipeline, Retry


async def test_a_streaming_consumer_reads_items_while_the_producer_still_runs() -> None:
    pipe = Pipeline("pipelined")
    first_item_seen = asyncio.Event()

    @pipe.task()
    async def produce() -> AsyncIterator[int]:
        yield 1
        # Only a consumer running alongside can set this: without pipelining we would hang.
        await asyncio.wait_for(first_item_seen.wait(), 10)
        yield 2

    @pipe.task(depends_on=[produce], streaming=True)
    async def consume(items: AsyncIterator[int]) -> list[int]:
        seen = []
        async for item in items:
            seen.append(item)
            first_item_seen.set()
        return seen

    @pipe.task(depends_on=[produce])
    def whole(items: list[int]) -> list[int]:
        return items

    result = await pipe.run()
    assert result.ok
    assert result.outputs == {"produce": [1, 2], "consume": [1, 2], "whole": [1, 2]}


async def test_a_slow_consumer_bounds_how_far_the_producer_runs_ahead() -> None:
    capacity = 4
    pipe = Pipeline("backpressure", mailbox_capacity=capacity)
    produced = 0
    consumed = 0
    lead: list[int] = []

    @pipe.task()
    async def produce() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(200):
            produced += 1
            yield i

    @pipe.task(depends_on=[produce], streaming=True)
    async def consume(items: AsyncIterator[int]) -> int:
        nonlocal consumed
        total = 0
        async for item in items:
            consumed += 1
            total += item
            # Give the producer every chance to run ahead before taking the next item.
            for _ in range(5):
                await asyncio.sleep(0)
            lead.append(produced - consumed)
        return total

    result = await pipe.run()
    assert result.outputs["consume"] == sum(range(200))
    # The producer ran ahead (pipelining) but never further than the mailbox allows.
    assert max(lead) >= capacity - 1
    assert max(lead) <= capacity + 1


async def test_a_sync_generator_in_a_thread_streams_into_a_thread_consumer() -> None:
    pipe = Pipeline("threads", executor="thread", mailbox_capacity=2)
    loop_thread = threading.get_ident()

    @pipe.task()
    def produce() -> Iterator[int]:
        assert threading.get_ident() != loop_thread
        yield from range(50)

    @pipe.task(depends_on=[produce], streaming=True)
    def consume(items: Iterator[int]) -> list[int]:
        assert threading.get_ident() != loop_thread
        return [item * 2 for item in items]

    @pipe.task(depends_on=[consume], executor="async")
    async def check(doubled: list[int]) -> int:
        return len(doubled)

    result = await pipe.run()
    assert result.ok
    assert result.outputs["consume"] == [i * 2 for i in range(50)]
    assert result.outputs["check"] == 50


async def test_a_streaming_consumer_also_gets_plain_values_of_its_other_dependencies() -> None:
    pipe = Pipeline("mixed")

    @pipe.task()
    def factor() -> int:
        return 3

    @pipe.task()
    def numbers() -> Iterator[int]:
        yield from (1, 2, 3)

    @pipe.task(depends_on=[numbers, factor], streaming=True)
    async def scaled(items: AsyncIterator[int], k: int) -> AsyncIterator[int]:
        async for item in items:
            yield item * k

    @pipe.task(depends_on=[scaled], streaming=True)
    async def total(items: AsyncIterator[int]) -> int:
        return sum([item async for item in items])

    result = await pipe.run()
    assert result.outputs == {"factor": 3, "numbers": [1, 2, 3], "scaled": [3, 6, 9], "total": 18}


async def test_a_producer_failing_mid_stream_skips_its_running_consumer() -> None:
    pipe = Pipeline("broken_stream", mailbox_capacity=2)

    @pipe.task(retry=Retry(attempts=3, delay=0))
    async def produce() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise OSError("source vanished")

    @pipe.task(depends_on=[produce], streaming=True)
    async def consume(items: AsyncIterator[int]) -> list[int]:
        return [item async for item in items]

    result = await pipe.run()
    producer = result.tasks["produce"]
    assert producer.status == "failed" and producer.attempts == 1
    assert "not retried: it had already streamed items" in (producer.reason or "")
    consumer = result.tasks["consume"]
    assert consumer.status == "skipped" and consumer.reason == "upstream 'produce' failed"
    assert result.outputs == {}


async def test_a_retried_consumer_sees_the_whole_stream_again(auto_clock) -> None:
    pipe = Pipeline("replay", mailbox_capacity=3)
    tries: list[list[int]] = []

    @pipe.task()
    def produce() -> Iterator[int]:
        yield from range(10)

    @pipe.task(depends_on=[produce], streaming=True, retry=Retry(attempts=2, delay=1))
    async def consume(items: AsyncIterator[int]) -> list[int]:
        seen: list[int] = []
        tries.append(seen)
        async for item in items:
            seen.append(item)
            if len(tries) == 1 and len(seen) == 4:
                raise ConnectionError("sink hiccup")
        return seen

    result = await pipe.run(clock=auto_clock)
    assert result.ok
    assert tries[0] == [0, 1, 2, 3]
    assert result.outputs["consume"] == list(range(10))
    assert result.tasks["consume"].attempts == 2


async def test_a_consumer_reading_its_second_stream_first_does_not_deadlock_one_slot() -> None:
    pipe = Pipeline("two_streams", max_concurrency=1, mailbox_capacity=2)

    @pipe.task()
    def first() -> Iterator[str]:
        yield from ("a", "b", "c", "d", "e")

    @pipe.task()
    def second() -> Iterator[str]:
        yield from ("x", "y", "z")

    @pipe.task(depends_on=[first, second], streaming=True)
    async def merge(one: AsyncIterator[str], two: AsyncIterator[str]) -> list[str]:
        tail = [item async for item in two]
        head = [item async for item in one]
        return head + tail

    result = await asyncio.wait_for(pipe.run(), 10)
    assert result.outputs["merge"] == ["a", "b", "c", "d", "e", "x", "y", "z"]


async def test_a_consumer_that_stops_early_does_not_hold_its_producer_back() -> None:
    pipe = Pipeline("early_exit", mailbox_capacity=2)

    @pipe.task()
    def produce() -> Iterator[int]:
        yield from range(100)

    @pipe.task(depends_on=[produce], streaming=True)
    async def first_three(items: AsyncIterator[int]) -> list[int]:
        taken = []
        async for item in items:
            taken.append(item)
            if len(taken) == 3:
                break
        return taken

    result = await asyncio.wait_for(pipe.run(), 10)
    assert result.outputs["first_three"] == [0, 1, 2]
    assert result.outputs["produce"] == list(range(100))


async def test_a_thread_consumer_that_timed_out_cannot_steal_items_from_its_retry(auto_clock) -> None:
    pipe = Pipeline("abandoned_reader", mailbox_capacity=2)
    release = threading.Event()
    tries: list[list[int]] = []

    @pipe.task()
    def produce() -> Iterator[int]:
        yield from range(20)

    @pipe.task(
        depends_on=[produce],
        streaming=True,
        executor="thread",
        timeout=0.2,
        retry=Retry(attempts=2, delay=1),
    )
    def consume(items: Iterator[int]) -> list[int]:
        seen: list[int] = []
        tries.append(seen)
        first_try = len(tries) == 1
        for item in items:
            seen.append(item)
            if first_try and len(seen) == 2:
                release.wait(10)  # stuck until the retry has finished
        return seen

    try:
        result = await pipe.run(clock=auto_clock)
    finally:
        release.set()
    assert result.ok, result.tasks
    assert result.outputs["consume"] == list(range(20))
    assert result.tasks["consume"].attempts == 2


async def test_a_producer_held_back_by_a_stuck_consumer_times_out_and_frees_its_slot() -> None:
    pipe = Pipeline("stuck_consumer", mailbox_capacity=2, max_concurrency=1)

    @pipe.task(timeout=0.2)
    async def produce() -> AsyncIterator[int]:
        for i in range(100):
            yield i

    @pipe.task(depends_on=[produce], streaming=True)
    async def consume(items: AsyncIterator[int]) -> None:
        async for _ in items:
            await asyncio.Event().wait()

    @pipe.task(priority=-1)
    def other() -> str:
        return "ran"

    result = await asyncio.wait_for(pipe.run(), 10)
    assert result.tasks["produce"].status == "timed_out"
    assert result.tasks["consume"].status == "skipped"
    assert result.tasks["consume"].reason == "upstream 'produce' timed out"
    assert result.outputs == {"other": "ran"}
