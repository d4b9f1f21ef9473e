"""The ``streamcore`` command, run as a real subprocess against small job modules in tmp_path.

Each test writes the modules it needs, runs ``python -m streamcore`` in that folder and
checks the exit status, stderr, and the files the job wrote. Waiting is always for a
condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

DEADLINE_S = 20.0

FLOW_JOBS = """
import asyncio
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSink
from connectors.memory import IterableSource

HERE = Path(__file__).parent


def build(name="doubled", out="out.jsonl"):
    flow = sc.Dataflow(name)
    (
        flow.source(IterableSource([{"n": i} for i in range(5)]))
        .map(lambda r: {"n": r["n"] * 2}, name="double")
        .sink(JsonLinesSink(str(HERE / out)), name="write")
    )
    return flow


flow = build()


def make_flow():
    return build("from_function", "from_function.jsonl")


async def make_flow_async():
    await asyncio.sleep(0)
    return build("from_async_function", "from_async_function.jsonl")


NUMBER = 42


def needs_args(path):
    return build()


def returns_none():
    return None


def raises():
    raise RuntimeError("no config")
"""

FAILING_FLOW = """
import streamcore as sc
from connectors.memory import IterableSource, ListSink


def parse(record):
    if record == 3:
        raise ValueError(f"cannot parse {record}")
    return record


flow = sc.Dataflow("failing")
flow.source(IterableSource(range(10))).map(parse, name="parse").sink(ListSink())
"""

PIPELINE_JOBS = """
from pathlib import Path

import streamcore as sc

HERE = Path(__file__).parent

pipe = sc.Pipeline("etl")


@pipe.task()
def extract():
    return [1, 2, 3]


@pipe.task(depends_on=[extract])
def transform(rows):
    return [r * 2 for r in rows]


@pipe.task(depends_on=[transform])
def load(rows):
    with (HERE / "loaded.txt").open("a") as f:
        f.write(",".join(map(str, rows)) + "\\n")


slow = sc.Pipeline("slow")


@slow.task()
async def wait_forever():
    import asyncio

    (HERE / "waiting.txt").write_text("waiting")
    await asyncio.sleep(3600)


broken = sc.Pipeline("broken")


@broken.task(name="extract")
def extract_again():
    return [1, 2, 3]


@broken.task(depends_on=["extract"], name="transform")
def bad_transform(rows):
    raise ValueError("bad rows")


@broken.task(depends_on=["transform"], name="load")
def never_loads(rows):
    (HERE / "never.txt").write_text("loaded")
"""

FOREVER_FLOW = """
import asyncio
import itertools
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSink
from connectors.memory import IterableSource

HERE = Path(__file__).parent


async def forever():
    for i in itertools.count():
        yield {"i": i}
        await asyncio.sleep(0.001)


def note(record):
    with (HERE / "seen.txt").open("a") as f:
        f.write(f"{record['i']}\\n")


flow = sc.Dataflow("forever")
numbers = flow.source(IterableSource(forever()), batch_size=50)
numbers.sink(note, name="note")
numbers.sink(JsonLinesSink(str(HERE / "all.jsonl")), name="all")


async def stuck(record):
    (HERE / "stuck.txt").write_text("in the sink")
    await asyncio.sleep(3600)


stuck_flow = sc.Dataflow("stuck")
stuck_flow.source(IterableSource(forever())).sink(stuck, name="stuck")
"""

PLAN_FLOW = """
from datetime import timedelta

import streamcore as sc
from connectors.memory import IterableSource, ListSink

