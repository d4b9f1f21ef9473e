"""Resuming a run: finished tasks are stored and not run again under the same run id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import pytest

from streamcore.batch import Pipeline
from streamcore.state import MemoryStateStore, PickleCodec, StateStore, serde


class Opaque:
    """Not something the default codec can store."""


def build(calls: dict[str, int], broken: dict[str, bool]) -> Pipeline:
    pipe = Pipeline("etl")

    def count(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    @pipe.task()
    def extract() -> list[dict[str, object]]:
        count("extract")
        return [{"id": 1, "at": datetime(2024, 1, 1, tzinfo=UTC)}, {"id": 2, "at": None}]

    @pipe.task()
    def numbers() -> Iterator[int]:
        count("numbers")
        yield from range(5)

    @pipe.task(depends_on=[numbers], streaming=True)
    async def total(items: AsyncIterator[int]) -> int:
        count("total")
        return sum([item async for item in items])

    @pipe.task(depends_on=[extract, total])
    def transform(rows: list[dict[str, object]], t: int) -> list[object]:
        count("transform")
        if broken["transform"]:
            raise RuntimeError("bug in transform")
        return [row["id"] for row in rows] + [t]

    @pipe.task(depends_on=[transform])
    def load(ids: list[object]) -> int:
        count("load")
        return len(ids)

    return pipe


async def check_resume(store: StateStore, run_id: str) -> None:
    calls: dict[str, int] = {}
    broken = {"transform": True}
    pipe = build(calls, broken)

    first = await pipe.run(run_id=run_id, store=store)
    assert not first.ok
    assert first.statuses() == {
        "extract": "succeeded",
        "numbers": "succeeded",
        "total": "succeeded",
        "transform": "failed",
        "load": "skipped",
    }
    stored = await store.scan(f"pipeline/etl/{run_id}/")
    assert sorted(stored) == [f"pipeline/etl/{run_id}/{name}" for name in ("extract", "numbers", "total")]
    assert serde.decode(stored[f"pipeline/etl/{run_id}/numbers"]) == [0, 1, 2, 3, 4]

    broken["transform"] = False
    second = await pipe.run(run_id=run_id, store=store)

    assert second.ok
    assert second.statuses() == {
        "extract": "resumed",
        "numbers": "resumed",
        "total": "resumed",
        "transform": "succeeded",
        "load": "succeeded",
    }
    assert calls == {"extract": 1, "numbers": 1, "total": 1, "transform": 2, "load": 1}
    assert second.outputs["extract"][0]["at"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert second.outputs["transform"] == [1, 2, 10]
    assert second.tasks["extract"].attempts == 0

    # A third run resumes everything; another run id starts from scratch.
    third = await pipe.run(run_id=run_id, store=store)
    assert set(third.statuses().values()) == {"resumed"}
    fresh = await pipe.run(run_id=run_id + "-other", store=store)
    assert set(fresh.statuses().values()) == {"succeeded"}


async def test_a_run_resumes_after_a_failure_with_the_memory_store() -> None:
    await check_resume(MemoryStateStore(), "run-1")


@pytest.mark.redis
async def test_a_run_resumes_after_a_failure_with_the_redis_store(redis_url: str) -> None:
    from streamcore.state import RedisStateStore

    store = RedisStateStore(redis_url)
    try:
        await check_resume(store, f"run-{uuid.uuid4().hex}")
    finally:
        await store.close()


async def test_a_streaming_consumer_of_a_resumed_generator_reads_the_stored_items() -> None:
    store = MemoryStateStore()
    fail = {"now": True}
    pipe = Pipeline("stream_resume")

    @pipe.task()
    def produce() -> Iterator[str]:
        yield from ("a", "b", "c")

    @pipe.task(depends_on=[produce], streaming=True)
    async def join(items: AsyncIterator[str]) -> str:
        if fail["now"]:
            raise ValueError("not yet")
        return "".join([item async for item in items])

    assert not (await pipe.run(run_id="r", store=store)).ok
    fail["now"] = False
    result = await pipe.run(run_id="r", store=store)
    assert result.statuses() == {"produce": "resumed", "join": "succeeded"}
    assert result.outputs["join"] == "abc"


async def test_an_output_the_codec_cannot_store_fails_the_task_and_says_what_to_do() -> None:
    pipe = Pipeline("opaque")

    @pipe.task()
    def make() -> Opaque:
        return Opaque()

    result = await pipe.run(run_id="r", store=MemoryStateStore())
    run = result.tasks["make"]
    assert run.status == "failed"
    assert "cannot be stored for resuming" in (run.reason or "")
    assert "PickleCodec" in (run.reason or "")


async def test_pickle_is_an_explicit_opt_in_codec() -> None:
    store = MemoryStateStore()
    calls = 0
    pipe = Pipeline("pickled")

    @pipe.task()
    def make() -> Opaque:
        nonlocal calls
        calls += 1
        return Opaque()

    await pipe.run(run_id="r", store=store, codec=PickleCodec())
    again = await pipe.run(run_id="r", store=store, codec=PickleCodec())
    assert again.tasks["make"].status == "resumed" and calls == 1
    assert isinstance(again.outputs["make"], Opaque)


def test_run_sync_resumes_too(tmp_path: object) -> None:
    store = MemoryStateStore()
    calls: dict[str, int] = {}
    make: Callable[[], Pipeline] = lambda: build(calls, {"transform": False})  # noqa: E731
    assert make().run_sync(run_id="sync", store=store).ok
    result = make().run_sync(run_id="sync", store=store)
    assert set(result.statuses().values()) == {"resumed"}
    assert calls["load"] == 1
