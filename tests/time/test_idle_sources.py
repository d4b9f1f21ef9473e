"""Watermarks across several sources: the minimum, idle sources, and who holds it back.

Two sources are unioned into one window stage. Source A is a live source the test
controls (an async generator waiting on ``asyncio.Event``s); source B is fed from a queue.
Nothing sleeps for a fixed time: the tests wait on conditions with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from time import monotonic
from typing import Any

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.runtime.actor import ActorStatistics

DEADLINE_S = 10.0
A, B = 0, 1  # input channels of the union, in the order the streams were given


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = monotonic() + timeout_s
    while not condition():
        if monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.002)


class Gate:
    """Records for a source, released by the test; ``finish()`` ends the source."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._end = object()

    def send(self, *records: Any) -> None:
        for r in records:
            self.queue.put_nowait(r)

    def finish(self) -> None:
        self.queue.put_nowait(self._end)

    async def records(self) -> AsyncIterator[Any]:
        while True:
            item = await self.queue.get()
            if item is self._end:
                return
            yield item


class PausingSource:
    """An async generator: yields ``first``, waits for ``resume``, yields ``then``, waits for ``finish``."""

    def __init__(self, first: list[Any], then: list[Any]) -> None:
        self.first, self.then = first, then
        self.resume = asyncio.Event()
        self.finish = asyncio.Event()

    async def records(self) -> AsyncIterator[Any]:
        for r in self.first:
            yield r
        await self.resume.wait()
        for r in self.then:
            yield r
        await self.finish.wait()


def rec(source: str, ts: int) -> dict[str, Any]:
    return {"src": source, "ts": ts}


def build(a: PausingSource, b: Gate, idle_timeout: Any, *, chaining: bool = True) -> tuple[sc.Dataflow, ListSink]:
    """A and B unioned into windows; unchained, A also goes through a map of its own."""
    flow = sc.Dataflow("idle", chaining=chaining)
    stream_a = flow.source(
        IterableSource(a.records()), name="a", timestamp=lambda r: r["ts"], idle_timeout=idle_timeout, linger=0
    )
    if not chaining:
        stream_a = stream_a.map(lambda r: r, name="a_map")
    stream_b = flow.source(IterableSource(b.records()), name="b", timestamp=lambda r: r["ts"], linger=0)
    out = ListSink()
    (
        stream_a.union(stream_b)
        .key_by(lambda r: r["src"])
        .window(sc.TumblingWindows(10))
        .aggregate(sc.agg.count(), name="window")
        .sink(out)
    )
    return flow, out


def window_actor(flow: sc.Dataflow) -> ActorStatistics:
    """The statistics of the actor running the union and the window stage."""
    stats: ActorStatistics = flow.statistics().actor("window")
    return stats


def fired(out: ListSink) -> set[tuple[str, int]]:
    return {(r.key, r.start) for r in out.items}


async def test_an_idle_source_stops_holding_the_watermark_back_and_holds_it_again_when_it_produces() -> None:
    a = PausingSource(first=[rec("a", 0)], then=[rec("a", 31)])
    b = Gate()
    # Long enough that A, once it produced again, stays active while the test looks.
    flow, out = build(a, b, idle_timeout=timedelta(milliseconds=250))
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: flow.statistics() is not None, "the flow to start")
    try:
        b.send(rec("b", 1), rec("b", 12), rec("b", 25))
        # A went quiet: after its idle timeout the watermark follows B alone.
        await wait_until(lambda: ("b", 10) in fired(out), "B's windows to fire while A is idle")
        assert ("a", 0) in fired(out) and ("b", 0) in fired(out)
        await wait_until(lambda: window_actor(flow).held_back_by == B, "B to hold the watermark")
        # A produces again (at 31): it counts in the minimum again; once B moves on
        # (to 58), A's 31 is what holds the watermark.
        a.resume.set()
        await wait_until(lambda: window_actor(flow).records_in == 5, "A's new record")
        b.send(rec("b", 45), rec("b", 58))
        await wait_until(lambda: window_actor(flow).records_in == 7, "every record to reach the window")
        await wait_until(lambda: window_actor(flow).held_back_by == A, "A to hold the watermark again")
        await wait_until(lambda: ("b", 20) in fired(out), "the window up to A's watermark")
        assert window_actor(flow).watermark_ms == 31
        assert ("b", 40) not in fired(out) and ("a", 30) not in fired(out)
        b.finish()
        a.finish.set()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    assert sorted(fired(out)) == [("a", 0), ("a", 30), ("b", 0), ("b", 10), ("b", 20), ("b", 40), ("b", 50)]


async def test_without_an_idle_timeout_a_quiet_source_holds_every_window_until_the_end() -> None:
    a = PausingSource(first=[rec("a", 0)], then=[])
    b = Gate()
    flow, out = build(a, b, idle_timeout=None)
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: flow.statistics() is not None, "the flow to start")
    try:
        b.send(rec("b", 1), rec("b", 12), rec("b", 25), rec("b", 99))
        await wait_until(lambda: window_actor(flow).records_in == 5, "every record to reach the window")
        await wait_until(lambda: window_actor(flow).watermark_ms == 0, "A's first watermark")
        # Let the flow run a while longer (bounded by wall time, not a fixed sleep of the
        # test's logic): B's watermarks are all in, yet nothing fires.
        deadline = monotonic() + 0.15
        while monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert out.items == []
        stats = window_actor(flow)
        assert stats.held_back_by == A and stats.watermark_ms == 0
        a.resume.set()
        a.finish.set()
        b.finish()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    assert sorted(fired(out)) == [("a", 0), ("b", 0), ("b", 10), ("b", 20), ("b", 90)]


