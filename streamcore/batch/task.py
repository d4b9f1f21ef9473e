"""``Task``: one node of a pipeline, as declared by ``@pipe.task(...)``. Pure data.

A task's function kind decides the shape of its output stream: a plain or ``async``
function produces one item (its return value), a generator or async generator produces
one item per ``yield``. ``depends_on`` keeps the references exactly as written (tasks,
names or decorated functions); they are resolved, and checked, by ``validation``.
Design: docs/batch.md#tasks
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamcore.retry import NO_RETRY, Retry

__all__ = ["EXECUTORS", "ExecutorName", "FunctionKind", "Task", "TaskRef", "function_kind", "function_name"]

ExecutorName = Literal["async", "thread", "process", "dask"]
FunctionKind = Literal["function", "coroutine", "generator", "async_generator"]
EXECUTORS: tuple[ExecutorName, ...] = ("async", "thread", "process", "dask")


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def function_kind(fn: Callable[..., Any]) -> FunctionKind:
    """How ``fn`` produces its output: returns, awaits, yields, or yields asynchronously."""
    target = _unwrap(fn)
    if not inspect.isfunction(target) and not inspect.ismethod(target) and callable(target):
        # A callable object: its __call__ decides.
        target = target.__call__  # type: ignore[operator]
    if inspect.isasyncgenfunction(target):
        return "async_generator"
    if inspect.iscoroutinefunction(target):
        return "coroutine"
    if inspect.isgeneratorfunction(target):
        return "generator"
    return "function"


def function_name(fn: Callable[..., Any]) -> str:
    """The name a task gets when ``name=`` is not given."""
    target = _unwrap(fn)
    name = getattr(target, "__name__", None)
    return name if isinstance(name, str) else type(target).__name__


@dataclass(frozen=True, eq=False)
class Task:
    """A declared task: its function and how it must be run."""

    name: str
    fn: Callable[..., Any]
    depends_on: tuple[Any, ...] = ()
    """References as written: ``Task``, name, or decorated function (resolved at validation)."""
    retry: Retry = NO_RETRY
    timeout_s: float | None = None
    executor: ExecutorName | None = None
    """None: the pipeline's default executor."""
    resources: Mapping[str, float] = field(default_factory=dict)
    priority: int = 0
    streaming: bool = False
    kind: FunctionKind = "function"
    owner: object = field(default=None, repr=False)
    """The ``Pipeline`` that declared this task (a foreign task is an unknown dependency)."""

    @property
    def produces_stream(self) -> bool:
        """True for generator tasks, whose output is a stream of many items."""
        return self.kind in ("generator", "async_generator")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function directly (handy in tests)."""
        return self.fn(*args, **kwargs)


TaskRef = Task | str | Callable[..., Any]
"""What ``depends_on`` accepts: a ``Task``, a task name, or a function decorated in the same pipeline."""
