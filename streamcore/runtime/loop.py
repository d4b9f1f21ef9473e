"""Event loop setup: uvloop when available, the standard loop otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from streamcore.errors import StreamcoreError

__all__ = ["LoopError", "run_coroutine"]

T = TypeVar("T")


class LoopError(StreamcoreError, RuntimeError):
    """``run_sync()`` was called where an event loop already runs (await ``run()`` there)."""


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh uvloop event loop (asyncio's if uvloop is missing)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise LoopError("run_sync() cannot be called from a running event loop; await run() instead")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a core dependency
        return asyncio.run(coro)
    return uvloop.run(coro)
