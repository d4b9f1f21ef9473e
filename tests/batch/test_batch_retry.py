"""Retries: counts, backoff delays under a manual clock, retry_on and skip_on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from streamcore.batch import Pipeline, Retry


def test_backoff_delays_follow_the_policy_and_the_cap() -> None:
    fixed = Retry(5, backoff="fixed", delay=timedelta(seconds=2))
    linear = Retry(5, backoff="linear", delay=2)
    exponential = Retry(6, backoff="exponential", delay=1, max_delay=timedelta(seconds=10))
    assert [fixed.delay_after_s(n) for n in (1, 2, 3)] == [2, 2, 2]
    assert [linear.delay_after_s(n) for n in (1, 2, 3)] == [2, 4, 6]
    assert [exponential.delay_after_s(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]


def test_jitter_stays_within_its_fraction_and_is_repeatable_with_a_seed() -> None:
    policy = Retry(3, delay=10, jitter=0.2, seed=7)
    delays = [policy.delay_after_s(1) for _ in range(200)]
    assert all(8 <= d <= 12 for d in delays)
    assert len(set(delays)) > 100
    again = Retry(3, delay=10, jitter=0.2, seed=7)
    assert [again.delay_after_s(1) for _ in range(200)] == delays


async def test_a_flaky_task_is_retried_with_exponential_backoff(auto_clock) -> None:
    pipe = Pipeline("flaky")
    calls = 0

    @pipe.task(retry=Retry(attempts=4, backoff="exponential", delay=timedelta(seconds=1)))
    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"try {calls}")
        return "data"

    result = await pipe.run(clock=auto_clock)

    assert result.ok and result.outputs["fetch"] == "data"
    assert result.tasks["fetch"].attempts == 3
    assert auto_clock.sleeps_s == [1.0, 2.0]
    # Timestamps come from the run's clock: the backoff shows in the task's duration.
    assert result.tasks["fetch"].duration_s == 3.0


async def test_a_task_that_keeps_failing_stops_after_its_attempts(auto_clock) -> None:
    pipe = Pipeline("hopeless")
    calls = 0

    @pipe.task(retry=Retry(attempts=3, backoff="linear", delay=5))
    def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk on fire")

    result = await pipe.run(clock=auto_clock)

    run = result.tasks["always_fails"]
    assert run.status == "failed" and run.attempts == 3 and calls == 3
    assert auto_clock.sleeps_s == [5.0, 10.0]
    assert isinstance(run.error, OSError)


async def test_only_errors_in_retry_on_are_retried(auto_clock) -> None:
    pipe = Pipeline("selective")
    calls = {"transient": 0, "bug": 0}

    @pipe.task(retry=Retry(attempts=5, delay=1, retry_on=(ConnectionError,)))
    def transient() -> None:
        calls["transient"] += 1
        raise ConnectionError("reset")

    @pipe.task(retry=Retry(attempts=5, delay=1, retry_on=ConnectionError))
    def bug() -> None:
        calls["bug"] += 1
        raise KeyError("missing")

    result = await pipe.run(clock=auto_clock)

    assert calls == {"transient": 5, "bug": 1}
    assert result.tasks["bug"].status == "failed" and result.tasks["bug"].attempts == 1


async def test_skip_on_wins_over_retry_on(auto_clock) -> None:
    pipe = Pipeline("skip_first")

    @pipe.task(retry=Retry(attempts=5, delay=1, retry_on=(LookupError,), skip_on=(KeyError,)))
    def lookup() -> None:
        raise KeyError("not there")

    result = await pipe.run(clock=auto_clock)
    assert result.tasks["lookup"].status == "skipped"
    assert result.tasks["lookup"].attempts == 1
    assert result.tasks["lookup"].reason == "skip_on matched KeyError: 'not there'"
    assert auto_clock.sleeps_s == []


async def test_a_task_waiting_to_retry_gives_its_slot_to_others(manual_clock, eventually) -> None:
    pipe = Pipeline("slots", max_concurrency=1)
    calls = 0

    @pipe.task(retry=Retry(attempts=2, delay=60), priority=1)
    def first() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("later")
        return "again"

    @pipe.task()
    def second() -> str:
        return "meanwhile"

    start = manual_clock.now()
    run = asyncio.ensure_future(pipe.run(clock=manual_clock))
    # ``second`` runs while ``first`` waits out its 60 s backoff on the manual clock.
    await eventually(lambda: manual_clock.sleepers == 1)
    assert calls == 1
    manual_clock.advance(timedelta(seconds=60))
    result = await asyncio.wait_for(run, 10)
    assert result.outputs == {"first": "again", "second": "meanwhile"}
    assert result.tasks["second"].finished == start
    assert result.tasks["first"].finished == start + timedelta(seconds=60)


def test_durations_accept_timedelta_and_seconds() -> None:
    assert Retry(2, delay=timedelta(milliseconds=1500)).delay_s == 1.5
    assert Retry(2, delay=3, max_delay=timedelta(minutes=1)).max_delay_s == 60
    assert Retry(2, delay="1s").delay_s == 1.0  # duration text, like every duration argument
    with pytest.raises(TypeError, match="timedelta, seconds or duration text"):
        Retry(2, delay=[1])  # type: ignore[arg-type]