flow = sc.Dataflow("planned")
(
    flow.source(IterableSource([]), name="clicks", timestamp=lambda e: e["ts"])
    .filter(lambda e: e["amount"] > 0, name="positive")
    .map(lambda e: e, name="enrich")
    .key_by(lambda e: e["user"], name="by_user")
    .window(sc.TumblingWindows(timedelta(seconds=10)))
    .aggregate({"n": sc.agg.count()}, name="totals", parallelism=3)
    .sink(ListSink(), name="out")
)
"""


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def streamcore(folder: Path, *args: str, timeout_s: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamcore", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=_env(),
    )


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    """Start the command in the background; its stderr goes to ``folder/stderr.txt``."""
    with (folder / "stderr.txt").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "streamcore", *args],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_env(),
        )


def stop(process: subprocess.Popen[str], folder: Path) -> tuple[str, str]:
    """Wait for the process to end; its stdout and stderr."""
    stdout, _ = process.communicate(timeout=DEADLINE_S)
    return stdout, (folder / "stderr.txt").read_text()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the command must find the target by itself
    return env


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def has_content(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and path.stat().st_size > 0


def read_jsonl(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- help --------------------------------------------------------------------------


def test_help_lists_every_command_and_the_exit_statuses(tmp_path: Path) -> None:
    done = streamcore(tmp_path, "--help")
    assert done.returncode == 0
    assert "run" in done.stdout and "plan" in done.stdout
    for status in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"  {status}" in done.stdout


def test_run_help_shows_the_options(tmp_path: Path) -> None:
    done = streamcore(tmp_path, "run", "--help")
    assert done.returncode == 0
    for option in ("--run-id", "--schedule", "--every", "--log-level", "--log-format", "--traceback"):
        assert option in done.stdout


def test_help_says_the_metrics_port_serves_dataflows_and_scheduled_pipelines(tmp_path: Path) -> None:
    top = streamcore(tmp_path, "--help").stdout
    assert "--metrics-port" in top and "scheduled pipeline" in top
    run_help = streamcore(tmp_path, "run", "--help").stdout
    group = run_help.split("HTTP server (dataflows, and pipelines with --schedule or --every):", 1)[1]
    group = group.split("\n\n", 1)[0]
    assert "--metrics-port" in group and "--api-token" in group
    assert "--metrics-port" not in run_help.split("dataflows only:", 1)[1].split("\n\n", 1)[0]


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    done = streamcore(tmp_path)
    assert done.returncode == 2
    assert "usage: streamcore" in done.stderr


# -- running dataflows -------------------------------------------------------------


def test_run_a_dataflow_from_a_module_writes_its_output_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:flow")
    assert done.returncode == 0, done.stderr
    assert read_jsonl(tmp_path / "out.jsonl") == [{"n": n * 2} for n in range(5)]


def test_run_a_function_returning_a_dataflow_from_a_file_path(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = streamcore(elsewhere, "run", "../jobs.py:make_flow")
    assert done.returncode == 0, done.stderr
    assert read_jsonl(tmp_path / "from_function.jsonl") == [{"n": n * 2} for n in range(5)]


def test_run_an_async_function_returning_a_dataflow(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:make_flow_async")
    assert done.returncode == 0, done.stderr
    assert read_jsonl(tmp_path / "from_async_function.jsonl") == [{"n": n * 2} for n in range(5)]


def test_a_failing_flow_exits_1_naming_the_stage_without_a_traceback(tmp_path: Path) -> None:
    write(tmp_path, "failing.py", FAILING_FLOW)
    done = streamcore(tmp_path, "run", "failing:flow")
    assert done.returncode == 1
    assert "error: stage 'parse' failed" in done.stderr
    assert "ValueError: cannot parse 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_traceback_flag_prints_the_full_traceback(tmp_path: Path) -> None:
    write(tmp_path, "failing.py", FAILING_FLOW)
    done = streamcore(tmp_path, "run", "failing:flow", "--traceback")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert 'raise ValueError(f"cannot parse {record}")' in done.stderr


def test_json_log_format_writes_one_object_per_line(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:flow", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert entries, "expected at least one log line"
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any("doubled" in entry["message"] for entry in entries)


def test_log_level_hides_info_lines(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:flow", "--log-level", "warning")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("option", "value"), [("--schedule", "*/5 * * * *"), ("--every", "10m"), ("--run-id", "r1")]
)
def test_pipeline_options_on_a_dataflow_are_refused(tmp_path: Path, option: str, value: str) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:flow", option, value)
    assert done.returncode == 2
    assert "is a Dataflow" in done.stderr and option.split("-")[-1] in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


# -- signals -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_an_endless_flow_gracefully_and_drains(tmp_path: Path, signum: int) -> None:
    write(tmp_path, "forever.py", FOREVER_FLOW)
    process = start(tmp_path, "run", "forever:flow")
    try:
        wait_until(has_content(tmp_path / "seen.txt"), "the flow to write records")
        process.send_signal(signum)
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert f"{signal.Signals(signum).name} received" in stderr
    # Draining means every record read reached both sinks, and the file sink published.
    seen = [int(line) for line in (tmp_path / "seen.txt").read_text().splitlines()]
    written = [r["i"] for r in read_jsonl(tmp_path / "all.jsonl")]  # type: ignore[index]
    assert seen == written == list(range(len(seen)))


def test_a_second_signal_exits_at_once_with_143(tmp_path: Path) -> None:
    write(tmp_path, "forever.py", FOREVER_FLOW)
    process = start(tmp_path, "run", "forever:stuck_flow")
    try:
        wait_until(has_content(tmp_path / "stuck.txt"), "the sink to block")
        process.send_signal(signal.SIGTERM)
        # Two signals sent back to back may be handled as one: wait for the first.
        wait_until(lambda: "SIGTERM received" in (tmp_path / "stderr.txt").read_text(), "the first signal")
        # The sink never returns, so the graceful stop cannot finish by itself.
        process.send_signal(signal.SIGTERM)
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 143
    assert "received again" in stderr


# -- running pipelines ---------------------------------------------------------------


def test_run_a_pipeline_prints_progress_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    done = streamcore(tmp_path, "run", "etl:pipe")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "loaded.txt").read_text() == "2,4,6\n"
    # Not a terminal: progress comes as key=value log lines.
    assert "task=load status=succeeded" in done.stdout
    assert "event=run_finished ok=True" in done.stdout


def test_run_id_names_the_pipeline_run(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    done = streamcore(tmp_path, "run", "etl:pipe", "--run-id", "nightly-1")
    assert done.returncode == 0, done.stderr
    assert "run=nightly-1 " in done.stdout


def test_a_failing_pipeline_exits_1_with_a_summary(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    done = streamcore(tmp_path, "run", "etl:broken")
    assert done.returncode == 1
    assert "error: pipeline 'broken'" in done.stderr
    assert "1 failed, 1 skipped" in done.stderr
    failed = next(line for line in done.stderr.splitlines() if line.strip().startswith("failed"))
    assert "transform" in failed and "bad rows" in failed
    assert any(line.strip().startswith("skipped") and "load" in line for line in done.stderr.splitlines())
    assert not (tmp_path / "never.txt").exists()
    assert "Traceback" not in done.stderr


def test_a_signal_cancels_a_single_pipeline_run_with_143(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    process = start(tmp_path, "run", "etl:slow", "--run-id", "slow-1")
    try:
        wait_until(has_content(tmp_path / "waiting.txt"), "the task to start")
        process.send_signal(signal.SIGTERM)
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 143
    assert "pipeline 'slow' run 'slow-1' was interrupted" in stderr


def test_a_scheduled_pipeline_runs_until_sigterm_then_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    process = start(tmp_path, "run", "etl:pipe", "--every", "1s")
    try:
        wait_until(has_content(tmp_path / "loaded.txt"), "a scheduled run to load")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "scheduled" in stderr
    assert "run=etl-" in stdout


def test_schedule_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    bad_cron = streamcore(tmp_path, "run", "etl:pipe", "--schedule", "every day")
    assert bad_cron.returncode == 2
    assert "not a cron expression" in bad_cron.stderr
    both = streamcore(tmp_path, "run", "etl:pipe", "--schedule", "* * * * *", "--every", "1m")
    assert both.returncode == 2
    assert "not allowed with" in both.stderr
    lonely = streamcore(tmp_path, "run", "etl:pipe", "--catch-up")
    assert lonely.returncode == 2
    assert "--catch-up" in lonely.stderr
    assert not (tmp_path / "loaded.txt").exists()


@pytest.mark.redis
def test_a_failed_pipeline_run_resumes_with_its_run_id(tmp_path: Path, redis_url: str) -> None:
    write(
        tmp_path,
        "resumable.py",
        """
        from pathlib import Path

        import streamcore as sc

        HERE = Path(__file__).parent
        pipe = sc.Pipeline("resumable")


        @pipe.task()
        def extract():
            with (HERE / "extracted.txt").open("a") as f:
                f.write("once\\n")
            return [1, 2]


        @pipe.task(depends_on=[extract])
        def load(rows):
            if not (HERE / "ready").exists():
                raise RuntimeError("not ready yet")
            (HERE / "loaded.txt").write_text(repr(rows))
        """,
    )
    run_id = f"cli-test-{uuid.uuid4().hex}"
    args = ("run", "resumable:pipe", "--state", redis_url, "--run-id", run_id)
    first = streamcore(tmp_path, *args)
    assert first.returncode == 1
    assert f"--run-id {run_id}" in first.stderr
    (tmp_path / "ready").touch()
    second = streamcore(tmp_path, *args)
    assert second.returncode == 0, second.stderr
    assert "task=extract status=resumed" in second.stdout
    assert (tmp_path / "extracted.txt").read_text() == "once\n"
    assert (tmp_path / "loaded.txt").read_text() == "[1, 2]"


# -- bad targets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("jobs", "must be module:attribute"),
        ("nosuchmodule:flow", "module 'nosuchmodule' not found"),
        ("missing.py:flow", "file 'missing.py' not found"),
        ("jobs:missing", "'jobs' has no attribute 'missing'"),
        ("jobs:NUMBER", "'jobs:NUMBER' is an int; the target must be"),
        ("jobs:needs_args", "required arguments (path)"),
        ("jobs:returns_none", "jobs:returns_none() returned None"),
        ("jobs:raises", "calling jobs:raises() failed: RuntimeError: no config"),
        ("broken:flow", "importing 'broken' failed: ModuleNotFoundError"),
    ],
)
def test_a_bad_target_exits_2_with_a_message(tmp_path: Path, target: str, message: str) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    write(tmp_path, "broken.py", "import no_such_dependency\n")
    done = streamcore(tmp_path, "run", target)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_an_invalid_flow_graph_exits_2(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nosink.py",
        """
        import streamcore as sc
        from connectors.memory import IterableSource

        flow = sc.Dataflow("nosink")
        flow.source(IterableSource([1])).map(str)
        """,
    )
    done = streamcore(tmp_path, "run", "nosink:flow")
    assert done.returncode == 2
    assert "error: flow 'nosink' has no sink" in done.stderr


# -- plan ----------------------------------------------------------------------------


def test_plan_of_a_pipeline_shows_levels_and_critical_path(tmp_path: Path) -> None:
    write(tmp_path, "etl.py", PIPELINE_JOBS)
    done = streamcore(tmp_path, "plan", "etl:pipe")
    assert done.returncode == 0, done.stderr
    assert "pipeline 'etl': 3 tasks, 3 levels, width 1" in done.stdout
    assert "level 0: extract" in done.stdout
    assert "critical path (3 tasks): extract -> transform -> load" in done.stdout
    assert not (tmp_path / "loaded.txt").exists()


def test_plan_of_a_dataflow_shows_stages_and_actor_groups(tmp_path: Path) -> None:
    write(tmp_path, "planned.py", PLAN_FLOW)
    done = streamcore(tmp_path, "plan", "planned:flow")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dataflow 'planned': 6 stages")
    assert any(line.split()[:2] == ["positive", "filter"] and "<- clicks" in line for line in lines)
    groups = lines[lines.index("actor groups:") + 1 :]
    assert [g.split(":", 1)[1].strip() for g in groups] == [
        "clicks  parallelism 1",
        "positive+enrich+by_user  parallelism 1",
        "totals  parallelism 3",
        "out  parallelism 1",
    ]


# -- checkpointed dataflows ----------------------------------------------------------

CHECKPOINTED_FLOW = """
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSink, JsonLinesSource

