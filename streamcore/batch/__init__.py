"""Batch DAG pipelines: tasks with dependencies, run as finite streams on the engine's loop.

Layers, bottom up: ``task``/``retry``/``durations`` (definitions, pure data) ->
``graph``/``plan`` (validation and shape) -> ``streams``/``executors``/``resources``/
``checkpoints`` (mechanisms) -> ``runner`` (the scheduler of one run) -> ``pipeline``
(the user's entry point) -> ``schedule``/``history``/``progress`` (around runs).

The names below are imported when first used (PEP 562 ``__getattr__``): the executors
bring in multiprocessing, Dask hooks and psutil, which a stream job that only needs
``streamcore.retry`` must not pay for at start-up.
Design: docs/batch.md, docs/performance.md#start-up
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore._lazy import lazy_attributes

if TYPE_CHECKING:
    from streamcore.batch.clock import Clock, SystemClock
    from streamcore.batch.failures import RemoteTaskError, TaskTimeoutError
    from streamcore.batch.history import RunHistory, RunRecord
    from streamcore.batch.pipeline import Pipeline
    from streamcore.batch.plan import Plan, format_plan
    from streamcore.batch.progress import LogProgress, ProgressReporter, TerminalProgress
    from streamcore.batch.result import PipelineResult, TaskRun, TaskStatus
    from streamcore.batch.schedule import Schedule, run_scheduled
    from streamcore.batch.task import Task
    from streamcore.retry import Retry

# Public name -> the module defining it.
_LAZY = {
    "Clock": "streamcore.batch.clock",
    "LogProgress": "streamcore.batch.progress",
    "Pipeline": "streamcore.batch.pipeline",
    "PipelineResult": "streamcore.batch.result",
    "Plan": "streamcore.batch.plan",
    "ProgressReporter": "streamcore.batch.progress",
    "RemoteTaskError": "streamcore.batch.failures",
    "Retry": "streamcore.retry",
    "RunHistory": "streamcore.batch.history",
    "RunRecord": "streamcore.batch.history",
    "Schedule": "streamcore.batch.schedule",
    "SystemClock": "streamcore.batch.clock",
    "Task": "streamcore.batch.task",
    "TaskRun": "streamcore.batch.result",
    "TaskStatus": "streamcore.batch.result",
    "TaskTimeoutError": "streamcore.batch.failures",
    "TerminalProgress": "streamcore.batch.progress",
    "format_plan": "streamcore.batch.plan",
    "run_scheduled": "streamcore.batch.schedule",
}

__all__ = [
    "Clock",
    "LogProgress",
    "Pipeline",
    "PipelineResult",
    "Plan",
    "ProgressReporter",
    "RemoteTaskError",
    "Retry",
    "RunHistory",
    "RunRecord",
    "Schedule",
    "SystemClock",
    "Task",
    "TaskRun",
    "TaskStatus",
    "TaskTimeoutError",
    "TerminalProgress",
    "format_plan",
    "run_scheduled",
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
