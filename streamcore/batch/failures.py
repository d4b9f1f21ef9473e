"""Errors a task's run can end with that come from the engine, not from the task's code.

``TaskTimeoutError`` is also a ``TimeoutError``, so ``Retry(retry_on=(TimeoutError,))``
retries timeouts; a task whose last try timed out has the status ``timed_out``.
Design: docs/batch.md#timeouts
"""

from __future__ import annotations

from streamcore.errors import PipelineError

__all__ = ["RemoteTaskError", "TaskTimeoutError"]


class TaskTimeoutError(PipelineError, TimeoutError):
    """A try of a task ran longer than its ``timeout``."""

    def __init__(self, task: str, timeout_s: float, what_happened: str) -> None:
        super().__init__(f"task {task!r} timed out after {timeout_s:g}s; {what_happened}")
        self.task = task
        self.timeout_s = timeout_s


class RemoteTaskError(PipelineError):
    """A task failed in a worker process and its exception could not be sent back as is."""
