"""The checked task graph: references resolved, cycles excluded, tasks in topological order.

``resolve_graph`` is the only way to obtain a ``TaskGraph``, and it raises
``PipelineValidationError`` listing every problem it finds (unknown or foreign
dependencies, a cycle written out as ``a -> b -> c -> a``, functions the process
executor cannot pickle, impossible resource requests, streaming or timeout settings
that cannot be honoured), so nothing runs unless the whole graph is runnable.
Design: docs/batch.md#validation
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamcore.batch.task import ExecutorName, Task
from streamcore.errors import PipelineValidationError

__all__ = ["TaskGraph", "resolve_graph"]


@dataclass(frozen=True)
class TaskGraph:
    """A valid pipeline graph. Indices refer to ``tasks``, which is in topological order."""

    pipeline: str
    tasks: tuple[Task, ...]
    deps: tuple[tuple[int, ...], ...]
    """Per task, its dependencies in ``depends_on`` order."""
    downstream: tuple[tuple[int, ...], ...]
    executors: tuple[ExecutorName, ...]
    """Per task, the executor it runs on (its own or the pipeline's default)."""

    def index(self) -> dict[str, int]:
        """Task name to index."""
        return {task.name: i for i, task in enumerate(self.tasks)}


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)


def resolve_graph(
    pipeline: str,
    owner: object,
    declared: Sequence[Task],
    *,
    default_executor: ExecutorName,
    capacity: Mapping[str, float],
) -> TaskGraph:
    """Check the declared tasks and build the graph; raise naming every problem."""
    problems = _Problems()
    by_name = {task.name: task for task in declared}
    names_of_fn: dict[int, list[str]] = {}
    for task in declared:
        names_of_fn.setdefault(id(task.fn), []).append(task.name)

    dep_names: dict[str, list[str]] = {}
    for task in declared:
        resolved: list[str] = []
        seen: set[str] = set()
        for ref in task.depends_on:
            name = _resolve_ref(pipeline, owner, task, ref, by_name, names_of_fn, problems)
            if name is None:
                continue
            if name in seen:
                problems.add(f"task {task.name!r} depends on {name!r} twice; list each dependency once")
                continue
            seen.add(name)
            resolved.append(name)
        dep_names[task.name] = resolved

    cycle = _find_cycle([t.name for t in declared], dep_names)
    if cycle is not None:
        problems.add(
            "tasks form a cycle: " + " -> ".join(cycle)
            + " (each arrow goes from a task to one that depends on it); remove one dependency"
        )
    executors = {t.name: t.executor or default_executor for t in declared}
    for task in declared:
        _check_task(task, executors[task.name], capacity, problems)
    _check_streaming_room(declared, dep_names, capacity, problems)
    if problems.lines:
        details = "\n".join(f"  - {line}" for line in problems.lines)
        raise PipelineValidationError(f"pipeline {pipeline!r} cannot run; nothing was started:\n{details}")

    order = _topological_order([t.name for t in declared], dep_names)
    index = {name: i for i, name in enumerate(order)}
    deps = tuple(tuple(index[d] for d in dep_names[name]) for name in order)
    downstream: list[list[int]] = [[] for _ in order]
    for i, ds in enumerate(deps):
        for d in ds:
            downstream[d].append(i)
    return TaskGraph(
        pipeline=pipeline,
        tasks=tuple(by_name[name] for name in order),
        deps=deps,
        downstream=tuple(tuple(d) for d in downstream),
        executors=tuple(executors[name] for name in order),
    )


