"""Durations as the batch API accepts them: ``timedelta``, seconds, or text like ``"10m"``.

Pipelines work in seconds (retry delays, timeouts, intervals), unlike streams, whose
event times are int milliseconds; every internal name carries the unit (``timeout_s``).
Design: docs/batch.md#durations
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration", "to_seconds"]

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def to_seconds(value: timedelta | int | float, what: str) -> float:
    """``value`` (a ``timedelta`` or a number of seconds) as float seconds, never negative."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be a datetime.timedelta or seconds, got {value!r}")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


def parse_duration(value: str | timedelta | int | float, what: str) -> float:
    """Seconds from ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"250ms"``, a timedelta or seconds."""
    if isinstance(value, str):
        match = _TEXT.match(value)
        if match is None:
            raise ValueError(
                f"{what} {value!r} is not a duration; write a number and a unit, "
                "e.g. '30s', '10m', '2h' (units: ms, s, m, h, d)"
            )
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return to_seconds(value, what)
