"""Waiting on the first of several events without leaving a waiter task behind."""

from __future__ import annotations

import asyncio

__all__ = ["wait_any"]


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
