"""Window assigners and the window result record.

Assigners are definitions (pure data); the window stage builds its logic from them.
Tumbling and sliding windows are aligned to the epoch: a tumbling window of ``size``
holding timestamp ``t`` starts at ``t - t % size``; sliding windows start at every
multiple of ``slide``. Windows are ``[start, end)``: ``end`` is exclusive.
Design: docs/event-time.md
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, NamedTuple

from streamcore.duration import format_duration, to_duration_ms
from streamcore.errors import GraphError

__all__ = ["SessionWindows", "SlidingWindows", "TumblingWindows", "WindowAssigner", "WindowResult"]


class WindowResult(NamedTuple):
    """The value of one key's window; ``is_update`` marks a re-fire caused by a late record."""

    key: Any
    start: int
    end: int
    value: Any
    is_update: bool = False


class WindowAssigner:
    """Base of the window definitions."""

    merging = False
    """Whether windows of a key merge with each other (sessions)."""
    merges_accumulators = False
    """Whether the stage combines accumulators (sessions merge, sliding windows combine panes),
    so the aggregation needs a ``merge``."""


def _positive_ms(value: timedelta | int | str, what: str) -> int:
    ms = to_duration_ms(value, what)
    if ms <= 0:
        raise GraphError(f"{what} must be a positive duration, got {format_duration(ms)}")
    return ms


class TumblingWindows(WindowAssigner):
    """Fixed-size, non-overlapping windows of ``size``."""

    def __init__(self, size: timedelta | int | str) -> None:
        self.size_ms = _positive_ms(size, "TumblingWindows size")
        self.slide_ms = self.size_ms
        self.pane_ms = self.size_ms

    def __repr__(self) -> str:
        return f"TumblingWindows({self.size_ms} ms)"


class SlidingWindows(WindowAssigner):
    """Windows of ``size`` starting every ``slide``; each record is in ``size / slide`` of them.

    Records are aggregated once, into panes of ``gcd(size, slide)``; a window's value
    merges its panes when it fires.
    """

    def __init__(self, size: timedelta | int | str, slide: timedelta | int | str) -> None:
        self.size_ms = _positive_ms(size, "SlidingWindows size")
        self.slide_ms = _positive_ms(slide, "SlidingWindows slide")
        if self.slide_ms > self.size_ms:
            raise GraphError(
                f"SlidingWindows slide ({self.slide_ms} ms) is larger than size ({self.size_ms} ms): "
                "records between windows would be lost; use a slide <= size"
            )
        self.pane_ms = math.gcd(self.size_ms, self.slide_ms)
        self.merges_accumulators = self.pane_ms != self.size_ms

    def __repr__(self) -> str:
        return f"SlidingWindows({self.size_ms} ms, every {self.slide_ms} ms)"


class SessionWindows(WindowAssigner):
    """Per-key windows that close after ``gap`` without records; overlapping ones merge.

    A record at ``t`` opens ``[t, t + gap)``; sessions that overlap it merge into one.
    """

    merging = True
    merges_accumulators = True

    def __init__(self, gap: timedelta | int | str) -> None:
        self.gap_ms = _positive_ms(gap, "SessionWindows gap")

    def __repr__(self) -> str:
        return f"SessionWindows(gap {self.gap_ms} ms)"
