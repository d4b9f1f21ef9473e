"""Async enrichment: bounded calls in flight across batches, ordered and unordered output,
watermarks never overtaken, timeouts and retries following on_error, the lookup cache."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.execution.runner import Runtime
from streamcore.operators.async_map import AsyncMapStep
from streamcore.runtime.steps import Step


class Recorder(Step):
    """Keeps what reaches it: ("records", [...]) and ("watermark", w) events, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        self.events.append(("records", list(records)))

    async def on_watermark(self, timestamp_ms: float) -> None:
        self.events.append(("watermark", timestamp_ms))

    async def on_end(self) -> None:
        self.events.append(("end", None))

    def records(self) -> list[Any]:
        return [r for kind, batch in self.events if kind == "records" for r in batch]


def async_step(fn: Any, **options: Any) -> tuple[AsyncMapStep, Recorder]:
    flow = sc.Dataflow("async-step")
    stream = flow.source(IterableSource([]), timestamp=lambda r: 0).map(fn, **options)
    step = AsyncMapStep(stream.node, lambda *a: None)  # type: ignore[arg-type]
    recorder = Recorder()
    step.next = recorder
    return step, recorder


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)


async def test_at_most_n_calls_are_in_flight_across_batches() -> None:
    running = 0
    peak = 0

    async def lookup(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)  # the lookup's latency
        running -= 1
        return x * 2

    flow = sc.Dataflow("bounded")
    out = ListSink()
    flow.source(IterableSource(range(300)), batch_size=5).map(lookup, concurrency=12).sink(out)
    await flow.run()
    assert out.items == [x * 2 for x in range(300)]
    # More than one batch's worth at once (so across batches), never more than 12.
    assert 5 < peak <= 12


async def test_unordered_results_go_as_they_finish_but_never_past_a_watermark() -> None:
    gates: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(6)}

    async def lookup(x: int) -> int:
        await gates[x].wait()
        return x

    step, rec = async_step(lookup, concurrency=10, ordered=False)
    await step.open()
    try:
        await step.on_batch([0, 1, 2], [0, 1, 2])
        await step.on_watermark(3)
        await step.on_batch([3, 4, 5], [3, 4, 5])
        for i in (5, 4, 2):  # finishes out of order, some after the watermark first
            gates[i].set()
        await wait_until(lambda: rec.records() == [2])
        gates[0].set()
        gates[1].set()
        await wait_until(lambda: len(rec.records()) == 5)
        gates[3].set()
        await step.on_end()
    finally:
        await step.close()
    out = rec.records()
    assert sorted(out[:3]) == [0, 1, 2] and out[0] == 2
    assert rec.events.index(("watermark", 3)) < next(
        i for i, (kind, batch) in enumerate(rec.events) if kind == "records" and 5 in batch
    )
    assert sorted(out[3:]) == [3, 4, 5]


async def test_ordered_results_keep_input_order_whatever_finishes_first() -> None:
    async def lookup(x: int) -> int:
        await asyncio.sleep((7 - x % 7) * 0.001)
        return x

    step, rec = async_step(lookup, concurrency=5, ordered=True)
    await step.open()
    try:
        await step.on_batch(list(range(10)), list(range(10)))
        await step.on_watermark(10)
        await step.on_batch(list(range(10, 20)), list(range(10, 20)))
        await step.on_end()
    finally:
        await step.close()
    assert rec.records() == list(range(20))
    assert rec.events[-1] == ("end", None)
    watermark_at = rec.events.index(("watermark", 10))
    before = [r for kind, b in rec.events[:watermark_at] if kind == "records" for r in b]
    assert before == list(range(10))


async def test_results_are_emitted_while_the_input_is_quiet() -> None:
    async def lookup(x: int) -> int:
        return x + 1

    step, rec = async_step(lookup, concurrency=4, ordered=False)
    await step.open()
    try:
        await step.on_batch([1, 2], None)
        # No further input: the emitter sends them on by itself.
        await wait_until(lambda: sorted(rec.records()) == [2, 3])
    finally:
        await step.close()


