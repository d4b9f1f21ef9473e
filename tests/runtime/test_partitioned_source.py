"""Watermarks of a partitioned source: the minimum over partitions that are not idle.

``Partitions`` is a source whose partitions the test feeds and marks caught up; the
Kafka source implements the same three calls against a real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from runtime_helpers import wait_until

import streamcore as sc
from connectors.memory import ListSink
from streamcore.execution.runner import Runtime
from streamcore.runtime.actor import SourceActor


class Partitions(sc.Source):
    """Records ``(partition, ts)`` released by the test; partitions marked caught up by it."""

    rewindable = True

    def __init__(self, partitions: list[str]) -> None:
        self.partitions = partitions
        self.queue: asyncio.Queue[list[tuple[str, int]] | None] = asyncio.Queue()
        self.caught: set[str] = set()
        self._last: list[str] = []

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        try:
            batch = await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            self._last = []
            return []
        if batch is None:
            return None
        self._last = [p for p, _ in batch]
        return batch

    def record_partitions(self) -> list[Any] | None:
        return self._last

    def assigned(self) -> Collection[Any]:
        return self.partitions

    def caught_up(self) -> Collection[Any]:
        return self.caught


def source_actor(flow: sc.Dataflow) -> SourceActor:
    run = flow._latest_run
    assert run is not None and isinstance(run.attempt, Runtime)
    runtime = run.attempt
    return next(a for a in runtime.actors if isinstance(a, SourceActor))


async def start(source: Partitions, *, idle_timeout: int | None = None) -> tuple[sc.Dataflow, asyncio.Task[None]]:
    flow = sc.Dataflow("partitioned")
    flow.source(source, timestamp=lambda r: r[1], idle_timeout=idle_timeout, max_out_of_orderness=10).sink(ListSink())
    task = asyncio.create_task(flow.run())
    await wait_until(lambda: flow._latest_run is not None and flow._latest_run.attempt is not None, what="the flow to start")
    return flow, task


async def test_the_watermark_is_the_minimum_over_partitions_and_names_the_one_holding_it() -> None:
    source = Partitions(["a", "b"])
    flow, task = await start(source)
    source.queue.put_nowait([("a", 1_000), ("b", 400), ("a", 1_200)])
    await wait_until(lambda: source_actor(flow).watermark_ms == 390, what="min over partitions")
    assert source_actor(flow).held_back_by == "b"
    source.queue.put_nowait([("b", 2_000)])
    await wait_until(lambda: source_actor(flow).watermark_ms == 1_190, what="a to hold it")
    assert source_actor(flow).held_back_by == "a"
    source.queue.put_nowait(None)
    await task


async def test_a_partition_with_a_backlog_holds_the_watermark_even_without_records() -> None:
    source = Partitions(["a", "b"])
    flow, task = await start(source, idle_timeout=1)
    source.queue.put_nowait([("a", 1_000)])
    # "b" is not caught up: however long it gives nothing, it is slow, not idle.
    await wait_until(lambda: source_actor(flow).held_back_by == "b", what="b to hold the watermark")
    for _ in range(5):
        source.queue.put_nowait([("a", 1_000)])
    await wait_until(lambda: source.queue.empty(), what="the batches to be read")
    assert source_actor(flow).watermark_ms == float("-inf")
    # Once caught up (and quiet for idle_timeout), it no longer holds the watermark.
    source.caught.add("b")
    await wait_until(lambda: source_actor(flow).watermark_ms == 990, what="b to go idle")
    assert source_actor(flow).held_back_by == "a"
    source.queue.put_nowait(None)
    await task


async def test_an_empty_caught_up_partition_is_left_out_without_an_idle_timeout() -> None:
    source = Partitions(["a", "empty"])
    source.caught.add("empty")
    flow, task = await start(source)
    source.queue.put_nowait([("a", 500)])
    await wait_until(lambda: source_actor(flow).watermark_ms == 490, what="a's watermark")
    source.queue.put_nowait(None)
    await task
