"""``RunHistory``: the last N runs of scheduled pipelines, in memory, ready to serve as JSON.

Invariants: at most ``limit`` records are kept (the oldest go first); records are
immutable; a fire time that could not start a run (the previous one was still running)
is recorded with the outcome ``missed``.
Design: docs/batch.md#scheduling
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from streamcore.batch.result import PipelineResult

__all__ = ["RunHistory", "RunOutcome", "RunRecord"]

RunOutcome = Literal["succeeded", "failed", "missed", "error"]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class RunRecord:
    """One scheduled fire time and what came of it."""

    pipeline: str
    run_id: str
    outcome: RunOutcome
    scheduled_for: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    """Task name to final status."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "scheduled_for": _iso(self.scheduled_for),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "tasks": dict(self.tasks),
            "error": self.error,
        }


class RunHistory:
    """The most recent runs, oldest first."""

    def __init__(self, limit: int = 50) -> None:
        if limit < 1:
            raise ValueError(f"RunHistory keeps at least one run, got limit={limit}")
        self.limit = limit
        self._records: deque[RunRecord] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<RunHistory {len(self._records)}/{self.limit}>"

    def record(self, result: PipelineResult, scheduled_for: datetime | None = None) -> RunRecord:
        """Keep a finished run."""
        failed = "; ".join(f"{name}: {result.tasks[name].reason}" for name in result.failed)
        entry = RunRecord(
            pipeline=result.pipeline,
            run_id=result.run_id,
            outcome="succeeded" if result.ok else "failed",
            scheduled_for=scheduled_for,
            started=result.started,
            finished=result.finished,
            tasks=result.statuses(),
            error=failed or None,
        )
        self._records.append(entry)
        return entry

    def record_missed(self, pipeline: str, run_id: str, scheduled_for: datetime) -> RunRecord:
        """Keep a fire time that did not start a run."""
        entry = RunRecord(pipeline=pipeline, run_id=run_id, outcome="missed", scheduled_for=scheduled_for)
        self._records.append(entry)
        return entry

    def record_error(
        self, pipeline: str, run_id: str, scheduled_for: datetime | None, error: BaseException
    ) -> RunRecord:
        """Keep a run that could not run at all (``run()`` raised)."""
        entry = RunRecord(
            pipeline=pipeline,
            run_id=run_id,
            outcome="error",
            scheduled_for=scheduled_for,
            error=f"{type(error).__name__}: {error}",
        )
        self._records.append(entry)
        return entry

    def runs(self) -> list[RunRecord]:
        """The kept records, oldest first."""
        return list(self._records)

    def as_json(self) -> list[dict[str, Any]]:
        """The kept records as JSON-ready dicts, oldest first."""
        return [entry.as_dict() for entry in self._records]
