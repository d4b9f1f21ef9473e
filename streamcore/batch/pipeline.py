"""``Pipeline``: the user's definition of a batch DAG, and the entry points that run it.

Declaring tasks only records data; ``validate`` (called by ``plan`` and ``run``)
checks the whole graph before anything runs. ``@pipe.task(...)`` returns the function
unchanged, so it stays importable and picklable by name (the process executor needs
that) and callable in tests; the ``Task`` is in ``pipe.tasks``.
Design: docs/batch.md
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from streamcore.batch.clock import Clock, SystemClock
from streamcore.batch.graph import TaskGraph, resolve_graph
from streamcore.batch.plan import Plan, make_plan
from streamcore.batch.progress import ProgressReporter, make_reporter
from streamcore.batch.resources import machine_capacity
from streamcore.batch.result import PipelineResult
from streamcore.batch.task import (
    EXECUTORS,
    ExecutorName,
    Task,
    TaskRef,
    function_kind,
    function_name,
)
from streamcore.duration import to_seconds
from streamcore.errors import PipelineValidationError
from streamcore.retry import NO_RETRY, Retry
from streamcore.state.store import StateStore

if TYPE_CHECKING:
    from streamcore.batch.checkpoints import Codec

__all__ = ["Pipeline"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_MAILBOX_CAPACITY = 1024


def _check_executor(value: object, what: str) -> ExecutorName:
    if value not in EXECUTORS:
        raise PipelineValidationError(f"{what} must be one of {', '.join(map(repr, EXECUTORS))}, got {value!r}")
    return value


def _check_resources(value: Mapping[str, float], what: str) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, amount in value.items():
        if (
            not isinstance(key, str)
            or isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or amount < 0
            or not math.isfinite(amount)
        ):
            raise PipelineValidationError(
                f"{what} maps resource names to non-negative numbers, got {key!r}: {amount!r}"
            )
        checked[key] = float(amount)
    return checked


class Pipeline:
    """A named DAG of tasks: ``pipe = Pipeline("etl")``, then ``@pipe.task(...)``."""

    def __init__(
        self,
        name: str,
        *,
        executor: ExecutorName = "async",
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        resources: Mapping[str, float] | None = None,
        mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
        dask_address: str | None = None,
        dask_cluster_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise PipelineValidationError(f"a pipeline needs a non-empty name without '/', got {name!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise PipelineValidationError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        if isinstance(mailbox_capacity, bool) or not isinstance(mailbox_capacity, int) or mailbox_capacity < 1:
            raise PipelineValidationError(f"mailbox_capacity must be at least 1 item, got {mailbox_capacity!r}")
        self.name = name
        self.executor = _check_executor(executor, "Pipeline executor")
        self.max_concurrency = max_concurrency
        self.capacity: dict[str, float] = machine_capacity()
        if resources is not None:
            self.capacity.update(_check_resources(resources, "Pipeline resources"))
        self.mailbox_capacity = mailbox_capacity
        self.dask_address = dask_address
        self.dask_cluster_options = dict(dask_cluster_options or {})
        self._tasks: dict[str, Task] = {}
        self._graph: TaskGraph | None = None

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} tasks={len(self._tasks)} executor={self.executor!r}>"

    @property
    def tasks(self) -> dict[str, Task]:
        """The declared tasks by name, in declaration order."""
        return dict(self._tasks)

    # -- declaring ----------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        depends_on: Iterable[TaskRef] = (),
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | float | str | None = None,
        executor: ExecutorName | None = None,
        resources: Mapping[str, float] | None = None,
        priority: int = 0,
        streaming: bool = False,
    ) -> Callable[[F], F]: ...

    def task(
        self,
        fn: F | None = None,
        /,
        *,
        depends_on: Iterable[TaskRef] = (),
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | float | str | None = None,
        executor: ExecutorName | None = None,
        resources: Mapping[str, float] | None = None,
        priority: int = 0,
        streaming: bool = False,
    ) -> F | Callable[[F], F]:
        """Declare a task; use as ``@pipe.task()`` or ``@pipe.task(depends_on=[...], ...)``."""

        def decorate(function: F) -> F:
            self.add_task(
                function,
                depends_on=depends_on,
                name=name,
                retry=retry,
                timeout=timeout,
                executor=executor,
                resources=resources,
                priority=priority,
                streaming=streaming,
            )
            return function

        if fn is not None:
            return decorate(fn)
        return decorate

    def add_task(
        self,
        fn: Callable[..., Any],
        *,
        depends_on: Iterable[TaskRef] = (),
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | float | str | None = None,
        executor: ExecutorName | None = None,
        resources: Mapping[str, float] | None = None,
        priority: int = 0,
        streaming: bool = False,
    ) -> Task:
        """Declare a task without a decorator (for generated graphs); returns the ``Task``."""
        if not callable(fn):
            raise PipelineValidationError(f"a task needs a callable, got {fn!r}")
        task_name = function_name(fn) if name is None else name
        if not isinstance(task_name, str) or not task_name or "/" in task_name:
            raise PipelineValidationError(f"a task name must be a non-empty string without '/', got {task_name!r}")
        if task_name in self._tasks:
            raise PipelineValidationError(
                f"pipeline {self.name!r} already has a task named {task_name!r}; "
                "give each task a unique name="
            )
        if isinstance(depends_on, str | Task) or callable(depends_on):
            depends_on = [depends_on]
        if retry is not None and not isinstance(retry, Retry):
            raise PipelineValidationError(f"task {task_name!r}: retry must be a Retry, got {retry!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise PipelineValidationError(f"task {task_name!r}: priority must be an int, got {priority!r}")
        task = Task(
            name=task_name,
            fn=fn,
            depends_on=tuple(depends_on),
            retry=retry or NO_RETRY,
            timeout_s=None if timeout is None else to_seconds(timeout, f"task {task_name!r} timeout"),
            executor=None if executor is None else _check_executor(executor, f"task {task_name!r} executor"),
            resources=_check_resources(resources or {}, f"task {task_name!r} resources"),
            priority=priority,
            streaming=bool(streaming),
            kind=function_kind(fn),
            owner=self,
        )
        self._tasks[task_name] = task
        self._graph = None
        return task

    # -- checking -------------------------------------------------------------------

    def validate(self) -> TaskGraph:
        """Check the whole graph; raise ``PipelineValidationError`` listing every problem."""
        if self._graph is None:
            self._graph = resolve_graph(
                self.name,
                self,
                list(self._tasks.values()),
                default_executor=self.executor,
                capacity=self.capacity,
            )
        return self._graph

    def plan(self) -> Plan:
        """Levels, critical path and width of the graph (validates it first)."""
        return make_plan(self.validate(), self.executor)

    # -- running --------------------------------------------------------------------

    async def run(
        self,
        *,
        run_id: str | None = None,
        store: StateStore | None = None,
        codec: Codec | None = None,
        progress: bool | ProgressReporter = False,
        clock: Clock | None = None,
    ) -> PipelineResult:
        """Run every task once and return the result.

        With ``store``, each finished task's output is saved under
        ``pipeline/<name>/<run_id>/<task>``; running again with the same ``run_id``
        loads those outputs (status ``resumed``) and runs only the rest.
        """
        graph = self.validate()
        clock = clock or SystemClock()
        if run_id is None:
            run_id = f"{self.name}-{clock.now():%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
        elif not isinstance(run_id, str) or not run_id:
            raise PipelineValidationError(f"run_id must be a non-empty string, got {run_id!r}")
        # The scheduler, executors (multiprocessing, Dask hooks) and checkpoints (the serde)
        # are imported by the first run, not with the definition: the CLI imports this module.
        from streamcore.batch.checkpoints import TaskCheckpoints
        from streamcore.batch.executors import RunExecutors
        from streamcore.batch.runner import PipelineRun

        checkpoints = None if store is None else TaskCheckpoints(store, self.name, run_id, codec)
        executors = RunExecutors(
            self.name,
            process_workers=min(self.max_concurrency, int(self.capacity.get("cpu", 1)) or 1),
            dask_address=self.dask_address,
            dask_cluster_options=self.dask_cluster_options,
        )
        run = PipelineRun(
            graph,
            run_id=run_id,
            max_concurrency=self.max_concurrency,
            capacity=self.capacity,
            mailbox_capacity=self.mailbox_capacity,
            clock=clock,
            reporter=make_reporter(progress),
            checkpoints=checkpoints,
            executors=executors,
        )
        finished = False
        try:
            result = await run.execute()
            finished = True
            return result
        finally:
            await executors.close(wait=finished)

    def run_sync(
        self,
        *,
        run_id: str | None = None,
        store: StateStore | None = None,
        codec: Codec | None = None,
        progress: bool | ProgressReporter = False,
        clock: Clock | None = None,
    ) -> PipelineResult:
        """``run`` on a new event loop (uvloop when installed), for code outside ``async``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            from streamcore.runtime.loop import LoopError

            raise LoopError("run_sync() was called inside a running event loop; use 'await pipe.run()'")

        async def main() -> PipelineResult:
            try:
                return await self.run(run_id=run_id, store=store, codec=codec, progress=progress, clock=clock)
            finally:
                if store is not None:
                    # The store's connections belong to this loop, which is about to end.
                    await store.close()

        try:
            import uvloop
        except ImportError:
            return asyncio.run(main())
        return uvloop.run(main())
