"""``streamcore run --workers 2`` against the real broker: one command runs two processes
of a consumer-group flow, serves their metrics in one place, restarts the one that is
killed, forwards SIGTERM and exits 0, and together they write each window once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from typing import Any

import aiohttp
import pytest

from tests.connectors.test_kafka_exactly_once import events, expected
from tests.connectors.test_kafka_scale_out import (
    DEADLINE_S,
    Member,
    check_each_window_once,
    clean_up,
    every_window_written,
    job_env,
    produce,
    produce_ends,
    until,
    written,
)

pytestmark = pytest.mark.redis

STARTED = re.compile(r"worker started worker=(\d+) pid=(\d+) restarts=(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Parent(Member):
    """The ``streamcore run --workers 2`` process, and the workers its log says it started."""

    def __init__(self, env: dict[str, str], redis_url: str, metrics_port: int) -> None:
        super().__init__("parent", env, redis_url, extra=["--workers", "2", "--metrics-port", str(metrics_port)])
        self.pids: dict[int, int] = {}
        self.restarts: dict[int, int] = {}

    def saw(self, text: str) -> None:
        m = STARTED.search(text)
        if m:
            worker, pid, restarts = map(int, m.groups())
            self.pids[worker] = pid
            self.restarts[worker] = restarts


async def scrape(port: int) -> str:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            return await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_workers_share_the_group_restart_when_killed_and_stop_on_sigterm(
    kafka_bootstrap: str, kafka_topic_factory: Any, redis_url: str
) -> None:
    topic_in = await kafka_topic_factory(4)
    topic_out = await kafka_topic_factory(1)
    records = events()
    first, second = records[: len(records) // 2], records[len(records) // 2 :]
    await produce(kafka_bootstrap, topic_in, first)
    port = free_port()
    parent = Parent(job_env(kafka_bootstrap, topic_in, topic_out), redis_url, port)
    members: list[Any] = [parent]
    metrics = ""

    async def both_serving() -> bool:
        nonlocal metrics
        metrics = await scrape(port)
        return all(
            f'streamcore_worker_up{{worker="{i}"}} 1' in metrics
            and re.search(rf'^streamcore_\w+{{worker="{i}"', metrics, re.M) is not None
            for i in (0, 1)
        )

    try:
        await parent.start()
        await until("two workers started", lambda: len(parent.pids) == 2, members)
        await until("both workers in one /metrics", both_serving, members)
        types = [line for line in metrics.splitlines() if line.startswith("# TYPE")]
        assert len(types) == len(set(types)), "a metric family is declared twice"
        await until("some windows written", lambda: written(kafka_bootstrap, topic_out), members)

        # A worker dies: the parent starts it again.
        killed = parent.pids[0]
        os.kill(killed, signal.SIGKILL)
        await until("worker 0 restarted", lambda: parent.restarts.get(0) == 1, members)
        assert parent.pids[0] != killed
        await produce(kafka_bootstrap, topic_in, second)
        await produce_ends(kafka_bootstrap, topic_in, records[-1]["ts"] + 60_000)
        want = expected(records)
        await until(
            "every window written", lambda: every_window_written(kafka_bootstrap, topic_out, want), members
        )
        assert parent.proc is not None
        parent.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE_S):
            code = await parent.proc.wait()
            if parent._reader is not None:
                await parent._reader  # the whole log, to the parent's last line
        workers_left = [pid for pid in parent.pids.values() if alive(pid)]
    finally:
        if parent.proc is not None and parent.proc.returncode is None:
            parent.proc.kill()
            await parent.proc.wait()
        for pid in parent.pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        await clean_up([], redis_url, topic_in)
    assert code == 0, parent.tail()
    assert workers_left == []
    assert "forwarding SIGTERM to the workers" in "\n".join(parent.log)
    await check_each_window_once(kafka_bootstrap, topic_out, want)
