"""``advance_when_idle``: the watermark of a quiet live source moves with the wall clock.

The clock is a ``ManualClock`` the test moves (one test uses the real clock). To know
that the source has looked at the clock since it moved, the tests count its empty reads
and wait for them on a condition with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import QueueSink, QueueSource
from streamcore.testing import ManualClock

DEADLINE_S = 20.0
T0 = 1_700_000_000_000  # a multiple of 10 s: the window [T0, T0 + 10 s) starts here
BOUND = timedelta(seconds=2)
QUIET = timedelta(seconds=5)
WINDOW = timedelta(seconds=10)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


class CountingQueue(QueueSource):
    """A QueueSource that counts the empty reads of the flow (each one looks at the clock)."""

    empty_reads = 0

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        batch = await super().read_batch(max_records, timeout_s)
        if batch == []:
            self.empty_reads += 1
        return batch


async def looked_at_the_clock(src: CountingQueue) -> None:
    """Wait for two more empty reads: at least one began after the caller's last change."""
    seen = src.empty_reads
    await wait_until(lambda: src.empty_reads >= seen + 2, "the source polled again")


class Probe(sc.Sink):
    """Keeps the records and the watermarks a stage passes on, in stream order."""

    wants_time = True

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.records: list[Any] = []
        self.watermarks: list[float] = []
        self.gate = gate
        self.writing = False

    async def write_timed(self, records: list[Any], timestamps: list[int]) -> None:
        self.writing = True
        if self.gate is not None:
            await self.gate.wait()
        self.writing = False
        self.records.extend(records)

    async def on_watermark(self, timestamp_ms: float) -> None:
        self.watermarks.append(timestamp_ms)


def windowed(src: QueueSource, clock: ManualClock | None, probe: sc.Sink, **source_options: Any) -> sc.Dataflow:
    flow = sc.Dataflow("quiet")
    (
        flow.source(
            src, name="live", timestamp=lambda e: e["ts"], max_out_of_orderness=BOUND, linger=0,
            clock=clock, **source_options,
        )
        .key_by(lambda e: "all")
        .window(sc.TumblingWindows(WINDOW))
        .aggregate(sc.agg.count())
        .sink(probe, name="probe")
    )
    return flow


async def test_a_quiet_source_fires_its_window_once_quiet_for_d_plus_the_bound_after_its_end() -> None:
    clock = ManualClock(T0 + 4_000)
    src, probe = CountingQueue(), Probe()
    run = asyncio.create_task(windowed(src, clock, probe, advance_when_idle=QUIET).run())
    try:
        await src.put({"ts": T0 + 1_000})
        await src.put({"ts": T0 + 3_000})
        await wait_until(lambda: T0 + 1_000 in probe.watermarks, "the records' watermark passed")
        # Quiet for 12.999 s: W = now - 2 s - 5 s = T0 + 9.999 s, one ms short of the end.
        clock.set(T0 + 16_999)
        await wait_until(lambda: T0 + 9_999 in probe.watermarks, "the clock moved the watermark")
        assert probe.records == []
        clock.advance(1)
        await wait_until(lambda: bool(probe.records), "the window fired")
        [result] = probe.records
        assert (result.start, result.end, result.value, result.is_update) == (T0, T0 + 10_000, 2, False)
        assert probe.watermarks[-1] == T0 + 10_000
    finally:
        src.close()
    async with asyncio.timeout(DEADLINE_S):
        await run


async def test_without_advance_when_idle_a_quiet_source_holds_its_window_until_the_end() -> None:
    clock = ManualClock(T0 + 4_000)
    src, probe = CountingQueue(), Probe()
    flow = windowed(src, None, probe)
    run = asyncio.create_task(flow.run())
    await src.put({"ts": T0 + 3_000})
    await wait_until(lambda: T0 + 1_000 in probe.watermarks, "the record's watermark passed")
    clock.advance(timedelta(hours=1))
    await looked_at_the_clock(src)
    assert probe.records == [] and probe.watermarks == [T0 + 1_000]
    src.close()
    async with asyncio.timeout(DEADLINE_S):
        await run
    assert [r.value for r in probe.records] == [1]


