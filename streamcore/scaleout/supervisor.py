"""The partition supervisor: one task, a copy of the flow, per partition assigned here.

A flow whose source has a partition group (a Kafka consumer group) and runs under
checkpointing is not run as one flow but as *tasks*, as Kafka Streams runs its tasks:
each partition this process is assigned gets its own copy of the flow, named
``<flow>@<partition>``, whose source reads only that partition. A task's state, its
checkpoints and its sinks' transactions are its own, so a partition moves between
processes with everything that belongs to it.

Invariants (docs/scale-out.md):
1. A task runs only while its partition is assigned here. On revoke, the task stops at
   a checkpoint (``Runtime.suspend``): its sources stop reading, one more checkpoint
   is taken and committed, and only then does the group hand the partition on.
2. On assign, a task starts from the last complete checkpoint of ``<flow>@<partition>``,
   wherever the previous owner left it (a suspend, or the last periodic checkpoint of
   a process that died).
3. The tasks share nothing but the process: keys live in one partition's task, so a
   keyed stage sees all of a key's records only when the input is partitioned by that
   key (the producer's key).
4. A task that fails restarts alone under the restart policy; once the policy gives up
   (or without one) the whole process fails, leaving the group.
5. A task writes its checkpoints fenced by the group generation that assigned it
   (``state/fencing.py``): once a newer owner restored the partition, this task's writes
   are refused (``FencedError``) and the task is dropped without failing the process.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from streamcore.errors import FencedError, GraphError, StreamcoreError
from streamcore.graph.validate import validate
from streamcore.runtime.waiting import wait_any
from streamcore.scaleout.rewrite import (
    partition_group_of,
    repartition_stages,
    split_at_repartition,
    task_flow,
)

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow
    from streamcore.execution.runner import FlowStatistics, Runtime
    from streamcore.io import Repartition
    from streamcore.state.checkpointing import Checkpointing, RestartPolicy

__all__ = ["PartitionedRuntime"]

log = logging.getLogger("streamcore.tasks")


class _Task:
    """One partition's copy of the flow and the asyncio task running it."""

    def __init__(self, partition: str, flow: Dataflow, generation: int | None = None) -> None:
        self.partition = partition
        self.flow = flow
        self.generation = generation
        """The group generation that assigned the partition: it fences the task's checkpoints."""
        self.runtime: Runtime | None = None
        self.future: asyncio.Future[None] | None = None
        self.restarts = 0
        self.suspending = False


