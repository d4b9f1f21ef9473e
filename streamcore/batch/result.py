"""What a pipeline run reports: a ``TaskRun`` per task and the ``PipelineResult``.

Invariants of a finished run:
1. Every task has a ``TaskRun`` with a final status: ``succeeded``, ``resumed`` (its
   output was loaded from the store), ``failed``, ``timed_out`` or ``skipped``.
2. ``outputs`` holds exactly the tasks that succeeded or were resumed.
3. A skipped task says why in ``reason``: the ``skip_on`` error, or the upstream task
   that failed, timed out or was skipped.
4. ``ok`` is True when no task failed or timed out.
Design: docs/batch.md#results
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from streamcore.errors import PipelineError

__all__ = ["FINAL_STATUSES", "SUCCESS_STATUSES", "PipelineResult", "TaskRun", "TaskStatus"]

TaskStatus = Literal["pending", "running", "retrying", "succeeded", "resumed", "failed", "timed_out", "skipped"]
SUCCESS_STATUSES = frozenset({"succeeded", "resumed"})
FINAL_STATUSES = frozenset({"succeeded", "resumed", "failed", "timed_out", "skipped"})


@dataclass(eq=False)
class TaskRun:
    """One task in one run. Mutable while the run goes on; final afterwards."""

    name: str
    status: TaskStatus = "pending"
    attempts: int = 0
    """Tries started (0 for a task that was resumed or skipped before it ran)."""
    started: datetime | None = None
    finished: datetime | None = None
    error: BaseException | None = None
    """The error of the last try (for ``failed``, ``timed_out``, or a ``skip_on`` skip)."""
    reason: str | None = None
    """Why the task did not succeed, in words."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from first start to finish, when both are known."""
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "name": self.name,
            "status": self.status,
            "attempts": self.attempts,
            "started": self.started.isoformat() if self.started else None,
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_s": self.duration_s,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "reason": self.reason,
        }


@dataclass(eq=False)
class PipelineResult:
    """The outcome of ``pipe.run()``."""

    pipeline: str
    run_id: str
    tasks: dict[str, TaskRun]
    outputs: dict[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    finished: datetime | None = None

    @property
    def ok(self) -> bool:
        """True when no task failed or timed out."""
        return not any(run.status in ("failed", "timed_out") for run in self.tasks.values())

    @property
    def failed(self) -> list[str]:
        """Names of the tasks that failed or timed out."""
        return [name for name, run in self.tasks.items() if run.status in ("failed", "timed_out")]

    def statuses(self) -> dict[str, str]:
        """Task name to status."""
        return {name: run.status for name, run in self.tasks.items()}

    def raise_for_failure(self) -> None:
        """Raise ``PipelineError`` naming the failed tasks (the first one's error as cause)."""
        failed = self.failed
        if not failed:
            return
        first = self.tasks[failed[0]]
        detail = "; ".join(f"{name}: {self.tasks[name].reason}" for name in failed)
        raise PipelineError(
            f"pipeline {self.pipeline!r} run {self.run_id!r}: {len(failed)} task(s) failed ({detail})"
        ) from first.error

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for run in self.tasks.values():
            counts[run.status] = counts.get(run.status, 0) + 1
        summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        return f"<PipelineResult {self.pipeline!r} run={self.run_id!r} ok={self.ok} {summary}>"
