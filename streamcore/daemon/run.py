"""``streamcore run``: run a loaded Dataflow or Pipeline (once or on a schedule) under signals.

What the first SIGINT/SIGTERM does depends on what runs (a second always exits at once,
see ``signals``):

- a Dataflow: its sources stop reading, and the command exits 0. With ``--state`` the
  flow stops at a checkpoint without ending its stream (open windows stay in the
  checkpoint, the next run resumes exactly there); without it, records in flight drain
  to the sinks and every open window fires, as at the end of a finite stream. Either
  is bounded by ``--drain-timeout`` (30 s): past it the run is cancelled; with
  ``--state`` the next run resumes from the last complete checkpoint, without it the
  command exits 1 saying how many records were still in flight. A stop during a restart
  backoff ends the run at once;
- a scheduled Pipeline: no new run starts, runs in flight finish, the command exits 0;
- a single Pipeline run: it is cancelled (tasks are not interruptible at a safe point)
  and the command exits 130/143; with ``--state``, ``--run-id`` resumes it later.

The ``run_*`` functions return the exit status; errors the user can fix before anything
runs are ``UsageError`` (status 2).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamcore.batch.clock import SystemClock
from streamcore.batch.history import RunHistory
from streamcore.batch.pipeline import Pipeline
from streamcore.batch.progress import ProgressReporter, make_reporter
from streamcore.batch.result import PipelineResult, TaskRun
from streamcore.batch.schedule import Schedule, run_scheduled
from streamcore.daemon.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from streamcore.daemon.signals import GracefulSignals, exit_status_for
from streamcore.daemon.target import resolve_target
from streamcore.dataflow.flow import Dataflow
from streamcore.dataflow.handle import FlowRun
from streamcore.duration import to_seconds
from streamcore.errors import SetupError, StreamcoreError, UsageError
from streamcore.state.checkpointing import Checkpointing, RestartPolicy
from streamcore.state.store import StateStore

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "RunOptions", "UsageError", "run_target"]


log = logging.getLogger("streamcore.daemon")

@dataclass(frozen=True)
class RunOptions:
    """The ``run`` options that shape how a target runs."""

    run_id: str | None = None
    state_url: str | None = None
    cron: str | None = None
    every: str | None = None
    allow_overlap: bool = False
    catch_up: bool = False
    checkpoint_interval: str | None = None
    restart: RestartPolicy | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    api_token: str | None = None
    drain_timeout: str | None = None
    """Bound on a graceful stop (``--drain-timeout``, default 30s)."""
    reload_logging: Callable[[], str] | None = None
    """SIGHUP calls it: reconfigures logging, returns what it set (for the log)."""

    @property
    def scheduled(self) -> bool:
        """Whether a schedule was asked for."""
        return self.cron is not None or self.every is not None


async def run_target(obj: Any, spec: str, options: RunOptions) -> int:
    """Resolve ``obj`` (loaded from ``spec``) and run it; returns the exit status."""
    loop = asyncio.get_running_loop()
    if options.reload_logging is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_logging, options.reload_logging)
    try:
        return await _run_target(obj, spec, options)
    finally:
        if options.reload_logging is not None:
            loop.remove_signal_handler(signal.SIGHUP)


def _reload_logging(reload: Callable[[], str]) -> None:
    try:
        what = reload()
    except Exception as exc:
        log.error("SIGHUP: logging not reconfigured, the settings are not valid error=%r", str(exc))
        return
    log.info("SIGHUP: logging reconfigured %s", what)


async def _run_target(obj: Any, spec: str, options: RunOptions) -> int:
    target = await resolve_target(obj, spec)
    if isinstance(target, Dataflow):
        _check_flow_options(spec, options)
        return await run_dataflow(target, _checkpointing(options), options)
    if options.restart is not None:
        raise UsageError(
            f"{spec!r} is a Pipeline; --restart is for Dataflows (a pipeline's tasks retry "
            "with their own Retry)"
        )
    schedule = _make_schedule(options)
    if options.metrics_port is not None and schedule is None:
        raise UsageError(
            f"--metrics-port serves a Dataflow or a scheduled pipeline; {spec!r} runs once "
            "(add --schedule or --every)"
        )
    store = _open_store(options.state_url)
    try:
        if schedule is not None:
            return await run_pipeline_on_schedule(target, schedule, store, options)
        return await run_pipeline(target, options.run_id, store)
    finally:
        if store is not None:
            await store.close()


# -- Dataflows --------------------------------------------------------------------


def _check_flow_options(spec: str, options: RunOptions) -> None:
    if options.scheduled or options.allow_overlap or options.catch_up:
        raise UsageError(
            f"{spec!r} is a Dataflow, and --schedule/--every/--allow-overlap/--catch-up "
            "schedule batch pipelines; a Dataflow runs continuously until its sources end "
            "or SIGTERM/SIGINT stops it"
        )
    if options.run_id is not None:
        raise UsageError(
            f"{spec!r} is a Dataflow; --run-id names a pipeline run (a Dataflow is "
            "identified by its name)"
        )
    if options.checkpoint_interval is not None and options.state_url is None:
        raise UsageError(
            "--checkpoint-interval needs --state URL: the store the checkpoints go to"
        )


def _checkpointing(options: RunOptions) -> Checkpointing | None:
    """``--state`` (and ``--checkpoint-interval``) for a Dataflow: where its checkpoints go."""
    store = _open_store(options.state_url)
    if store is None:
        return None
    interval = options.checkpoint_interval or "10s"
    try:
        return Checkpointing(store, interval=to_seconds(interval, "--checkpoint-interval"))
    except (StreamcoreError, ValueError, TypeError) as exc:
        raise UsageError(f"--checkpoint-interval {interval!r}: {exc}") from None


async def run_dataflow(
    flow: Dataflow, checkpoint: Checkpointing | None = None, options: RunOptions | None = None
) -> int:
    """Run ``flow`` to its end; the first signal stops it (see the module docstring).

    With ``checkpoint``, the flow resumes from its last complete checkpoint and a signal
    stops it at a checkpoint; without, a signal drains it, within ``--drain-timeout``.
    ``options`` adds a restart policy and the HTTP server (``--metrics-port``).
    """
    options = options or RunOptions()
    drain_timeout_s = _drain_timeout_s(options)
    run = FlowRun(flow, checkpoint, options.restart)
    suspend = checkpoint is not None
    stopping = asyncio.Event()

    def request_stop() -> None:
        if run.done or run.stop_requested is not None:
            return
        run.request_stop(suspend=suspend)
        stopping.set()

    def on_signal(signum: int) -> None:
        if suspend:
            what = "stopping dataflow %r at a checkpoint; open windows are kept for the next run"
        else:
            what = "stopping the sources of dataflow %r; records in flight drain to the sinks"
        log.info(
            "%s received: " + what + " (within %gs; send the signal again to exit at once)",
            signal.Signals(signum).name, flow.name, drain_timeout_s,
        )
        request_stop()

    signals = GracefulSignals(on_signal)
    signals.install()
    server = None
    try:
        if options.metrics_port is not None:
            from streamcore.daemon.http import DaemonServer

            server = DaemonServer(
                run, host=options.metrics_host, port=options.metrics_port,
                api_token=options.api_token, on_stop=request_stop,
            )
            try:
                await server.start()
            except OSError as exc:
                server = None
                raise UsageError(
                    f"cannot serve on {options.metrics_host}:{options.metrics_port}: {exc.strerror or exc}"
                ) from None
        try:
            await run.start()
        except SetupError as exc:
            if checkpoint is None:
                raise
            raise UsageError(f"--state: {exc}") from exc
        log.info("running dataflow %r; SIGTERM or SIGINT stops it gracefully", flow.name)
        ended = asyncio.ensure_future(run.wait_ended())
        asked = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait([ended, asked], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (ended, asked):
                waiter.cancel()
            await asyncio.gather(asked, ended, return_exceptions=True)
        if run.done:
            await run.wait()  # raises the run's failure
        else:
            await run.stop(suspend=suspend, timeout=drain_timeout_s)
    finally:
        signals.remove()
        if server is not None:
            await server.stop()
    if run.stop_requested is None:
        how = "finished"
    elif run.last_error is not None:
        how = "stopped during its restart backoff"
    elif suspend:
        how = "stopped at a checkpoint"
    else:
        how = "stopped and drained"
    log.info("dataflow %r %s", flow.name, how)
    return EXIT_OK


def _drain_timeout_s(options: RunOptions) -> float:
    text = options.drain_timeout or "30s"
    try:
        return to_seconds(text, "--drain-timeout")
    except (StreamcoreError, ValueError, TypeError) as exc:
        raise UsageError(f"--drain-timeout {text!r}: {exc}") from None


# -- Pipelines --------------------------------------------------------------------


def _make_schedule(options: RunOptions) -> Schedule | None:
    if not options.scheduled:
        if options.allow_overlap or options.catch_up:
            raise UsageError("--allow-overlap and --catch-up go with --schedule or --every")
        return None
    if options.run_id is not None:
        raise UsageError(
            "--run-id cannot be combined with a schedule: each scheduled run's id is "
            "'<pipeline>-<fire time>', so a restarted daemon resumes it by itself"
        )
    try:
        return Schedule(
            options.cron,
            every=options.every,
            allow_overlap=options.allow_overlap,
            missed="catch_up_once" if options.catch_up else "skip",
        )
    except ImportError as exc:
        raise UsageError(
            f"--schedule needs croniter ({exc}); install it with: pip install 'streamcore[daemon]'"
        ) from None
    except StreamcoreError as exc:
        raise UsageError(str(exc)) from None


def _open_store(url: str | None) -> StateStore | None:
    if url is None:
        return None
    from streamcore.state.redis import RedisStateStore

    try:
        return RedisStateStore(url)
    except (StreamcoreError, ValueError) as exc:
        raise UsageError(f"--state {url!r}: {exc}") from None


class _RunIdRecorder(ProgressReporter):
    """Passes progress on to ``inner`` and remembers the run id, to name it on interrupt."""

    def __init__(self, inner: ProgressReporter | None) -> None:
        self.inner = inner
        self.run_id: str | None = None

    def run_started(self, pipeline: str, run_id: str, tasks: Sequence[str]) -> None:
        """Remember the run id."""
        self.run_id = run_id
        if self.inner is not None:
            self.inner.run_started(pipeline, run_id, tasks)

    def task_started(self, run: TaskRun) -> None:
        """Pass on."""
        if self.inner is not None:
            self.inner.task_started(run)

    def task_retrying(self, run: TaskRun, delay_s: float) -> None:
        """Pass on."""
        if self.inner is not None:
            self.inner.task_retrying(run, delay_s)

    def task_finished(self, run: TaskRun) -> None:
        """Pass on."""
        if self.inner is not None:
            self.inner.task_finished(run)

    def run_finished(self, result: PipelineResult) -> None:
        """Pass on."""
        if self.inner is not None:
            self.inner.run_finished(result)


async def run_pipeline(pipe: Pipeline, run_id: str | None, store: StateStore | None) -> int:
    """Run ``pipe`` once with progress on stdout; 0 when every task succeeded, else 1."""
    # A terminal gets the live view, a pipe or a file gets key=value log lines.
    reporter = _RunIdRecorder(make_reporter(True, sys.stdout))
    runner = asyncio.ensure_future(pipe.run(run_id=run_id, store=store, progress=reporter))

    def on_signal(signum: int) -> None:
        log.warning(
            "%s received: cancelling pipeline %r (send it again to exit at once)",
            signal.Signals(signum).name,
            pipe.name,
        )
        runner.cancel()

    signals = GracefulSignals(on_signal)
    signals.install()
    try:
        result = await runner
    except asyncio.CancelledError:
        if signals.received is None:
            raise
        print(f"pipeline {pipe.name!r} run {reporter.run_id!r} was interrupted", file=sys.stderr)
        if store is not None and reporter.run_id is not None:
            print(f"  resume it with: --run-id {reporter.run_id}", file=sys.stderr)
        return exit_status_for(signals.received)
    finally:
        signals.remove()
    if result.ok:
        return EXIT_OK
    print_failure(result, resumable=store is not None)
    return EXIT_FAILED


async def run_pipeline_on_schedule(
    pipe: Pipeline, schedule: Schedule, store: StateStore | None, options: RunOptions | None = None
) -> int:
    """Run ``pipe`` at every fire time until a signal; failed runs are reported, not fatal.

    With ``options.metrics_port``, the HTTP server lists recent runs (``/api/runs``) and
    runs the pipeline now on ``POST /api/pipelines/<name>/runs`` (with the API token).
    """
    options = options or RunOptions()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info(
            "%s received: no new run of pipeline %r will start; waiting for runs in flight "
            "(send it again to exit at once)",
            signal.Signals(signum).name,
            pipe.name,
        )
        stop.set()

    def on_result(result: PipelineResult) -> None:
        if not result.ok:
            print_failure(result, resumable=False)

    clock = SystemClock()
    log.info(
        "pipeline %r scheduled: %s; first run at %s",
        pipe.name,
        schedule,
        schedule.next_after(clock.now()).isoformat(),
    )
    signals = GracefulSignals(on_signal)
    signals.install()
    history = RunHistory()
    server = None
    triggers: asyncio.Queue[asyncio.Future[str]] | None = None
    if options.metrics_port is not None:
        from streamcore.daemon.http import DaemonServer, ScheduledPipeline

        scheduled = ScheduledPipeline(pipe.name, history)
        triggers = scheduled.triggers
        server = DaemonServer(
            None, pipeline=scheduled, host=options.metrics_host, port=options.metrics_port,
            api_token=options.api_token,
        )
        try:
            await server.start()
        except OSError as exc:
            signals.remove()
            raise UsageError(
                f"cannot serve on {options.metrics_host}:{options.metrics_port}: {exc.strerror or exc}"
            ) from None
    try:
        await run_scheduled(
            pipe,
            schedule,
            clock=clock,
            stop_event=stop,
            on_result=on_result,
            history=history,
            store=store,
            progress=True,
            triggers=triggers,
        )
    finally:
        signals.remove()
        if server is not None:
            await server.stop()
    log.info("pipeline %r schedule stopped", pipe.name)
    return EXIT_OK


def print_failure(result: PipelineResult, *, resumable: bool) -> None:
    """A short account of a failed run on stderr: one line per task that did not succeed."""
    counts: dict[str, int] = {}
    for run in result.tasks.values():
        counts[run.status] = counts.get(run.status, 0) + 1
    summary = ", ".join(
        f"{counts[status]} {status.replace('_', ' ')}"
        for status in ("failed", "timed_out", "skipped")
        if status in counts
    )
    lines = [f"error: pipeline {result.pipeline!r} run {result.run_id!r} failed: {summary}"]
    for run in result.tasks.values():
        if run.status in ("failed", "timed_out", "skipped"):
            reason = run.reason or (
                "" if run.error is None else f"{type(run.error).__name__}: {run.error}"
            )
            lines.append(f"  {run.status:<9} {run.name}: {reason}")
    if resumable:
        lines.append(f"  resume after the completed tasks with: --run-id {result.run_id}")
    print("\n".join(lines), file=sys.stderr)