HERE = Path(__file__).parent

flow = sc.Dataflow("{name}")
(
    flow.source(JsonLinesSource(str(HERE / "in.jsonl")), batch_size=50, max_rate=2_000)
    .map(lambda r: {{"i": r["i"], "square": r["i"] * r["i"]}})
    .sink(JsonLinesSink(str(HERE / "out.jsonl")))
)
"""


def sigterm_once_output_shows(folder: Path, args: tuple[str, ...]) -> None:
    """Start ``streamcore`` with ``args``, SIGTERM it once out.jsonl has content (output
    becomes visible only when a checkpoint completes), and check it exits 0."""
    process = start(folder, *args)
    try:
        wait_until(has_content(folder / "out.jsonl"), "a checkpoint to publish output")
        process.send_signal(signal.SIGTERM)
        _, stderr = stop(process, folder)
    finally:
        process.kill()
    assert process.returncode == 0, stderr


@pytest.mark.redis
def test_sigterm_takes_a_final_checkpoint_and_the_next_run_resumes_after_it(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(20_000)))
    write(tmp_path, "cp.py", CHECKPOINTED_FLOW.format(name=f"cli-cp-{uuid.uuid4().hex[:8]}"))
    args = ("run", "cp:flow", "--state", redis_url, "--checkpoint-interval", "100ms")
    sigterm_once_output_shows(tmp_path, args)
    first = [r["i"] for r in read_jsonl(tmp_path / "out.jsonl")]  # type: ignore[index]
    assert 0 < len(first) < 20_000 and first == list(range(len(first)))
    second = streamcore(tmp_path, *args, timeout_s=60)
    assert second.returncode == 0, second.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert rows == [{"i": i, "square": i * i} for i in range(20_000)]


WINDOWED_FLOW = """
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSink, JsonLinesSource

