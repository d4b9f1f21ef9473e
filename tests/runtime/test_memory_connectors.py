"""The in-memory connectors: IterableSource over (async) iterables, and ListSink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.io import Sink, SourceContext


async def collect(source: IterableSource, **source_options: Any) -> ListSink:
    out = ListSink()
    flow = sc.Dataflow("memory")
    flow.source(source, **source_options).sink(out)
    await asyncio.wait_for(flow.run(), 10)
    return out


async def test_an_iterable_source_reads_a_list() -> None:
    out = await collect(IterableSource([3, 1, 2]))
    assert out.items == [3, 1, 2]


async def test_an_iterable_source_reads_a_generator_in_batches() -> None:
    def numbers() -> Iterator[int]:
        yield from range(250)

    out = ListSink()
    flow = sc.Dataflow("generator")
    flow.source(IterableSource(numbers()), batch_size=100, name="numbers").sink(out)
    await flow.run()
    assert out.items == list(range(250))
    assert flow.statistics().actor("numbers").batches_in == 3


async def test_an_iterable_source_reads_a_finite_async_generator() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(300):
            if i % 50 == 0:
                await asyncio.sleep(0)
            yield i

    out = await collect(IterableSource(numbers()), batch_size=64)
    assert out.items == list(range(300))


async def test_an_async_iterable_larger_than_the_buffer_is_read_completely() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(1_000):
            yield i

    out = await collect(IterableSource(numbers(), buffer=16), batch_size=10)
    assert out.items == list(range(1_000))


async def test_an_async_generator_that_raises_fails_the_run_with_a_source_error_naming_it() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise OSError("connection reset")

    flow = sc.Dataflow("broken-async")
    flow.source(IterableSource(broken()), name="feed").sink(ListSink())
    with pytest.raises(
        sc.SourceError, match=r"^source 'feed': the iterable raised OSError: connection reset$"
    ) as info:
        await asyncio.wait_for(flow.run(), 10)
    assert isinstance(info.value.__cause__, OSError)


async def test_a_generator_that_raises_fails_the_run_with_a_source_error_naming_it() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise OSError("disk unreadable")

    flow = sc.Dataflow("broken-sync")
    flow.source(IterableSource(broken()), name="feed").sink(ListSink())
    with pytest.raises(
        sc.SourceError, match=r"^source 'feed': the iterable raised OSError: disk unreadable$"
    ) as info:
        await flow.run()
    assert isinstance(info.value.__cause__, OSError)


async def test_an_iterator_source_can_be_read_only_once() -> None:
    source = IterableSource(iter([1, 2]))
    first = await collect(source)
    assert first.items == [1, 2]
    with pytest.raises(
        sc.SourceError,
        match=r"^source 'iterable': an IterableSource can be read only once; create a new one for each run$",
    ):
        await collect(source)


async def test_a_list_source_can_be_read_again() -> None:
    source = IterableSource([1, 2])
    assert (await collect(source)).items == [1, 2]
    assert (await collect(source)).items == [1, 2]


async def test_an_iterator_source_cannot_rewind_to_a_position() -> None:
    source = IterableSource(iter([1, 2]))
    with pytest.raises(
        sc.SourceError,
        match=r"^source 'feed': an IterableSource cannot rewind to a checkpoint when given an "
        r"iterator or generator; give it a zero-argument callable",
    ):
        await source.open(SourceContext("feed"), position=5)


def test_an_iterable_source_rejects_what_is_not_iterable() -> None:
    with pytest.raises(
        TypeError,
        match=r"^IterableSource takes an iterable, an async iterable or a zero-argument callable "
        r"returning one, got int$",
    ):
        IterableSource(42)  # type: ignore[arg-type]


async def test_a_quiet_async_iterable_gives_an_empty_batch_after_the_timeout() -> None:
    arrived = asyncio.Event()

    async def quiet() -> AsyncIterator[str]:
        await arrived.wait()
        yield "late"

    source = IterableSource(quiet())
    await source.open(SourceContext("quiet", linger_s=0.001))
    try:
        assert await source.read_batch(10, 0.01) == []
        arrived.set()
        assert await asyncio.wait_for(source.read_batch(10, 5), 5) == ["late"]
        assert await asyncio.wait_for(source.read_batch(10, 5), 5) is None
        assert source.position() == 1
    finally:
        await source.close()


async def test_closing_an_async_iterable_source_stops_its_pump_task() -> None:
    async def endless() -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0)

    before = asyncio.all_tasks()
    source = IterableSource(endless(), buffer=8)
    await source.open(SourceContext("endless"))
    batch = await source.read_batch(5, 1)
    assert batch == [0, 1, 2, 3, 4]
    await source.close()
    assert asyncio.all_tasks() - before == set()


async def test_a_list_sink_collects_in_order_and_is_closed_at_the_end() -> None:
    out = ListSink()
    assert out.items == [] and not out.closed
    flow = sc.Dataflow("list-sink")
    flow.source(IterableSource(range(20)), batch_size=3).sink(out)
    await flow.run()
    assert out.items == list(range(20))
    assert out.closed


async def test_a_sink_whose_write_batch_returns_an_awaitable_is_awaited() -> None:
    # The Sink contract allows a plain write_batch that returns an awaitable.
    class Deferred(Sink):
        def __init__(self) -> None:
            self.items: list[Any] = []

        async def _write(self, records: list[Any]) -> None:
            await asyncio.sleep(0)
            self.items.extend(records)

        def write_batch(self, records: list[Any]) -> Awaitable[None]:
            return self._write(records)

    sink = Deferred()
    flow = sc.Dataflow("deferred")
    flow.source(IterableSource(range(10)), batch_size=4).sink(sink)
    await asyncio.wait_for(flow.run(), 10)
    assert sink.items == list(range(10))


async def test_a_list_sink_is_closed_after_a_failed_run_too() -> None:
    def boom(x: int) -> int:
        raise ValueError("no")

    out = ListSink()
    flow = sc.Dataflow("list-sink-failed")
    flow.source(IterableSource([1])).map(boom).sink(out)
    with pytest.raises(sc.StageError):
        await flow.run()
    assert out.closed
