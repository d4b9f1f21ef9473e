"""A manual wall clock for tests of time-driven behaviour (``advance_when_idle``).

The clock only moves when the test says so, so a test drives "five seconds of silence"
without waiting five seconds; it waits only for the engine to react, on a condition
with a deadline.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streamcore.duration import to_duration_ms, to_timestamp_ms

__all__ = ["ManualClock"]


class ManualClock:
    """A ``WallClock`` that stands still until ``advance`` or ``set`` moves it."""

    def __init__(self, start: datetime | int = 1_700_000_000_000) -> None:
        self._now_ms = float(to_timestamp_ms(start))

    def __repr__(self) -> str:
        return f"<ManualClock now_ms={self._now_ms:.0f}>"

    def now_ms(self) -> float:
        """The time the clock was set to, epoch milliseconds."""
        return self._now_ms

    def advance(self, by: timedelta | int) -> None:
        """Move the clock forward by ``by`` (a timedelta or int milliseconds)."""
        step = to_duration_ms(by, "advance")
        if step < 0:
            raise ValueError(f"a clock only moves forward, got {by!r}")
        self._now_ms += step

    def set(self, when: datetime | int) -> None:
        """Move the clock to ``when`` (not backwards)."""
        target = float(to_timestamp_ms(when))
        if target < self._now_ms:
            raise ValueError(f"a clock only moves forward: {when!r} is before now")
        self._now_ms = target
