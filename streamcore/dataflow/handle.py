"""A run of a Dataflow and the handle that owns it: attempts, the stop request, readiness.

A ``Dataflow`` is a definition; ``flow.start()`` creates a ``FlowRun``, the one object
that the embedding program, the daemon, its HTTP server and the metrics collector hold.

1. Attempts. An attempt is a ``Runtime`` (or a ``PartitionedRuntime`` for a flow that
   scales out over a partition group). A failed attempt is followed by another, under the
   restart policy and after its backoff; set-up errors (``SetupError``, graph errors, a
   state value that cannot be encoded) are not retried.
2. The stop request belongs to the run, not to one attempt. Asked for during a restart
   backoff or before an attempt exists, it ends the run at once; asked for while an
   attempt restores or runs, it is handed to that attempt (drain, or suspend at a
   checkpoint), and no attempt follows it.
3. A drain has a bound (``stop(timeout=)``): past it the attempt is cancelled. With
   checkpoints the next run resumes from the last complete one; without, the records
   still in flight are lost, and ``DrainTimeoutError`` says how many.
4. Cancelling ``wait()`` (or ``flow.run()``) cancels the run and waits until every actor
   ended, then re-raises ``CancelledError``: no task outlives it.

Design: docs/embedding.md
"""

from __future__ import annotations

import asyncio
import enum
import logging
from time import monotonic
from typing import TYPE_CHECKING

from streamcore.errors import CheckpointError, DrainTimeoutError, StreamcoreError
from streamcore.execution.runner import FlowStatistics, Runtime, restartable
from streamcore.runtime.waiting import settle

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow
    from streamcore.scaleout import PartitionedRuntime
    from streamcore.state.checkpointing import Checkpointing, RestartPolicy

__all__ = ["FlowRun", "RunState"]

log = logging.getLogger("streamcore.run")

#: Seconds between two progress lines of a drain.
DRAIN_LOG_EVERY_S = 5.0


