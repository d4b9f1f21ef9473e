"""Scale-out over a partition group: one task, a copy of the flow, per assigned partition.

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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from streamcore.dataflow.graph import Node, SinkNode, SourceNode
from streamcore.errors import GraphError, StreamcoreError
from streamcore.io import PartitionGroup, Sink, Source

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow
    from streamcore.runtime.runner import FlowStatistics, Runtime
    from streamcore.state.checkpointing import Checkpointing, RestartPolicy

__all__ = ["PartitionedRuntime", "partition_group_of", "task_flow"]

log = logging.getLogger("streamcore.tasks")


def partition_group_of(flow: Dataflow) -> tuple[SourceNode, PartitionGroup] | None:
    """The flow's source with a partition group, and the group; None if it has none.

    A flow that scales out reads exactly one source: tasks are per partition of it."""
    sources = [n for n in flow.nodes if isinstance(n, SourceNode)]
    grouped = [(n, g) for n in sources if (g := n.source.partition_group()) is not None]
    if not grouped:
        return None
    if len(sources) > 1:
        raise GraphError(
            f"flow {flow.name!r} reads source {grouped[0][0].name!r} through a partition group "
            f"(a consumer group), and other sources too ({len(sources)} in all); a flow that "
            "scales out over a group reads that source only"
        )
    return grouped[0]


def task_flow(flow: Dataflow, task: str, source: Source) -> Dataflow:
    """A copy of ``flow`` named ``<flow>@<task>`` whose source node reads ``source`` and
    whose sinks are ``sink.for_task(task)``; the definitions are shared, not copied."""
    from streamcore.dataflow.flow import Dataflow

    copy = Dataflow(f"{flow.name}@{task}", mailbox_capacity=flow.mailbox_capacity, chaining=flow.chaining)
    nodes: dict[int, Node] = {}
    for node in flow.nodes:
        changes: dict[str, Any] = {"inputs": [(nodes[up.id], port) for up, port in node.inputs]}
        if isinstance(node, SourceNode):
            changes["source"] = source
        elif isinstance(node, SinkNode) and isinstance(node.sink, Sink):
            changes["sink"] = node.sink.for_task(task)
        nodes[node.id] = dataclasses.replace(node, **changes)
        copy.nodes.append(nodes[node.id])
    copy._names = set(flow._names)
    if flow._dead_letters is not None:
        dead = nodes[flow._dead_letters.id]
        copy._dead_letters = dead  # type: ignore[assignment]
    return copy


class _Task:
    """One partition's copy of the flow and the asyncio task running it."""

    def __init__(self, partition: str, flow: Dataflow) -> None:
        self.partition = partition
        self.flow = flow
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
        found = partition_group_of(flow)
        if found is None:
            raise GraphError(f"flow {flow.name!r} has no source with a partition group")
        self.flow = flow
        self.checkpoint = checkpoint
        self.restart = restart
        self.source_node, self.group = found
        self.suspend_timeout_s = suspend_timeout_s
        self.tasks: dict[str, _Task] = {}
        self.finished: set[str] = set()
        """Partitions whose task reached the end of a finite stream in this process."""
        self.rebalances = 0
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._restarting: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        return f"<PartitionedRuntime {self.flow.name!r} tasks={sorted(self.tasks)}>"

    # -- the group's callbacks -----------------------------------------------------------

    async def _on_assigned(self, partitions: list[str]) -> None:
        self.rebalances += 1
        log.info("partitions assigned flow=%s partitions=%s", self.flow.name, sorted(partitions))
        for p in partitions:
            if p not in self.tasks:
                self._start(_Task(p, task_flow(self.flow, p, self.group.task_source(p))))
        self._changed.set()

    async def _on_revoked(self, partitions: list[str]) -> None:
        log.info("partitions revoked flow=%s partitions=%s", self.flow.name, sorted(partitions))
        tasks = [self.tasks[p] for p in partitions if p in self.tasks]
        results = await asyncio.gather(*(self._suspend(t) for t in tasks), return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            self.tasks.pop(task.partition, None)
            if isinstance(result, BaseException) and self._failure is None:
                self._failure = result
        self._changed.set()

    # -- tasks ---------------------------------------------------------------------------

    def _start(self, task: _Task) -> None:
        from streamcore.runtime.runner import Runtime

        task.runtime = Runtime(task.flow, self.checkpoint, store_shared=True)
        task.flow._last_runtime = task.runtime
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
        elif not task.suspending and self.tasks.get(task.partition) is task:
            self._restarting.add(asyncio.ensure_future(self._task_failed(task, exc)))
        self._changed.set()

    async def _task_failed(self, task: _Task, exc: BaseException) -> None:
        policy = self.restart
        from streamcore.runtime.runner import restartable

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
        self.flow.restarts += 1
        # The restart policy's backoff is the point of this wait.
        await asyncio.sleep(wait_s)
        if self.tasks.get(task.partition) is task and not self._stopping:
            self._start(task)
        self._restarting.discard(asyncio.current_task())

    async def _suspend(self, task: _Task) -> None:
        """Stop ``task`` at a checkpoint (invariant 1); a task that ended is left as it is."""
        future, runtime = task.future, task.runtime
        if future is None or runtime is None:
            return
        task.suspending = True
        if not future.done():
            await runtime.suspend(self.suspend_timeout_s)
        try:
            await future
        except asyncio.CancelledError:
            pass

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Join the group and run the tasks it assigns until stopped, failed, or (for a
        finite source) every assigned partition reached its end."""
        self.flow._last_runtime = self
        store = self.checkpoint.store
        await store.open()
        try:
            await self._run()
        finally:
            await store.close()

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
                if (
                    self.group.finite
                    and self.tasks
                    and all(t.partition in self.finished for t in self.tasks.values())
                ):
                    log.info("every assigned partition ended flow=%s", self.flow.name)
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
                await asyncio.wait_for(asyncio.shield(membership), self.suspend_timeout_s + 30.0)
            except BaseException as exc:  # keep the first failure
                if self._failure is None and not isinstance(exc, asyncio.CancelledError):
                    self._failure = exc
            finally:
                await self._cancel_all()
        if self._failure is not None:
            raise self._failure

    async def _cancel_all(self) -> None:
        futures = [t.future for t in self.tasks.values() if t.future is not None and not t.future.done()]
        for f in futures:
            f.cancel()
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    def request_stop(self) -> None:
        """Stop every task at a checkpoint (as a revoke does), leave the group, return."""
        self._stopping = True
        self.group.leave()
        self._changed.set()

    def statistics(self) -> FlowStatistics:
        """Every running task's statistics, names prefixed with ``<partition>/``."""
        from streamcore.runtime.runner import FlowStatistics

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