def _resolve_ref(
    pipeline: str,
    owner: object,
    task: Task,
    ref: object,
    by_name: Mapping[str, Task],
    names_of_fn: Mapping[int, list[str]],
    problems: _Problems,
) -> str | None:
    if isinstance(ref, Task):
        if ref.owner is not owner or by_name.get(ref.name) is not ref:
            problems.add(
                f"task {task.name!r} depends on task {ref.name!r} of another pipeline; "
                f"declare it in pipeline {pipeline!r}"
            )
            return None
        return ref.name
    if isinstance(ref, str):
        if ref in by_name:
            return ref
        import difflib  # only to suggest a name in an error

        close = difflib.get_close_matches(ref, list(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.add(
            f"task {task.name!r} depends on {ref!r}, which is not a task of pipeline {pipeline!r}{hint}"
        )
        return None
    if callable(ref):
        names = names_of_fn.get(id(ref), [])
        fn_name = getattr(ref, "__name__", repr(ref))
        if not names:
            problems.add(
                f"task {task.name!r} depends on function {fn_name!r}, which is not a task of "
                f"pipeline {pipeline!r}; decorate it with @pipe.task() on this pipeline"
            )
            return None
        if len(names) > 1:
            problems.add(
                f"task {task.name!r} depends on function {fn_name!r}, which is declared as "
                f"several tasks ({', '.join(map(repr, names))}); depend on one by name"
            )
            return None
        return names[0]
    problems.add(
        f"task {task.name!r}: depends_on takes tasks, task names or decorated functions, got {ref!r}"
    )
    return None


def _find_cycle(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in flow order (dependency first), starting at its earliest declared task."""
    position = {name: i for i, name in enumerate(order)}
    done: set[str] = set()
    for root in order:
        if root in done:
            continue
        # Iterative DFS along "depends on" edges; the path is the current chain.
        path: list[str] = [root]
        on_path = {root}
        iters = [iter(deps.get(root, ()))]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                iters.pop()
                continue
            if nxt in on_path:
                loop = path[path.index(nxt):]
                # ``loop`` follows "depends on"; reversed, it follows the data.
                flow = list(reversed(loop))
                start = min(range(len(flow)), key=lambda i: position[flow[i]])
                flow = flow[start:] + flow[:start]
                return [*flow, flow[0]]
            if nxt in done:
                continue
            path.append(nxt)
            on_path.add(nxt)
            iters.append(iter(deps.get(nxt, ())))
    return None


def _topological_order(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, stable in declaration order."""
    waiting = {name: len(deps[name]) for name in order}
    downstream: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        for d in deps[name]:
            downstream[d].append(name)
    ready = [name for name in order if waiting[name] == 0]
    result: list[str] = []
    i = 0
    while i < len(ready):
        name = ready[i]
        i += 1
        result.append(name)
        for d in downstream[name]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    return result


def _check_task(
    task: Task, executor: ExecutorName, capacity: Mapping[str, float], problems: _Problems
) -> None:
    name = task.name
    inline = executor == "async" and task.kind in ("function", "generator")
    if executor == "process":
        try:
            pickle.dumps(task.fn)
        except Exception as exc:
            problems.add(
                f"task {name!r} runs on the process executor but its function cannot be pickled "
                f"({type(exc).__name__}: {exc}); define it at module level, not as a lambda or "
                "nested function"
            )
    if executor == "dask" and not _dask_installed():
        problems.add(
            f"task {name!r} runs on the dask executor but dask.distributed is not installed; "
            "install streamcore[dask]"
        )
    if task.timeout_s is not None and inline:
        problems.add(
            f"task {name!r} is a plain {'generator' if task.kind == 'generator' else 'function'} "
            "on the async executor, which runs inline on the event loop and cannot be "
            "interrupted, so its timeout cannot be honoured; use executor='thread' (or make it async)"
        )
    if task.streaming:
        if executor in ("process", "dask"):
            problems.add(
                f"task {name!r} is streaming, which needs the async or thread executor; "
                f"the {executor} executor only passes whole values"
            )
        elif inline:
            problems.add(
                f"task {name!r} is streaming but a plain function on the async executor, which "
                "would block the event loop while waiting for records; make it async def "
                "(records arrive as async iterators) or use executor='thread'"
            )
    for key, amount in task.resources.items():
        total = capacity.get(key)
        if total is None:
            problems.add(
                f"task {name!r} asks for resource {key!r}, which the pipeline does not have "
                f"(capacity: {_format_resources(capacity)}); add it to Pipeline(resources=...)"
            )
        elif amount > total:
            problems.add(
                f"task {name!r} asks for {key}={amount:g}, more than the pipeline's whole "
                f"capacity {key}={total:g}; it could never start"
            )


def _check_streaming_room(
    declared: Sequence[Task],
    dep_names: Mapping[str, Sequence[str]],
    capacity: Mapping[str, float],
    problems: _Problems,
) -> None:
    # A streaming task runs alongside the producers it reads from, so together they must fit.
    by_name = {t.name: t for t in declared}
    for task in declared:
        if not task.streaming:
            continue
        group = [task] + [by_name[d] for d in dep_names[task.name] if by_name[d].produces_stream]
        if len(group) == 1:
            continue
        for key, total in capacity.items():
            needed = sum(t.resources.get(key, 0.0) for t in group)
            if needed > total:
                names = ", ".join(repr(t.name) for t in group)
                problems.add(
                    f"streaming tasks {names} must run at the same time but together ask "
                    f"{key}={needed:g}, more than the capacity {key}={total:g}"
                )


def _format_resources(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "none"


def _dask_installed() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True

