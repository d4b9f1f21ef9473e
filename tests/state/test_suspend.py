"""``Runtime.suspend``: stop a flow at a checkpoint without ending its stream.

This is what a scaled-out flow does with a partition the group takes away: the open
windows must stay open in the checkpoint (an end of stream would fire them early), and
the next run of the flow must carry on as if it had never stopped.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import streamcore as sc
from streamcore.errors import CheckpointError
from streamcore.execution.runner import Runtime
from tests.state.test_checkpoints import TxSink, events_file, reference, window_flow


async def wait_until(condition: object, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return events_file(tmp_path)


async def test_a_suspended_flow_fires_no_window_early_and_resumes_exactly(events: Path) -> None:
    want = await reference(events)
    store = sc.MemoryStateStore()
    config = sc.Checkpointing(store, interval=0.05)
    sink = TxSink()
    flow = window_flow("suspend", events, sink, rate=20_000)
    runtime = Runtime(flow, config)
    run = asyncio.ensure_future(runtime.run())
    await wait_until(lambda: len(sink.published) > 20)
    await runtime.suspend()
    await asyncio.wait_for(run, 10)
    read = runtime.statistics().actors[0].records_in
    assert 0 < read < 12_000
    # Published output is a prefix of the full run's: no window fired at the stop.
    assert sink.published == want[: len(sink.published)]
    assert len(sink.published) < len(want)
    # The next run resumes from the suspend checkpoint: the rest, and nothing twice.
    await window_flow("suspend", events, sink, rate=1e9).run(checkpoint=config)
    assert sink.published == want


async def test_suspend_of_a_flow_that_already_ended_returns_at_once(events: Path) -> None:
    config = sc.Checkpointing(sc.MemoryStateStore(), interval=0.05)
    runtime = Runtime(window_flow("ended", events, TxSink(), rate=1e9), config)
    await runtime.run()
    await asyncio.wait_for(runtime.suspend(), 5)


async def test_suspend_needs_checkpointing(events: Path) -> None:
    runtime = Runtime(window_flow("plain", events, TxSink(), rate=1e9))
    with pytest.raises(CheckpointError, match="needs a flow run with checkpoint="):
        await runtime.suspend()
