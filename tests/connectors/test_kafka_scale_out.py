"""Scale-out: several ``streamcore run`` processes in one consumer group split a topic's
partitions; one is SIGKILLed and restarted and a third joins mid-stream, and together
they still write exactly the windows one process would, each once (read_committed)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

import streamcore as sc
from tests.connectors.test_kafka_exactly_once import events, expected, read_committed

pytestmark = pytest.mark.redis

ROOT = Path(__file__).parents[2]
JOB = "tests/connectors/kafka_scale_job.py:flow"
PARTITIONS = 4
DEADLINE_S = 90.0
ASSIGNED = re.compile(r"partitions assigned flow=\S+ partitions=\[(.*)\]")
REVOKED = re.compile(r"partitions revoked flow=\S+ partitions=\[(.*)\]")


class Member:
    """One ``streamcore run`` process of the group, and what its log says it holds."""

    def __init__(
        self, name: str, env: dict[str, str], redis_url: str, job: str = JOB, extra: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.job = job
        self.extra = list(extra)
        self.held: set[str] = set()
        self.log: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._env = env
        self._redis_url = redis_url
        self._reader: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamcore", "run", self.job, "--state", self._redis_url,
            "--checkpoint-interval", "300ms", *self.extra,
            cwd=ROOT, env=self._env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        self.held = set()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.log.append(text)
            self.saw(text)

    def saw(self, text: str) -> None:
        """Follow the partitions this member holds from a line of its log."""
        for pattern, add in ((ASSIGNED, True), (REVOKED, False)):
            m = pattern.search(text)
            if m:
                parts = {p.strip().strip("'") for p in m.group(1).split(",") if p.strip()}
                self.held = self.held | parts if add else self.held - parts
                self.changed.set()

    async def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        self.held = set()

    async def stop(self) -> int:
        """SIGTERM: the tasks stop at a checkpoint, the process leaves the group, exits."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), DEADLINE_S)
        if self._reader is not None:
            await self._reader
        return code

    def tail(self) -> str:
        return "\n".join(self.log[-40:])


