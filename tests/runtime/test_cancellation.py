"""Cancelling the task that awaits ``flow.run()``, for every built-in source.

Each case starts a flow, waits (on a condition, with a deadline) until it is in the
state named, cancels the task awaiting ``flow.run()`` and checks three things: the task
ends within a second, it ends by re-raising ``CancelledError``, and no task of the flow
is left behind (``asyncio.all_tasks()``).

The states: *busy*, the source reads flat out; *idle*, nothing moves. A source that
can wait for input (an async iterable, a QueueSource) is idle while it waits. A sync
iterable or a file never waits for input (a read returns at once or ends the stream),
so its idle case is a flow stuck downstream: the sink's write never returns and the
source is blocked on the full mailbox in front of it. A slow sink with a busy source is
a case of its own. (Kafka's cases live with the Kafka tests.)
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from time import monotonic
from typing import Any

import fastavro
import orjson
import pytest

import streamcore as sc
from connectors.files import AvroSource, CsvSource, JsonLinesSource
from connectors.memory import IterableSource, ListSink, QueueSource

DEADLINE_S = 20.0
CANCEL_WITHIN_S = 1.0
FILE_RECORDS = 400_000


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


class Counter:
    """A sink function counting records; ``busy`` once records flow."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, record: Any) -> None:
        self.n += 1


class StuckSink(sc.Sink):
    """A sink whose write never returns (until cancelled): everything behind it stops."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()

    async def write_batch(self, records: list[Any]) -> None:
        self.writing.set()
        await asyncio.Event().wait()


class SlowSink(sc.Sink):
    """A sink taking a long time per batch (a slow remote service)."""

    def __init__(self) -> None:
        self.batches = 0

    async def write_batch(self, records: list[Any]) -> None:
        self.batches += 1
        await asyncio.sleep(3600)  # the slowness is the point: cancelled long before


async def assert_cancel_is_prompt(flow: sc.Dataflow, in_state: Callable[[], bool], state: str) -> None:
    """Run ``flow``, wait until ``in_state()``, cancel, and check the three promises."""
    before = asyncio.all_tasks()
    run = asyncio.create_task(flow.run(), name="awaiting flow.run()")
    await wait_until(lambda: in_state() or run.done(), state)
    assert not run.done(), f"the flow ended before it was {state}: {run!r}"
    run.cancel()
    started = monotonic()
    done, _ = await asyncio.wait([run], timeout=DEADLINE_S)
    took = monotonic() - started
    assert run in done, f"cancelling a flow that was {state} hung"
    assert took < CANCEL_WITHIN_S, f"cancel took {took:.3f} s"
    with pytest.raises(asyncio.CancelledError):
        await run
    left = asyncio.all_tasks() - before
    assert left == set(), f"tasks left behind: {left}"


# -- sources -------------------------------------------------------------------------------


def endless() -> Iterator[dict[str, int]]:
    for i in itertools.count():
        yield {"n": i}


async def endless_async() -> AsyncIterator[dict[str, int]]:
    for i in itertools.count():
        yield {"n": i}
        if i % 100 == 0:
            await asyncio.sleep(0)


async def quiet_async(started: asyncio.Event) -> AsyncIterator[dict[str, int]]:
    yield {"n": 0}
    started.set()
    await asyncio.Event().wait()  # no more input, ever
    yield {"n": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One large input per file format, long enough to still be reading when cancelled."""
    folder = tmp_path_factory.mktemp("cancellation")
    rows = [{"n": i, "user": f"u{i % 97}"} for i in range(FILE_RECORDS)]
    jsonl = folder / "events.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    csv_path = folder / "events.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["n", "user"])
        writer.writeheader()
        writer.writerows(rows)
    avro = folder / "events.avro"
    schema = {"type": "record", "name": "E", "fields": [{"name": "n", "type": "long"}, {"name": "user", "type": "string"}]}
    with avro.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), rows)
    return {"jsonl": jsonl, "csv": csv_path, "avro": avro}


def file_source(kind: str, files: dict[str, Path]) -> sc.Source:
    path = files[kind]
    if kind == "jsonl":
        return JsonLinesSource(path)
    if kind == "csv":
        return CsvSource(path)
    return AvroSource(path)


