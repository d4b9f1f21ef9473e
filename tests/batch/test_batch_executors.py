"""Executors: process and Dask run the work elsewhere; timeouts are honoured by each."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from streamcore.batch import Pipeline, RemoteTaskError, Retry, TaskTimeoutError

# Released by the tests once they are done, so abandoned worker threads end.
RELEASE = threading.Event()


@pytest.fixture(autouse=True)
def _release_abandoned_threads() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


# -- functions for the process and Dask executors (module level: picklable) ---------


def pid() -> int:
    return os.getpid()


def square_sum(n: int) -> int:
    return sum(i * i for i in range(n))


def count_to(n: int) -> Iterator[int]:
    yield from range(n)


async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def fails() -> None:
    raise KeyError("no such row")


def returns_unpicklable() -> object:
    return threading.Lock()


def write_pid_then_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)  # simulated stuck work; the executor must terminate us


def wait_for_release() -> str:
    RELEASE.wait(30)
    return "released"


# -- process executor -----------------------------------------------------------------


async def test_the_process_executor_runs_tasks_in_other_processes() -> None:
    pipe = Pipeline("procs", executor="process")
    pipe.add_task(pid, name="where")
    pipe.add_task(lambda: 300, name="n", executor="async")
    pipe.add_task(square_sum, name="work", depends_on=["n"])
    pipe.add_task(count_to, name="items", depends_on=["n"])
    pipe.add_task(async_double, name="doubled", depends_on=["n"])

    result = await pipe.run()

    assert result.ok, result.tasks
    assert result.outputs["where"] != os.getpid()
    assert result.outputs["work"] == square_sum(300)
    assert result.outputs["items"] == list(range(300))
    assert result.outputs["doubled"] == 600


async def test_errors_from_worker_processes_keep_their_type_or_are_described() -> None:
    pipe = Pipeline("proc_errors", executor="process")
    pipe.add_task(fails, name="fails")
    pipe.add_task(returns_unpicklable, name="unpicklable", timeout=30)

    result = await pipe.run()

    assert isinstance(result.tasks["fails"].error, KeyError)
    error = result.tasks["unpicklable"].error
    assert isinstance(error, RemoteTaskError) and "cannot be pickled" in str(error)


async def test_a_process_task_that_times_out_has_its_process_terminated(tmp_path: Path, eventually) -> None:
    pipe = Pipeline("proc_timeout", executor="process")
    pid_file = tmp_path / "pid"
    pipe.add_task(lambda: str(pid_file), name="path", executor="async")
    pipe.add_task(write_pid_then_hang, name="stuck", depends_on=["path"], timeout=2.0)
    pipe.add_task(pid, name="after", depends_on=["stuck"])

    result = await pipe.run()

    stuck = result.tasks["stuck"]
    assert stuck.status == "timed_out"
    assert isinstance(stuck.error, TaskTimeoutError) and "was terminated" in str(stuck.error)
    assert result.tasks["after"].reason == "upstream 'stuck' timed out"
    worker = int(pid_file.read_text())
    await eventually(lambda: not psutil.pid_exists(worker), what="worker process gone")


# -- timeouts on the loop and in threads --------------------------------------------


async def test_an_async_task_that_times_out_is_cancelled() -> None:
    pipe = Pipeline("async_timeout")
    cancelled = asyncio.Event()

    @pipe.task(timeout=0.05)
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    result = await pipe.run()
    assert result.tasks["slow"].status == "timed_out"
    assert cancelled.is_set()
    assert not result.ok


async def test_a_thread_task_that_times_out_is_abandoned_and_its_retry_can_succeed(auto_clock) -> None:
    pipe = Pipeline("thread_timeout", executor="thread")
    calls = 0

    @pipe.task(timeout=0.1, retry=Retry(attempts=2, delay=1, retry_on=(TimeoutError,)))
    def sometimes_stuck() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            return wait_for_release()
        return "quick"

    result = await pipe.run(clock=auto_clock)
    run = result.tasks["sometimes_stuck"]
    assert run.status == "succeeded" and run.attempts == 2
    assert result.outputs["sometimes_stuck"] == "quick"
    assert run.error is None  # a success clears the error of the earlier try
    assert any(t.name == "streamcore-task-sometimes_stuck" for t in threading.enumerate())


async def test_a_user_timeout_error_is_a_failure_not_a_timeout() -> None:
    pipe = Pipeline("own_timeout")

    @pipe.task(timeout=30)
    async def talks_to_a_server() -> None:
        raise TimeoutError("server did not answer")

    result = await pipe.run()
    assert result.tasks["talks_to_a_server"].status == "failed"


# -- Dask ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=2,
        dashboard_address=":0",
        scheduler_kwargs={"dashboard": False},
    ) as cluster:
        yield cluster.scheduler_address


async def test_dask_runs_tasks_on_the_cluster_at_the_given_address(dask_address: str) -> None:
    pipe = Pipeline("on_dask", executor="dask", dask_address=dask_address)
    pipe.add_task(lambda: 20, name="n")
    pipe.add_task(square_sum, name="work", depends_on=["n"])
    pipe.add_task(count_to, name="items", depends_on=["n"])
    pipe.add_task(lambda items: len(items), name="count", depends_on=["items"], streaming=False)

    result = await pipe.run()

    assert result.ok, result.tasks
    assert result.outputs == {"n": 20, "work": square_sum(20), "items": list(range(20)), "count": 20}


async def test_a_dask_task_that_times_out_is_cancelled_and_marked(dask_address: str) -> None:
    pipe = Pipeline("dask_timeout", executor="dask", dask_address=dask_address)
    pipe.add_task(wait_for_release, name="stuck", timeout=0.5)
    pipe.add_task(fails, name="fails")

    result = await pipe.run()
    assert result.tasks["stuck"].status == "timed_out"
    assert "Dask future was cancelled" in str(result.tasks["stuck"].error)
    assert isinstance(result.tasks["fails"].error, KeyError)


async def test_without_an_address_a_local_cluster_is_made_for_the_run_and_closed() -> None:
    pipe = Pipeline("local_dask", executor="dask", dask_cluster_options={"threads_per_worker": 1})
    pipe.add_task(pid, name="where")
    result = await pipe.run()
    assert result.outputs["where"] == os.getpid()  # processes=False: a worker thread here
