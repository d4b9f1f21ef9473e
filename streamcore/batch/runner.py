"""The scheduler of one pipeline run: readiness, slots, resources, retries, skips.

Every task is a node with a count of conditions it still waits for: one per
dependency, met when the dependency succeeds (or, for a stream read by a streaming
task, when the producer *starts*). A node whose count reaches zero is ready.

Dispatch protocol (``_dispatch``, run whenever something changes):
1. Producers that were blocked on backpressure get their concurrency slot back first.
2. The best ready node is taken: streaming consumers first (their producers wait on
   them), then higher ``priority``, then the longer remaining critical path, then
   declaration order.
3. It starts only if a concurrency slot is free (streaming consumers need none: they
   run inside their producers' slots) and its resources fit; otherwise dispatch stops,
   so a large task is not overtaken and starved by smaller ones behind it.
4. Plain functions on the async executor run inline, right there; a bounded number per
   dispatch, then the loop gets a turn. Everything else becomes an asyncio task.

Invariants:
1. A node finishes exactly once; its slot and resources are given back at that moment
   (or while it waits to retry).
2. A node that did not succeed makes all its not-yet-finished downstream nodes
   ``skipped`` with the root cause as reason; running streaming consumers among them
   are cancelled.
3. ``execute`` returns only when every node has finished.
Design: docs/batch.md#scheduling
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Any

from streamcore.batch.checkpoints import TaskCheckpoints
from streamcore.batch.clock import Clock, sleep_for
from streamcore.batch.executors import RunExecutors, run_in_thread
from streamcore.batch.failures import TaskTimeoutError
from streamcore.batch.graph import TaskGraph
from streamcore.batch.plan import remaining_path_lengths
from streamcore.batch.progress import ProgressReporter
from streamcore.batch.resources import ResourcePool
from streamcore.batch.result import SUCCESS_STATUSES, PipelineResult, TaskRun, TaskStatus
from streamcore.batch.streams import BlockingStreamReader, Emitter, Inlet
from streamcore.batch.task import Task
from streamcore.errors import SerializationError

__all__ = ["PipelineRun"]

# Inline tasks run per dispatch before the event loop gets a turn.
_INLINE_BATCH = 256


class _Node:
    __slots__ = (
        "deps",
        "done",
        "downstream",
        "emitter",
        "executor",
        "fn",
        "handle",
        "holds_resources",
        "holds_slot",
        "index",
        "inline",
        "name",
        "output",
        "rank",
        "run",
        "slotless",
        "started_stream",
        "stream_in",
        "stream_out",
        "task",
        "waiting",
    )

    def __init__(self, index: int, task: Task, executor: str) -> None:
        self.index = index
        self.task = task
        self.name = task.name
        self.fn = task.fn
        self.executor = executor
        self.deps: tuple[int, ...] = ()
        self.downstream: tuple[int, ...] = ()
        self.waiting = 0
        self.run = TaskRun(task.name)
        self.output: Any = None
        self.done = False
        self.inline = executor == "async" and task.kind == "function"
        self.stream_in: dict[int, Inlet] = {}
        self.stream_out: list[Inlet] = []
        self.slotless = False
        self.started_stream = False
        self.emitter: Emitter | None = None
        self.handle: asyncio.Task[None] | None = None
        self.holds_slot = False
        self.holds_resources = False
        self.rank: tuple[int, int, int, int] = (0, 0, 0, index)


class PipelineRun:
    """One execution of a validated graph."""

    def __init__(
        self,
        graph: TaskGraph,
        *,
        run_id: str,
        max_concurrency: int,
        capacity: dict[str, float],
        mailbox_capacity: int,
        clock: Clock,
        reporter: ProgressReporter | None,
        checkpoints: TaskCheckpoints | None,
        executors: RunExecutors,
    ) -> None:
        self.graph = graph
        self.run_id = run_id
        self._max_slots = max_concurrency
        self._pool = ResourcePool(capacity)
        self._clock = clock
        self._reporter = reporter
        self._checkpoints = checkpoints
        self._executors = executors
        self._nodes = [_Node(i, task, graph.executors[i]) for i, task in enumerate(graph.tasks)]
        remaining = remaining_path_lengths(graph)
        for node in self._nodes:
            node.deps = graph.deps[node.index]
            node.downstream = graph.downstream[node.index]
            node.waiting = len(node.deps)
            if node.task.streaming:
                for d in node.deps:
                    producer = self._nodes[d]
                    if producer.task.produces_stream:
                        inlet = Inlet(producer.name, node.name, mailbox_capacity)
                        node.stream_in[d] = inlet
                        producer.stream_out.append(inlet)
            node.slotless = bool(node.stream_in)
            node.rank = (
                0 if node.slotless else 1,
                -node.task.priority,
                -remaining[node.index],
                node.index,
            )
        self._by_name = {node.name: node for node in self._nodes}
        self._ready: list[tuple[int, int, int, int]] = []
        self._slots_used = 0
        self._slot_waiters: deque[tuple[_Node, asyncio.Future[None]]] = deque()
        self._remaining = len(self._nodes)
        self._dispatching = False
        self._timers: set[asyncio.Task[None]] = set()
        self._cancelled: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._all_done: asyncio.Future[None] | None = None

    # -- the run ---------------------------------------------------------------

    async def execute(self) -> PipelineResult:
        """Run every task to a final status and return the result."""
        loop = self._loop = asyncio.get_running_loop()
        self._all_done = loop.create_future()
        started = self._clock.now()
        if self._reporter is not None:
            self._reporter.run_started(self.graph.pipeline, self.run_id, [n.name for n in self._nodes])
        completed = False
        try:
            if self._checkpoints is not None:
                self._resume(await self._checkpoints.open())
            for node in self._nodes:
                if not node.deps and not node.done:
                    heapq.heappush(self._ready, node.rank)
            if self._remaining:
                self._dispatch()
            elif not self._all_done.done():
                self._all_done.set_result(None)
            await self._all_done
            completed = True
        finally:
            try:
                if not completed:
                    self._abandon_everything()
                await self._settle_cancelled()
                if self._checkpoints is not None:
                    if completed:
                        await self._checkpoints.close()
                    else:
                        await self._checkpoints.abort()
            finally:
                # Also on errors and cancellation: a reporter may hold timers or a display.
                result = PipelineResult(
                    pipeline=self.graph.pipeline,
                    run_id=self.run_id,
                    tasks={n.name: n.run for n in self._nodes},
                    outputs={n.name: n.output for n in self._nodes if n.run.status in SUCCESS_STATUSES},
                    started=started,
                    finished=self._clock.now(),
                )
                if self._reporter is not None:
                    self._reporter.run_finished(result)
        return result

    def _resume(self, stored: dict[str, Any]) -> None:
        for node in self._nodes:
            if node.name not in stored:
                continue
            output = stored[node.name]
            if node.task.produces_stream and not isinstance(output, list):
                output = list(output)
            for inlet in node.stream_out:
                inlet.preload(output)
            self._finish(node, "resumed", output=output, dispatch=False)

    def _abandon_everything(self) -> None:
        for node in self._nodes:
            if node.emitter is not None:
                node.emitter.cut_off()
            if node.handle is not None and not node.handle.done():
                node.handle.cancel()
                self._cancelled.append(node.handle)
        for timer in self._timers:
            timer.cancel()
            self._cancelled.append(timer)

    async def _settle_cancelled(self) -> None:
        for timer in self._timers:
            timer.cancel()
            self._cancelled.append(timer)
        self._timers.clear()
        if self._cancelled:
            await asyncio.gather(*self._cancelled, return_exceptions=True)
            self._cancelled.clear()

    # -- dispatching -----------------------------------------------------------

    def _dispatch(self) -> None:
        if self._dispatching:
            # Called from a task finishing inside the loop below: it will see the change.
            return
        self._dispatching = True
        try:
            budget = _INLINE_BATCH
            ready = self._ready
            nodes = self._nodes
            while True:
                # Step 1.
                while self._slot_waiters and self._slots_used < self._max_slots:
                    waiter_node, waiter = self._slot_waiters.popleft()
                    if not waiter.done():
                        self._slots_used += 1
                        waiter_node.holds_slot = True
                        waiter.set_result(None)
                if not ready:
                    break
                # Step 2.
                node = nodes[ready[0][3]]
                if node.done:
                    heapq.heappop(ready)
                    continue
                # Step 3.
                if not node.slotless and self._slots_used >= self._max_slots:
                    break
                resources = node.task.resources
                if resources and not self._pool.fits(resources):
                    break
                heapq.heappop(ready)
                if not node.slotless:
                    self._slots_used += 1
                    node.holds_slot = True
                if resources:
                    self._pool.acquire(resources)
                    node.holds_resources = True
                # Step 4.
                if node.inline:
                    self._run_inline(node)
                    budget -= 1
                    if budget == 0:
                        assert self._loop is not None
                        self._loop.call_soon(self._dispatch)
                        break
                else:
                    self._start(node)
        finally:
            self._dispatching = False

    def _begin_try(self, node: _Node) -> None:
        run = node.run
        run.attempts += 1
        if run.attempts == 1:
            run.started = self._clock.now()
        run.status = "running"
        if self._reporter is not None:
            self._reporter.task_started(run)

    def _run_inline(self, node: _Node) -> None:
        self._begin_try(node)
        nodes = self._nodes
        try:
            output = node.fn(*[nodes[d].output for d in node.deps])
        except Exception as exc:
            self._on_error(node, exc)
            return
        self._on_success(node, output)

    def _start(self, node: _Node) -> None:
        self._begin_try(node)
        if node.task.produces_stream:
            node.emitter = Emitter(
                node.name,
                node.stream_out,
                on_block=lambda: self._release_slot(node),
                on_unblock=lambda: self._reacquire_slot(node),
            )
            if not node.started_stream:
                node.started_stream = True
                for inlet in node.stream_out:
                    self._satisfy(self._by_name[inlet.consumer])
        assert self._loop is not None
        node.handle = self._loop.create_task(self._attempt(node), name=f"streamcore-task-{node.name}")

    def _satisfy(self, node: _Node) -> None:
        if node.done:
            return
        node.waiting -= 1
        if node.waiting == 0:
            heapq.heappush(self._ready, node.rank)

    # -- slots while blocked on backpressure ------------------------------------

    def _release_slot(self, node: _Node) -> None:
        if node.holds_slot:
            node.holds_slot = False
            self._slots_used -= 1
            self._dispatch()

    async def _reacquire_slot(self, node: _Node) -> None:
        if node.slotless or node.holds_slot or node.done:
            return
        if self._slots_used < self._max_slots and not self._slot_waiters:
            self._slots_used += 1
            node.holds_slot = True
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        entry = (node, waiter)
        self._slot_waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            # If the slot was granted just before, the finish path gives it back.
            if entry in self._slot_waiters:
                self._slot_waiters.remove(entry)
            raise

    # -- one try ---------------------------------------------------------------

    async def _attempt(self, node: _Node) -> None:
        try:
            output = await self._call(node)
        except asyncio.CancelledError:
            if node.done:
                return
            raise
        except Exception as exc:
            self._on_error(node, exc)
        else:
            self._on_success(node, output)

    def _args(self, node: _Node) -> list[Any]:
        nodes = self._nodes
        if not node.stream_in:
            return [nodes[d].output for d in node.deps]
        args: list[Any] = []
        for d in node.deps:
            inlet = node.stream_in.get(d)
            if inlet is None:
                args.append(nodes[d].output)
            elif node.executor == "thread":
                assert self._loop is not None
                args.append(BlockingStreamReader(inlet.reader(), self._loop))
            else:
                args.append(inlet.reader())
        return args

    async def _call(self, node: _Node) -> Any:
        task = node.task
        args = self._args(node)
        emitter = node.emitter
        executor = node.executor
        if executor == "async":
            return await self._call_on_loop(node, args)
        if executor == "thread":
            value = await run_in_thread(node.name, task.fn, args, task.kind, emitter, task.timeout_s)
            return emitter.items if emitter is not None else value
        if executor == "process":
            value = await self._executors.process.run(node.name, task.fn, args, task.timeout_s)
        else:
            value = await self._executors.dask.run(node.name, task.fn, args, task.timeout_s)
        if emitter is None:
            return value
        # Workers return a generator's items at once; consumers still get them one by one.
        for item in value:
            await emitter.emit(item)
        return emitter.items

    async def _call_on_loop(self, node: _Node, args: list[Any]) -> Any:
        task = node.task
        timeout_s = task.timeout_s
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                if task.kind == "coroutine":
                    return await task.fn(*args)
                emitter = node.emitter
                assert emitter is not None
                if task.kind == "async_generator":
                    async for item in task.fn(*args):
                        await emitter.emit(item)
                elif task.kind == "generator":
                    for item in task.fn(*args):
                        await emitter.emit(item)
                else:
                    return task.fn(*args)
                return emitter.items
        except TimeoutError:
            if timeout_s is None or not scope.expired():
                raise
            raise TaskTimeoutError(node.name, timeout_s, "it was cancelled") from None

    # -- outcomes --------------------------------------------------------------

    def _on_success(self, node: _Node, output: Any) -> None:
        if node.done:
            return
        if node.emitter is not None:
            node.emitter.finish()
        if self._checkpoints is not None:
            try:
                self._checkpoints.save(node.name, output)
            except SerializationError as exc:
                self._finish(
                    node,
                    "failed",
                    error=exc,
                    reason=(
                        f"its output cannot be stored for resuming ({exc}); return plain data, "
                        "or pass codec=streamcore.state.PickleCodec() to run() for a trusted store"
                    ),
                )
                return
        self._finish(node, "succeeded", output=output)

    def _on_error(self, node: _Node, error: Exception) -> None:
        if node.done:
            return
        retry = node.task.retry
        attempt = node.run.attempts
        decision = retry.decide(error, attempt)
        note = ""
        emitter = node.emitter
        if decision == "retry" and emitter is not None and emitter.sent:
            decision = "fail"
            note = " (not retried: it had already streamed items to its consumers)"
        if decision == "skip":
            self._finish(node, "skipped", error=error, reason=f"skip_on matched {type(error).__name__}: {error}")
            return
        if decision == "retry":
            if emitter is not None:
                emitter.abandoned = True
                node.emitter = None
            node.handle = None
            self._give_back(node)
            run = node.run
            run.status = "retrying"
            run.error = error
            delay_s = retry.delay_after_s(attempt)
            if self._reporter is not None:
                self._reporter.task_retrying(run, delay_s)
            assert self._loop is not None
            timer = self._loop.create_task(self._requeue_after(node, delay_s))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
            self._dispatch()
            return
        status: TaskStatus = "timed_out" if isinstance(error, TaskTimeoutError) else "failed"
        if emitter is not None:
            emitter.cut_off()
        self._finish(node, status, error=error, reason=f"{type(error).__name__}: {error}{note}")

    async def _requeue_after(self, node: _Node, delay_s: float) -> None:
        await sleep_for(self._clock, delay_s)
        if node.done:
            return
        heapq.heappush(self._ready, node.rank)
        self._dispatch()

    def _give_back(self, node: _Node) -> None:
        if node.holds_slot:
            node.holds_slot = False
            self._slots_used -= 1
        if node.holds_resources:
            node.holds_resources = False
            self._pool.release(node.task.resources)

    def _finish(
        self,
        node: _Node,
        status: TaskStatus,
        *,
        output: Any = None,
        error: BaseException | None = None,
        reason: str | None = None,
        dispatch: bool = True,
    ) -> None:
        self._close_node(node, status, output, error, reason)
        nodes = self._nodes
        if status in SUCCESS_STATUSES:
            for d in node.downstream:
                below = nodes[d]
                if node.index in below.stream_in and node.started_stream:
                    continue  # counted when the stream started
                self._satisfy(below)
        else:
            self._skip_downstream(node)
        if self._remaining == 0:
            assert self._all_done is not None
            if not self._all_done.done():
                self._all_done.set_result(None)
        elif dispatch:
            self._dispatch()

    def _close_node(
        self,
        node: _Node,
        status: TaskStatus,
        output: Any,
        error: BaseException | None,
        reason: str | None,
    ) -> None:
        node.done = True
        node.output = output if status in SUCCESS_STATUSES else None
        run = node.run
        run.status = status
        run.finished = self._clock.now()
        if error is not None or status != "skipped":
            run.error = error
        run.reason = reason
        self._give_back(node)
        for inlet in node.stream_in.values():
            inlet.close()
        self._remaining -= 1
        if self._reporter is not None:
            self._reporter.task_finished(run)

    def _skip_downstream(self, root: _Node) -> None:
        if root.run.status == "skipped" and root.run.reason and root.run.reason.startswith("upstream "):
            cause = root.run.reason
        else:
            verb = {"failed": "failed", "timed_out": "timed out"}.get(root.run.status, "was skipped")
            cause = f"upstream {root.name!r} {verb}"
        nodes = self._nodes
        stack = list(root.downstream)
        while stack:
            node = nodes[stack.pop()]
            if node.done:
                continue
            if node.handle is not None and not node.handle.done():
                # A streaming consumer already reading from the failed producer.
                node.handle.cancel()
                self._cancelled.append(node.handle)
            if node.emitter is not None:
                node.emitter.cut_off()
            self._close_node(node, "skipped", None, None, cause)
            stack.extend(node.downstream)

