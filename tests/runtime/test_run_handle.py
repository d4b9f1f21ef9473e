"""The run handle: start, ready, stop (drain, suspend, bounded), restarts, cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from time import monotonic
from typing import Any

import pytest
from runtime_helpers import GatedSink, flow_tasks, wait_until

import streamcore as sc
from connectors.memory import IterableSource, ListSink


class Counter(sc.Source):
    """Endless, rewindable: ``(key, n)`` with n = 1, 2, ...; event time n ms.

    ``fail_at``: raise once the count passes it (every attempt, unless ``once``)."""

    rewindable = True

    def __init__(self, *, fail_at: int | None = None, once: bool = False, limit: int | None = None) -> None:
        self.n = 0
        self.fail_at = fail_at
        self.once = once
        self.failures = 0
        self.limit = limit
        self.opened = 0

    async def open(self, context: sc.SourceContext, position: Any | None = None) -> None:
        self.opened += 1
        self.n = position or 0

    def position(self) -> Any:
        return self.n

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        if self.limit is not None and self.n >= self.limit:
            return None
        if self.fail_at is not None and self.n >= self.fail_at and not (self.once and self.failures):
            self.failures += 1
            raise RuntimeError(f"source broke at {self.n}")
        await asyncio.sleep(0)  # an endless source still lets the loop breathe
        batch = [(f"k{(self.n + i) % 7}", self.n + i + 1) for i in range(min(max_records, 100))]
        self.n += len(batch)
        return batch


def windowed(name: str, source: sc.Source, out: Any) -> sc.Dataflow:
    flow = sc.Dataflow(name)
    (
        flow.source(source, timestamp=lambda r: r[1], name="counter")
        .key_by(lambda r: r[0])
        .window(sc.TumblingWindows(1_000_000_000))
        .aggregate(sc.agg.count())
        .sink(out)
    )
    return flow


def checkpointing() -> sc.Checkpointing:
    return sc.Checkpointing(sc.MemoryStateStore(), interval=0.05)


async def test_start_returns_a_ready_handle_and_stop_drains_firing_open_windows() -> None:
    out = ListSink()
    flow = windowed("handle-drain", Counter(), out)
    run = await flow.start()
    assert run.ready and not run.done and run.state is sc.RunState.RUNNING
    await wait_until(lambda: run.statistics().actor("counter").records_out > 1_000, what="records")
    assert out.items == []  # the one window is still open
    await run.stop()
    assert run.done and run.state is sc.RunState.STOPPED and not run.ready
    read = run.statistics().actor("counter").records_out
    assert sum(r.value for r in out.items) == read  # drained: every record read was counted
    assert flow.statistics() is run.statistics() or flow.statistics() is not None


async def test_stop_with_suspend_keeps_open_windows_for_the_next_run() -> None:
    store = sc.MemoryStateStore()
    out = ListSink()
    source = Counter()
    flow = windowed("handle-suspend", source, out)
    run = await flow.start(checkpoint=sc.Checkpointing(store, interval=0.05))
    await wait_until(lambda: source.n > 2_000, what="records")
    await run.stop(suspend=True)
    assert out.items == []  # no window fired early
    stopped_at = source.n
    again = Counter(limit=stopped_at + 500)
    await windowed("handle-suspend", again, out).run(checkpoint=sc.Checkpointing(store, interval=0.05))
    assert sum(r.value for r in out.items) == stopped_at + 500  # each record counted once


async def test_suspend_without_checkpoints_is_refused() -> None:
    run = await windowed("handle-no-suspend", Counter(), ListSink()).start()
    try:
        with pytest.raises(sc.CheckpointError, match=r"stop\(suspend=True\) stops at a checkpoint"):
            await run.stop(suspend=True)
    finally:
        await run.stop()


async def test_wait_reraises_the_failure_of_the_run() -> None:
    run = await windowed("handle-fails", Counter(fail_at=500), ListSink()).start()
    with pytest.raises(sc.StreamcoreError, match="source broke at 500"):
        await run.wait()
    assert run.state is sc.RunState.FAILED and run.done


async def test_a_start_up_error_is_raised_by_start() -> None:
    flow = sc.Dataflow("handle-bad-graph")
    flow.source(IterableSource([1]))  # no sink
    with pytest.raises(sc.GraphError):
        await flow.start()


async def test_restarts_are_counted_on_the_handle() -> None:
    source = Counter(fail_at=300, once=True, limit=1_000)
    out = ListSink()
    run = await windowed("handle-restarts", source, out).start(
        checkpoint=checkpointing(), restart=sc.RestartPolicy(3, delay=0)
    )
    await run.wait()
    assert run.restarts == 1 and source.opened == 2
    assert sum(r.value for r in out.items) == 1_000


async def test_a_stop_during_the_restart_backoff_ends_the_run_at_once() -> None:
    source = Counter(fail_at=100)  # fails on every attempt
    run = await windowed("handle-backoff", source, ListSink()).start(
        checkpoint=checkpointing(), restart=sc.RestartPolicy(100, delay=3600)
    )
    await wait_until(lambda: run.state is sc.RunState.RESTARTING, what="the restart backoff")
    started = monotonic()
    await run.stop()
    assert monotonic() - started < 5  # not an hour of backoff
    assert run.state is sc.RunState.STOPPED and run.restarts == 1
    assert isinstance(run.last_error, sc.StreamcoreError)
    assert source.opened == 1  # no attempt after the stop


async def test_a_stop_asked_for_while_restoring_is_honoured() -> None:
    class SlowRestore(sc.MemoryStateStore):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def get_many(self, keys: Any) -> dict[str, bytes]:
            await self.gate.wait()  # the restore reads the index first: hold it there
            return await super().get_many(keys)

    store = SlowRestore()
    source = Counter()
    flow = windowed("handle-restoring", source, ListSink())
    run = sc.FlowRun(flow, sc.Checkpointing(store, interval=0.05))
    starting = asyncio.ensure_future(run.start())
    await wait_until(lambda: run.attempt is not None, what="the first attempt")
    run.request_stop()
    store.gate.set()
    await starting
    async with asyncio.timeout(10):
        await run.wait()
    assert run.state is sc.RunState.STOPPED
    assert source.n < 100_000  # it stopped instead of running on


async def test_a_drain_past_its_timeout_is_cancelled_and_says_how_many_records_were_in_flight() -> None:
    gated = GatedSink()
    flow = sc.Dataflow("handle-drain-timeout", mailbox_capacity=100)
    flow.source(Counter(), batch_size=10).sink(gated, name="stuck")
    run = await flow.start()
    await wait_until(lambda: run.statistics().mailboxes["stuck"].senders_waiting == 1, what="backpressure")
    with pytest.raises(sc.DrainTimeoutError, match=r"did not end within 0.2s; cancelled with \d+ records") as info:
        await run.stop(timeout=0.2)
    assert info.value.in_flight > 0
    assert run.done and flow_tasks() == []


async def test_a_drain_past_its_timeout_with_checkpoints_resumes_from_the_last_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gated = GatedSink()
    flow = sc.Dataflow("handle-drain-timeout-cp", mailbox_capacity=100)
    flow.source(Counter(), batch_size=10).sink(gated, name="stuck")
    run = await flow.start(checkpoint=checkpointing())
    await wait_until(lambda: run.statistics().mailboxes["stuck"].senders_waiting == 1, what="backpressure")
    with caplog.at_level(logging.WARNING, logger="streamcore.run"):
        await run.stop(suspend=True, timeout=0.2)
    assert "resumes from the last complete checkpoint" in caplog.text
    assert run.done and flow_tasks() == []


async def test_a_long_drain_logs_its_progress(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamcore.dataflow import handle

    monkeypatch.setattr(handle, "DRAIN_LOG_EVERY_S", 0.05)
    gated = GatedSink()
    flow = sc.Dataflow("handle-drain-log", mailbox_capacity=100)
    flow.source(Counter(limit=2_000), batch_size=10).sink(gated, name="stuck")
    run = await flow.start()
    await wait_until(lambda: run.statistics().mailboxes["stuck"].senders_waiting == 1, what="backpressure")
    with caplog.at_level(logging.INFO, logger="streamcore.run"):
        stopping = asyncio.ensure_future(run.stop())
        await wait_until(lambda: "drain in progress" in caplog.text, what="a progress line")
        await gated.open_gate()
        await stopping
    assert "in_flight=" in caplog.text


async def test_a_restart_that_cannot_replay_reports_the_original_error() -> None:
    def numbers() -> Any:
        for i in range(10_000):
            if i == 500:
                raise ValueError("bad input at 500")
            yield i

    flow = sc.Dataflow("handle-no-replay")
    flow.source(IterableSource(numbers())).sink(ListSink())
    with pytest.raises(sc.StreamcoreError, match="bad input at 500"):
        await flow.run(restart=sc.RestartPolicy(3, delay=0))


# -- cancellation ---------------------------------------------------------------------------


async def endless() -> AsyncIterator[int]:
    i = 0
    while True:
        yield i
        i += 1
        if i % 100 == 0:
            await asyncio.sleep(0)


@pytest.mark.parametrize("how", ["run", "wait"])
async def test_cancelling_the_awaiting_task_stops_every_actor_within_a_second(how: str) -> None:
    before = asyncio.all_tasks()
    flow = sc.Dataflow(f"handle-cancel-{how}", mailbox_capacity=100)
    gated = GatedSink()
    flow.source(IterableSource(endless()), batch_size=10).sink(gated, name="slow")
    if how == "run":
        task = asyncio.ensure_future(flow.run())
    else:
        run = await flow.start()
        task = asyncio.ensure_future(run.wait())
        await asyncio.sleep(0)  # the task awaits wait() (a task cancelled before its first step never ran)
    await wait_until(lambda: len(flow_tasks()) == 2, what="the actors")
    await wait_until(
        lambda: flow.statistics().mailboxes["slow"].senders_waiting == 1, what="the source to block"
    )
    task.cancel()
    started = monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert monotonic() - started < 1.0
    assert flow_tasks() == []
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
    assert flow._latest_run is not None and flow._latest_run.state is sc.RunState.CANCELLED
