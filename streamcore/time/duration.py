"""Conversions of durations and timestamps to the engine's unit: integer milliseconds.

The public API takes ``datetime.timedelta`` (and plain int milliseconds); internally every
numeric time is int ms and its name says so (``timestamp_ms``, ``size_ms``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["to_duration_ms", "to_timestamp_ms"]


def to_duration_ms(value: timedelta | int | float, what: str) -> int:
    """``value`` as whole milliseconds; ``what`` names the argument in errors."""
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a datetime.timedelta or int milliseconds, got {value!r}")
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
        return int(value.timestamp() * 1000)
    if isinstance(value, float) and value == value:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(
        f"event timestamp must be int milliseconds or a datetime, got {type(value).__name__} {value!r}"
    )
