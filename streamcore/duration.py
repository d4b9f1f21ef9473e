"""Durations and timestamps as the API takes them, in the engine's units; the one parser.

Every duration argument of streamcore (windows, lateness, out-of-orderness, idle timeouts,
``Checkpointing``, ``RestartPolicy``, ``Retry``, task timeouts, schedules, command-line
flags) goes through this module, so all take the same forms:

1. a ``datetime.timedelta``;
2. text: a number and a unit, ``"500ms"``, ``"10s"``, ``"1.5m"``, ``"2h"``, ``"1d"``;
3. a bare number, whose unit depends on the family, as it always has:
   - stream time (``to_duration_ms``: windows, lateness, out-of-orderness, linger,
     idle timeouts) is in whole **milliseconds**, like event timestamps. A float there is
     refused (``DurationError`` showing it read as milliseconds and as seconds):
     ``TumblingWindows(10.5)`` used to become 10 ms without a word.
   - wall-clock settings (``to_seconds``: ``Checkpointing``, ``RestartPolicy``, ``Retry``,
     task timeouts, schedules) are in **seconds**, int or float.

Timestamps are int ms since the epoch; ``timestamp_unit_warning`` spots sources whose
timestamps look like seconds or microseconds. ``format_duration`` prints a duration the
way it is written (``"-5s"``, ``"1m30s"``), also when it is negative.
Design: docs/event-time.md#durations
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from streamcore.errors import DurationError

__all__ = [
    "format_duration",
    "parse_duration_text",
    "timestamp_unit_warning",
    "to_duration_ms",
    "to_seconds",
    "to_timestamp_ms",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TEXT = re.compile(r"^\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)\s*$")
_FORMS = "e.g. '500ms', '10s', '1m', '2h' (units: ms, s, m, h, d)"

# Event times in ms since the epoch for years 2001-2286 lie in [1e12, 1e13). The same
# moments in seconds lie in [1e9, 1e10), in microseconds in [1e15, 1e16), nanoseconds beyond.
_SECONDS_LIKE = (1e9, 1e10)
_MICROSECONDS_FROM = 1e14


def parse_duration_text(text: str, what: str) -> timedelta:
    """``"500ms"``, ``"10s"``, ``"1.5m"``, ``"2h"``, ``"1d"`` (optionally signed) as a timedelta."""
    match = _TEXT.match(text)
    if match is None:
        raise DurationError(f"{what} {text!r} is not a duration; write a number and a unit, {_FORMS}")
    sign, number, unit = match.groups()
    # Exact decimal arithmetic: float("0.3") * 1000 is not 300.
    whole, _, fraction = number.partition(".")
    scale = _UNIT_MS[unit]
    micros = (int(whole or 0) * scale * 1000) + (int(fraction or 0) * scale * 1000) // 10 ** len(fraction)
    return timedelta(microseconds=-micros if sign == "-" else micros)


def to_duration_ms(value: timedelta | int | str, what: str) -> int:
    """A stream duration as whole milliseconds; ``what`` names the argument in errors.

    Takes a ``timedelta``, duration text, or int milliseconds; a float is refused.
    """
    if isinstance(value, str):
        value = parse_duration_text(value, what)
    if isinstance(value, timedelta):
        # Integer arithmetic: ``total_seconds() * 1000`` loses a millisecond to rounding.
        return value // _ONE_MS
    if isinstance(value, float) and math.isfinite(value):
        raise DurationError(
            f"{what}={value!r} is a float, but whole milliseconds are expected: as milliseconds "
            f"it reads {value!r} ms, as seconds {format_duration(round(value * 1000))} "
            f"({value * 1000:g} ms). Write what you mean: {int(value)} (int ms), "
            f"'{value:g}s' or timedelta(seconds={value!r})"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise DurationError(
            f"{what} must be a datetime.timedelta, int milliseconds or duration text ({_FORMS}), "
            f"got {value!r}"
        )
    return value


def to_seconds(value: timedelta | float | str, what: str, *, negative: bool = False) -> float:
    """A wall-clock duration in seconds: ``timedelta``, duration text, or a number of seconds."""
    if isinstance(value, str):
        value = parse_duration_text(value, what)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise DurationError(
            f"{what} must be a datetime.timedelta, seconds or duration text ({_FORMS}), got {value!r}"
        )
    if seconds != seconds or math.isinf(seconds):
        raise DurationError(f"{what} must be finite, got {value!r}")
    if seconds < 0 and not negative:
        raise DurationError(f"{what} must not be negative, got {format_duration(round(seconds * 1000))}")
    return seconds


def format_duration(ms: int | float) -> str:
    """``-5000`` -> ``"-5s"``, ``90000`` -> ``"1m30s"``, ``250`` -> ``"250ms"``: as one writes it.

    ``str(timedelta)`` prints ``-5 s`` as ``-1 day, 23:59:55``; this never does.
    """
    if isinstance(ms, float) and not math.isfinite(ms):
        return str(ms)
    total = int(ms)
    sign, rest = ("-", -total) if total < 0 else ("", total)
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, rest = divmod(rest, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0ms")


def timestamp_unit_warning(timestamp_ms: int, source: str) -> str | None:
    """A warning when ``timestamp_ms`` looks like seconds or microseconds, else None."""
    if _SECONDS_LIKE[0] <= abs(timestamp_ms) < _SECONDS_LIKE[1]:
        unit, as_ms, fix = "seconds", timestamp_ms * 1000, "r['ts'] * 1000"
    elif abs(timestamp_ms) >= _MICROSECONDS_FROM:
        unit, as_ms, fix = "microseconds (or nanoseconds)", timestamp_ms // 1000, "r['ts'] // 1000"
    else:
        return None
    read_as = _EPOCH + timedelta(milliseconds=timestamp_ms) if abs(timestamp_ms) < 2.5e14 else None
    meant = _EPOCH + timedelta(milliseconds=as_ms) if abs(as_ms) < 2.5e14 else None
    return (
        f"source {source!r}: event timestamp {timestamp_ms} looks like {unit}, but timestamps are "
        f"int milliseconds since the epoch; read as milliseconds it is "
        f"{read_as.isoformat() if read_as else 'beyond year 9999'}"
        + (f", as {unit.split()[0]} {meant.isoformat()}" if meant else "")
        + f"; convert it in timestamp= (e.g. lambda r: {fix})"
    )


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
