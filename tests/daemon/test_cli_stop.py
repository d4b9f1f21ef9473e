"""How ``streamcore run`` stops: during restarts, past its drain timeout, on set-up errors,
and Ctrl-C on ``run_sync()``. Real subprocesses; every wait is on a condition."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_cli import DEADLINE_S, has_content, start, stop, streamcore, wait_until, write

KEEPS_FAILING = """
import streamcore as sc
from connectors.memory import ListSink


class Broken(sc.Source):
    rewindable = True

    def position(self):
        return 0

    async def read_batch(self, max_records, timeout_s):
        raise RuntimeError("the input is gone")


flow = sc.Dataflow("keeps-failing")
flow.source(Broken(), name="broken").sink(ListSink())
"""

SLOW_SINK = """
import asyncio
import itertools
from pathlib import Path

import streamcore as sc
from connectors.memory import IterableSource

HERE = Path(__file__).parent


async def forever():
    for i in itertools.count():
        yield i
        if i % 100 == 0:
            await asyncio.sleep(0)


async def slow(record):
    (HERE / "slow.txt").write_text("in the sink")
    await asyncio.sleep(3600)


flow = sc.Dataflow("slow-sink", mailbox_capacity=200)
flow.source(IterableSource(forever()), batch_size=10).sink(slow, name="slow")
"""

READ_ONCE = """
import streamcore as sc
from connectors.memory import ListSink


class ReadOnce(sc.Source):
    rewindable = False

    async def read_batch(self, max_records, timeout_s):
        return None


flow = sc.Dataflow("read-once")
flow.source(ReadOnce(), name="once").sink(ListSink())
"""

RUN_SYNC = """
import asyncio
import itertools
from pathlib import Path

import streamcore as sc
from connectors.memory import IterableSource

HERE = Path(__file__).parent


async def busy():
    for i in itertools.count():
        yield i
        if i % 100 == 0:
            await asyncio.sleep(0)


def note(record):
    if record % 1000 == 0:
        (HERE / "busy.txt").write_text(str(record))


flow = sc.Dataflow("embedded")
flow.source(IterableSource(busy()), batch_size=100).sink(note, name="note")
try:
    flow.run_sync()
except KeyboardInterrupt:
    print("interrupted")
"""


def restarts_logged(stderr: str) -> int:
    return len(re.findall(r"flow failed, restarting", stderr))


def test_one_sigterm_during_restarts_ends_the_daemon_with_0(tmp_path: Path) -> None:
    write(tmp_path, "failing.py", KEEPS_FAILING)
    process = start(tmp_path, "run", "failing:flow", "--restart", "fixed:1000:50ms")
    log = tmp_path / "stderr.txt"
    try:
        wait_until(lambda: restarts_logged(log.read_text()) >= 3, "a few restarts")
        process.send_signal(signal.SIGTERM)
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    after = stderr[stderr.index("SIGTERM received"):]
    assert restarts_logged(after) <= 1  # at most the one already under way, none after it
    assert "stopped during its restart backoff" in after
    assert "received again" not in stderr


def test_a_drain_past_drain_timeout_exits_1_naming_the_records_in_flight(tmp_path: Path) -> None:
    write(tmp_path, "slow.py", SLOW_SINK)
    process = start(tmp_path, "run", "slow:flow", "--drain-timeout", "500ms")
    try:
        wait_until(has_content(tmp_path / "slow.txt"), "the sink to block")
        process.send_signal(signal.SIGTERM)
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert re.search(r"a drain did not end within 0.5s; cancelled with \d+ records still in flight", stderr)
    assert "received again" not in stderr


def test_a_source_that_cannot_rewind_under_state_exits_2_naming_state(tmp_path: Path, redis_url: str) -> None:
    write(tmp_path, "once.py", READ_ONCE)
    done = streamcore(tmp_path, "run", "once:flow", "--state", redis_url, "--restart", "fixed:5:10ms")
    assert done.returncode == 2, done.stderr
    assert "--state" in done.stderr and "cannot rewind" in done.stderr
    assert "restarting" not in done.stderr


def test_one_ctrl_c_stops_run_sync_at_once(tmp_path: Path) -> None:
    write(tmp_path, "embedded.py", RUN_SYNC)
    with (tmp_path / "stderr.txt").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "embedded.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        wait_until(has_content(tmp_path / "busy.txt"), "the flow to be busy")
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        stdout, _ = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    assert time.monotonic() - started < 5
    assert "interrupted" in stdout, (tmp_path / "stderr.txt").read_text()
