"""The garbage collector's young threshold while flows run (streamcore/runtime/collector.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink, QueueSource
from streamcore.runtime.collector import DEFAULT_YOUNG_THRESHOLD, ENVIRONMENT_VARIABLE


@pytest.fixture(autouse=True)
def default_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def seen_threshold_flow(seen: list[int]) -> sc.Dataflow:
    """A flow whose map records the young threshold while it runs."""
    flow = sc.Dataflow("gc")
    (
        flow.source(IterableSource(range(3)))
        .map(lambda x: seen.append(gc.get_threshold()[0]) or x)
        .sink(ListSink())
    )
    return flow


async def test_raised_while_a_flow_runs_and_put_back_after() -> None:
    seen: list[int] = []
    await seen_threshold_flow(seen).run()
    assert seen == [DEFAULT_YOUNG_THRESHOLD] * 3
    assert gc.get_threshold() == (700, 10, 10)


async def test_put_back_after_a_failed_run() -> None:
    flow = sc.Dataflow("gc-fails")
    flow.source(IterableSource([1, 0])).map(lambda x: 1 // x).sink(ListSink())
    with pytest.raises(sc.StageError):
        await flow.run()
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_larger_threshold_of_the_application_is_kept() -> None:
    gc.set_threshold(50_000, 5, 5)
    seen: list[int] = []
    await seen_threshold_flow(seen).run()
    assert seen == [50_000] * 3
    assert gc.get_threshold() == (50_000, 5, 5)


async def test_zero_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "0")
    seen: list[int] = []
    await seen_threshold_flow(seen).run()
    assert seen == [700] * 3


async def test_the_threshold_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "25000")
    seen: list[int] = []
    await seen_threshold_flow(seen).run()
    assert seen == [25_000] * 3
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_bad_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "lots")
    with pytest.raises(sc.errors.ConfigurationError, match=ENVIRONMENT_VARIABLE):
        await seen_threshold_flow([]).run()
    assert gc.get_threshold() == (700, 10, 10)


async def test_put_back_only_when_the_last_of_two_overlapping_runs_ends() -> None:
    source = QueueSource(maxsize=10)
    long = sc.Dataflow("gc-long")
    long.source(source).sink(ListSink())
    run = await long.start()
    seen: list[int] = []
    await seen_threshold_flow(seen).run()  # starts and ends while the first one runs
    assert seen == [DEFAULT_YOUNG_THRESHOLD] * 3
    assert gc.get_threshold()[0] == DEFAULT_YOUNG_THRESHOLD
    await source.close()
    await run.wait()
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_change_made_during_the_run_is_not_undone() -> None:
    source = QueueSource(maxsize=10)
    flow = sc.Dataflow("gc-changed")
    flow.source(source).sink(ListSink())
    run = await flow.start()
    gc.set_threshold(1234, 10, 10)
    await source.close()
    async with asyncio.timeout(30):
        await run.wait()
    assert gc.get_threshold() == (1234, 10, 10)
