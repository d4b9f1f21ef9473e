"""The builder API end to end: the documented example, operators, async functions, order, parallelism."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink

# The example of API.md, with one allowed-late and one too-late record. Watermark bound 2 s,
# windows of 10 s, lateness 5 s, one record per batch (so one watermark per record).
CLICKS = [
    {"user": "a", "ts": 1_000, "amount": 100},
    {"user": "b", "ts": 2_000, "amount": 10},  # filtered out (< 50)
    {"user": "a", "ts": 5_000, "amount": 50},
    {"user": "b", "ts": 9_000, "amount": 200},
    {"user": "a", "ts": 12_000, "amount": 60},  # afterwards W = 10 000: [0, 10 s) fires
    {"user": "b", "ts": 6_000, "amount": 90},  # W = 10 000 < 15 000: updates b's [0, 10 s)
    {"user": "a", "ts": 30_000, "amount": 70},  # afterwards W = 28 000: [0, 10 s) is freed
    {"user": "b", "ts": 8_000, "amount": 80},  # all its windows freed: late
]


def build_clicks_flow(records: list[dict[str, Any]]) -> tuple[sc.Dataflow, ListSink, ListSink]:
    flow = sc.Dataflow("clicks")
    events = flow.source(
        IterableSource(records),
        timestamp=lambda e: e["ts"],
        max_out_of_orderness=timedelta(seconds=2),
        batch_size=1,
    )
    out = ListSink()
    totals = (
        events.filter(lambda e: e["amount"] >= 50)
        .map(lambda e: {**e, "amount": e["amount"] * 1.1})
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(timedelta(seconds=10)), allowed_lateness=timedelta(seconds=5))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
    )
    totals.sink(out)
    late = ListSink()
    totals.late.sink(late)
    return flow, out, late


def rounded(results: Iterable[sc.WindowResult]) -> list[tuple[Any, ...]]:
    """Window results as sortable tuples with totals rounded (they are floats)."""
    return sorted(
        (r.start, r.end, r.key, r.is_update, r.value["n"], round(r.value["total"], 6)) for r in results
    )


async def test_the_documented_example_gives_the_results_computed_by_hand() -> None:
    flow, out, late = build_clicks_flow(CLICKS)
    await flow.run()
    assert all(isinstance(r, sc.WindowResult) for r in out.items)
    assert rounded(out.items) == [
        (0, 10_000, "a", False, 2, 165.0),  # 110 + 55
        (0, 10_000, "b", False, 1, 220.0),
        (0, 10_000, "b", True, 2, 319.0),  # 220 + 99, after the allowed-late record
        (10_000, 20_000, "a", False, 1, 66.0),
        (30_000, 40_000, "a", False, 1, 77.0),
    ]
    assert [(e["user"], e["ts"]) for e in late.items] == [("b", 8_000)]
    assert late.items[0]["amount"] == pytest.approx(88.0)
    # The first results fire on the watermark, before the end of the stream.
    first_two = rounded(out.items[:2])
    assert [(r[0], r[2]) for r in first_two] == [(0, "a"), (0, "b")]


async def test_map_filter_flat_map_and_union_feed_a_plain_function_sink() -> None:
    flow = sc.Dataflow("plain")
    numbers = flow.source(IterableSource([1, 2, 3, 4, 5, 6]), name="numbers")
    tens = flow.source(IterableSource([10, 20]), name="tens")
    got: list[int] = []
    evens = numbers.filter(lambda x: x % 2 == 0).map(lambda x: x * 100)
    pairs = tens.flat_map(lambda x: [x, x + 1])
    evens.union(pairs).sink(got.append)
    await flow.run()
    assert sorted(got) == [10, 11, 20, 21, 200, 400, 600]


async def test_async_functions_work_as_map_filter_flat_map_and_sink() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    async def is_not_six(x: int) -> bool:
        await asyncio.sleep(0)
        return x != 6

    async def twice(x: int) -> list[int]:
        await asyncio.sleep(0)
        return [x, -x]

    got: list[int] = []

    async def collect(x: int) -> None:
        await asyncio.sleep(0)
        got.append(x)

    flow = sc.Dataflow("async")
    (
        flow.source(IterableSource(range(5)), batch_size=2)
        .map(double)
        .filter(is_not_six)
        .flat_map(twice)
        .sink(collect)
    )
    await flow.run()
    assert got == [0, 0, 2, -2, 4, -4, 8, -8]


async def test_a_callable_object_with_an_async_call_is_awaited() -> None:
    class AddOne:
        async def __call__(self, x: int) -> int:
            await asyncio.sleep(0)
            return x + 1

    out = ListSink()
    flow = sc.Dataflow("callable")
    flow.source(IterableSource([1, 2, 3])).map(AddOne()).sink(out)
    await flow.run()
    assert out.items == [2, 3, 4]


async def test_a_callable_object_with_an_async_call_works_as_a_sink() -> None:
    class Store:
        def __init__(self) -> None:
            self.items: list[int] = []

        async def __call__(self, x: int) -> None:
            await asyncio.sleep(0)
            self.items.append(x)

    store = Store()
    flow = sc.Dataflow("callable-sink")
    flow.source(IterableSource([1, 2, 3])).sink(store)
    await flow.run()
    assert store.items == [1, 2, 3]


def test_run_sync_runs_a_flow_outside_an_event_loop() -> None:
    out = ListSink()
    flow = sc.Dataflow("sync")
    flow.source(IterableSource(range(10))).map(lambda x: x * x).sink(out)
    flow.run_sync()
    assert out.items == [x * x for x in range(10)]
    assert out.closed


async def test_run_sync_inside_a_running_loop_says_to_await_run_instead() -> None:
    out = ListSink()
    flow = sc.Dataflow("sync-in-loop")
    flow.source(IterableSource([1])).sink(out)
    with pytest.raises(RuntimeError, match=r"run_sync\(\) cannot be called from a running event loop; await run\(\) instead") as caught:
        flow.run_sync()
    assert isinstance(caught.value, sc.StreamcoreError)
    assert out.items == []
    await flow.run()  # the flow itself is untouched and still runs
    assert out.items == [1]


@pytest.mark.parametrize("chaining", [True, False], ids=["chained", "unchained"])
async def test_order_is_kept_along_a_path_without_repartitioning(chaining: bool) -> None:
    out = ListSink()
    flow = sc.Dataflow("order", mailbox_capacity=16, chaining=chaining)
    (
        flow.source(IterableSource(range(3_000)), batch_size=7)
        .map(lambda x: x * 3)
        .filter(lambda x: x % 2 == 0)
        .flat_map(lambda x: [x, x + 1])
        .map(lambda x: x - 1)
        .sink(out)
    )
    await flow.run()
    expected = [y - 1 for x in range(3_000) if (x * 3) % 2 == 0 for y in (x * 3, x * 3 + 1)]
    assert out.items == expected
    source = flow.statistics().actor("iterable")
    assert source.batches_in == -(-3_000 // 7)


class RunningCount(sc.KeyedProcessFunction):
    """Emits ``(key, how many records of this key so far, value)`` per record."""

    def process(self, record: Any, ctx: sc.ProcessContext) -> list[tuple[Any, int, Any]]:
        n = ctx.state.get("n", 0) + 1
        ctx.state["n"] = n
        return [(ctx.key, n, record["v"])]


KEYED = [{"k": i % 23, "v": i, "ts": i * 10} for i in range(1_500)]


def by_key(items: list[tuple[Any, ...]]) -> dict[Any, list[tuple[Any, ...]]]:
    groups: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    for item in items:
        groups[item[0]].append(item)
    return dict(groups)


async def run_running_count(parallelism: int) -> tuple[list[Any], sc.Dataflow]:
    out = ListSink()
    flow = sc.Dataflow(f"keyed-{parallelism}", mailbox_capacity=50)
    (
        flow.source(IterableSource(KEYED), timestamp=lambda r: r["ts"], batch_size=20)
        .key_by(lambda r: r["k"])
        .process(RunningCount(), parallelism=parallelism, name="count")
        .sink(out)
    )
    await flow.run()
    return out.items, flow


async def test_a_keyed_stage_on_three_actors_gives_the_same_per_key_results_as_on_one() -> None:
    single, _ = await run_running_count(1)
    parallel, flow = await run_running_count(3)
    assert len(single) == len(KEYED)
    assert by_key(parallel) == by_key(single)
    counters = [a for a in flow.statistics().actors if "count" in a.stages]
    assert len(counters) == 3
    assert all(a.records_in > 0 for a in counters)
    assert sum(a.records_in for a in counters) == len(KEYED)


async def run_window_counts(parallelism: int) -> list[sc.WindowResult]:
    out = ListSink()
    flow = sc.Dataflow(f"windows-{parallelism}", mailbox_capacity=50)
    (
        flow.source(IterableSource(KEYED), timestamp=lambda r: r["ts"], batch_size=25)
        .key_by(lambda r: r["k"])
        .window(sc.TumblingWindows(1_000))
        .aggregate(
            {"n": sc.agg.count(), "sum": sc.agg.sum(lambda r: r["v"])}, parallelism=parallelism
        )
        .sink(out)
    )
    await flow.run()
    return out.items


async def test_a_window_aggregate_on_three_actors_gives_the_same_results_as_on_one() -> None:
    single = await run_window_counts(1)
    parallel = await run_window_counts(3)
    assert len(single) == 23 * 15  # every key has records in each of the 15 windows
    assert sum(r.value["n"] for r in single) == len(KEYED)
    assert sorted(parallel) == sorted(single)


async def run_stateless(chaining: bool) -> tuple[list[Any], sc.Dataflow]:
    out = ListSink()
    flow = sc.Dataflow("chaining", chaining=chaining, mailbox_capacity=30)
    (
        flow.source(IterableSource(range(500)), batch_size=9, name="numbers")
        .map(lambda x: x + 1, name="inc")
        .filter(lambda x: x % 3 != 0, name="no_threes")
        .flat_map(lambda x: [x] * (x % 3), name="repeat")
        .sink(out, name="out")
    )
    await flow.run()
    return out.items, flow


async def test_chaining_on_and_off_give_the_same_output_with_fused_and_separate_actors() -> None:
    fused_out, fused = await run_stateless(chaining=True)
    separate_out, separate = await run_stateless(chaining=False)
    assert fused_out == separate_out
    assert len(fused_out) > 300
    fused_stats, separate_stats = fused.statistics(), separate.statistics()
    assert [a.stages for a in fused_stats.actors] == [
        ("numbers",),
        ("inc", "no_threes", "repeat", "out"),
    ]
    assert fused_stats.actor("repeat").name == "inc+no_threes+repeat+out"
    assert [a.stages for a in separate_stats.actors] == [
        ("numbers",),
        ("inc",),
        ("no_threes",),
        ("repeat",),
        ("out",),
    ]
    assert len(fused_stats.mailboxes) == 1
    assert len(separate_stats.mailboxes) == 4
    assert separate_stats.actor("no_threes").records_out == sum(
        1 for x in range(1, 501) if x % 3 != 0
    )
    assert all(a.finished for a in separate_stats.actors)


async def test_each_consumer_of_a_stream_gets_every_record_in_its_own_batches() -> None:
    class Draining(sc.Sink):
        """Empties each batch it is given (a sink may do what it likes with its batch)."""

        def __init__(self) -> None:
            self.items: list[int] = []

        def write_batch(self, records: list[int]) -> None:
            self.items.extend(records)
            records.clear()

    first, second = Draining(), Draining()
    flow = sc.Dataflow("fan-out")
    numbers = flow.source(IterableSource(range(100)), batch_size=10)
    numbers.sink(first, name="first")
    numbers.sink(second, name="second")
    await flow.run()
    assert first.items == list(range(100))
    assert second.items == list(range(100))


async def test_statistics_is_none_before_the_first_run() -> None:
    flow = sc.Dataflow("fresh")
    flow.source(IterableSource([1])).sink(ListSink())
    assert flow.statistics() is None
    await flow.run()
    assert flow.statistics().actor("iterable").records_out == 1