async def until(what: str, condition: Any, members: list[Member], deadline_s: float = DEADLINE_S) -> None:
    """Wait (polling, with a deadline) until ``condition()`` holds."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            logs = "\n\n".join(f"== {m.name}\n{m.tail()}" for m in members)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        await asyncio.sleep(0.2)


def split(members: list[Member], *, among: int) -> bool:
    """Every partition held by exactly one of the live members, ``among`` of them holding some."""
    held = [m.held for m in members]
    union = set().union(*held)
    return (
        len(union) == PARTITIONS
        and sum(len(h) for h in held) == PARTITIONS
        and sum(1 for h in held if h) == among
    )


async def produce(bootstrap: str, topic: str, records: list[dict[str, Any]], *, keyed: bool = True) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, e in enumerate(records):
            if keyed:
                await producer.send(topic, orjson.dumps(e), key=e["user"].encode())
            else:
                # Round robin: every user's records are spread over all the partitions.
                await producer.send(topic, orjson.dumps(e), partition=i % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()


async def produce_ends(bootstrap: str, topic: str, ts: int) -> None:
    """One record far in event time on every partition: each task's watermark passes the
    last real window, so every real window fires (the end records' own windows never do)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for p in range(PARTITIONS):
            e = {"user": f"end-{p}", "amount": 0, "ts": ts}
            await producer.send(topic, orjson.dumps(e), key=e["user"].encode(), partition=p)
        await producer.flush()
    finally:
        await producer.stop()


async def test_members_killed_restarted_and_joining_write_each_window_once(
    kafka_bootstrap: str, kafka_topic_factory: Any, redis_url: str
) -> None:
    topic_in = await kafka_topic_factory(PARTITIONS)
    topic_out = await kafka_topic_factory(1)
    records = events()
    first, second = records[: len(records) // 2], records[len(records) // 2 :]
    await produce(kafka_bootstrap, topic_in, first)
    env = job_env(kafka_bootstrap, topic_in, topic_out)
    a, b, c = (Member(n, env, redis_url) for n in ("a", "b", "c"))
    members = [a, b, c]

    async def written() -> int:
        return sum((await read_committed(kafka_bootstrap, topic_out, "read_uncommitted")).values())

    try:
        await a.start()
        await b.start()
        await until("a and b to split the partitions", lambda: split([a, b], among=2), members)
        await until("some windows written", lambda: written(), members)
        # A member dies mid-stream; its partitions move to b, which resumes their tasks
        # from their last checkpoints; a restarted a takes its share back.
        await a.kill()
        await until("b to take every partition", lambda: split([b], among=1), members)
        await a.start()
        await until("a and b to split again", lambda: split([a, b], among=2), members)
        await produce(kafka_bootstrap, topic_in, second)
        # A third member joins while the second half is read.
        await c.start()
        await until("a, b and c to share the partitions", lambda: split([a, b, c], among=3), members)
        await produce_ends(kafka_bootstrap, topic_in, records[-1]["ts"] + 60_000)
        want = expected(records)
        await until(
            "every window written", lambda: every_window_written(kafka_bootstrap, topic_out, want), members
        )
        codes = [await m.stop() for m in members]
    finally:
        await clean_up(members, redis_url, topic_in)
    assert codes == [0, 0, 0], "\n\n".join(m.tail() for m in members)
    await check_each_window_once(kafka_bootstrap, topic_out, want)


async def test_a_key_change_repartitions_through_an_internal_topic_exactly_once(
    kafka_bootstrap: str, kafka_topic_factory: Any, redis_url: str
) -> None:
    topic_in = await kafka_topic_factory(PARTITIONS)
    topic_out = await kafka_topic_factory(1)
    records = events()
    await produce(kafka_bootstrap, topic_in, records, keyed=False)
    env = job_env(kafka_bootstrap, topic_in, topic_out)
    job = "tests/connectors/kafka_scale_job.py:rekeyed"
    a, b = (Member(n, env, redis_url, job) for n in ("a", "b"))
    members = [a, b]
    repartition = f"kafka-scale-{topic_in}-key_by-repartition"
    try:
        await a.start()
        await b.start()
        # Tasks of the input's and of the repartition topic's partitions, split between them.
        await until(
            "a and b to share both topics' partitions",
            lambda: {p.rsplit(":", 1)[0] for p in a.held | b.held} == {topic_in, repartition}
            and bool(a.held) and bool(b.held),
            members,
        )
        await until("some windows written", lambda: written(kafka_bootstrap, topic_out), members)
        await a.kill()
        await a.start()
        codes = [await asyncio.wait_for(m.proc.wait(), DEADLINE_S) for m in members if m.proc is not None]
        for m in members:
            await m.stop()
    finally:
        await clean_up(members, redis_url, topic_in)
    assert codes == [0, 0], "\n\n".join(m.tail() for m in members)
    await check_each_window_once(kafka_bootstrap, topic_out, expected(records))


async def every_window_written(bootstrap: str, topic: str, want: Counter[bytes]) -> bool:
    got = await read_committed(bootstrap, topic)
    return sum(got.values()) >= sum(want.values())


async def written(bootstrap: str, topic: str) -> int:
    return sum((await read_committed(bootstrap, topic, "read_uncommitted")).values())


def job_env(bootstrap: str, topic_in: str, topic_out: str) -> dict[str, str]:
    """What kafka_scale_job.py reads its topics from."""
    return {
        **os.environ,
        "SCALE_BOOTSTRAP": bootstrap,
        "SCALE_TOPIC_IN": topic_in,
        "SCALE_TOPIC_OUT": topic_out,
        "PYTHONPATH": str(ROOT),
    }


async def clean_up(members: list[Member], redis_url: str, topic_in: str) -> None:
    for m in members:
        if m.proc is not None and m.proc.returncode is None:
            m.proc.kill()
            await m.proc.wait()
    async with sc.RedisStateStore(redis_url) as store:
        await store.delete_prefix(f"kafka-scale-{topic_in}@")


async def check_each_window_once(bootstrap: str, topic: str, want: Counter[bytes]) -> None:
    got = await read_committed(bootstrap, topic)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} windows written more than once"
    assert got == want
