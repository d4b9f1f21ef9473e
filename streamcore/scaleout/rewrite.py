"""Graph rewriting for scale-out: a flow's copy per partition task, and the two stages
around a repartition topic.

Flows are built with the public ``Dataflow.derive()``; sinks are split per task with
``Sink.for_task`` (or shared by the process's tasks when they keep no checkpoint state).
Design: docs/scale-out.md
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streamcore.errors import GraphError
from streamcore.graph.nodes import KeyByNode, Node, SinkNode, SourceNode
from streamcore.io import PartitionGroup, Repartition, Sink, SinkContext, Source

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow

__all__ = ["partition_group_of", "repartition_stages", "split_at_repartition", "task_flow"]


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
    return _copy_flow(flow, f"{flow.name}@{task}", flow.nodes, task=task, source=source)


def _copy_flow(
    flow: Dataflow,
    name: str,
    nodes: list[Node],
    *,
    task: str | None = None,
    source: Source | None = None,
    replace: dict[int, Node] | None = None,
) -> Dataflow:
    """A flow of copies of ``nodes`` (in order, renumbered), inputs remapped; a node whose
    id is in ``replace`` is copied from the node given there instead."""
    copies: dict[int, Node] = {}
    for node in nodes:
        model = (replace or {}).get(node.id, node)
        changes: dict[str, Any] = {
            "id": len(copies),
            "inputs": [(copies[up.id], port) for up, port in model.inputs],
        }
        if isinstance(model, SourceNode) and source is not None:
            changes["source"] = source
        elif isinstance(model, SinkNode) and isinstance(model.sink, Sink) and task is not None:
            sink = model.sink.for_task(task)
            if sink is model.sink and sink.supports_checkpoints:
                raise GraphError(
                    f"sink {model.name!r}: for_task() returned the sink itself, but a sink with "
                    "checkpoint state needs one instance per task"
                )
            changes["sink"] = _shared(sink) if sink is model.sink else sink
        copies[node.id] = dataclasses.replace(model, **changes)
    dead = flow.dead_letters_node
    kept = copies.get(dead.id) if dead is not None else None
    return flow.derive(name, list(copies.values()), dead_letters=kept)


class _SharedSink(Sink):
    """One sink written by every task of the process: opened by the first task to open
    it, closed (or aborted) by the last to close, so one task ending, moving away or
    failing does not close it under the others."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.users = 0
        self.default_name = sink.default_name  # type: ignore[misc]
        self._lock = asyncio.Lock()
        self._aborted = False

    def __repr__(self) -> str:
        return f"<shared {self.sink!r} users={self.users}>"

    async def open(self, context: SinkContext) -> None:
        async with self._lock:
            if self.users == 0:
                await self.sink.open(context)
            self.users += 1

    def write_batch(self, records: list[Any]) -> Awaitable[None] | None:
        return self.sink.write_batch(records)

    async def close(self) -> None:
        async with self._lock:
            self.users -= 1
            if self.users == 0:
                await (self.sink.abort() if self._aborted else self.sink.close())
                self._aborted = False

    async def abort(self) -> None:
        self._aborted = True
        await self.close()


_shared_sinks: weakref.WeakKeyDictionary[Sink, _SharedSink] = weakref.WeakKeyDictionary()


def _shared(sink: Sink) -> _SharedSink:
    found = _shared_sinks.get(sink)
    if found is None:
        found = _shared_sinks[sink] = _SharedSink(sink)
    return found


def _time_from_source(record: Any) -> int:
    """Stage 2's sources carry event time themselves (``Source.record_timestamps``)."""
    raise AssertionError("a repartition source gives the event times")


class _Placeholder(Source):
    """Stands for the source of stage 2 until a task gives it a real one."""


class _RepartitionSinks(Sink):
    """Stands for stage 1's repartition sink: each task gets its own from the group."""

    def __init__(self, repartition: Repartition) -> None:
        self.repartition = repartition

    def for_task(self, task: str) -> Sink:
        return self.repartition.sink_for(task)

    def write_batch(self, records: list[Any]) -> None:
        raise AssertionError("only the per-task sinks write")

def _descendants(flow: Dataflow, start: Node) -> set[int]:
    out = {start.id}
    for node in flow.nodes:
        if any(up.id in out for up, _ in node.inputs):
            out.add(node.id)
    return out


def split_at_repartition(flow: Dataflow) -> tuple[KeyByNode, list[Node], set[int]] | None:
    """The ``key_by`` where a scaled-out flow must repartition (one not ``prepartitioned``),
    the nodes after it and the dead-letter part; None when no key changes."""
    cuts = [n for n in flow.nodes if isinstance(n, KeyByNode) and not n.prepartitioned]
    if not cuts:
        return None
    if len(cuts) > 1:
        raise GraphError(
            f"flow {flow.name!r} would repartition at {len(cuts)} key_by stages "
            f"({', '.join(repr(c.name) for c in cuts)}); a scaled-out flow repartitions at one "
            "only: mark the others key_by(..., prepartitioned=True) if their key is the same"
        )
    cut = cuts[0]
    after = _descendants(flow, cut)
    dead = flow.dead_letters_node
    dead_part = _descendants(flow, dead) if dead is not None else set()
    if after & dead_part:
        raise GraphError(f"flow {flow.name!r}: dead letters cannot flow into the repartitioned stage {cut.name!r}")
    for node in flow.nodes:
        if node.id in after and node is not cut and any(up.id not in after for up, _ in node.inputs):
            raise GraphError(
                f"flow {flow.name!r}: stage {node.name!r} joins the stream repartitioned at "
                f"{cut.name!r} with one that is not; a scaled-out flow cannot do that yet"
            )
    return cut, [n for n in flow.nodes if n.id in after], dead_part


def repartition_stages(flow: Dataflow, source_node: SourceNode, group: PartitionGroup) -> tuple[Dataflow, Dataflow, Repartition]:
    """Stage 1 (input partitions, up to a repartition sink) and stage 2 (repartition
    partitions, from a repartition source through the keyed part)."""
    from streamcore.graph.nodes import DeadLettersNode
    from streamcore.state.serde import decode, encode

    split = split_at_repartition(flow)
    assert split is not None
    cut, after, dead_part = split
    assert cut.key is not None
    repartition = group.repartition(flow.name, cut.name, cut.key, encode, decode)
    after_ids = {n.id for n in after}
    sink_id = max(n.id for n in flow.nodes) + 1
    sink = SinkNode(
        id=sink_id, name=f"{cut.name}-repartition", inputs=list(cut.inputs), sink=_RepartitionSinks(repartition)
    )
    first = [n for n in flow.nodes if n.id not in after_ids]
    stage1 = _copy_flow(flow, flow.name, [*first, sink])
    source = SourceNode(
        id=sink_id + 1,
        name=f"{cut.name}-repartitioned",
        source=_Placeholder(),
        timestamp=_time_from_source,
        batch_size=source_node.batch_size,
        linger_ms=source_node.linger_ms,
    )
    keyed = dataclasses.replace(cut, inputs=[(source, "main")])
    dead_nodes = [n for n in flow.nodes if n.id in dead_part]
    if dead_nodes and not any(isinstance(n, DeadLettersNode) for n in dead_nodes):
        dead_nodes = []
    stage2 = _copy_flow(flow, flow.name, [source, *after, *dead_nodes], replace={cut.id: keyed})
    return stage1, stage2, repartition


