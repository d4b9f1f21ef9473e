"""``sc.cached``: a small TTL and LRU cache for async lookups of one hashable argument.

Concurrent calls for the same argument share one call (no stampede on a cold key);
exceptions are not cached. Times come from ``time.monotonic``.
Design: docs/joins.md#caching-lookups
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from streamcore.duration import to_duration_ms
from streamcore.errors import GraphError

__all__ = ["cached"]

T = TypeVar("T")


def cached(
    *, ttl: timedelta | int, maxsize: int = 10_000
) -> Callable[[Callable[[Any], Awaitable[T]]], Callable[[Any], Awaitable[T]]]:
    """Decorate an ``async def f(arg)``: a result is reused for ``ttl`` (timedelta or int
    ms); at most ``maxsize`` results are kept, the least recently used evicted first."""
    ttl_s = to_duration_ms(ttl, "ttl") / 1000
    if ttl_s <= 0:
        raise GraphError(f"cached() ttl must be a positive duration, got {ttl!r}")
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise GraphError(f"cached() maxsize must be a positive int, got {maxsize!r}")

    def decorate(fn: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
        values: OrderedDict[Any, tuple[float, T]] = OrderedDict()
        calls: dict[Any, asyncio.Future[T]] = {}

        @functools.wraps(fn)
        async def lookup(arg: Any) -> T:
            now = time.monotonic()
            hit = values.get(arg)
            if hit is not None:
                if hit[0] > now:
                    values.move_to_end(arg)
                    return hit[1]
                del values[arg]
            running = calls.get(arg)
            if running is not None:
                return await asyncio.shield(running)
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            calls[arg] = future
            try:
                value = await fn(arg)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                elif not future.done():
                    future.set_exception(exc)
                    future.exception()  # marks it retrieved: only the sharers re-raise it
                raise
            finally:
                calls.pop(arg, None)
            future.set_result(value)
            values[arg] = (time.monotonic() + ttl_s, value)
            if len(values) > maxsize:
                values.popitem(last=False)
            return value

        lookup.cache_clear = values.clear  # type: ignore[attr-defined]
        return lookup

    return decorate