HERE = Path(__file__).parent

flow = sc.Dataflow("{name}")
(
    flow.source(JsonLinesSource(str(HERE / "in.jsonl")), timestamp=lambda r: r["ts"], batch_size=50,
                max_rate=4_000)
    .key_by(lambda r: r["i"] % 7)
    .window(sc.TumblingWindows(1000))
    .aggregate(sc.agg.count())
    .map(lambda w: {{"key": w.key, "start": w.start, "n": w.value}})
    .sink(JsonLinesSink(str(HERE / "out.jsonl")))
)
"""


@pytest.mark.redis
def test_sigterm_with_state_keeps_open_windows_so_the_next_run_writes_each_window_once(
    tmp_path: Path, redis_url: str
) -> None:
    n = 20_000
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"i": i, "ts": i * 10}) + "\n" for i in range(n)))
    write(tmp_path, "win.py", WINDOWED_FLOW.format(name=f"cli-win-{uuid.uuid4().hex[:8]}"))
    args = ("run", "win:flow", "--state", redis_url, "--checkpoint-interval", "100ms")
    sigterm_once_output_shows(tmp_path, args)
    first = read_jsonl(tmp_path / "out.jsonl")
    second = streamcore(tmp_path, *args, timeout_s=60)
    assert second.returncode == 0, second.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    want: dict[tuple[int, int], int] = {}
    for i in range(n):
        k = (i % 7, i * 10 - i * 10 % 1000)
        want[k] = want.get(k, 0) + 1
    got = [(r["key"], r["start"], r["n"]) for r in rows]  # type: ignore[index]
    assert 0 < len(first) < len(want)
    assert len(got) == len(set((k, s) for k, s, _ in got)), "a window was written twice"
    assert sorted(got) == sorted((k, s, c) for (k, s), c in want.items())


def test_checkpoint_interval_without_state_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "jobs.py", FLOW_JOBS)
    done = streamcore(tmp_path, "run", "jobs:flow", "--checkpoint-interval", "1s")
    assert done.returncode == 2 and "--checkpoint-interval needs --state" in done.stderr
