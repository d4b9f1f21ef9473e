"""``KeyedStream.process``: per-key state and event-time timers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.testing import StageDriver


class RunningCount(sc.KeyedProcessFunction):
    """Counts each key's records; 10 ms after a key's first record, reports and forgets it."""

    def process(self, record: Any, ctx: sc.ProcessContext) -> Iterable[Any]:
        n = ctx.state.get("n", 0) + 1
        ctx.state["n"] = n
        if n == 1:
            ctx.register_timer(ctx.timestamp_ms + 10)
        return [("seen", ctx.key, n)]

    def on_timer(self, timestamp_ms: int, ctx: sc.ProcessContext) -> Iterable[Any]:
        out = [("timer", ctx.key, timestamp_ms, ctx.state.get("n"))]
        ctx.clear_state()
        return out


def key(r: dict[str, Any]) -> Any:
    return r["k"]


def test_state_is_private_to_each_key() -> None:
    driver = StageDriver.process(RunningCount(), key=key)
    driver.add_batch([({"k": "a"}, 1), ({"k": "b"}, 2), ({"k": "a"}, 3)])
    assert driver.read() == [("seen", "a", 1), ("seen", "b", 1), ("seen", "a", 2)]
    assert driver.statistics().keys == 2


def test_timers_fire_when_the_watermark_reaches_them_in_time_order() -> None:
    driver = StageDriver.process(RunningCount(), key=key)
    driver.add_batch([({"k": "b"}, 5), ({"k": "a"}, 1), ({"k": "a"}, 2)])
    driver.read()
    driver.advance_watermark(10)  # a's timer is at 11: not yet
    assert driver.read() == []
    driver.advance_watermark(11)
    assert driver.read() == [("timer", "a", 11, 2)]
    driver.advance_watermark(100)
    assert driver.read() == [("timer", "b", 15, 1)]
    stats = driver.statistics()
    assert (stats.keys, stats.timers) == (0, 0)  # cleared state is freed


def test_several_timers_due_at_once_fire_in_time_order() -> None:
    driver = StageDriver.process(RunningCount(), key=key)
    driver.add_batch([({"k": k}, t) for k, t in [("c", 30), ("a", 10), ("b", 20)]])
    driver.read()
    driver.advance_watermark(1000)
    assert [(k, t) for _, k, t, _ in driver.read()] == [("a", 20), ("b", 30), ("c", 40)]


def test_end_of_stream_fires_every_remaining_timer_in_order() -> None:
    driver = StageDriver.process(RunningCount(), key=key)
    driver.add_batch([({"k": "b"}, 50), ({"k": "a"}, 40)])
    driver.read()
    driver.end()
    assert driver.read() == [("timer", "a", 50, 1), ("timer", "b", 60, 1)]


class Heartbeat(sc.KeyedProcessFunction):
    """Re-arms its timer every 5 ms forever: the end of the stream must still end."""

    def process(self, record: Any, ctx: sc.ProcessContext) -> None:
        ctx.register_timer(ctx.timestamp_ms + 5)

    def on_timer(self, timestamp_ms: int, ctx: sc.ProcessContext) -> Iterable[Any]:
        ctx.register_timer(timestamp_ms + 5)
        return [timestamp_ms]


def test_a_self_rescheduling_timer_does_not_keep_the_end_of_stream_from_finishing() -> None:
    driver = StageDriver.process(Heartbeat(), key=key)
    driver.add({"k": "a"}, 0)
    driver.advance_watermark(12)
    assert driver.read() == [5, 10]
    driver.end()
    assert driver.read() == [15]
    assert driver.step.dropped_timers == 1


def test_duplicate_timers_of_a_key_fire_once() -> None:
    class Twice(sc.KeyedProcessFunction):
        def process(self, record: Any, ctx: sc.ProcessContext) -> None:
            ctx.register_timer(7)
            ctx.register_timer(7)

        def on_timer(self, timestamp_ms: int, ctx: sc.ProcessContext) -> Iterable[Any]:
            return [(ctx.key, timestamp_ms)]

    driver = StageDriver.process(Twice(), key=key)
    driver.add_batch([({"k": "a"}, 1), ({"k": "a"}, 2), ({"k": "b"}, 3)])
    driver.end()
    assert driver.read() == [("a", 7), ("b", 7)]


def test_a_process_stage_in_a_flow_fires_timers_from_watermarks_and_at_the_end() -> None:
    records = [{"k": k, "ts": t} for k, t in [("a", 0), ("b", 3), ("a", 4), ("c", 30), ("b", 31)]]
    flow = sc.Dataflow("process")
    out = ListSink()
    (
        flow.source(IterableSource(records), timestamp=lambda r: r["ts"], batch_size=1)
        .key_by(key)
        .process(RunningCount())
        .sink(out)
    )
    flow.run_sync()
    assert out.items == [
        ("seen", "a", 1),
        ("seen", "b", 1),
        ("seen", "a", 2),
        ("seen", "c", 1),  # W = 30 fires a (10) and b (13) after this batch
        ("timer", "a", 10, 2),
        ("timer", "b", 13, 1),
        ("seen", "b", 1),  # b's state was cleared by its timer
        ("timer", "c", 40, 1),  # end of stream
        ("timer", "b", 41, 1),
    ]
    stats = flow.statistics().stages["process"]
    assert (stats.keys, stats.timers) == (0, 0)


def test_a_failing_process_function_names_the_stage() -> None:
    class Broken(sc.KeyedProcessFunction):
        def process(self, record: Any, ctx: sc.ProcessContext) -> None:
            raise ValueError("boom")

    driver = StageDriver.process(Broken(), key=key)
    with pytest.raises(sc.StageError, match="process") as info:
        driver.add({"k": "a"}, 1)
    assert isinstance(info.value.__cause__, ValueError)
    skipping = StageDriver.process(Broken(), key=key, on_error="skip")
    skipping.add({"k": "a"}, 1)
    assert skipping.skipped == 1 and skipping.read() == []


def test_process_takes_a_keyed_process_function() -> None:
    flow = sc.Dataflow("bad")
    keyed = flow.source(IterableSource([]), timestamp=lambda r: 0).key_by(key)
    with pytest.raises(sc.GraphError, match="KeyedProcessFunction"):
        keyed.process(lambda r: r)
