"""Fixtures for the batch pipeline tests: manual clocks and polling with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

START = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told; ``auto_advance`` jumps to every requested wake-up."""

    def __init__(self, start: datetime = START, *, auto_advance: bool = False) -> None:
        self._now = start
        self.auto_advance = auto_advance
        self.sleeps_s: list[float] = []
        self._waiters: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    @property
    def sleepers(self) -> int:
        return sum(1 for _, f in self._waiters if not f.done())

    async def sleep_until(self, when: datetime) -> None:
        self.sleeps_s.append((when - self._now).total_seconds())
        if self.auto_advance:
            self._now = max(self._now, when)
            await asyncio.sleep(0)
            return
        if when <= self._now:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (when, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)

    def set(self, when: datetime) -> None:
        self._now = when
        for due, waiter in self._waiters:
            if due <= when and not waiter.done():
                waiter.set_result(None)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


Poll = Callable[..., Awaitable[None]]


async def _poll(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s")
        await asyncio.sleep(0.001)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only when the test moves it."""
    return ManualClock()


@pytest.fixture
def auto_clock() -> ManualClock:
    """A clock whose sleeps return at once, advancing time and recording each delay."""
    return ManualClock(auto_advance=True)


@pytest.fixture
def eventually() -> Poll:
    """``await eventually(lambda: cond, timeout_s=...)``: poll the condition with a deadline."""
    return _poll
