"""Exactly once end to end through Redis: a stream read in a consumer group -> tumbling
windows -> a stream (``RedisStreamSink(exactly_once=True)``) and hashes (``RedisHashSink``),
with Redis checkpoints. ``streamcore run`` is SIGKILLed mid-stream and restarted; the
output must be exactly the crash-free output. With ``exactly_once=False`` the same kills
leave duplicates in the stream (while the idempotent hashes still converge): the test
tells the two apart. The sink's restore paths are tested directly beside it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis_helpers import delete_matching, redis_client, stream_fields, unique
from test_kafka_exactly_once import events

import streamcore as sc
from connectors.memory import IterableSource
from connectors.redis import RedisStreamSink
from streamcore.errors import SinkError
from streamcore.io import SinkContext

pytestmark = pytest.mark.redis

ROOT = Path(__file__).parents[2]
JOB = "tests/connectors/redis_crash_job.py:flow"
DEADLINE_S = 90.0
CHECKPOINT = re.compile(rb"checkpoint complete flow=\S+ checkpoint=(\d+)")


def expected(records: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[int, int]]:
    windows: dict[tuple[str, int], list[int]] = {}
    for e in records:
        acc = windows.setdefault((e["user"], e["ts"] - e["ts"] % 1000), [0, 0])
        acc[0] += 1
        acc[1] += e["amount"]
    return {k: (n, total) for k, (n, total) in windows.items()}


def as_entries(windows: dict[tuple[str, int], tuple[int, int]]) -> Counter[tuple[str, ...]]:
    return Counter((u, str(s), str(n), str(t)) for (u, s), (n, t) in windows.items())


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    async with redis_client(redis_url) as c:
        yield c


class Job:
    """``streamcore run`` of redis_crash_job.py; counts the checkpoints its log reports."""

    def __init__(self, env: dict[str, str], redis_url: str, interval: str) -> None:
        self.env, self.redis_url, self.interval = env, redis_url, interval
        self.checkpoints = 0
        self.log: list[bytes] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.checkpoints = 0
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamcore", "run", JOB, "--state", self.redis_url,
            "--checkpoint-interval", self.interval,
            cwd=ROOT, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line)
            if CHECKPOINT.search(line):
                self.checkpoints += 1

    async def wait_checkpoints(self, n: int) -> bool:
        """Until the run reported ``n`` checkpoints; False if it ended first."""
        assert self.proc is not None
        deadline = time.monotonic() + DEADLINE_S
        while self.checkpoints < n:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def kill(self) -> bool:
        """SIGKILL; False if the run had already ended."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return False
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        await self.proc.wait()
        return self.proc.returncode == -signal.SIGKILL

    async def finish(self) -> None:
        assert self.proc is not None and self._reader is not None
        async with asyncio.timeout(DEADLINE_S * 2):
            code = await self.proc.wait()
            await self._reader
        assert code == 0, b"".join(self.log[-40:]).decode(errors="replace")


async def setup_job(client: redis.asyncio.Redis, redis_url: str, base: str, exactly_once: bool,
                    interval: str) -> tuple[Job, list[dict[str, Any]]]:
    records = events()
    async with client.pipeline(transaction=False) as pipe:
        for e in records:
            pipe.xadd(f"{base}:in", e)
        await pipe.execute()
    env = {
        **os.environ,
        "RCRASH_URL": redis_url, "RCRASH_IN": f"{base}:in", "RCRASH_OUT": f"{base}:out",
        "RCRASH_HASHES": f"{base}:h", "RCRASH_EXACTLY_ONCE": "1" if exactly_once else "0",
    }  # fmt: skip
    return Job(env, redis_url, interval), records


async def output(client: redis.asyncio.Redis, base: str) -> Counter[tuple[str, ...]]:
    return Counter((f["user"], f["start"], f["n"], f["total"]) for f in await stream_fields(client, f"{base}:out"))


async def hashes(client: redis.asyncio.Redis, base: str) -> dict[tuple[str, int], tuple[int, int]]:
    found = {}
    async for name in client.scan_iter(match=f"{base}:h:*", count=1000):
        _, user, start = name.decode().rsplit(":", 2)
        h = await client.hgetall(name)
        found[(user, int(start))] = (int(h[b"n"]), int(h[b"total"]))
    return found


async def cleanup(client: redis.asyncio.Redis, redis_url: str, base: str) -> None:
    await delete_matching(client, base)
    async with sc.RedisStateStore(redis_url) as store:
        await store.delete_prefix(f"redis-crash-{base}")


async def test_sigkill_mid_stream_then_restart_gives_each_window_exactly_once_in_the_stream_and_hashes(
    redis_url: str, client: redis.asyncio.Redis
) -> None:
    base = unique("eo")
    job, records = await setup_job(client, redis_url, base, exactly_once=True, interval="200ms")
    want = expected(records)
    rng = random.Random(9)
    kills = 0
    try:
        for _ in range(3):
            await job.start()
            # Mid-stream: a random moment after some checkpoints completed (and published).
            if await job.wait_checkpoints(rng.randint(2, 4)):
                await asyncio.sleep(rng.uniform(0.05, 0.15))  # where the kill lands, not a condition
            kills += await job.kill()
        partial = sum((await output(client, base)).values())
        await job.start()
        await job.finish()
        got = await output(client, base)
        served = await hashes(client, base)
        pending = (await client.xpending(f"{base}:in", f"{base}:in-g"))["pending"]
    finally:
        await cleanup(client, redis_url, base)
    assert kills >= 2
    assert 0 < partial < len(want)
    assert sum(got.values()) == len(want)
    assert got == as_entries(want)
    assert served == want
    assert pending == 0  # the last checkpoint acknowledged every entry