async def test_the_minimum_of_the_inputs_is_the_watermark_and_statistics_say_which_input() -> None:
    a = PausingSource(first=[rec("a", 50)], then=[])
    b = Gate()
    flow, out = build(a, b, idle_timeout=None)
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: flow.statistics() is not None, "the flow to start")
    try:
        b.send(rec("b", 5))
        await wait_until(lambda: window_actor(flow).records_in == 2, "both records")
        await wait_until(lambda: window_actor(flow).watermark_ms == 5, "the minimum watermark")
        assert window_actor(flow).held_back_by == B
        b.send(rec("b", 70))
        await wait_until(lambda: window_actor(flow).watermark_ms == 50, "A to be the minimum")
        assert window_actor(flow).held_back_by == A
        await wait_until(lambda: ("b", 0) in fired(out), "B's first window")
        assert ("a", 50) not in fired(out)
        b.finish()
        a.resume.set()
        a.finish.set()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    assert sorted(fired(out)) == [("a", 50), ("b", 0), ("b", 70)]


async def test_an_ended_input_does_not_carry_the_watermark_past_an_idle_one() -> None:
    # B ends while A is idle: the watermark must stay where it is (not jump to +inf),
    # so A's records after it resumes are on time, not late.
    a = PausingSource(first=[rec("a", 0)], then=[rec("a", 15)])
    b = Gate()
    flow, out = build(a, b, idle_timeout=timedelta(milliseconds=30))
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: flow.statistics() is not None, "the flow to start")
    try:
        b.send(rec("b", 12))
        await wait_until(lambda: ("b", 0) in fired(out) or ("a", 0) in fired(out), "A to go idle")
        b.finish()
        await wait_until(lambda: window_actor(flow).held_back_by is None, "only idle A left")
        assert window_actor(flow).watermark_ms == 12
        a.resume.set()
        a.finish.set()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    stats = flow.statistics().stages["window"]
    assert stats.late == 0
    assert sorted(fired(out)) == [("a", 0), ("a", 10), ("b", 10)]


async def test_a_source_blocked_by_backpressure_is_not_idle() -> None:
    a, b = Gate(), Gate()
    sink_open = asyncio.Event()
    written: list[Any] = []

    async def slow_sink(result: Any) -> None:
        await sink_open.wait()
        written.append(result)

    flow = sc.Dataflow("backpressure", mailbox_capacity=4)
    stream_a = flow.source(
        IterableSource(a.records()), name="a", timestamp=lambda r: r["ts"],
        idle_timeout=timedelta(milliseconds=30), batch_size=1, linger=0,
    )
    stream_b = flow.source(IterableSource(b.records()), name="b", timestamp=lambda r: r["ts"], linger=0)
    (
        stream_a.union(stream_b)
        .key_by(lambda r: r["src"])
        .window(sc.TumblingWindows(1))
        .aggregate(sc.agg.count(), name="window")
        .sink(slow_sink)
    )
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: flow.statistics() is not None, "the flow to start")
    source_a = next(actor for actor in flow._latest_run.attempt.actors if actor.name == "a")
    try:
        b.send(rec("b", 1000), rec("b", 1001))
        a.send(*[rec("a", ts) for ts in range(40)])
        await wait_until(lambda: flow.statistics().actor("a").backpressured_s > 0, "A to be held back")
        # Held back for several idle timeouts: it must never be reported idle.
        deadline = monotonic() + 0.2
        while monotonic() < deadline:
            assert not source_a.is_idle
            await asyncio.sleep(0.005)
        assert not any(r.key == "b" for r in written)
        sink_open.set()
        # Drained and then truly without input, A does go idle and B's window fires.
        await wait_until(lambda: source_a.is_idle, "A to go idle once drained")
        await wait_until(lambda: any(r.key == "b" for r in written), "B's window")
        a.finish()
        b.finish()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    assert len(written) == 42


async def test_idleness_crosses_actors_between_the_source_and_the_window() -> None:
    # Unchained, A's idleness must pass through the actors of its map and of the union.
    a = PausingSource(first=[rec("a", 0)], then=[])
    b = Gate()
    flow, out = build(a, b, idle_timeout=timedelta(milliseconds=50), chaining=False)
    run = asyncio.ensure_future(flow.run())
    try:
        b.send(rec("b", 1), rec("b", 12), rec("b", 25))
        await wait_until(lambda: ("b", 10) in fired(out), "B's windows to fire while A is idle")
        b.finish()
        a.resume.set()
        a.finish.set()
        await asyncio.wait_for(run, DEADLINE_S)
    finally:
        run.cancel()
    assert sorted(fired(out)) == [("a", 0), ("b", 0), ("b", 10), ("b", 20)]
