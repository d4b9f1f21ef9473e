"""SIGKILL a join flow at random moments, restart it from its Redis checkpoint each time
(the job reads 2,000 records/s per input, so a run lasts about 3 s and the kills land):
the published output holds exactly the crash-free run's results, for every join kind.

Both inputs are in time order (no late records), so the results do not depend on how the
two sources' batches interleave; the order of lines between the two inputs may, so lines
are compared as sorted lists (every line once: nothing lost, nothing twice)."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "state"))

from join_crash_job import build
from test_crash_recovery import cleanup, finish, kill

pytestmark = pytest.mark.redis

JOB = Path(__file__).with_name("join_crash_job.py")
EVENTS = 6_000


def write_side(path: Path, seed: int, first_id: int) -> None:
    rng = random.Random(seed)
    t = 0
    with path.open("wb") as f:
        for i in range(EVENTS):
            t += rng.randint(0, 6)
            f.write(orjson.dumps({"user": f"u{rng.randint(0, 39)}", "ts": t, "id": first_id + i}) + b"\n")


async def start(kind: str, left: Path, right: Path, out: Path, url: str, prefix: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(JOB), kind, str(left), str(right), str(out), url, prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = await proc.stdout.readline()
    if line != b"started\n":
        _, err = await proc.communicate()
        pytest.fail(f"the job did not start: {line!r}\n{err.decode()}")
    return proc


@pytest.mark.parametrize("kind", ["tumbling", "sliding", "session", "interval", "asof"])
async def test_sigkill_and_restart_gives_the_crash_free_join_output(kind: str, tmp_path: Path, redis_url: str) -> None:
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    write_side(left, 1, 0)
    write_side(right, 2, 1_000_000)
    reference = tmp_path / "reference.jsonl"
    await build(kind, str(left), str(right), str(reference), rate=None).run()
    expected = sorted(reference.read_bytes().splitlines())
    assert expected, "the reference run joined nothing"

    out, prefix = tmp_path / "out.jsonl", f"join-crash-{uuid.uuid4().hex[:8]}"
    rng = random.Random(kind)
    kills = 0
    try:
        for _ in range(3):
            proc = await start(kind, left, right, out, redis_url, prefix)
            # A random moment of the run: the point is where the kill lands, not a condition.
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            if await kill(proc):
                kills += 1
            else:
                await finish(proc)
                break
        await finish(await start(kind, left, right, out, redis_url, prefix))
    finally:
        await cleanup(redis_url, prefix)
    assert kills >= 2
    assert sorted(out.read_bytes().splitlines()) == expected
