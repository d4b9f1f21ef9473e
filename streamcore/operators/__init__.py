"""Operators built on the runtime's step protocol, one module each: joins and async enrichment.

Importing this package registers each operator's step factory for its graph node kind
(``streamcore.runtime.registry``); the runtime itself imports none of them.
Design: docs/joins.md
"""

from collections.abc import Callable

from streamcore.dataflow.graph import (
    LATE,
    AsofJoinNode,
    IntervalJoinNode,
    JoinNode,
    Node,
    WindowJoinNode,
)
from streamcore.operators import async_map
from streamcore.operators.asof_join import AsofJoinStep
from streamcore.operators.interval_join import IntervalJoinStep
from streamcore.operators.join_result import JoinResult, JoinStatistics
from streamcore.operators.session_join import SessionJoinStep
from streamcore.operators.two_input import JoinStep
from streamcore.operators.window_join import WindowJoinStep
from streamcore.runtime.registry import StepContext, register_step
from streamcore.runtime.steps import Step

__all__ = ["JoinResult", "JoinStatistics", "join_step"]


def join_step(node: JoinNode, late: Step, on_failure: Callable[..., None], input_channels: list[list[int]] | None = None) -> JoinStep:
    """The step of a join node (also used by the virtual-time test kit)."""
    from streamcore.time.windows import SessionWindows

    cls: type[JoinStep]
    if isinstance(node, WindowJoinNode):
        cls = SessionJoinStep if isinstance(node.assigner, SessionWindows) else WindowJoinStep
    elif isinstance(node, IntervalJoinNode):
        cls = IntervalJoinStep
    else:
        assert isinstance(node, AsofJoinNode)
        cls = AsofJoinStep
    return cls(node, late, on_failure, input_channels)  # type: ignore[arg-type]


def _build_join(node: Node, ctx: StepContext) -> Step:
    assert isinstance(node, JoinNode)
    return join_step(node, ctx.output(LATE), ctx.on_failure, ctx.input_channels)


for _kind in (WindowJoinNode.kind, IntervalJoinNode.kind, AsofJoinNode.kind):
    register_step(_kind, _build_join)

async_map.register()
