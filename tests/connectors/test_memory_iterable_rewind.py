"""IterableSource given a factory (or a sequence): position, rewind, and checkpointed runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.io import SourceContext

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 20.0


async def read_all(source: IterableSource, position: Any = None) -> list[Any]:
    await source.open(SourceContext("numbers", linger_s=0.001), position)
    got: list[Any] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while (batch := await source.read_batch(4, 0.05)) is not None:
                got.extend(batch)
    finally:
        await source.close()
    return got


def test_a_factory_or_a_sequence_is_rewindable_an_iterator_is_not() -> None:
    assert IterableSource(lambda: iter(range(3))).rewindable
    assert IterableSource([1, 2]).rewindable
    assert IterableSource(range(5)).rewindable
    assert not IterableSource(iter([1, 2])).rewindable
    assert not IterableSource(x for x in range(3)).rewindable


async def test_a_sync_factory_resumes_after_the_records_already_read() -> None:
    calls = 0

    def numbers() -> Iterator[int]:
        nonlocal calls
        calls += 1
        yield from range(10)

    source = IterableSource(numbers)
    await source.open(SourceContext("numbers"))
    assert await source.read_batch(3, 0.05) == [0, 1, 2]
    position = source.position()
    assert position == 3
    await source.close()
    assert await read_all(source, position) == list(range(3, 10))
    assert source.position() == 10
    assert calls == 2


async def test_an_async_factory_resumes_after_the_records_already_read() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    source = IterableSource(numbers)
    assert await read_all(source, 6) == [6, 7, 8, 9]
    assert source.position() == 10


async def test_a_list_resumes_after_the_records_already_read() -> None:
    assert await read_all(IterableSource(list("abcdef")), 4) == ["e", "f"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_factory_that_gives_fewer_records_than_the_position_is_a_source_error(kind: str) -> None:
    def short() -> Iterator[int]:
        yield from range(2)

    async def short_async() -> AsyncIterator[int]:
        for i in range(2):
            yield i

    source = IterableSource(short if kind == "sync" else short_async)
    with pytest.raises(
        sc.SourceError,
        match=r"^source 'numbers': cannot resume at record 5: the input ended after 2 records; "
        r"the factory must give the same records",
    ):
        await read_all(source, 5)


async def test_a_factory_that_returns_no_iterable_is_a_source_error() -> None:
    source = IterableSource(lambda: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(
        sc.SourceError, match=r"^source 'numbers': the IterableSource factory must return an iterable .*got int$"
    ):
        await read_all(source)


async def test_a_factory_source_restarts_from_its_checkpoint_not_from_the_start() -> None:
    # The first generator stops at record AT until a checkpoint is complete, then fails;
    # the restart calls the factory again and skips what that checkpoint had read.
    total, at = 3_000, 1_000
    store = sc.MemoryStateStore()
    flow_name = f"rewind-{uuid.uuid4().hex[:8]}"
    calls = 0

    async def checkpointed() -> None:
        async with asyncio.timeout(DEADLINE_S):
            while await store.get(f"{flow_name}/index") is None:
                await asyncio.sleep(0.01)

    async def numbers() -> AsyncIterator[int]:
        nonlocal calls
        calls += 1
        first = calls == 1
        for i in range(total):
            if first and i == at:
                await checkpointed()
                raise ConnectionError("feed dropped")
            yield i

    out = ListSink()
    flow = sc.Dataflow(flow_name)
    flow.source(IterableSource(numbers), name="numbers", batch_size=100).sink(out)
    async with asyncio.timeout(DEADLINE_S):
        await flow.run(checkpoint=sc.Checkpointing(store, interval=0.02), restart=sc.RestartPolicy(1, delay=0.0))
    assert calls == 2
    seen = Counter(out.items)
    assert set(seen) == set(range(total))
    # A plain sink is at-least-once, but only records after the checkpoint come twice:
    # starting over would have repeated all AT of them.
    assert sum(n - 1 for n in seen.values()) < at


async def test_the_main_example_runs_under_state_with_checkpoints(tmp_path: Path, redis_url: str) -> None:
    async with sc.RedisStateStore(redis_url) as store:
        await store.delete_prefix("clicks/")  # a fresh start, whatever ran before
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable, "-m", "streamcore", "run", f"{ROOT / 'examples' / 'clicks.py'}:flow",
            "--state", redis_url, "--checkpoint-interval", "1s",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "clicks_totals.jsonl").stat().st_size > 0
