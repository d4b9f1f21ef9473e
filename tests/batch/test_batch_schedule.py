"""Schedules: cron and intervals on a manual clock, overlap and missed-run policies, history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from streamcore.batch import Pipeline, PipelineResult, RunHistory, Schedule, run_scheduled
from streamcore.duration import to_seconds as parse_duration
from streamcore.errors import PipelineValidationError


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, minute, second, tzinfo=UTC)


def test_interval_text_is_parsed() -> None:
    assert parse_duration("30s", "every") == 30
    assert parse_duration("10m", "every") == 600
    assert parse_duration("2h", "every") == 7200
    assert parse_duration(timedelta(minutes=1), "every") == 60
    with pytest.raises(ValueError, match="'500ms', '10s', '1m', '2h'"):
        parse_duration("ten minutes", "every")


def test_next_fire_times_for_cron_and_intervals() -> None:
    cron = Schedule("*/5 * * * *")
    assert cron.next_after(at(12, 1)) == at(12, 5)
    assert cron.next_after(at(12, 5)) == at(12, 10)
    every = Schedule(every="10m")
    assert every.next_after(at(12, 1)) == at(12, 10)
    assert every.next_after(at(12, 10)) == at(12, 20)
    assert Schedule(every="30s").next_after(at(12, 0, 10)) == at(12, 0, 30)
    assert cron.run_id("etl", at(12, 5)) == "etl-20240101T120500Z"


def test_bad_schedules_are_rejected() -> None:
    with pytest.raises(PipelineValidationError, match="not a cron expression"):
        Schedule("every five minutes")
    with pytest.raises(PipelineValidationError, match="exactly one"):
        Schedule("* * * * *", every="1m")
    with pytest.raises(PipelineValidationError, match="'skip' or 'catch_up_once'"):
        Schedule(every="1m", missed="later")  # type: ignore[arg-type]


class Gate:
    """Holds every run's task until released, so a run lasts as long as the test wants."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0


def gated_pipeline(gate: Gate | None = None) -> Pipeline:
    pipe = Pipeline("nightly")

    @pipe.task()
    async def work() -> str:
        if gate is not None:
            gate.entered += 1
            await gate.open.wait()
        return "done"

    return pipe


async def start_loop(pipe: Pipeline, schedule: Schedule, clock, **kwargs):  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    history = RunHistory(limit=10)
    results: list[PipelineResult] = []
    task = asyncio.ensure_future(
        run_scheduled(pipe, schedule, clock=clock, stop_event=stop, on_result=results.append, history=history, **kwargs)
    )
    return stop, history, results, task


async def test_a_cron_schedule_runs_at_each_fire_time_with_its_run_id(manual_clock, eventually) -> None:
    manual_clock.set(at(12, 1))
    pipe = gated_pipeline()
    stop, history, results, loop = await start_loop(pipe, Schedule("*/5 * * * *"), manual_clock)

    await eventually(lambda: manual_clock.sleepers == 1)
    assert results == []
    manual_clock.set(at(12, 5))
    await eventually(lambda: len(results) == 1)
    manual_clock.set(at(12, 10))
    await eventually(lambda: len(results) == 2)
    stop.set()
    await asyncio.wait_for(loop, 10)

    assert [r.run_id for r in results] == ["nightly-20240101T120500Z", "nightly-20240101T121000Z"]
    assert all(r.ok for r in results)
    records = history.as_json()
    assert [r["outcome"] for r in records] == ["succeeded", "succeeded"]
    assert records[0]["scheduled_for"] == "2024-01-01T12:05:00+00:00"
    assert records[0]["tasks"] == {"work": "succeeded"}
    json.dumps(records)


async def test_a_late_wake_up_runs_once_for_the_latest_fire_time(manual_clock, eventually) -> None:
    manual_clock.set(at(12, 0, 1))
    stop, _, results, loop = await start_loop(gated_pipeline(), Schedule(every="1m"), manual_clock)
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 5, 30))  # 12:01 ... 12:05 have all passed
    await eventually(lambda: len(results) == 1)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert results[0].run_id == "nightly-20240101T120500Z"


