"""Backpressure: a slow sink holds a fast source back; overflow policies drop and count; rate limits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from time import monotonic

import pytest
from runtime_helpers import GatedSink, wait_until

import streamcore as sc
from connectors.memory import IterableSource, ListSink

CAPACITY = 100
BATCH = 10


def until(stop: asyncio.Event) -> Iterator[int]:
    """Consecutive ints, as fast as they are read, until ``stop`` is set."""
    i = 0
    while not stop.is_set():
        yield i
        i += 1


def source_blocked(flow: sc.Dataflow, mailbox: str) -> bool:
    stats = flow.statistics()
    return stats is not None and stats.mailboxes[mailbox].senders_waiting == 1


async def test_a_slow_sink_holds_a_fast_source_back_within_the_mailbox_bound() -> None:
    stop = asyncio.Event()
    sink = GatedSink()
    flow = sc.Dataflow("held-back", mailbox_capacity=CAPACITY)
    (
        flow.source(IterableSource(until(stop)), batch_size=BATCH, name="numbers")
        .map(lambda x: x, name="copy")
        .sink(sink, name="gated")
    )
    run = asyncio.create_task(flow.run())
    bound = 2 * CAPACITY + BATCH
    try:
        for round_ in range(6):
            await wait_until(lambda: source_blocked(flow, "copy+gated"), what="the source to block")
            produced = flow.statistics().actor("numbers").records_out
            written = len(sink.items)
            assert produced - written <= bound, f"round {round_}: {produced} produced, {written} written"
            assert produced > written  # it is really blocked on a full mailbox, not finished
            await sink.allow(3)
            target = 3 * (round_ + 1)
            await wait_until(lambda t=target: sink.batches_written == t, what="3 more batches")
        stats = flow.statistics()
        assert stats.actor("numbers").backpressured_s > 0
        assert stats.mailboxes["copy+gated"].blocked_s > 0
        assert stats.mailboxes["copy+gated"].size <= CAPACITY
    finally:
        stop.set()
        await sink.open_gate()
        await asyncio.wait_for(run, 10)
    produced = flow.statistics().actor("numbers").records_out
    assert sink.items == list(range(produced))


@pytest.mark.parametrize("chaining", [True, False], ids=["chained", "unchained"])
async def test_backpressure_reaches_the_source_through_every_stage(chaining: bool) -> None:
    stop = asyncio.Event()
    sink = GatedSink()
    flow = sc.Dataflow("chain-held-back", mailbox_capacity=CAPACITY, chaining=chaining)
    (
        flow.source(IterableSource(until(stop)), batch_size=BATCH, name="numbers")
        .map(lambda x: x + 1, name="inc")
        .filter(lambda x: True, name="keep")
        .sink(sink, name="gated")
    )
    run = asyncio.create_task(flow.run())
    mailboxes = 1 if chaining else 3
    try:
        first_box = "inc+keep+gated" if chaining else "inc"
        await wait_until(lambda: source_blocked(flow, first_box), what="the source to block")
        produced = flow.statistics().actor("numbers").records_out
        # Each mailbox on the way holds at most its capacity (plus a batch in hand per actor).
        assert produced <= mailboxes * (CAPACITY + 2 * BATCH) + BATCH
    finally:
        stop.set()
        await sink.open_gate()
        await asyncio.wait_for(run, 10)
    produced = flow.statistics().actor("numbers").records_out
    assert sink.items == list(range(1, produced + 1))


async def test_several_sources_feeding_one_slow_sink_always_finish() -> None:
    # Several producers contend for one small mailbox: a sender must never be left
    # waiting on a mailbox that has already drained (that hangs the flow).
    for seed in range(40):
        rnd = random.Random(seed)
        got: list[int] = []

        async def slow(x: int, rnd: random.Random = rnd, got: list[int] = got) -> None:
            if rnd.random() < 0.3:
                await asyncio.sleep(0)
            got.append(x)

        flow = sc.Dataflow(f"fan-in-{seed}", mailbox_capacity=rnd.randint(1, 20))
        numbers = [
            flow.source(IterableSource(range(i * 1_000, i * 1_000 + 300)), batch_size=rnd.randint(1, 15))
            for i in range(3)
        ]
        numbers[0].union(*numbers[1:]).sink(slow)
        try:
            await asyncio.wait_for(flow.run(), 5)
        except TimeoutError:
            pytest.fail(f"seed {seed}: the flow hung")
        assert sorted(got) == [x for i in range(3) for x in range(i * 1_000, i * 1_000 + 300)]


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
async def test_an_overflow_policy_drops_and_counts_instead_of_blocking(overflow: str) -> None:
    total = 5_000
    sink = GatedSink()
    flow = sc.Dataflow(f"overflow-{overflow}", mailbox_capacity=CAPACITY)
    (
        flow.source(IterableSource(range(total)), batch_size=BATCH, overflow=overflow, name="numbers")
        .sink(sink, name="gated")
    )
    run = asyncio.create_task(flow.run())
    # The sink writes nothing until the source has read everything: it was never held back.
    await wait_until(
        lambda: flow.statistics() is not None and flow.statistics().actor("numbers").finished,
        what="the source to finish",
    )
    assert sink.batches_written == 0
    await sink.open_gate()
    await asyncio.wait_for(run, 10)
    source = flow.statistics().actor("numbers")
    delivered = len(sink.items)
    assert source.records_in == total
    assert source.dropped > 0
    assert source.dropped + delivered == total
    assert delivered <= CAPACITY + 2 * BATCH
    assert sink.items == sorted(sink.items)  # what survives keeps its order
    if overflow == "drop_newest":
        assert sink.items[:BATCH] == list(range(BATCH))
        assert total - 1 not in sink.items
    else:
        assert sink.items[-1] == total - 1


async def test_max_rate_throttles_the_source() -> None:
    out = ListSink()
    flow = sc.Dataflow("throttled")
    flow.source(IterableSource(range(1_000)), max_rate=2_000).sink(out)
    started = monotonic()
    await asyncio.wait_for(flow.run(), 10)
    elapsed = monotonic() - started
    assert out.items == list(range(1_000))
    assert elapsed >= 0.4, f"1000 records at 2000/s took only {elapsed:.3f} s"
