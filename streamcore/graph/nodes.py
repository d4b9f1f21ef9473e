"""The logical dataflow graph: plain data describing what the user built.

Nothing here runs. Building a flow only appends nodes; the runtime's planner turns the
finished graph into actors. Every node knows its inputs as ``(node, port)`` pairs, so
side outputs (a window's ``late`` port) are ordinary edges.
Design: docs/runtime.md#graph
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamcore.stage_options import OnError, StageOp

if TYPE_CHECKING:
    from streamcore.time.idle_advance import IdleAdvance

__all__ = [
    "LATE",
    "MAIN",
    "AsofJoinNode",
    "AsyncOpNode",
    "DeadLettersNode",
    "IntervalJoinNode",
    "JoinNode",
    "KeyByNode",
    "Node",
    "OpNode",
    "ProcessNode",
    "SinkNode",
    "SourceNode",
    "UnionNode",
    "WindowJoinNode",
    "WindowNode",
]

MAIN = "main"
LATE = "late"


@dataclass(eq=False)
class Node:
    """One stage of the logical graph."""

    id: int
    name: str
    inputs: list[tuple[Node, str]] = field(default_factory=list)
    on_error: OnError = "fail"
    parallelism: int = 1

    kind = "node"
    stateful = False
    event_time = False
    """The stage needs event timestamps and watermarks (windows, process, joins)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(eq=False, repr=False)
class SourceNode(Node):
    """Reads a source connector; assigns timestamps and generates watermarks."""

    source: Any = None
    timestamp: Callable[[Any], Any] | None = None
    max_out_of_orderness_ms: int = 0
    batch_size: int = 1000
    linger_ms: float = 5.0
    overflow: str = "block"
    max_rate: float | None = None
    idle_timeout_ms: int | None = None
    advance_when_idle: IdleAdvance | None = None

    kind = "source"


@dataclass(eq=False, repr=False)
class OpNode(Node):
    """A stateless per-record function: ``map``, ``filter`` or ``flat_map``."""

    op: StageOp = "map"
    fn: Callable[[Any], Any] | None = None
    is_async: bool = False

    kind = "op"


@dataclass(eq=False, repr=False)
class AsyncOpNode(OpNode):
    """An ``async def`` map/filter/flat_map with at most ``concurrency`` calls in flight."""

    concurrency: int = 100
    ordered: bool = True
    timeout_ms: int | None = None
    retry: Any = None

    kind = "async_op"


@dataclass(eq=False, repr=False)
class KeyByNode(Node):
    """Declares the key of each record; keyed stages downstream route and keep state by it."""

    key: Callable[[Any], Any] | None = None
    prepartitioned: bool = False
    """The input is already partitioned by this key (a scaled-out flow does not repartition)."""

    kind = "key_by"


@dataclass(eq=False, repr=False)
class UnionNode(Node):
    """Merges several streams into one (order between inputs is not defined)."""

    kind = "union"


@dataclass(eq=False, repr=False)
class WindowNode(Node):
    """Keyed event-time windows with an incremental aggregation."""

    key: Callable[[Any], Any] | None = None
    key_stage: str | None = None
    """The ``key_by`` stage that gives the key (named when a key cannot be hashed)."""
    assigner: Any = None
    allowed_lateness_ms: int = 0
    aggregation: Any = None

    kind = "window"
    stateful = True
    event_time = True


@dataclass(eq=False, repr=False)
class ProcessNode(Node):
    """A keyed stateful user function with per-key state and event-time timers."""

    key: Callable[[Any], Any] | None = None
    key_stage: str | None = None
    """The ``key_by`` stage that gives the key (named when a key cannot be hashed)."""
    fn: Any = None

    kind = "process"
    stateful = True
    event_time = True


@dataclass(eq=False, repr=False)
class JoinNode(Node):
    """Joins two keyed streams: ``inputs[0]`` is the left side, ``inputs[1]`` the right."""

    left_key: Callable[[Any], Any] | None = None
    right_key: Callable[[Any], Any] | None = None
    how: str = "inner"

    kind = "join"
    stateful = True
    event_time = True


@dataclass(eq=False, repr=False)
class WindowJoinNode(JoinNode):
    """Pairs of one key and window, emitted when the window fires."""

    assigner: Any = None
    allowed_lateness_ms: int = 0

    kind = "window_join"


@dataclass(eq=False, repr=False)
class IntervalJoinNode(JoinNode):
    """Pairs with ``ts(l) + lower_ms <= ts(r) <= ts(l) + upper_ms``, emitted when both are seen."""

    lower_ms: int = 0
    upper_ms: int = 0

    kind = "interval_join"


@dataclass(eq=False, repr=False)
class AsofJoinNode(JoinNode):
    """Each left record with the latest right record of its key at or before its time."""

    kind = "asof_join"


@dataclass(eq=False, repr=False)
class SinkNode(Node):
    """Writes records to a sink connector or a plain function."""

    sink: Any = None

    kind = "sink"


@dataclass(eq=False, repr=False)
class DeadLettersNode(Node):
    """The flow-wide stream of records that failed with ``on_error="dead_letter"``."""

    kind = "dead_letters"
