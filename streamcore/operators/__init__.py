"""Operators built on the runtime's step protocol, one module each: windows, keyed process
functions, joins and async enrichment.

Importing this package registers each operator's step factory for its graph node kind
(``streamcore.runtime.registry``); the execution layer imports the package and asks the
registry, and the runtime below imports none of them.
Design: docs/joins.md
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamcore._lazy import lazy_attributes
from streamcore.graph.nodes import (
    LATE,
    AsofJoinNode,
    AsyncOpNode,
    IntervalJoinNode,
    JoinNode,
    Node,
    ProcessNode,
    WindowJoinNode,
    WindowNode,
)
from streamcore.runtime.registry import StepContext, register_step
from streamcore.runtime.steps import Step

if TYPE_CHECKING:
    from streamcore.operators.join_result import JoinResult, JoinStatistics
    from streamcore.operators.two_input import JoinStep

__all__ = ["JoinResult", "JoinStatistics", "join_step"]

# Each operator's module is imported when a flow first builds its step, so a flow without
# joins or async stages does not import them (docs/performance.md#start-up).
__getattr__, __dir__ = lazy_attributes(
    __name__,
    globals(),
    {"JoinResult": "streamcore.operators.join_result", "JoinStatistics": "streamcore.operators.join_result"},
)


def join_step(node: JoinNode, late: Step, on_failure: Callable[..., None], input_channels: list[list[int]] | None = None) -> JoinStep:
    """The step of a join node (also used by the virtual-time test kit)."""
    from streamcore.operators.asof_join import AsofJoinStep
    from streamcore.operators.interval_join import IntervalJoinStep
    from streamcore.operators.session_join import SessionJoinStep
    from streamcore.operators.window_join import WindowJoinStep
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


def _build_window(node: Node, ctx: StepContext) -> Step:
    from streamcore.operators.window_step import make_window_step

    assert isinstance(node, WindowNode)
    return make_window_step(node, ctx.output(LATE), ctx.on_failure)


def _build_process(node: Node, ctx: StepContext) -> Step:
    from streamcore.operators.process import ProcessStep

    assert isinstance(node, ProcessNode)
    return ProcessStep(node, ctx.on_failure)


for _kind in (WindowJoinNode.kind, IntervalJoinNode.kind, AsofJoinNode.kind):
    register_step(_kind, _build_join)
register_step(WindowNode.kind, _build_window)
register_step(ProcessNode.kind, _build_process)


def _build_async(node: Node, ctx: StepContext) -> Step:
    from streamcore.operators.async_map import build_step

    return build_step(node, ctx)


register_step(AsyncOpNode.kind, _build_async)
