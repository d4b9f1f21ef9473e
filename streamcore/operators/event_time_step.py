"""What keyed event-time steps with a late output share: windows and joins.

``EventTimeStep`` passes a watermark (and the end of the stream, ``W = +inf``) on only
after ``_advance`` emitted what it made due, to the late output first and then
downstream, so results always precede the watermark that caused them. The helpers keep
sorted window starts and lazily updated heaps of sessions whose end can grow.
Design: docs/event-time.md, docs/joins.md
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import insort
from collections.abc import Callable, Iterator
from typing import Any

from streamcore.runtime.steps import Step

__all__ = ["EventTimeStep", "insert_start", "pop_due"]


class EventTimeStep(Step):
    """A step with a ``late_step`` output whose state moves with the watermark."""

    late_step: Step

    async def on_watermark(self, timestamp_ms: float) -> None:
        await self._advance(timestamp_ms)
        await self.late_step.on_watermark(timestamp_ms)
        await self.next.on_watermark(timestamp_ms)

    async def on_end(self) -> None:
        await self._advance(math.inf)
        await self.late_step.on_end()
        await self.next.on_end()

    async def _advance(self, watermark_ms: float) -> None:
        """Emit what ``W = watermark_ms`` makes due and free what it frees."""
        raise NotImplementedError


def insert_start(starts: list[int], start: int) -> None:
    """Insert a window start into the sorted ``starts`` (usually at the end)."""
    if not starts or start > starts[-1]:
        starts.append(start)
    else:
        insort(starts, start)


def pop_due(heap: list[tuple[int, int, Any]], watermark_ms: float, limit_of: Callable[[Any], int],
            tie: itertools.count[int]) -> Iterator[Any]:
    """Pop the live items of ``heap`` whose limit is ``<= watermark_ms``.

    Entries are ``(limit when pushed, tie, item)``; an item whose limit grew since (a
    session that was extended) is pushed again at ``limit_of(item)`` instead, so growing
    it costs no heap operation; an item with ``alive`` False is dropped.
    """
    while heap and heap[0][0] <= watermark_ms:
        limit, _, item = heapq.heappop(heap)
        if not item.alive:
            continue
        now = limit_of(item)
        if now > limit:
            heapq.heappush(heap, (now, next(tie), item))
            continue
        yield item
