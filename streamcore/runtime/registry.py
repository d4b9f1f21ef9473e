"""The step registry: which step factory builds the step of a graph node kind.

Operators live above the runtime (``streamcore.operators``) and register a factory for
their node kind when imported; the runner asks this registry before its built-in kinds,
so the runtime imports no operator.
Design: docs/runtime.md#actors
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamcore.graph.nodes import Node
    from streamcore.runtime.steps import Step

__all__ = ["StepContext", "StepFactory", "register_step", "registered_kinds", "step_factory"]


@dataclass(frozen=True)
class StepContext:
    """What a factory gets from the runner besides the node."""

    flow: str
    output: Callable[[str], Step]
    """The step that receives the node's output ``port`` (an outlet, or a sink for
    records nobody reads)."""
    on_failure: Callable[..., None]
    """Where records failing with ``on_error`` "skip" / "dead_letter" go."""
    input_channels: list[list[int]]
    """Per input of the node (in ``node.inputs`` order): the channel numbers its batches
    arrive on. A step heading its actor may take ``on_channel_batch(channel, records,
    timestamps)`` to tell its inputs apart."""


StepFactory = Callable[["Node", StepContext], "Step"]

_FACTORIES: dict[str, StepFactory] = {}


def register_step(kind: str, factory: StepFactory) -> None:
    """Build nodes of ``kind`` with ``factory(node, context)``."""
    _FACTORIES[kind] = factory


def step_factory(kind: str) -> StepFactory | None:
    """The factory registered for ``kind``, if any."""
    return _FACTORIES.get(kind)


def registered_kinds() -> list[str]:
    """The node kinds with a registered factory (for error messages and tests)."""
    return sorted(_FACTORIES)
