"""The planner: turns the logical graph into actor groups (operator chaining).

A node joins the actor of its input when all of these hold, otherwise it starts a new one:
1. chaining is on for the flow;
2. it has exactly one input, and that input's stage has no other consumer;
3. neither it nor its input's actor runs as several parallel actors (that needs routing);
4. its input is not a source (a source's own mailbox is where overflow policies act).
Sources, unions and the dead-letter stream always head an actor of their own.
Design: docs/runtime.md#operator-chaining
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamcore.graph.nodes import (
    DeadLettersNode,
    Node,
    SinkNode,
    SourceNode,
    UnionNode,
)
from streamcore.graph.validate import consumers_of

__all__ = ["ActorGroup", "Plan", "plan"]


@dataclass(eq=False)
class ActorGroup:
    """A chain of nodes that run in one actor (or in ``parallelism`` identical actors)."""

    index: int
    nodes: list[Node] = field(default_factory=list)

    @property
    def head(self) -> Node:
        """The first node: the one whose inputs arrive through the inbox."""
        return self.nodes[0]

    @property
    def parallelism(self) -> int:
        """How many actors run this chain."""
        return self.head.parallelism

    @property
    def name(self) -> str:
        """The stage names, joined."""
        return "+".join(n.name for n in self.nodes)


@dataclass
class Plan:
    """The physical plan: actor groups, and which group each node runs in."""

    groups: list[ActorGroup]
    group_of: dict[int, ActorGroup]
    consumers: dict[tuple[int, str], list[Node]]
    needs_time: set[int]
    """Ids of nodes whose output must carry event timestamps."""


def plan(nodes: list[Node], *, chaining: bool = True) -> Plan:
    """Group ``nodes`` (in creation order, which is topological) into actors."""
    consumers = consumers_of(nodes)
    out_degree = {n.id: sum(len(consumers.get((n.id, p), [])) for p in ("main", "late")) for n in nodes}
    groups: list[ActorGroup] = []
    group_of: dict[int, ActorGroup] = {}
    for node in nodes:
        target: ActorGroup | None = None
        if chaining and len(node.inputs) == 1 and not isinstance(node, SourceNode | UnionNode | DeadLettersNode):
            up = node.inputs[0][0]
            up_group = group_of[up.id]
            if (
                out_degree[up.id] == 1
                and not isinstance(up, SourceNode)
                and node.parallelism == 1
                and up_group.parallelism == 1
            ):
                target = up_group
        if target is None:
            target = ActorGroup(len(groups))
            groups.append(target)
        target.nodes.append(node)
        group_of[node.id] = target
    return Plan(groups, group_of, consumers, _needs_time(nodes, consumers))


def _needs_time(nodes: list[Node], consumers: dict[tuple[int, str], list[Node]]) -> set[int]:
    """Nodes from which some event-time stage (window, process) can be reached."""
    needs: set[int] = set()
    for node in reversed(nodes):
        for port in ("main", "late"):
            for c in consumers.get((node.id, port), []):
                if c.event_time or c.id in needs or _sink_wants_time(c):
                    needs.add(node.id)
    return needs


def _sink_wants_time(node: Node) -> bool:
    return isinstance(node, SinkNode) and bool(getattr(node.sink, "wants_time", False))
