"""Builds actors from a plan, runs them, and supervises them until the flow ends.

Run protocol:
1. Validate the graph (nothing starts if it is wrong) and plan it into actor groups.
2. Create one inbox per non-source actor, number every input channel, build each
   actor's steps back to front, wiring a stage's output either to the next step of the
   same actor or to an ``Outlet`` feeding the downstream inboxes.
3. Start one task per actor. The first failure cancels every other actor; ``run()``
   then raises it, as a ``StreamcoreError`` naming the stage. No task outlives ``run()``.
4. The dead-letter stream ends once every actor that can produce dead letters ended.
Design: docs/runtime.md#running
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamcore import operators  # noqa: F401  (registers the operators' step factories)
from streamcore.errors import (
    CheckpointError,
    CheckpointSetupError,
    GraphError,
    SetupError,
    StateError,
    StreamcoreError,
)
from streamcore.graph.nodes import (
    MAIN,
    DeadLettersNode,
    KeyByNode,
    Node,
    OpNode,
    SinkNode,
    SourceNode,
    UnionNode,
)
from streamcore.graph.planner import ActorGroup, Plan, plan
from streamcore.graph.validate import validate
from streamcore.io import Sink
from streamcore.runtime.actor import (
    Actor,
    ActorStatistics,
    DeadLetterCollector,
    SourceActor,
    wrap_actor_error,
)
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.collector import young_threshold_raised
from streamcore.runtime.mailbox import Mailbox, MailboxStatistics
from streamcore.runtime.registry import StepContext, step_factory
from streamcore.runtime.steps import (
    AsyncOpStep,
    ChainStep,
    Outlet,
    SinkStep,
    Step,
    Target,
)
from streamcore.runtime.waiting import settle, wait_any

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow
    from streamcore.state.checkpointing import Checkpointing
    from streamcore.state.coordinator import CheckpointCoordinator

__all__ = ["FlowStatistics", "Runtime", "restartable"]

log = logging.getLogger("streamcore.runtime")


@dataclass(frozen=True)
class FlowStatistics:
    """Counters of a whole flow: one entry per actor and per mailbox."""

    flow: str
    actors: list[ActorStatistics]
    mailboxes: dict[str, MailboxStatistics]
    stages: dict[str, Any]
    """Per-stage extras (window state size, late records...), by stage name."""

    def actor(self, stage: str) -> ActorStatistics:
        """The statistics of the actor running ``stage``."""
        for a in self.actors:
            if stage in a.stages:
                return a
        raise KeyError(stage)


class NullStep(Step):
    """The end of a port nobody reads (e.g. an unconsumed ``.late``): counts records."""

    def __init__(self) -> None:
        self.records = 0

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        self.records += len(records)

    async def on_watermark(self, timestamp_ms: float) -> None:
        pass

    async def on_end(self) -> None:
        pass


class Runtime:
    """The running form of a flow: its actors, mailboxes and tasks."""

    def __init__(
        self, flow: Dataflow, checkpoint: Checkpointing | None = None, *, store_shared: bool = False
    ) -> None:
        validate(flow)
        self.flow = flow
        self.checkpoint = checkpoint
        self.store_shared = store_shared
        """The checkpoint store is opened and closed by someone else (a task's runner)."""
        self.plan: Plan = plan(flow.nodes, chaining=flow.chaining)
        self.actors: list[Actor | SourceActor] = []
        self.mailboxes: dict[str, Mailbox] = {}
        self.stage_steps: dict[str, Step] = {}
        self._inboxes: dict[int, list[Mailbox]] = {}
        self._channels: dict[tuple[int, str, int], int] = {}
        self._channel_count: dict[int, int] = {}
        self._dead_box: Mailbox | None = None
        self._dead_group: ActorGroup | None = None
        self._dead_channels: dict[tuple[int, int], int] = {}
        self.coordinator: CheckpointCoordinator | None = None
        self._started = asyncio.Event()
        """Set once the actors run (after restoring, under checkpointing)."""
        self._suspended = asyncio.Event()
        self._ended = asyncio.Event()
        self._build()

    # -- building ----------------------------------------------------------------

    def _build(self) -> None:
        capacity = self.flow.mailbox_capacity
        for group in self.plan.groups:
            if isinstance(group.head, SourceNode):
                continue
            boxes = [
                Mailbox(capacity, name=f"{group.name}[{i}]" if group.parallelism > 1 else group.name)
                for i in range(group.parallelism)
            ]
            self._inboxes[group.index] = boxes
            for box in boxes:
                self.mailboxes[box.name] = box
            if isinstance(group.head, DeadLettersNode):
                self._dead_box = boxes[0]
                self._dead_group = group
            # Number this group's input channels: one per upstream actor instance per edge.
            # The dead-letter stream has one channel per actor that can dead-letter.
            base = 0
            if isinstance(group.head, DeadLettersNode):
                base = self._number_dead_letter_producers(group)
            for up, port in group.head.inputs:
                up_group = self.plan.group_of[up.id]
                self._channels[(up.id, port, group.index)] = base
                base += up_group.parallelism
            self._channel_count[group.index] = base
        for group in self.plan.groups:
            for instance in range(group.parallelism):
                self.actors.append(self._build_actor(group, instance))

    def _number_dead_letter_producers(self, dl_group: ActorGroup) -> int:
        from streamcore.graph.validate import upstream_sources

        n = 0
        for group in self.plan.groups:
            if any(isinstance(src, DeadLettersNode) for node in group.nodes for src in upstream_sources(node)):
                continue  # fed by the dead letters: may not dead-letter itself
            if group is dl_group:
                continue
            for instance in range(group.parallelism):
                self._dead_channels[(group.index, instance)] = n
                n += 1
        return n

    def _outlet_for(self, node: Node, port: str, instance: int, overflow: str = "block") -> Step:
        consumers = self.plan.consumers.get((node.id, port), [])
        if not consumers:
            return NullStep()
        targets = []
        for c in consumers:
            group = self.plan.group_of[c.id]
            boxes = self._inboxes[group.index]
            base = self._channels[(node.id, port, group.index)]
            key = getattr(c, "key", None) if group.parallelism > 1 else None
            key_stage = c.name if isinstance(c, KeyByNode) else getattr(c, "key_stage", None)
            targets.append(Target(boxes, [base + instance] * len(boxes), key, key_stage))
        return Outlet(targets, overflow, node.name)

    def _build_actor(self, group: ActorGroup, instance: int) -> Actor | SourceActor:
        dead_channel = self._dead_channels.get((group.index, instance))
        collector = DeadLetterCollector(
            self._dead_box if dead_channel is not None else None, dead_channel or 0
        )
        outlets: list[Outlet] = []
        nodes = group.nodes
        head_node = group.head

        def output(node: Node, port: str, overflow: str = "block") -> Step:
            step = self._outlet_for(node, port, instance, overflow)
            if isinstance(step, Outlet):
                outlets.append(step)
            return step

        if isinstance(head_node, SourceNode):
            outlet = output(head_node, MAIN, head_node.overflow)
            assert isinstance(outlet, Outlet)  # validation guarantees a consumer
            return SourceActor(
                head_node.name,
                head_node.source,
                outlet,
                outlet,
                timestamp=head_node.timestamp,
                max_out_of_orderness_ms=head_node.max_out_of_orderness_ms,
                batch_size=head_node.batch_size,
                linger_ms=head_node.linger_ms,
                max_rate=head_node.max_rate,
                idle_timeout_ms=head_node.idle_timeout_ms,
                advance_when_idle=head_node.advance_when_idle,
                forward_timestamps=head_node.id in self.plan.needs_time,
                on_error=head_node.on_error,
                dead_letters=collector,
            )

        # Build back to front: `nxt` receives the output of the node being built.
        nxt = output(nodes[-1], MAIN)
        steps: list[Step] = []
        ops: list[OpNode] = []  # a run of stateless ops, collected back to front

        def flush_ops() -> None:
            nonlocal nxt
            segments: list[list[OpNode] | OpNode] = []
            for op in reversed(ops):
                if op.is_async:
                    segments.append(op)
                elif segments and isinstance(segments[-1], list):
                    segments[-1].append(op)
                else:
                    segments.append([op])
            ops.clear()
            for seg in reversed(segments):
                step: Step
                if isinstance(seg, list):
                    step = ChainStep([_stage(o) for o in seg], collector)
                else:
                    step = AsyncOpStep(_stage(seg), collector)
                step.next = nxt
                steps.append(step)
                nxt = step

        for node in reversed(nodes):
            factory = step_factory(node.kind)
            if isinstance(node, OpNode) and factory is None:
                ops.append(node)
                continue
            flush_ops()
            step: Step
            if factory is not None:
                step = factory(node, self._step_context(node, group, output, collector))
            elif isinstance(node, SinkNode):
                step = SinkStep(node.name, self.flow.name, node.sink, node.on_error, collector)
            else:  # key_by, union, dead letters: nothing to do at run time
                assert isinstance(node, KeyByNode | UnionNode | DeadLettersNode)
                continue
            step.next = nxt
            steps.append(step)
            self.stage_steps[node.name] = step
            nxt = step
        flush_ops()
        steps.reverse()
        name = group.name if group.parallelism == 1 else f"{group.name}[{instance}]"
        return Actor(
            name,
            tuple(n.name for n in nodes),
            self._inboxes[group.index][instance],
            nxt,
            steps,
            self._channel_count[group.index],
            outlets,
            collector,
            instance,
        )

    def _step_context(
        self, node: Node, group: ActorGroup, output: Callable[[Node, str], Step], collector: DeadLetterCollector
    ) -> StepContext:
        channels = [
            list(range(base, base + self.plan.group_of[up.id].parallelism))
            for up, port in node.inputs
            for base in [self._channels.get((up.id, port, group.index), 0)]
        ]
        return StepContext(self.flow.name, lambda port: output(node, port), collector, channels)

    # -- running -----------------------------------------------------------------

    async def prepare_checkpoints(self) -> None:
        """Open the store, restore the newest usable checkpoint, enlist every actor."""
        config = self.checkpoint
        assert config is not None
        for actor in self.actors:
            if isinstance(actor, SourceActor) and not actor.source.rewindable:
                raise CheckpointSetupError(
                    f"source {actor.name!r} ({type(actor.source).__name__}) cannot rewind to a "
                    f"checkpointed position, so checkpoints could not be replayed from it; "
                    f"{actor.source.rewind_hint}"
                )
        from streamcore.state.coordinator import CheckpointCoordinator

        coordinator = CheckpointCoordinator(self.flow.name, config, owns_store=not self.store_shared)
        await coordinator.open()
        self.coordinator = coordinator
        restored = await coordinator.restore()
        coordinator.actors = [a.name for a in self.actors]
        for actor in self.actors:
            actor.enable_checkpoints(coordinator)
            if isinstance(actor, SourceActor):
                coordinator.sources[actor.name] = actor.source
                if restored is not None:
                    actor.restore(restored.meta(actor.name, actor.name))
                continue
            for step in actor.stateful:
                if isinstance(step, SinkStep) and isinstance(step.sink, Sink):
                    coordinator.sinks[step.name] = step.sink
                if restored is not None:
                    entries = restored.entries.get(step.name, {})
                    route = self._router(actor, step.name)
                    if route is not None:
                        entries = {k: v for k, v in entries.items() if route(k)}
                    step.restore_state(restored.meta(actor.name, step.name), entries)

    def _router(self, actor: Actor | SourceActor, stage: str) -> Callable[[Any], bool] | None:
        """For a stage run by several actors: which keys ``actor`` owns in this process."""
        for group in self.plan.groups:
            if group.parallelism > 1 and any(n.name == stage for n in group.nodes):
                assert isinstance(actor, Actor)  # sources are never parallel
                instance = actor.instance
                n = group.parallelism
                return lambda key: hash(key) % n == instance
        return None

    async def run(self) -> None:
        """Run every actor to the end; raise the first failure (see the module docstring)."""
        with young_threshold_raised():
            try:
                if self.checkpoint is not None and self.coordinator is None:
                    await self.prepare_checkpoints()
                await self._run_actors()
                if self.coordinator is not None and not self._suspended.is_set():
                    await self.coordinator.finish()
            finally:
                self._ended.set()
                if self.coordinator is not None:
                    try:
                        await self.coordinator.close_deferred()
                    finally:
                        await self.coordinator.close()

    async def _run_actors(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: dict[asyncio.Task[None], Actor | SourceActor | None] = {}
        for actor in self.actors:
            task = loop.create_task(actor.run(), name=f"streamcore:{self.flow.name}:{actor.name}")
            tasks[task] = actor
        if self.coordinator is not None:
            periodic = loop.create_task(
                self.coordinator.run_periodic(), name=f"streamcore:{self.flow.name}:checkpoints"
            )
            tasks[periodic] = None
        pending = {t for t, a in tasks.items() if a is not None}
        suspended: asyncio.Task[Any] = loop.create_task(self._suspended.wait())
        watched: set[asyncio.Task[Any]] = {*tasks, suspended}
        self._started.set()
        try:
            while pending and not self._suspended.is_set():
                done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is suspended:
                        continue
                    pending.discard(task)
                    exc = task.exception()
                    if exc is not None:
                        owner = tasks[task]
                        if owner is None:
                            raise exc
                        raise wrap_actor_error(owner.name, exc)
        finally:
            if self.coordinator is not None:
                self.coordinator.stop()
            everything = [t for t in (*tasks, suspended) if not t.done()]
            for t in everything:
                t.cancel()
            # Closed before the wait: an actor that missed its cancel (a library that
            # swallowed it) and then sends or receives fails at once instead of hanging.
            for box in self.mailboxes.values():
                box.close()
            if everything:
                await settle(everything)

    async def wait_started(self) -> None:
        """Return once the actors run (after restoring), or once ``run`` has ended."""
        await wait_any(self._started, self._ended)

    def request_stop(self) -> None:
        """Graceful stop: sources stop reading; everything in flight drains to the sinks."""
        for actor in self.actors:
            if isinstance(actor, SourceActor):
                actor.request_stop()

    @property
    def ready(self) -> bool:
        """Whether the actors run (after restoring the checkpoint) and have not ended."""
        return self._started.is_set() and not self._ended.is_set()

    async def suspend(self, timeout_s: float = 60.0) -> None:
        """Stop at a checkpoint without ending the stream (windows stay open).

        Sources stop reading after the batch in hand, one more checkpoint is taken and
        committed, and then every actor is stopped: what was read is in that checkpoint
        and its output is published, and a run of the same flow resumes exactly there.
        A graceful stop (``request_stop``) would end the stream instead, firing every
        open window. Needs checkpointing; returns once ``run`` has returned or failed.
        """
        if self.checkpoint is None:
            raise CheckpointError("suspend() needs a flow run with checkpoint=")
        try:
            async with asyncio.timeout(timeout_s):
                await self.wait_started()
        except TimeoutError:
            pass
        if self._ended.is_set():
            return  # it ended (or failed) before it ran: nothing to stop
        if not self._started.is_set():
            raise CheckpointError(f"flow {self.flow.name!r} did not start within {timeout_s}s")
        coordinator = self.coordinator
        assert coordinator is not None
        if coordinator.all_finished:
            return  # the stream ended already; its final checkpoint covers everything
        for actor in self.actors:
            if isinstance(actor, SourceActor):
                actor.request_pause()
        await coordinator.suspend()
        self._suspended.set()

    def statistics(self) -> FlowStatistics:
        """A snapshot of every actor's and mailbox's counters."""
        stages: dict[str, Any] = {}
        for name, step in self.stage_steps.items():
            stats = getattr(step, "statistics", None)
            if stats is not None:
                stages[name] = stats()
        return FlowStatistics(
            flow=self.flow.name,
            actors=[a.statistics() for a in self.actors],
            mailboxes={name: box.statistics() for name, box in self.mailboxes.items()},
            stages=stages,
        )


def _stage(node: OpNode) -> StatelessStage:
    assert node.fn is not None
    return StatelessStage(node.name, node.op, node.fn, node.on_error)


def restartable(exc: StreamcoreError, runtime: Runtime) -> bool:
    """Whether a restart policy may retry after ``exc`` ended ``runtime``: not after an
    error that another attempt would meet again (``SetupError``, ``GraphError``)."""
    if isinstance(exc, SetupError | GraphError):
        return False
    # A store that could not be reached before the first actor started is a setup error.
    return not (isinstance(exc, StateError) and runtime.coordinator is None)

