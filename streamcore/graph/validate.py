"""Whole-graph checks run before anything starts; each error says what to fix."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from streamcore.errors import GraphError
from streamcore.graph.nodes import (
    MAIN,
    DeadLettersNode,
    Node,
    SinkNode,
    SourceNode,
)

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow

__all__ = ["consumers_of", "upstream_sources", "validate"]


def consumers_of(nodes: list[Node]) -> dict[tuple[int, str], list[Node]]:
    """Map ``(node id, port)`` to the nodes reading it, in creation order."""
    consumers: dict[tuple[int, str], list[Node]] = defaultdict(list)
    for node in nodes:
        for up, port in node.inputs:
            consumers[(up.id, port)].append(node)
    return consumers


def upstream_sources(node: Node) -> list[Node]:
    """The source (or dead-letter) nodes that feed ``node``."""
    seen: set[int] = set()
    found: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if isinstance(n, SourceNode | DeadLettersNode):
            found.append(n)
        stack.extend(up for up, _ in n.inputs)
    return found


def validate(flow: Dataflow) -> None:
    """Raise ``GraphError`` naming the first problem found in the flow's graph."""
    nodes = flow.nodes
    consumers = consumers_of(nodes)
    dead_letters = [n for n in nodes if isinstance(n, DeadLettersNode)]
    dl_used = bool(dead_letters) and bool(consumers.get((dead_letters[0].id, MAIN)))
    if not any(isinstance(n, SourceNode) for n in nodes):
        raise GraphError(f"flow {flow.name!r} has no source: add one with flow.source(...)")
    if not any(isinstance(n, SinkNode) for n in nodes):
        raise GraphError(f"flow {flow.name!r} has no sink: end each stream with .sink(...)")
    for node in nodes:
        if isinstance(node, SinkNode) or (isinstance(node, DeadLettersNode) and not dl_used):
            continue
        if not consumers.get((node.id, MAIN)):
            raise GraphError(
                f"the stream of stage {node.name!r} ({node.kind}) goes nowhere: "
                "end it with .sink(...) or remove the stage"
            )
    dl_stages = [n.name for n in nodes if n.on_error == "dead_letter"]
    if dl_stages and not dl_used:
        raise GraphError(
            f"stage {dl_stages[0]!r} sends failed records to flow.dead_letters, but nothing "
            "consumes it: add flow.dead_letters.sink(...)"
        )
    for node in nodes:
        sources = upstream_sources(node)
        if node.event_time:
            for src in sources:
                if isinstance(src, DeadLettersNode):
                    raise GraphError(
                        f"stage {node.name!r} needs event time, but flow.dead_letters has none; "
                        "dead letters cannot be windowed"
                    )
                assert isinstance(src, SourceNode)
                if src.timestamp is None:
                    raise GraphError(
                        f"stage {node.name!r} needs event time, but source {src.name!r} has no "
                        "timestamp: pass flow.source(..., timestamp=lambda r: ...)"
                    )
        if node.on_error == "dead_letter" and any(isinstance(s, DeadLettersNode) for s in sources):
            raise GraphError(
                f"stage {node.name!r} reads flow.dead_letters and cannot itself use "
                "on_error='dead_letter' (a failure would loop); use 'skip' or 'fail'"
            )
