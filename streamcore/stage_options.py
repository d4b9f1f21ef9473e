"""The closed sets of words a stage takes: its ``on_error`` policy, its op and its kind.

They are ``Literal`` types, so a misspelt comparison or argument is a type error, and
``check_on_error`` is the one place a value from a user is checked (the builder calls it
for every stage it adds). The runtime, the graph and the operators compare against these
words only; nothing else defines them.
"""

from __future__ import annotations

from typing import Literal, get_args

from streamcore.errors import GraphError

__all__ = ["ON_ERROR_POLICIES", "STAGE_OPS", "OnError", "StageKind", "StageOp", "check_on_error"]

OnError = Literal["fail", "skip", "dead_letter"]
"""What a stage does with a record its function fails on: raise, drop (counted), or
send it to the flow's dead letters."""

StageOp = Literal["map", "filter", "flat_map"]
"""The stateless record operations a chain fuses."""

StageKind = StageOp | Literal["sink", "process", "window", "join"]
"""What a stage whose user function can fail is, as errors and dead letters name it."""

ON_ERROR_POLICIES: tuple[OnError, ...] = get_args(OnError)
STAGE_OPS: tuple[StageOp, ...] = get_args(StageOp)


def check_on_error(value: object) -> OnError:
    """``value`` if it is an ``on_error`` policy, else a ``GraphError`` listing them."""
    for policy in ON_ERROR_POLICIES:
        if value == policy:
            return policy
    raise GraphError(f"on_error must be one of {', '.join(map(repr, ON_ERROR_POLICIES))}, got {value!r}")