class PartitionedRuntime:
    """Runs a flow as one task per partition its source's group assigns to this process."""

    def __init__(
        self,
        flow: Dataflow,
        checkpoint: Checkpointing,
        restart: RestartPolicy | None = None,
        *,
        suspend_timeout_s: float = 120.0,
    ) -> None:
        validate(flow)
        found = partition_group_of(flow)
        if found is None:
            raise GraphError(f"flow {flow.name!r} has no source with a partition group")
        self.flow = flow
        self.checkpoint = checkpoint
        self.restart = restart
        self.source_node, self.group = found
        self.stage1: Dataflow = flow
        self.stage2: Dataflow | None = None
        self.repartition: Repartition | None = None
        if split_at_repartition(flow) is not None:
            self.stage1, self.stage2, self.repartition = repartition_stages(flow, self.source_node, self.group)
        self.suspend_timeout_s = suspend_timeout_s
        self.tasks: dict[str, _Task] = {}
        self.finished: set[str] = set()
        """Partitions whose task reached the end of a finite stream in this process."""
        self.rebalances = 0
        self.restarts = 0
        """How many times a failed task was started again (all partitions together)."""
        self._assigned = asyncio.Event()
        self._ended = asyncio.Event()
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._restarting: set[asyncio.Future[None]] = set()
        self._assignment_current = False
        """An assignment came and nothing was revoked since: a finite run may end."""

    def __repr__(self) -> str:
        return f"<PartitionedRuntime {self.flow.name!r} tasks={sorted(self.tasks)}>"

    # -- the group's callbacks -----------------------------------------------------------

    async def _on_assigned(self, partitions: list[str]) -> None:
        self.rebalances += 1
        self._assignment_current = True
        log.info("partitions assigned flow=%s partitions=%s", self.flow.name, sorted(partitions))
        r = self.repartition
        try:
            for p in partitions:
                if p in self.tasks:
                    continue
                if r is not None and self.stage2 is not None and r.owns(p):
                    flow = task_flow(self.stage2, p, r.source_for(p))
                else:
                    flow = task_flow(self.stage1, p, self.group.task_source(p))
                self._start(_Task(p, flow, self.group.generation))
        except Exception as exc:
            # The group's client would only log it: fail the run instead.
            self._failure = self._failure or exc
        self._assigned.set()
        self._changed.set()

    async def _on_revoked(self, partitions: list[str]) -> None:
        log.info("partitions revoked flow=%s partitions=%s", self.flow.name, sorted(partitions))
        # Popped first: a task waiting out its restart backoff must not start again on a
        # partition that is leaving (``_task_failed`` checks it still owns the partition).
        tasks = [self.tasks.pop(p) for p in partitions if p in self.tasks]
        self._assignment_current = False
        results = await asyncio.gather(*(self._suspend(t) for t in tasks), return_exceptions=True)
        for result in results:
            if isinstance(result, FencedError):
                continue  # its suspend checkpoint was refused: a newer owner took over
            if isinstance(result, BaseException) and self._failure is None:
                self._failure = result
        self._changed.set()

    # -- tasks ---------------------------------------------------------------------------

    def _start(self, task: _Task) -> None:
        from streamcore.execution.runner import Runtime

        task.runtime = Runtime(task.flow, _fenced(self.checkpoint, task), store_shared=True)
        task.future = asyncio.ensure_future(task.runtime.run())
        task.future.add_done_callback(lambda f, t=task: self._task_done(t, f))  # type: ignore[misc]
        self.tasks[task.partition] = task

    def _task_done(self, task: _Task, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            if not task.suspending:
                self.finished.add(task.partition)
        elif isinstance(exc, FencedError):
            # A newer owner holds the partition: this process lost it (the group tells us
            # soon). Not a failure of the run, and nothing to restart.
            log.warning("task fenced out flow=%s partition=%s error=%r", self.flow.name, task.partition, str(exc))
            if self.tasks.get(task.partition) is task:
                del self.tasks[task.partition]
                self._assignment_current = False  # stale: wait for the group's next one
        elif not task.suspending and self.tasks.get(task.partition) is task:
            self._restarting.add(asyncio.ensure_future(self._task_failed(task, exc)))
        self._changed.set()

    async def _task_failed(self, task: _Task, exc: BaseException) -> None:
        policy = self.restart
        from streamcore.execution.runner import restartable

        retry = (
            policy is not None
            and isinstance(exc, StreamcoreError)
            and task.restarts < policy.attempts
            and task.runtime is not None
            and restartable(exc, task.runtime)
        )
        if not retry:
            self._failure = self._failure or exc
            self._changed.set()
            return
        assert policy is not None
        task.restarts += 1
        wait_s = policy.wait_s(task.restarts)
        log.warning(
            "task failed, restarting flow=%s partition=%s restart=%d of=%d wait_s=%.3f error=%r",
            self.flow.name, task.partition, task.restarts, policy.attempts, wait_s, str(exc),
        )
        # The restart policy's backoff is the point of this wait.
        await asyncio.sleep(wait_s)
        if self.tasks.get(task.partition) is task and not self._stopping:
            self.restarts += 1
            self._start(task)
        self._restarting.discard(asyncio.current_task())

    async def _suspend(self, task: _Task) -> None:
        """Stop ``task`` at a checkpoint (invariant 1); a task that ended is left as it is."""
        future, runtime = task.future, task.runtime
        if future is None or runtime is None or future.done():
            return  # it ended, or it failed (``_task_done`` handles that; a restart checks it still owns the partition)
        task.suspending = True
        try:
            await runtime.suspend(self.suspend_timeout_s)
        except BaseException:
            # Never leave a runtime running on a partition that is leaving.
            future.cancel()
            done = await asyncio.gather(future, return_exceptions=True)
            if isinstance(done[0], Exception):
                raise done[0] from None  # the task's own failure explains more
            raise
        try:
            await future
        except asyncio.CancelledError:
            pass

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Join the group and run the tasks it assigns until stopped, failed, or (for a
        finite source) every assigned partition reached its end."""
        store = self.checkpoint.store
        try:
            await store.open()
            try:
                await self._run()
            finally:
                await store.close()
        finally:
            self._ended.set()

    async def wait_started(self) -> None:
        """Return once the group assigned partitions and their tasks run (or once ``run``
        has ended)."""
        await wait_any(self._assigned, self._ended)
        for task in list(self.tasks.values()):
            if task.runtime is not None:
                await task.runtime.wait_started()

    async def _run(self) -> None:
        membership = asyncio.ensure_future(self.group.run(self._on_assigned, self._on_revoked))
        try:
            while True:
                self._changed.clear()
                if membership.done():
                    membership.result()  # the group failed: raise why
                    break
                if self._failure is not None:
                    break
                # Also with no task at all: a finite process the group gave nothing (more
                # processes than partitions) has nothing to wait for.
                if (
                    self.group.finite
                    and self._assignment_current
                    and all(t.partition in self.finished for t in self.tasks.values())
                ):
                    log.info("every assigned partition ended flow=%s partitions=%d", self.flow.name, len(self.tasks))
                    break
                waiter = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait([waiter, membership], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            self._stopping = True
            self.group.leave()
            try:
                async with asyncio.timeout(self.suspend_timeout_s + 30.0):
                    await asyncio.shield(membership)
            except BaseException as exc:  # keep the first failure
                if self._failure is None and not isinstance(exc, asyncio.CancelledError):
                    self._failure = exc
            finally:
                if not membership.done():
                    membership.cancel()
                    await asyncio.gather(membership, return_exceptions=True)
                await self._cancel_all()
        if self._failure is not None:
            raise self._failure

    async def _cancel_all(self) -> None:
        futures = [t.future for t in self.tasks.values() if t.future is not None and not t.future.done()]
        futures += [f for f in self._restarting if not f.done()]  # tasks in their backoff
        for f in futures:
            f.cancel()
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    @property
    def ready(self) -> bool:
        """Whether the group assigned partitions and each of their tasks runs."""
        return (
            self.rebalances > 0
            and not self._stopping
            and all(t.runtime is not None and t.runtime.ready for t in self.tasks.values())
        )

    def request_stop(self) -> None:
        """Stop every task at a checkpoint (as a revoke does), leave the group, return."""
        self._stopping = True
        self.group.leave()
        self._changed.set()

    def statistics(self) -> FlowStatistics:
        """Every running task's statistics, names prefixed with ``<partition>/``."""
        from streamcore.execution.runner import FlowStatistics

        actors: list[Any] = []
        mailboxes: dict[str, Any] = {}
        stages: dict[str, Any] = {}
        for p, task in sorted(self.tasks.items()):
            if task.runtime is None:
                continue
            stats = task.runtime.statistics()
            actors += [dataclasses.replace(a, name=f"{p}/{a.name}") for a in stats.actors]
            mailboxes.update({f"{p}/{k}": v for k, v in stats.mailboxes.items()})
            stages.update({f"{p}/{k}": v for k, v in stats.stages.items()})
        return FlowStatistics(flow=self.flow.name, actors=actors, mailboxes=mailboxes, stages=stages)


def _fenced(checkpoint: Checkpointing, task: _Task) -> Checkpointing:
    """``checkpoint`` writing through a ``FencedStore`` of the task's generation, if any."""
    if task.generation is None:
        return checkpoint
    from streamcore.state.fencing import FencedStore
    from streamcore.state.store import Fence

    fenced = copy.copy(checkpoint)
    store = FencedStore(checkpoint.store, Fence(f"{task.flow.name}/fence", task.generation))
    object.__setattr__(fenced, "store", store)  # a frozen dataclass
    return fenced


