"""Waiting without leaving a task behind: on the first of several events, or for tasks to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["settle", "wait_any"]


async def wait_any(*events: asyncio.Event) -> None:
    """Return once any of ``events`` is set; the waiter tasks are gone when it returns,
    also when the caller is cancelled."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def settle(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Wait until every one of ``tasks`` ended, even if cancelled meanwhile; a cancel of
    the waiter is passed on (``CancelledError``) once they have. Their outcomes are
    retrieved, not raised: the caller reports them."""
    tasks = list(tasks)
    cancelled = False
    pending = set(tasks)
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    for t in tasks:
        if not t.cancelled():
            t.exception()
    if cancelled:
        raise asyncio.CancelledError
