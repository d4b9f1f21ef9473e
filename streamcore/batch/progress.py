"""Progress of a pipeline run: reporter callbacks, a live terminal view, and plain log lines.

A ``ProgressReporter`` is told when the run starts, when each try of a task starts,
when a task waits to retry, when a task finishes, and when the run ends; all callbacks
run on the event loop and must not block. ``run(progress=True)`` picks
``TerminalProgress`` (redrawn in place with ANSI codes) when stdout is a terminal, and
``LogProgress`` (one ``key=value`` line per event) otherwise.
Design: docs/batch.md#progress
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from streamcore.batch.result import PipelineResult, TaskRun

__all__ = ["LogProgress", "ProgressReporter", "TerminalProgress", "make_reporter"]


class ProgressReporter:
    """Callbacks on a run's progress; subclass and override the ones you need."""

    def run_started(self, pipeline: str, run_id: str, tasks: Sequence[str]) -> None:
        """The run begins with these tasks (resumed ones included)."""

    def task_started(self, run: TaskRun) -> None:
        """A try of a task starts; ``run.attempts`` is its number."""

    def task_retrying(self, run: TaskRun, delay_s: float) -> None:
        """A try failed with ``run.error``; the next one starts in ``delay_s`` seconds."""

    def task_finished(self, run: TaskRun) -> None:
        """A task reached its final status."""

    def run_finished(self, result: PipelineResult) -> None:
        """The run is over."""


def _error_text(run: TaskRun) -> str:
    return run.reason or ("" if run.error is None else f"{type(run.error).__name__}: {run.error}")


class LogProgress(ProgressReporter):
    """One ``key=value`` line per event, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._prefix = ""

    def _line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stream = self._stream or sys.stdout
        stream.write(f"{stamp} {self._prefix}{text}\n")
        stream.flush()

    def run_started(self, pipeline: str, run_id: str, tasks: Sequence[str]) -> None:
        """Log the start of the run."""
        self._prefix = f"pipeline={pipeline} run={run_id} "
        self._line(f"event=run_started tasks={len(tasks)}")

    def task_started(self, run: TaskRun) -> None:
        """Log a try starting."""
        self._line(f"task={run.name} status=running attempt={run.attempts}")

    def task_retrying(self, run: TaskRun, delay_s: float) -> None:
        """Log a retry being scheduled."""
        self._line(f"task={run.name} status=retrying attempt={run.attempts} delay_s={delay_s:.3f} error={_error_text(run)!r}")

    def task_finished(self, run: TaskRun) -> None:
        """Log a task's final status."""
        duration = "" if run.duration_s is None else f" duration_s={run.duration_s:.3f}"
        why = "" if run.status in ("succeeded", "resumed") else f" reason={_error_text(run)!r}"
        self._line(f"task={run.name} status={run.status} attempts={run.attempts}{duration}{why}")

    def run_finished(self, result: PipelineResult) -> None:
        """Log the end of the run."""
        counts = _counts(result.tasks.values())
        summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        self._line(f"event=run_finished ok={result.ok} {summary}")


def _counts(runs: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs:  # type: ignore[attr-defined]
        counts[run.status] = counts.get(run.status, 0) + 1
    return counts


class TerminalProgress(ProgressReporter):
    """A live view, redrawn in place: counts, running tasks with durations, failures."""

    max_running_lines = 8
    max_failed_lines = 5
    refresh_s = 0.25

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._title = ""
        self._total = 0
        self._running: dict[str, tuple[float, int]] = {}
        self._failed: list[TaskRun] = []
        self._counts: dict[str, int] = {}
        self._t0 = time.monotonic()
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._ticker: asyncio.TimerHandle | None = None

    def run_started(self, pipeline: str, run_id: str, tasks: Sequence[str]) -> None:
        """Start the view and its refresh timer."""
        self._title = f"{pipeline} [{run_id}]"
        self._total = len(tasks)
        self._t0 = time.monotonic()
        self._draw(force=True)
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ticker = loop.call_later(self.refresh_s, self._tick)

    def _tick(self) -> None:
        self._draw(force=True)
        self._schedule_tick()

    def task_started(self, run: TaskRun) -> None:
        """Show the task as running."""
        self._running[run.name] = (time.monotonic(), run.attempts)
        self._draw()

    def task_retrying(self, run: TaskRun, delay_s: float) -> None:
        """Show the task as waiting to retry."""
        self._running.pop(run.name, None)
        self._draw()

    def task_finished(self, run: TaskRun) -> None:
        """Count the task and list it if it failed."""
        self._running.pop(run.name, None)
        self._counts[run.status] = self._counts.get(run.status, 0) + 1
        if run.status in ("failed", "timed_out"):
            self._failed.append(run)
        self._draw()

    def run_finished(self, result: PipelineResult) -> None:
        """Draw the final state and stop refreshing."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._running.clear()
        self._draw(force=True)

    def render(self) -> list[str]:
        """The lines of the view as it is now."""
        now = time.monotonic()
        done = sum(self._counts.values())
        parts = [f"{done}/{self._total} done", f"{len(self._running)} running"]
        parts.extend(f"{n} {status}" for status, n in sorted(self._counts.items()))
        lines = [f"{self._title}: " + ", ".join(parts) + f"  [{now - self._t0:.1f}s]"]
        running = sorted(self._running.items(), key=lambda item: item[1][0])
        for name, (since, attempt) in running[: self.max_running_lines]:
            retry = f" (attempt {attempt})" if attempt > 1 else ""
            lines.append(f"  > {name:<24} running {now - since:7.1f}s{retry}")
        if len(running) > self.max_running_lines:
            lines.append(f"    ... {len(running) - self.max_running_lines} more running")
        for run in self._failed[-self.max_failed_lines:]:
            took = "" if run.duration_s is None else f"{run.duration_s:7.1f}s"
            lines.append(f"  x {run.name:<24} {run.status} {took} {_error_text(run)[:80]}")
        return lines

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.05:
            return
        self._last_draw = now
        lines = self.render()
        out: list[str] = []
        if self._drawn_lines:
            # Back to the first line drawn last time, then overwrite line by line.
            out.append(f"\x1b[{self._drawn_lines}F")
        out.extend(f"\x1b[2K{line}\n" for line in lines)
        extra = self._drawn_lines - len(lines)
        if extra > 0:
            out.append("\x1b[2K\n" * extra + f"\x1b[{extra}F")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn_lines = len(lines)


def make_reporter(progress: bool | ProgressReporter | None, stream: TextIO | None = None) -> ProgressReporter | None:
    """The reporter for ``run(progress=...)``: None, the one given, or one suited to stdout."""
    if progress is None or progress is False:
        return None
    if isinstance(progress, ProgressReporter):
        return progress
    target = stream or sys.stdout
    isatty = getattr(target, "isatty", None)
    if callable(isatty) and isatty():
        return TerminalProgress(target)
    return LogProgress(target)
