"""Shared helpers for the runtime tests: waiting on conditions, gated sinks, task checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic
from typing import Any

from streamcore.io import Sink

DEFAULT_TIMEOUT_S = 10.0


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = DEFAULT_TIMEOUT_S, what: str = "condition"
) -> None:
    """Yield to the loop until ``condition()`` holds; fail the test after ``timeout_s``."""
    deadline = monotonic() + timeout_s
    while not condition():
        if monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.001)


async def let_others_run(rounds: int = 10) -> None:
    """Give every ready task a few turns, to show that something does *not* happen."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def flow_tasks() -> list[asyncio.Task[Any]]:
    """Tasks of any running flow (the runner names them ``streamcore:<flow>:<actor>``)."""
    current = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks()
        if t is not current and not t.done() and t.get_name().startswith("streamcore:")
    ]


class GatedSink(Sink):
    """A sink that writes a batch only once the test has allowed it (``allow``/``open_gate``)."""

    default_name = "gated"

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.batches_written = 0
        self.allowed = 0
        self.unlimited = False
        self.closed = False
        self._changed = asyncio.Condition()

    async def write_batch(self, records: list[Any]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.unlimited or self.allowed > self.batches_written)
        self.items.extend(records)
        self.batches_written += 1

    async def allow(self, batches: int) -> None:
        """Let ``batches`` more batches through."""
        async with self._changed:
            self.allowed += batches
            self._changed.notify_all()

    async def open_gate(self) -> None:
        """Let everything through from now on."""
        async with self._changed:
            self.unlimited = True
            self._changed.notify_all()

    async def close(self) -> None:
        self.closed = True
