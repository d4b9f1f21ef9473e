"""What joins emit: ``JoinResult`` records, and the statistics every join stage keeps.

Design: docs/joins.md#common-rules
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["JoinResult", "JoinStatistics"]


class JoinResult(NamedTuple):
    """One joined pair of ``key``; ``left`` or ``right`` is None for an unmatched record.

    ``start``/``end`` are the window (end exclusive, int ms) for window joins and None for
    interval and as-of joins. ``is_update`` marks a result caused by a record that arrived
    after its window fired (within the allowed lateness).
    """

    key: Any
    left: Any
    right: Any
    start: int | None
    end: int | None
    is_update: bool = False


@dataclass(frozen=True)
class JoinStatistics:
    """State size and counters of one join stage (exported as stage metrics)."""

    state_records: int
    """Records held in the join's state (a record in several windows counts once per window)."""
    keys: int
    """Keys with state."""
    pairs: int
    """Results with both sides emitted."""
    unmatched: int
    """Results with one side None (outer kinds), plus as-of inner records dropped for want of a match."""
    updates: int
    """Results caused by records within the allowed lateness (``is_update=True``)."""
    late: int
    """Records sent to ``.late``."""
    watermark_ms: float