@pytest.mark.parametrize("policy", ["skip", "catch_up_once"])
async def test_a_fire_time_during_a_run_is_missed_and_handled_by_the_policy(manual_clock, eventually, policy) -> None:
    manual_clock.set(at(12, 0, 1))
    gate = Gate()
    stop, history, results, loop = await start_loop(
        gated_pipeline(gate), Schedule(every="1m", missed=policy), manual_clock
    )
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 1))
    await eventually(lambda: gate.entered == 1)
    # Two fire times pass while the first run is still going.
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 2))
    await eventually(lambda: len(history) == 1)
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 3))
    await eventually(lambda: len(history) == 2)
    assert [r.outcome for r in history.runs()] == ["missed", "missed"]

    gate.open.set()
    if policy == "catch_up_once":
        await eventually(lambda: len(results) == 2)
    else:
        await eventually(lambda: len(results) == 1)
    await eventually(lambda: manual_clock.sleepers == 1)
    stop.set()
    await asyncio.wait_for(loop, 10)

    run_ids = [r.run_id for r in results]
    if policy == "catch_up_once":
        assert run_ids == ["nightly-20240101T120100Z", "nightly-20240101T120300Z"]
    else:
        assert run_ids == ["nightly-20240101T120100Z"]


async def test_overlapping_runs_when_allowed(manual_clock, eventually) -> None:
    manual_clock.set(at(12, 0, 1))
    gate = Gate()
    stop, history, results, loop = await start_loop(
        gated_pipeline(gate), Schedule(every="1m", allow_overlap=True), manual_clock
    )
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 1))
    await eventually(lambda: gate.entered == 1)
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 2))
    await eventually(lambda: gate.entered == 2)
    stop.set()
    gate.open.set()
    await asyncio.wait_for(loop, 10)  # stopping waits for both runs in flight
    assert len(results) == 2
    assert "missed" not in [r.outcome for r in history.runs()]


async def test_an_async_on_result_is_awaited_and_history_keeps_the_last_n(manual_clock, eventually) -> None:
    manual_clock.set(at(12, 0, 1))
    stop = asyncio.Event()
    history = RunHistory(limit=2)
    seen: list[str] = []

    async def on_result(result: PipelineResult) -> None:
        seen.append(result.run_id)

    loop = asyncio.ensure_future(
        run_scheduled(
            gated_pipeline(), Schedule(every="1m"), clock=manual_clock, stop_event=stop,
            on_result=on_result, history=history,
        )
    )
    for minute in (1, 2, 3):
        await eventually(lambda: manual_clock.sleepers == 1)
        manual_clock.set(at(12, minute))
        await eventually(lambda minute=minute: len(seen) == minute)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert [r.run_id for r in history.runs()] == ["nightly-20240101T120200Z", "nightly-20240101T120300Z"]


async def test_a_run_that_raises_stops_the_schedule_and_is_recorded(manual_clock, eventually) -> None:
    class BrokenStore:
        async def open(self) -> None:
            raise ConnectionError("store is down")

    manual_clock.set(at(12, 0, 1))
    _stop, history, _, loop = await start_loop(
        gated_pipeline(), Schedule(every="1m"), manual_clock, store=BrokenStore()
    )
    await eventually(lambda: manual_clock.sleepers == 1)
    manual_clock.set(at(12, 1))
    with pytest.raises(ConnectionError, match="store is down"):
        await asyncio.wait_for(loop, 10)
    assert [r.outcome for r in history.runs()] == ["error"]


async def test_a_run_asked_for_now_starts_at_once_and_not_while_one_is_in_flight(manual_clock, eventually) -> None:
    manual_clock.set(at(12, 0, 1))
    gate = Gate()
    triggers: asyncio.Queue[asyncio.Future[str]] = asyncio.Queue()
    stop, history, results, loop = await start_loop(
        gated_pipeline(gate), Schedule(every="1h"), manual_clock, triggers=triggers
    )
    await eventually(lambda: manual_clock.sleepers == 1)
    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await triggers.put(first)
    run_id = await asyncio.wait_for(first, 10)
    assert run_id == "nightly-now-20240101T120001000000"
    await eventually(lambda: gate.entered == 1)
    busy: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await triggers.put(busy)
    with pytest.raises(RuntimeError, match="in flight"):
        await asyncio.wait_for(busy, 10)
    gate.open.set()
    await eventually(lambda: len(results) == 1)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert results[0].run_id == run_id and results[0].ok
    assert [r["run_id"] for r in history.as_json()] == [run_id]