async def test_at_least_once_the_same_kill_duplicates_stream_entries_while_hashes_converge(
    redis_url: str, client: redis.asyncio.Redis
) -> None:
    base = unique("alo")
    # Checkpoints far apart: output written after the first one is certainly replayed.
    job, records = await setup_job(client, redis_url, base, exactly_once=False, interval="3s")
    want = expected(records)
    try:
        await job.start()
        assert await job.wait_checkpoints(1)
        seen = await client.xlen(f"{base}:out")
        deadline = time.monotonic() + DEADLINE_S
        while await client.xlen(f"{base}:out") <= seen and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await job.kill()
        await job.start()
        await job.finish()
        got = await output(client, base)
        served = await hashes(client, base)
    finally:
        await cleanup(client, redis_url, base)
    assert set(got) == set(as_entries(want))  # nothing lost
    assert sum(got.values()) > len(want)  # but some windows twice
    assert served == want


# -- the exactly-once sink's restore paths ------------------------------------------------


@pytest.fixture
async def sink_base(redis_url: str, client: redis.asyncio.Redis) -> AsyncIterator[str]:
    name = unique("sink")
    yield name
    await delete_matching(client, name)


def eo_sink(redis_url: str, stream: str) -> RedisStreamSink:
    return RedisStreamSink(stream, url=redis_url, exactly_once=True, key_prefix=stream)


async def opened_eo_sink(redis_url: str, stream: str, state: Any = None) -> RedisStreamSink:
    """An exactly-once sink restored from ``state`` and opened as under checkpointing."""
    sink = eo_sink(redis_url, stream)
    await sink.restore(state)
    await sink.open(SinkContext("out", "f", checkpointing=True))
    return sink


async def test_entries_are_invisible_until_the_checkpoint_commits_and_a_repeated_commit_adds_nothing(
    redis_url: str, sink_base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{sink_base}:out"
    sink = await opened_eo_sink(redis_url, stream)
    try:
        await sink.write_batch([{"i": 1}, {"i": 2}])
        state = sink.pre_commit(1)
        await sink.write_batch([{"i": 3}])
        assert await client.xlen(stream) == 0
        await sink.commit(1, state)
        assert [f["i"] for f in await stream_fields(client, stream)] == ["1", "2"]
        await sink.commit(1, state)
        assert await client.xlen(stream) == 2
    finally:
        await sink.close()


async def test_restore_after_a_crash_before_commit_publishes_once_and_drops_what_came_later(
    redis_url: str, sink_base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{sink_base}:out"
    first = await opened_eo_sink(redis_url, stream)
    await first.write_batch([{"i": 1}])
    state1 = first.pre_commit(1)
    await first.commit(1, state1)
    await first.write_batch([{"i": 2}])
    state2 = first.pre_commit(2)  # checkpoint 2 completes, then the process dies before commit
    await first.write_batch([{"i": "after 2"}])  # replayed after the restart: must not appear
    first._client = None  # what a SIGKILL leaves: no close
    second = await opened_eo_sink(redis_url, stream, state2)
    try:
        assert [f["i"] for f in await stream_fields(client, stream)] == ["1", "2"]
        await second.write_batch([{"i": 3}])
        await second.commit(3, second.pre_commit(3))
        # The first process, still alive somewhere, is fenced off.
        with pytest.raises(SinkError, match="another process took over"):
            await first.commit(2, state2)
    finally:
        await second.close()
    assert [f["i"] for f in await stream_fields(client, stream)] == ["1", "2", "3"]
    assert [n async for n in client.scan_iter(match=f"*{{{stream}}}*staged*")] == []


async def test_without_checkpoints_an_exactly_once_sink_publishes_at_close_and_nothing_after_a_failure(
    redis_url: str, sink_base: str, client: redis.asyncio.Redis
) -> None:
    ok, failed = f"{sink_base}:ok", f"{sink_base}:failed"
    flow = sc.Dataflow(f"{sink_base}-eo-plain")
    flow.source(IterableSource(range(5))).map(lambda i: {"i": i}).sink(eo_sink(redis_url, ok))
    await flow.run()
    assert [f["i"] for f in await stream_fields(client, ok)] == ["0", "1", "2", "3", "4"]

    def boom(i: int) -> dict[str, int]:
        if i == 4:
            raise ValueError("boom")
        return {"i": i}

    bad = sc.Dataflow(f"{sink_base}-eo-fail")
    bad.source(IterableSource(range(5)), batch_size=1).map(boom).sink(eo_sink(redis_url, failed))
    with pytest.raises(sc.StreamcoreError):
        await bad.run()
    assert await client.xlen(failed) == 0
