"""Running DAGs: data flow, concurrency, ordering, resources, failures and skips."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from streamcore.batch import (
    LogProgress,
    Pipeline,
    PipelineResult,
    ProgressReporter,
    Retry,
    TaskRun,
    TerminalProgress,
)
from streamcore.errors import PipelineError


async def test_a_diamond_passes_outputs_in_depends_on_order_and_runs_its_branches_together() -> None:
    pipe = Pipeline("diamond")
    left_started = asyncio.Event()
    right_started = asyncio.Event()

    @pipe.task()
    def source() -> int:
        return 10

    @pipe.task(depends_on=[source])
    async def left(x: int) -> int:
        left_started.set()
        # Finishes only once the other branch has started: proves they overlap.
        await asyncio.wait_for(right_started.wait(), 10)
        return x + 1

    @pipe.task(depends_on=["source"])
    async def right(x: int) -> int:
        right_started.set()
        await asyncio.wait_for(left_started.wait(), 10)
        return x * 2

    @pipe.task(depends_on=[right, left])
    def join(r: int, lft: int) -> tuple[int, int]:
        return (r, lft)

    result = await pipe.run()

    assert result.ok
    assert result.outputs == {"source": 10, "left": 11, "right": 20, "join": (20, 11)}
    assert all(run.status == "succeeded" and run.attempts == 1 for run in result.tasks.values())
    assert result.tasks["join"].started >= result.tasks["left"].finished


async def test_a_wide_dag_runs_at_most_max_concurrency_tasks_at_once(eventually) -> None:
    pipe = Pipeline("wide", max_concurrency=4)
    gate = asyncio.Event()
    running = 0
    most = 0

    async def work(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        return i

    for i in range(20):

        async def task(i: int = i) -> int:
            return await work(i)

        pipe.add_task(task, name=f"t{i}")

    run = asyncio.ensure_future(pipe.run())
    await eventually(lambda: running == 4)
    for _ in range(50):
        await asyncio.sleep(0)
    assert running == 4
    gate.set()
    result = await run
    assert result.ok and most == 4
    assert result.outputs == {f"t{i}": i for i in range(20)}


async def test_plain_functions_on_the_async_executor_run_inline_on_the_loop_thread() -> None:
    pipe = Pipeline("inline")
    loop_thread = threading.get_ident()

    @pipe.task()
    def where() -> bool:
        return threading.get_ident() == loop_thread

    result = await pipe.run()
    assert result.outputs["where"] is True


async def test_thread_executor_runs_plain_functions_in_another_thread() -> None:
    pipe = Pipeline("threads", executor="thread")
    loop_thread = threading.get_ident()

    @pipe.task()
    def where() -> bool:
        return threading.get_ident() != loop_thread

    @pipe.task(depends_on=[where])
    async def also_async(previous: bool) -> bool:
        return previous and threading.get_ident() != loop_thread

    result = await pipe.run()
    assert result.outputs == {"where": True, "also_async": True}


async def test_ready_tasks_start_by_priority_then_by_longest_remaining_path() -> None:
    pipe = Pipeline("order", max_concurrency=1)
    order: list[str] = []

    def record(name: str):
        def fn(*_: object) -> None:
            order.append(name)

        return fn

    pipe.add_task(record("low"), name="low", priority=-1)
    pipe.add_task(record("short"), name="short")
    pipe.add_task(record("long"), name="long")
    pipe.add_task(record("long2"), name="long2", depends_on=["long"])
    pipe.add_task(record("urgent"), name="urgent", priority=5)

    result = await pipe.run()
    assert result.ok
    # After "long", "short" and "long2" tie on path length: declaration order decides.
    assert order == ["urgent", "long", "short", "long2", "low"]


async def test_tasks_wait_for_resources_instead_of_overloading_the_capacity(eventually) -> None:
    pipe = Pipeline("resources", resources={"cpu": 4, "memory_gb": 8})
    gate = asyncio.Event()
    running = 0
    most = 0

    async def heavy() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    for i in range(5):
        pipe.add_task(heavy, name=f"heavy{i}", resources={"cpu": 2, "memory_gb": 1})

    run = asyncio.ensure_future(pipe.run())
    await eventually(lambda: running == 2)
    for _ in range(50):
        await asyncio.sleep(0)
    assert running == 2
    gate.set()
    result = await run
    assert result.ok and most == 2


async def test_a_failure_skips_everything_downstream_and_nothing_else() -> None:
    pipe = Pipeline("fail")
    ran: list[str] = []

    @pipe.task()
    def extract() -> int:
        ran.append("extract")
        raise ValueError("bad input file")

    @pipe.task(depends_on=[extract])
    def transform(x: int) -> int:
        ran.append("transform")
        return x

    @pipe.task(depends_on=[transform])
    def load(x: int) -> int:
        ran.append("load")
        return x

    @pipe.task()
    def independent() -> str:
        ran.append("independent")
        return "fine"

    result = await pipe.run()

    assert not result.ok
    assert sorted(ran) == ["extract", "independent"]
    assert result.failed == ["extract"]
    assert isinstance(result.tasks["extract"].error, ValueError)
    assert result.tasks["extract"].reason == "ValueError: bad input file"
    for name in ("transform", "load"):
        run = result.tasks[name]
        assert run.status == "skipped" and run.attempts == 0
        assert run.reason == "upstream 'extract' failed"
    assert result.outputs == {"independent": "fine"}
    with pytest.raises(PipelineError, match="extract") as info:
        result.raise_for_failure()
    assert isinstance(info.value.__cause__, ValueError)


async def test_skip_on_marks_the_task_and_its_downstream_skipped_and_the_run_ok() -> None:
    pipe = Pipeline("skip")

    class NoDataToday(Exception):
        pass

    @pipe.task(retry=Retry(attempts=3, delay=0, skip_on=(NoDataToday,)))
    def fetch() -> int:
        raise NoDataToday("holiday")

    @pipe.task(depends_on=[fetch])
    def report(x: int) -> int:
        return x

    result = await pipe.run()

    assert result.ok
    fetch_run = result.tasks["fetch"]
    assert fetch_run.status == "skipped" and fetch_run.attempts == 1
    assert isinstance(fetch_run.error, NoDataToday)
    assert result.tasks["report"].status == "skipped"
    assert result.tasks["report"].reason == "upstream 'fetch' was skipped"
    assert result.outputs == {}


def test_run_sync_runs_outside_an_event_loop() -> None:
    pipe = Pipeline("sync")

    @pipe.task()
    async def one() -> int:
        return 1

    @pipe.task(depends_on=[one])
    def two(x: int) -> int:
        return x + 1

    result = pipe.run_sync(run_id="fixed")
    assert result.ok and result.run_id == "fixed"
    assert result.outputs["two"] == 2


async def test_run_sync_refuses_to_run_inside_a_running_loop() -> None:
    pipe = Pipeline("nested")
    pipe.add_task(lambda: 1, name="one")
    with pytest.raises(RuntimeError, match=r"await pipe\.run"):
        pipe.run_sync()


async def test_the_decorator_returns_the_function_and_the_task_is_in_pipe_tasks() -> None:
    pipe = Pipeline("decorated")

    @pipe.task(name="renamed")
    def original() -> int:
        return 3

    assert original() == 3
    assert list(pipe.tasks) == ["renamed"]
    assert pipe.tasks["renamed"].fn is original

    @pipe.task
    def bare() -> int:
        return 4

    result = await pipe.run()
    assert result.outputs == {"renamed": 3, "bare": 4}


def test_plan_gives_levels_critical_path_and_width() -> None:
    pipe = Pipeline("plan")

    @pipe.task()
    def a() -> None: ...

    @pipe.task(depends_on=[a])
    def b(_: None) -> None: ...

    @pipe.task(depends_on=[a], executor="thread", priority=2)
    def c(_: None) -> None: ...

    @pipe.task(depends_on=[b])
    def d(_: None) -> None: ...

    @pipe.task()
    def e() -> None: ...

    plan = pipe.plan()
    assert plan.levels == (("a", "e"), ("b", "c"), ("d",))
    assert plan.critical_path == ("a", "b", "d")
    assert plan.width == 2
    text = str(plan)
    assert text.splitlines()[0] == "pipeline 'plan': 5 tasks, 3 levels, width 2"
    assert "c (thread, priority=2)" in text
    assert "critical path (3 tasks): a -> b -> d" in text


class Recorder(ProgressReporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def run_started(self, pipeline: str, run_id: str, tasks: object) -> None:
        self.events.append(("run_started", pipeline))

    def task_started(self, run: TaskRun) -> None:
        self.events.append(("started", run.name))

    def task_retrying(self, run: TaskRun, delay_s: float) -> None:
        self.events.append(("retrying", run.name))

    def task_finished(self, run: TaskRun) -> None:
        self.events.append((run.status, run.name))

    def run_finished(self, result: PipelineResult) -> None:
        self.events.append(("run_finished", str(result.ok)))


async def test_a_progress_reporter_hears_every_start_retry_and_finish(auto_clock) -> None:
    pipe = Pipeline("progress")
    calls = 0

    @pipe.task(retry=Retry(attempts=2, delay=1))
    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("transient")
        return 1

    @pipe.task(depends_on=[flaky])
    def after(x: int) -> int:
        return x

    recorder = Recorder()
    await pipe.run(progress=recorder, clock=auto_clock)
    assert recorder.events == [
        ("run_started", "progress"),
        ("started", "flaky"),
        ("retrying", "flaky"),
        ("started", "flaky"),
        ("succeeded", "flaky"),
        ("started", "after"),
        ("succeeded", "after"),
        ("run_finished", "True"),
    ]


async def test_log_progress_writes_key_value_lines() -> None:
    pipe = Pipeline("logs")
    pipe.add_task(lambda: 1, name="one")
    out = io.StringIO()
    await pipe.run(progress=LogProgress(out), run_id="r1")
    lines = out.getvalue().splitlines()
    assert "pipeline=logs run=r1 event=run_started tasks=1" in lines[0]
    assert any("task=one status=succeeded attempts=1" in line for line in lines)
    assert "event=run_finished ok=True succeeded=1" in lines[-1]


async def test_terminal_progress_redraws_in_place_with_ansi_codes() -> None:
    pipe = Pipeline("tty")

    @pipe.task()
    def ok() -> int:
        return 1

    @pipe.task()
    def broken() -> int:
        raise RuntimeError("boom")

    out = io.StringIO()
    view = TerminalProgress(out)
    await pipe.run(progress=view, run_id="r")
    text = out.getvalue()
    assert "\x1b[2K" in text and "F" in text
    final = view.render()
    assert final[0].startswith("tty [r]: 2/2 done, 0 running, 1 failed, 1 succeeded")
    assert any("broken" in line and "RuntimeError: boom" in line for line in final)


async def test_cancelling_a_run_cancels_its_running_tasks_and_ends_the_report() -> None:
    pipe = Pipeline("cancel")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @pipe.task()
    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    recorder = Recorder()
    run = asyncio.ensure_future(pipe.run(progress=recorder))
    await asyncio.wait_for(started.wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert cancelled.is_set()
    assert recorder.events[-1] == ("run_finished", "True")
