"""``Plan``: the shape of a pipeline before it runs (levels, critical path, width).

A task's level is the length of the longest chain of dependencies above it, so all
tasks of one level could run together. The critical path is the longest chain of tasks
(counted in tasks, as durations are unknown before a run); ``remaining_path_lengths``
gives, per task, the longest chain from it to the end, which the scheduler uses to rank
ready tasks. ``format_plan`` is what ``streamcore plan module:attr`` prints.
Design: docs/batch.md#plans
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamcore.batch.graph import TaskGraph

__all__ = ["Plan", "format_plan", "make_plan", "remaining_path_lengths"]


@dataclass(frozen=True)
class Plan:
    """What ``pipe.plan()`` returns."""

    pipeline: str
    levels: tuple[tuple[str, ...], ...]
    """Tasks grouped by level; level 0 has no dependencies."""
    critical_path: tuple[str, ...]
    """The longest chain of dependent tasks, first to last."""
    width: int
    """The most tasks in one level: how many could run at once with no limit."""
    notes: dict[str, str] = field(default_factory=dict)
    """Per task, its non-default settings (executor, streaming, priority...)."""

    @property
    def task_count(self) -> int:
        """Number of tasks."""
        return sum(len(level) for level in self.levels)

    def __str__(self) -> str:
        return format_plan(self)


def remaining_path_lengths(graph: TaskGraph) -> list[int]:
    """Per task, the number of tasks on the longest chain from it to a final task."""
    lengths = [1] * len(graph.tasks)
    for i in range(len(graph.tasks) - 1, -1, -1):
        below = graph.downstream[i]
        if below:
            lengths[i] = 1 + max(lengths[d] for d in below)
    return lengths


def make_plan(graph: TaskGraph, default_executor: str) -> Plan:
    """The plan of a validated graph."""
    count = len(graph.tasks)
    level_of = [0] * count
    for i in range(count):
        if graph.deps[i]:
            level_of[i] = 1 + max(level_of[d] for d in graph.deps[i])
    levels: list[list[str]] = [[] for _ in range(max(level_of, default=-1) + 1)]
    for i, task in enumerate(graph.tasks):
        levels[level_of[i]].append(task.name)

    remaining = remaining_path_lengths(graph)
    path: list[str] = []
    roots = [i for i in range(count) if not graph.deps[i]]
    if roots:
        current = max(roots, key=lambda i: (remaining[i], -i))
        while True:
            path.append(graph.tasks[current].name)
            below = graph.downstream[current]
            if not below:
                break
            current = max(below, key=lambda i: (remaining[i], -i))

    notes: dict[str, str] = {}
    for i, task in enumerate(graph.tasks):
        parts: list[str] = []
        if graph.executors[i] != default_executor:
            parts.append(graph.executors[i])
        if task.produces_stream:
            parts.append("generator")
        if task.streaming:
            parts.append("streaming")
        if task.priority:
            parts.append(f"priority={task.priority}")
        if task.retry.attempts > 1:
            parts.append(f"attempts={task.retry.attempts}")
        if task.timeout_s is not None:
            parts.append(f"timeout={task.timeout_s:g}s")
        if task.resources:
            parts.extend(f"{k}={v:g}" for k, v in task.resources.items())
        if parts:
            notes[task.name] = ", ".join(parts)
    return Plan(
        pipeline=graph.pipeline,
        levels=tuple(tuple(level) for level in levels),
        critical_path=tuple(path),
        width=max((len(level) for level in levels), default=0),
        notes=notes,
    )


def format_plan(plan: Plan) -> str:
    """A plan as lines of text for people."""
    lines = [
        f"pipeline {plan.pipeline!r}: {plan.task_count} tasks, "
        f"{len(plan.levels)} levels, width {plan.width}"
    ]
    for number, level in enumerate(plan.levels):
        shown = [f"{name} ({plan.notes[name]})" if name in plan.notes else name for name in level]
        lines.append(f"  level {number}: " + ", ".join(shown))
    if plan.critical_path:
        lines.append(
            f"critical path ({len(plan.critical_path)} tasks): " + " -> ".join(plan.critical_path)
        )
    return "\n".join(lines)