async def test_timeouts_and_failures_after_retries_go_to_dead_letters() -> None:
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if x % 5 == 0:
            await asyncio.Event().wait()  # never answers: times out every try
        if x % 5 == 1 and tries[x] == 1:
            raise ConnectionError("first try fails")
        if x % 5 == 2:
            raise ValueError("always fails")
        return x

    flow = sc.Dataflow("flaky")
    out, dead = ListSink(), ListSink()
    flow.source(IterableSource(range(20))).map(
        flaky, concurrency=8, timeout=timedelta(milliseconds=50), on_error="dead_letter",
        retry=sc.Retry(attempts=2, delay=timedelta(0)),
    ).sink(out)
    flow.dead_letters.sink(dead)
    await flow.run()
    assert out.items == [x for x in range(20) if x % 5 in (1, 3, 4)]
    failed = {d.record: type(d.error) for d in dead.items}
    assert failed == {x: TimeoutError for x in range(0, 20, 5)} | {x: ValueError for x in range(2, 20, 5)}
    assert all(tries[x] == 2 for x in range(20) if x % 5 in (0, 1, 2))


async def test_a_failed_lookup_fails_the_flow_naming_the_stage_and_record() -> None:
    async def broken(x: int) -> int:
        if x == 7:
            raise KeyError("no profile")
        return x

    flow = sc.Dataflow("fails")
    flow.source(IterableSource(range(20))).map(broken, concurrency=4, name="enrich").sink(ListSink())
    with pytest.raises(sc.StageError, match=r"'enrich'.*record 7") as info:
        await flow.run()
    assert isinstance(info.value.__cause__, KeyError)


def test_async_options_need_an_async_function() -> None:
    flow = sc.Dataflow("plain")
    with pytest.raises(sc.GraphError, match="async def"):
        flow.source(IterableSource([])).map(lambda x: x, concurrency=3)
    with pytest.raises(sc.GraphError, match="concurrency"):
        async def f(x: int) -> int:
            return x
        flow.source(IterableSource([])).map(f, concurrency=0)


async def test_cached_lookups_share_calls_and_expire() -> None:
    calls: list[str] = []

    @sc.cached(ttl=timedelta(milliseconds=200), maxsize=2)
    async def profile(user: str) -> str:
        calls.append(user)
        await asyncio.sleep(0.001)
        return user.upper()

    assert await asyncio.gather(profile("a"), profile("a"), profile("b")) == ["A", "A", "B"]
    assert calls == ["a", "b"]  # the two concurrent "a" lookups shared one call
    assert await profile("a") == "A" and calls == ["a", "b"]
    await profile("c")  # maxsize 2: evicts the least recently used ("b")
    await profile("b")
    assert calls == ["a", "b", "c", "b"]


async def test_checkpoints_drain_calls_in_flight_and_the_output_is_complete(tmp_path: Any) -> None:
    import orjson

    from connectors.files import JsonLinesSource

    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"i": i, "ts": i}) + b"\n" for i in range(3_000)))

    async def lookup(e: dict[str, int]) -> int:
        await asyncio.sleep(0.001 * (e["i"] % 3))
        return e["i"]

    flow = sc.Dataflow("async-checkpoints")
    out = ListSink()
    flow.source(JsonLinesSource(str(path)), timestamp=lambda e: e["ts"], batch_size=50, max_rate=20_000).map(
        lookup, concurrency=32, ordered=False
    ).sink(out)
    run = await flow.start(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.02))
    await run.wait()
    assert sorted(out.items) == list(range(3_000))
    runtime = run.attempt
    assert isinstance(runtime, Runtime) and runtime.coordinator is not None
    assert runtime.coordinator.statistics().completed >= 2