class RunState(enum.Enum):
    """Where a run is. ``STOPPED``, ``FAILED`` and ``CANCELLED`` are final."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FlowRun:
    """The handle of one run of a flow (``await flow.start()`` returns it, started)."""

    def __init__(
        self,
        flow: Dataflow,
        checkpoint: Checkpointing | None = None,
        restart: RestartPolicy | None = None,
    ) -> None:
        self.flow = flow
        self.checkpoint = checkpoint
        self.restart = restart
        self.state = RunState.STARTING
        self.attempt: Runtime | PartitionedRuntime | None = None
        """The current (or last) attempt."""
        self.stop_requested: str | None = None
        """``"drain"`` or ``"suspend"`` once a stop was asked for (it holds across attempts)."""
        self._restarts = 0
        self._stop_event = asyncio.Event()
        self._attempt_started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._suspending: asyncio.Future[None] | None = None
        """A suspend under way (kept so the task is not collected before it ends)."""
        self.last_error: BaseException | None = None
        """The failure a stop during a restart backoff cut short (the run then ends as stopped)."""

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow.name!r} {self.state.value} restarts={self.restarts}>"

    # -- what a caller reads ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the current attempt has restored and runs, and no stop was asked for."""
        attempt = self.attempt
        return (
            self.state is RunState.RUNNING
            and self.stop_requested is None
            and attempt is not None
            and attempt.ready
        )

    @property
    def done(self) -> bool:
        """Whether the run has ended (finished, stopped, failed or cancelled)."""
        return self._task is not None and self._task.done()

    @property
    def restarts(self) -> int:
        """How many times a failed attempt (or a partition's task) was started again."""
        attempt = self.attempt
        extra = 0 if attempt is None or isinstance(attempt, Runtime) else attempt.restarts
        return self._restarts + extra

    def runtimes(self) -> list[Runtime]:
        """The current attempt's runtimes: one, or one per partition task."""
        attempt = self.attempt
        if attempt is None:
            return []
        if isinstance(attempt, Runtime):
            return [attempt]
        return [t.runtime for t in attempt.tasks.values() if t.runtime is not None]

    def statistics(self) -> FlowStatistics | None:
        """Counters of the current (or last) attempt; None before it is built."""
        attempt = self.attempt
        return None if attempt is None else attempt.statistics()

    def in_flight(self) -> int:
        """Records waiting in the current attempt's mailboxes."""
        return sum(box.size for r in self.runtimes() for box in r.mailboxes.values())

    # -- starting --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the run; return once the first attempt runs (or the run already ended).

        An error before the first attempt runs (graph, store, restore) is raised here.
        ``flow.start()`` creates the handle and calls this; a daemon that must serve the
        handle (readiness, metrics) while the run restores creates it first."""
        if self._task is not None:
            raise RuntimeError(f"{self!r} was started already; a run starts once")
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._main(), name=f"streamcore-run:{self.flow.name}")
        started = loop.create_task(self._attempt_started.wait())
        try:
            try:
                await asyncio.wait([started, self._task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
                await asyncio.gather(started, return_exceptions=True)
        except asyncio.CancelledError:
            # Also a cancel landing while the helper task settles (that await yields once):
            # the run was launched, so it is cancelled and awaited, never left behind.
            await self._cancel_and_settle()
            raise
        if self._task.done() and not self._attempt_started.is_set():
            self._task.result()  # raises the start-up error

    async def _main(self) -> None:
        try:
            await self._attempts()
        except asyncio.CancelledError:
            self.state = RunState.CANCELLED
            raise
        except BaseException:
            self.state = RunState.FAILED
            raise
        self.state = RunState.STOPPED

    def _new_attempt(self) -> Runtime | PartitionedRuntime:
        if self.checkpoint is not None:
            from streamcore.scaleout import PartitionedRuntime, partition_group_of

            if partition_group_of(self.flow) is not None:
                return PartitionedRuntime(self.flow, self.checkpoint, self.restart)
        return Runtime(self.flow, self.checkpoint)

    async def _attempts(self) -> None:
        while self.stop_requested is None:
            attempt = self._new_attempt()
            self.attempt = attempt
            self.state = RunState.RUNNING if self.stop_requested is None else RunState.STOPPING
            watcher = asyncio.ensure_future(self._signal_started(attempt))
            try:
                await attempt.run()
                return
            except StreamcoreError as exc:
                policy = self.restart
                if (
                    policy is None
                    or not isinstance(attempt, Runtime)  # partition tasks restart on their own
                    or self.stop_requested is not None
                    or self._restarts >= policy.attempts
                    or not restartable(exc, attempt)
                ):
                    raise
                unreadable = _not_rewindable(self.flow)
                if unreadable:
                    # Another attempt would fail to read it again and hide this error.
                    log.error(
                        "flow failed and cannot restart: its source cannot be read again "
                        "flow=%s source=%s", self.flow.name, unreadable,
                    )
                    raise
                self._restarts += 1
                wait_s = policy.wait_s(self._restarts)
                self.state = RunState.RESTARTING
                log.warning(
                    "flow failed, restarting flow=%s restart=%d of=%d wait_s=%.3f error=%r",
                    self.flow.name, self._restarts, policy.attempts, wait_s, str(exc),
                )
                if await self._stop_within(wait_s):
                    # A stop is a state of the run: no attempt follows it.
                    self.last_error = exc
                    log.info(
                        "flow stopped during its restart backoff flow=%s restarts=%d",
                        self.flow.name, self._restarts,
                    )
                    return
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _signal_started(self, attempt: Runtime | PartitionedRuntime) -> None:
        await attempt.wait_started()
        self._attempt_started.set()
        if self.stop_requested is not None:
            self.state = RunState.STOPPING

    async def _stop_within(self, wait_s: float) -> bool:
        """Wait out a restart backoff; True if a stop was asked for meanwhile."""
        try:
            async with asyncio.timeout(wait_s):
                await self._stop_event.wait()
        except TimeoutError:
            return False
        return True

    # -- stopping --------------------------------------------------------------------

    def request_stop(self, *, suspend: bool = False) -> None:
        """Ask the run to stop, without waiting (safe from a signal handler).

        Drain (the default): sources stop reading, records in flight reach the sinks,
        open windows fire. ``suspend=True`` (needs checkpoints): stop at a checkpoint
        without ending the stream; open windows stay in it for the next run. A second
        request does not change the first one's kind."""
        if suspend and self.checkpoint is None:
            raise CheckpointError(
                f"flow {self.flow.name!r}: stop(suspend=True) stops at a checkpoint, and this "
                "run has none; start it with checkpoint=sc.Checkpointing(...) or stop() to drain"
            )
        if self.done or self.stop_requested is not None:
            return
        self.stop_requested = "suspend" if suspend else "drain"
        self._stop_event.set()
        attempt = self.attempt
        if self.state is RunState.RESTARTING or attempt is None:
            return  # the attempt loop ends the run
        self.state = RunState.STOPPING
        if isinstance(attempt, Runtime) and suspend:
            self._suspending = asyncio.ensure_future(self._suspend(attempt))
        else:
            # A scaled-out run stops each task at a checkpoint whichever was asked: its
            # partitions move to other processes, which must find everything there.
            attempt.request_stop()

    async def _suspend(self, runtime: Runtime) -> None:
        try:
            await runtime.suspend()
        except StreamcoreError as exc:
            log.error(
                "stopping at a checkpoint failed, draining instead flow=%s error=%r",
                self.flow.name, str(exc),
            )
            runtime.request_stop()

    async def stop(self, *, suspend: bool = False, timeout: float | None = None) -> None:
        """Stop the run and wait until it has ended (see ``request_stop`` for the kinds).

        ``timeout`` bounds the wait, in seconds: past it the run is cancelled. With
        checkpoints, the next run resumes from the last complete one; without, the
        records still in flight are lost and ``DrainTimeoutError`` is raised. A failure
        of the run is raised here as from ``wait()``."""
        self.request_stop(suspend=suspend)
        if timeout is None:
            await self._wait_logging()
            return
        try:
            async with asyncio.timeout(timeout):
                await self._wait_logging()
            return
        except TimeoutError:
            pass
        in_flight = self.in_flight()
        await self._cancel_and_settle()
        what = "a drain" if self.stop_requested == "drain" else "a stop at a checkpoint"
        if self.checkpoint is not None:
            log.warning(
                "%s did not end within %.1fs: cancelled; the next run resumes from the last "
                "complete checkpoint flow=%s in_flight=%d", what, timeout, self.flow.name, in_flight,
            )
            return
        raise DrainTimeoutError(
            f"flow {self.flow.name!r}: {what} did not end within {timeout:g}s; cancelled with "
            f"{in_flight} records still in flight, which are lost (run with checkpoints to "
            "resume them, or allow a longer timeout)",
            in_flight=in_flight,
        )

    async def _wait_logging(self) -> None:
        """``wait()``, with a progress line every few seconds while it lasts."""
        assert self._task is not None
        started = monotonic()
        while True:
            done, _ = await asyncio.wait([self._task], timeout=DRAIN_LOG_EVERY_S)
            if done:
                break
            log.info(
                "%s in progress flow=%s elapsed_s=%.0f in_flight=%d",
                "drain" if self.stop_requested == "drain" else "stop at a checkpoint",
                self.flow.name, monotonic() - started, self.in_flight(),
            )
        await self.wait()

    # -- waiting and cancelling ------------------------------------------------------

    async def wait(self) -> None:
        """Wait until the run ends; re-raise its failure. Cancelling this cancels the run."""
        task = self._task
        assert task is not None, "the run was not started: use await flow.start()"
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise  # the run itself was cancelled (cancel())
            await self._cancel_and_settle()
            raise

    async def wait_ended(self) -> None:
        """Wait until the run ends, without raising its outcome; cancelling this waiter
        leaves the run alone (``wait()`` then tells how it ended)."""
        assert self._task is not None, "the run was not started: use await flow.start()"
        await asyncio.wait([self._task])

    def cancel(self) -> None:
        """Cancel the run at once (no drain, no final checkpoint); ``wait()`` raises
        ``CancelledError`` once every actor ended."""
        if self._task is not None:
            self._task.cancel()

    async def _cancel_and_settle(self) -> None:
        """Cancel the run and wait until it has ended, even if cancelled meanwhile."""
        task = self._task
        if task is None:
            return
        task.cancel()
        await settle([task])


def _not_rewindable(flow: Dataflow) -> str | None:
    """The name of a source of ``flow`` that cannot be read a second time, if any."""
    from streamcore.graph.nodes import SourceNode

    for node in flow.nodes:
        if isinstance(node, SourceNode) and not node.source.rewindable:
            return node.name
    return None
