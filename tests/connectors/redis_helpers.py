"""Helpers for the Redis connector tests: unique names, a raw client, reading streams back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio


def unique(what: str) -> str:
    """A key name no other test uses."""
    return f"test-{what}-{uuid.uuid4().hex[:8]}"


async def delete_matching(client: redis.asyncio.Redis, *prefixes: str) -> None:
    """Delete every key starting with one of ``prefixes`` (hash-tagged sink keys included)."""
    for prefix in prefixes:
        for pattern in (f"{prefix}*", f"*{{{prefix}*"):
            names = [n async for n in client.scan_iter(match=pattern, count=1000)]
            if names:
                await client.delete(*names)


async def add_entries(client: redis.asyncio.Redis, stream: str, n: int) -> None:
    """Add ``n`` entries ``{"i": 0}``, ``{"i": 1}``, ... to ``stream``."""
    async with client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(stream, {"i": i})
        await pipe.execute()


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain redis-py client, closed afterwards."""
    client = redis.asyncio.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def stream_fields(client: redis.asyncio.Redis, stream: str) -> list[dict[str, str]]:
    """Every entry's fields of ``stream``, decoded, in order."""
    entries: Any = await client.xrange(stream)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)
