"""Batch DAG pipelines: tasks with dependencies, run as finite streams on the engine's loop.

Layers, bottom up: ``task``/``retry``/``durations`` (definitions, pure data) ->
``graph``/``plan`` (validation and shape) -> ``streams``/``executors``/``resources``/
``checkpoints`` (mechanisms) -> ``runner`` (the scheduler of one run) -> ``pipeline``
(the user's entry point) -> ``schedule``/``history``/``progress`` (around runs).
Design: docs/batch.md
"""

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
