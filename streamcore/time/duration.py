"""Conversions of durations and timestamps to the engine's unit: integer milliseconds.

The public API takes ``datetime.timedelta`` (and plain int milliseconds); internally every
numeric time is int ms and its name says so (``timestamp_ms``, ``size_ms``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from streamcore.errors import GraphError

__all__ = ["to_duration_ms", "to_timestamp_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_duration_ms(value: timedelta | int | float, what: str) -> int:
    """``value`` as whole milliseconds; ``what`` names the argument in errors.

    Durations are arguments of the builder API, so a wrong one is a ``GraphError``.
    """
    if isinstance(value, timedelta):
        # Integer arithmetic: ``total_seconds() * 1000`` loses a millisecond to rounding.
        return value // _ONE_MS
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GraphError(f"{what} must be a datetime.timedelta or int milliseconds, got {value!r}")
    return int(value)


def to_timestamp_ms(value: object) -> int:
    """An event timestamp as int ms since the epoch (``datetime`` and ``float`` accepted).

    Naive datetimes are taken as UTC, so the same input gives the same windows on every machine.
    """
    if value.__class__ is int:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(
        f"event timestamp must be int milliseconds or a datetime, got {type(value).__name__} {value!r}"
    )
