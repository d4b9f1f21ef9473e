"""Crash tests against a real Redis: SIGKILLed flows, kills inside a checkpoint, Redis
killed mid-run. The published output must equal a crash-free run's, byte for byte."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from crash_job import build
from services import RedisServer

import streamcore as sc
from streamcore.state.coordinator import CheckpointStatistics

pytestmark = pytest.mark.redis

JOB = Path(__file__).with_name("crash_job.py")
EVENTS = 40_000


def write_events(path: Path, n: int = EVENTS, seed: int = 11) -> None:
    rng = random.Random(seed)
    t = 0
    with path.open("wb") as f:
        for _ in range(n):
            t += rng.randint(0, 10)
            # Disorder stays within the job's bound (0 ms), so results do not depend on
            # where batches start after a restore.
            f.write(orjson.dumps({"user": f"u{rng.randint(0, 199)}", "amount": rng.randint(0, 100), "ts": t}))
            f.write(b"\n")


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    write_events(path)
    return path


async def expected_output(events: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "reference.jsonl"
    await build(str(events), str(out), rate=None).run()
    return out.read_bytes()


async def start_job(events: Path, out: Path, url: str, prefix: str, *extra: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(JOB), str(events), str(out), url, prefix, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line != b"started\n":
        _, err = await proc.communicate()
        pytest.fail(f"the job did not start: {line!r}\n{err.decode()}")
    return proc


async def wait_line(proc: asyncio.subprocess.Process, prefix: bytes, timeout: float) -> bool:
    """Read the job's stdout until a line starting with ``prefix``; False at its end."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
        if not line:
            return False
        if line.startswith(prefix):
            return True
    return False


async def kill(proc: asyncio.subprocess.Process) -> bool:
    """SIGKILL the job; False if it had already finished."""
    if proc.returncode is not None:
        return False
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    await proc.wait()
    return proc.returncode == -signal.SIGKILL


async def finish(proc: asyncio.subprocess.Process) -> None:
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"job failed ({proc.returncode}):\n{err.decode()[-3000:]}"


async def cleanup(url: str, prefix: str) -> None:
    async with sc.RedisStateStore(url, key_prefix=prefix) as store:
        await store.delete_prefix("")


async def kill_and_restart(
    events: Path, out: Path, url: str, rounds: int, moment: Callable[[asyncio.subprocess.Process, int], Awaitable[None]],
    *extra: str,
) -> int:
    """Start the job and SIGKILL it once ``moment`` returns, ``rounds`` times (fewer if it
    finishes first); then run it to its end. Returns how many kills landed."""
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    kills = 0
    try:
        for round_ in range(rounds):
            proc = await start_job(events, out, url, prefix, *extra)
            await moment(proc, round_)
            if await kill(proc):
                kills += 1
            else:
                await finish(proc)
                break
        await finish(await start_job(events, out, url, prefix))
    finally:
        await cleanup(url, prefix)
    return kills


async def test_sigkill_at_random_moments_then_restart_gives_the_crash_free_output(
    events: Path, tmp_path: Path, redis_url: str
) -> None:
    expected = await expected_output(events, tmp_path)
    rng = random.Random(5)

    async def at_random(proc: asyncio.subprocess.Process, round_: int) -> None:
        # A random moment of the run: the point is where the kill lands, not a condition.
        await asyncio.sleep(rng.uniform(0.2, 0.9))

    out = tmp_path / "out.jsonl"
    assert await kill_and_restart(events, out, redis_url, 5, at_random) >= 3
    assert out.read_bytes() == expected


async def test_sigkill_inside_a_checkpoint_commit_then_restart_gives_the_crash_free_output(
    events: Path, tmp_path: Path, redis_url: str
) -> None:
    expected = await expected_output(events, tmp_path)

    async def inside_a_commit(proc: asyncio.subprocess.Process, round_: int) -> None:
        # Let some checkpoints complete first, then kill inside the next commit.
        for _ in range(round_ + 1):
            if not await wait_line(proc, b"committing", 30):
                return

    out = tmp_path / "out.jsonl"
    assert await kill_and_restart(events, out, redis_url, 4, inside_a_commit, "--slow-commit") >= 2
    assert out.read_bytes() == expected


async def test_redis_killed_mid_run_fails_checkpoints_which_recover_when_it_is_back(
    events: Path, tmp_path: Path, redis_restart: RedisServer
) -> None:
    expected = await expected_output(events, tmp_path)
    out, prefix = tmp_path / "out.jsonl", f"redis-down-{uuid.uuid4().hex[:8]}"
    flow = build(str(events), str(out), rate=15_000)
    store = sc.RedisStateStore(redis_restart.url, key_prefix=prefix)
    run = asyncio.create_task(flow.run(checkpoint=sc.Checkpointing(store, interval=0.1, tolerable_failures=1000,
                                                                     timeout=5)))

    async def until(what: str, condition: Callable[[CheckpointStatistics], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            handle = flow._latest_run
            runtime = None if handle is None else handle.attempt
            coordinator = None if runtime is None else runtime.coordinator
            if coordinator is not None and condition(coordinator.statistics()):
                return
            assert not run.done(), f"the flow ended before {what}"
            await asyncio.sleep(0.02)
        pytest.fail(f"timed out waiting for {what}")

    try:
        await until("two checkpoints", lambda s: s.completed >= 2)
        await redis_restart.akill()
        await until("two failed checkpoints", lambda s: s.failed >= 2)
        # Counted while Redis is down (nothing completes then): the flow may reach its end
        # and commit its final checkpoint as soon as Redis is back.
        completed = flow._latest_run.attempt.coordinator.statistics().completed
        await redis_restart.astart()
        await until("a checkpoint after the outage", lambda s: s.completed > completed)
        await asyncio.wait_for(run, 120)
    finally:
        if not run.done():
            run.cancel()
        await cleanup(redis_restart.url, prefix)
    stats = flow._latest_run.attempt.coordinator.statistics()
    assert stats.failed >= 2 and stats.consecutive_failures == 0
    assert out.read_bytes() == expected