async def test_the_clock_never_moves_the_watermark_backwards_and_a_record_behind_it_is_late() -> None:
    clock = ManualClock(T0 + 25_000)
    src, probe = CountingQueue(), Probe()
    late: list[Any] = []
    flow = sc.Dataflow("never-back")
    results = (
        flow.source(src, name="live", timestamp=lambda e: e["ts"], max_out_of_orderness=BOUND, linger=0,
                    advance_when_idle=QUIET, clock=clock)
        .key_by(lambda e: "all")
        .window(sc.TumblingWindows(WINDOW))
        .aggregate(sc.agg.count())
    )
    results.sink(probe, name="probe")
    results.late.sink(late.append, name="late")
    run = asyncio.create_task(flow.run())
    try:
        await looked_at_the_clock(src)
        clock.advance(QUIET)  # quiet for d since the start: W = T0 + 23 s before any record
        await wait_until(lambda: T0 + 23_000 in probe.watermarks, "the clock moved the watermark")
        await src.put({"ts": T0 + 1_000})  # its window ended long ago
        await src.put({"ts": T0 + 24_000})  # W from events would be T0 + 22 s: below W
        await looked_at_the_clock(src)
        await wait_until(lambda: len(late) == 1, "the old record went to .late")
        assert late == [{"ts": T0 + 1_000}]
    finally:
        src.close()
    async with asyncio.timeout(DEADLINE_S):
        await run
    finite = [w for w in probe.watermarks if w != math.inf]
    assert finite == sorted(set(finite))  # strictly increasing: never backwards


async def test_time_held_back_by_backpressure_is_not_quiet_time() -> None:
    clock = ManualClock(T0 + 4_000)
    src, gate = CountingQueue(), asyncio.Event()
    probe = Probe(gate)
    flow = sc.Dataflow("held-back", mailbox_capacity=1)
    flow.source(src, name="live", timestamp=lambda e: e["ts"], max_out_of_orderness=BOUND, batch_size=1,
                linger=0, advance_when_idle=QUIET, clock=clock).sink(probe, name="probe")
    records = [{"ts": T0 + 1_000 + i} for i in range(6)]
    for r in records:
        src.put_nowait(r)
    run = asyncio.create_task(flow.run())
    try:
        # The sink holds one record, the mailbox one more, the source blocks sending a third.
        await wait_until(lambda: probe.writing and src.qsize() == len(records) - 3, "the source is held back")
        clock.advance(timedelta(hours=1))  # all of it spent blocked, none waiting for input
        gate.set()
        await wait_until(lambda: len(probe.records) == len(records), "everything was written")
        await looked_at_the_clock(src)
        assert max(probe.watermarks) == T0 + 1_005 - 2_000  # from the records only
        clock.advance(QUIET)  # now quiet for d since the last batch was handed on
        expected = int(clock.now_ms()) - 2_000 - 5_000
        await wait_until(lambda: expected in probe.watermarks, "the clock moved the watermark")
    finally:
        gate.set()
        src.close()
    async with asyncio.timeout(DEADLINE_S):
        await run


async def test_with_the_real_clock_a_live_window_fires_while_the_source_stays_open() -> None:
    src, out = QueueSource(), QueueSink()
    flow = sc.Dataflow("real-clock")
    (
        flow.source(src, timestamp=lambda e: e["ts"], max_out_of_orderness=0, linger=0,
                    advance_when_idle=timedelta(milliseconds=100))
        .key_by(lambda e: "all")
        .window(sc.TumblingWindows(timedelta(milliseconds=200)))
        .aggregate(sc.agg.count())
        .sink(out)
    )
    run = asyncio.create_task(flow.run())
    results = aiter(out)
    try:
        put_at_ms = int(time.time() * 1000)
        await src.put({"ts": put_at_ms})
        async with asyncio.timeout(DEADLINE_S):
            first = await anext(results)
        assert first.start <= put_at_ms < first.end and first.value == 1
        # It fired on the clock: at least d + bound after the window's end.
        assert time.time() * 1000 >= first.end + 100
        assert not run.done()
    finally:
        src.close()
    async with asyncio.timeout(DEADLINE_S):
        await run


def test_advance_when_idle_is_checked_when_the_flow_is_built() -> None:
    flow = sc.Dataflow("checked")
    with pytest.raises(sc.GraphError, match=r"^advance_when_idle must not be negative"):
        flow.source(QueueSource(), advance_when_idle=-1)
    with pytest.raises(sc.GraphError, match=r"^give a source idle_timeout= or advance_when_idle=, not both"):
        flow.source(QueueSource(), advance_when_idle=QUIET, idle_timeout=QUIET)
    with pytest.raises(sc.GraphError, match=r"^clock= is the clock of advance_when_idle="):
        flow.source(QueueSource(), clock=ManualClock())
    with pytest.raises(sc.GraphError, match=r"advance_when_idle"):
        flow.source(QueueSource(), advance_when_idle="soon")
    flow.source(QueueSource(), advance_when_idle="5s")  # duration text, as for every duration