def busy_flow(source: sc.Source, name: str) -> tuple[sc.Dataflow, Counter]:
    count = Counter()
    flow = sc.Dataflow(name)
    flow.source(source, batch_size=500).map(lambda r: r, name="touch").sink(count, name="count")
    return flow, count


def stuck_flow(source: sc.Source, name: str) -> tuple[sc.Dataflow, StuckSink]:
    sink = StuckSink()
    flow = sc.Dataflow(name, mailbox_capacity=100)
    flow.source(source, batch_size=50).sink(sink, name="stuck")
    return flow, sink


# -- tests ----------------------------------------------------------------------------------


async def test_cancelling_a_flow_with_a_busy_sync_iterable_source() -> None:
    flow, count = busy_flow(IterableSource(endless()), "busy-sync")
    await assert_cancel_is_prompt(flow, lambda: count.n >= 5_000, "busy")


async def test_cancelling_a_flow_with_a_sync_iterable_source_held_back_by_a_stuck_sink() -> None:
    flow, sink = stuck_flow(IterableSource(endless()), "stuck-sync")
    await assert_cancel_is_prompt(flow, sink.writing.is_set, "idle (stuck downstream)")


async def test_cancelling_a_flow_with_a_busy_async_generator_source() -> None:
    flow, count = busy_flow(IterableSource(endless_async()), "busy-async")
    await assert_cancel_is_prompt(flow, lambda: count.n >= 5_000, "busy")


async def test_cancelling_a_flow_whose_async_generator_source_waits_for_input() -> None:
    started = asyncio.Event()
    flow, count = busy_flow(IterableSource(quiet_async(started)), "idle-async")
    await assert_cancel_is_prompt(flow, lambda: started.is_set() and count.n == 1, "idle")


@pytest.mark.parametrize("kind", ["jsonl", "csv", "avro"])
async def test_cancelling_a_flow_with_a_busy_file_source(kind: str, files: dict[str, Path]) -> None:
    flow, count = busy_flow(file_source(kind, files), f"busy-{kind}")
    await assert_cancel_is_prompt(flow, lambda: count.n >= 2_000, "busy")


@pytest.mark.parametrize("kind", ["jsonl", "csv", "avro"])
async def test_cancelling_a_flow_with_a_file_source_held_back_by_a_stuck_sink(kind: str, files: dict[str, Path]) -> None:
    flow, sink = stuck_flow(file_source(kind, files), f"stuck-{kind}")
    await assert_cancel_is_prompt(flow, sink.writing.is_set, "idle (stuck downstream)")


async def test_cancelling_a_flow_with_a_busy_queue_source() -> None:
    src = QueueSource(maxsize=200_000)
    for i in range(200_000):
        src.put_nowait({"n": i})
    flow, count = busy_flow(src, "busy-queue")
    await assert_cancel_is_prompt(flow, lambda: count.n >= 5_000, "busy")
    assert src.qsize() > 0  # it was still reading


async def test_cancelling_a_flow_whose_queue_source_waits_for_input() -> None:
    src = QueueSource(maxsize=10)
    src.put_nowait({"n": 0})
    flow, count = busy_flow(src, "idle-queue")
    await assert_cancel_is_prompt(flow, lambda: count.n == 1 and src.qsize() == 0, "idle")


async def test_cancelling_a_flow_held_back_by_a_slow_sink() -> None:
    sink = SlowSink()
    flow = sc.Dataflow("slow-sink", mailbox_capacity=100)
    flow.source(IterableSource(endless_async()), batch_size=50).map(lambda r: r).sink(sink, name="slow")
    await assert_cancel_is_prompt(flow, lambda: sink.batches >= 1, "writing to a slow sink")


async def test_a_cancel_at_any_step_of_starting_leaves_no_task_behind() -> None:
    """Cancel ``flow.run()`` after 0, 1, 2, ... turns of the loop: whichever await of
    ``start()`` the cancel lands in, the run is cancelled and awaited with it."""
    for turns in range(40):
        flow = sc.Dataflow(f"cancel-at-{turns}")
        flow.source(IterableSource(itertools.count()), batch_size=10).sink(ListSink())
        before = asyncio.all_tasks()
        run = asyncio.create_task(flow.run())
        for _ in range(turns):
            await asyncio.sleep(0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        left = asyncio.all_tasks() - before
        assert left == set(), f"after {turns} turns: tasks left behind: {left}"
