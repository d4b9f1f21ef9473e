"""Watermarks of quiet live sources: ``advance_when_idle`` and the wall clock it reads.

A source's watermark normally moves only with the event times it reads, so the last
windows of a live stream that goes quiet never fire. With ``advance_when_idle=d`` the
source also moves it with the wall clock:

1. The source is *quiet* while it waits for input: the quiet time restarts whenever it
   reads a record and whenever it has handed a batch downstream, so time blocked on a
   full mailbox (backpressure) never counts.
2. Once it has been quiet for ``d``, at each empty read its watermark becomes
   ``now - max_out_of_orderness - d`` (``now``: the clock's time in epoch ms, floored),
   if that is higher than the watermark it has: never backwards.
3. A record behind that watermark is late as usual (its window may have fired).
Design: docs/event-time.md#quiet-sources-advance_when_idle
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["IdleAdvance", "SystemWallClock", "WallClock"]


@runtime_checkable
class WallClock(Protocol):
    """What ``advance_when_idle`` reads: the time now, in milliseconds since the epoch."""

    def now_ms(self) -> float:
        """The time now, epoch milliseconds."""
        ...


class SystemWallClock:
    """The machine's clock."""

    def now_ms(self) -> float:
        """``time.time()`` in milliseconds."""
        return time.time() * 1000


@dataclass
class IdleAdvance:
    """A source's ``advance_when_idle`` rule: after ``after_ms`` quiet, read ``clock``."""

    after_ms: int
    clock: WallClock = field(default_factory=SystemWallClock)

    def quiet_for_ms(self, since_ms: float) -> float:
        """How long the source has been quiet when it has been since ``since_ms``."""
        return self.clock.now_ms() - since_ms

    def watermark(self, bound_ms: int) -> int:
        """Step 2: the watermark of a source quiet for at least ``after_ms``."""
        return math.floor(self.clock.now_ms()) - bound_ms - self.after_ms
