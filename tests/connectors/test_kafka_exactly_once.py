"""Exactly once end to end through Kafka: a topic of 4 partitions -> keyed tumbling windows
-> a topic written in transactions, with Redis checkpoints. The job is SIGKILLed mid-stream
and restarted; a ``read_committed`` reader must see exactly the expected windows, once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

import streamcore as sc
from connectors.kafka import KafkaSource
from streamcore.io import SourceContext

pytestmark = pytest.mark.redis

JOB = Path(__file__).with_name("kafka_crash_job.py")
EVENTS = 12_000
USERS = 60


def events() -> list[dict[str, Any]]:
    rng = random.Random(3)
    t, out = 0, []
    for _ in range(EVENTS):
        t += rng.randint(0, 5)
        out.append({"user": f"u{rng.randint(0, USERS - 1)}", "amount": rng.randint(0, 100), "ts": t})
    return out


def expected(records: list[dict[str, Any]]) -> Counter[bytes]:
    windows: dict[tuple[str, int], list[int]] = {}
    for e in records:
        acc = windows.setdefault((e["user"], e["ts"] - e["ts"] % 1000), [0, 0])
        acc[0] += 1
        acc[1] += e["amount"]
    return Counter(
        orjson.dumps({"user": u, "start": s, "n": n, "total": total}) for (u, s), (n, total) in windows.items()
    )


async def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    # Keyed by user: each user's events stay in order within one partition.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for e in records:
            await producer.send(topic, orjson.dumps(e), key=e["user"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def read_committed(bootstrap: str, topic: str, isolation_level: str = "read_committed") -> Counter[bytes]:
    source = KafkaSource(topic, bootstrap_servers=bootstrap, stop_at_end=True,
                         isolation_level=isolation_level, value_format="bytes")
    await source.open(SourceContext("check"))
    out: Counter[bytes] = Counter()
    try:
        while (batch := await source.read_batch(1000, 0.1)) is not None:
            out.update(r.value for r in batch)
    finally:
        await source.close()
    return out


async def start_job(*args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(JOB), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line != b"started\n":
        _, err = await proc.communicate()
        pytest.fail(f"the job did not start: {line!r}\n{err.decode()[-3000:]}")
    return proc


async def test_sigkill_mid_stream_then_restart_gives_each_window_exactly_once(
    kafka_bootstrap: str, kafka_topic_factory: Any, redis_url: str
) -> None:
    topic_in = await kafka_topic_factory(4)
    topic_out = await kafka_topic_factory(1)
    records = events()
    await produce(kafka_bootstrap, topic_in, records)
    prefix = f"kafka-eo-{uuid.uuid4().hex[:8]}"
    args = (kafka_bootstrap, topic_in, topic_out, redis_url, prefix)
    rng = random.Random(9)
    kills = 0
    try:
        for _ in range(3):
            proc = await start_job(*args)
            # Mid-stream: once this run has read records and some checkpoints completed,
            # at a random moment after one.
            assert proc.stdout is not None
            checkpoints = rng.randint(2, 4)
            while checkpoints:
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if not line:
                    break
                if not line.endswith(b" read 0\n"):
                    checkpoints -= 1
            await asyncio.sleep(rng.uniform(0.05, 0.15))
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
                kills += proc.returncode == -signal.SIGKILL
        # The kills came mid-stream: some windows were already written, not all. (Read
        # uncommitted: a killed producer's open transaction holds read_committed readers
        # back until the restarted job fences it.)
        partial = sum((await read_committed(kafka_bootstrap, topic_out, "read_uncommitted")).values())
        proc = await start_job(*args)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-3000:]
    finally:
        async with sc.RedisStateStore(redis_url, key_prefix=prefix) as store:
            await store.delete_prefix("")
    assert kills >= 2
    got = await read_committed(kafka_bootstrap, topic_out)
    want = expected(records)
    assert 0 < partial < sum(want.values())
    assert sum(got.values()) == sum(want.values())
    assert got == want
