"""The clock a pipeline reads: wall time for timestamps, and waiting for retries and schedules.

Everything in ``streamcore.batch`` that reads the time or waits for a moment goes
through a ``Clock``, so tests drive retries and schedules with a manual clock instead of
sleeping. Times are timezone-aware UTC datetimes.
Design: docs/batch.md#clocks
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "sleep_for"]


@runtime_checkable
class Clock(Protocol):
    """What the batch engine needs from a clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when``."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep on the event loop until ``when``."""
        # The loop may wake a little early; loop until the wall clock agrees.
        while True:
            remaining_s = (when - self.now()).total_seconds()
            if remaining_s <= 0:
                return
            await asyncio.sleep(remaining_s)


async def sleep_for(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock``."""
    if seconds > 0:
        await clock.sleep_until(clock.now() + timedelta(seconds=seconds))
