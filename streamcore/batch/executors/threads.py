"""The thread executor: each try runs in its own daemon thread, awaited from the loop.

A Python thread cannot be stopped from outside. On a timeout the engine therefore stops
waiting, marks the try timed out and *abandons* the thread: it runs on until its
function returns (its result is dropped), and a generator is stopped at its next
``yield``. Threads are daemons, so an abandoned one never keeps the process alive.
Design: docs/batch.md#thread-executor
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from streamcore.batch.failures import TaskTimeoutError
from streamcore.batch.streams import Emitter
from streamcore.batch.task import FunctionKind

__all__ = ["run_in_thread"]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    # The loop may have given up on the future already (timeout, cancellation).
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


async def _emit_all(items: AsyncIterator[Any], emitter: Emitter, loop: asyncio.AbstractEventLoop) -> None:
    async for item in items:
        emitter.emit_from_thread(item, loop)


def _body(
    fn: Callable[..., Any],
    args: list[Any],
    kind: FunctionKind,
    emitter: Emitter | None,
    loop: asyncio.AbstractEventLoop,
) -> Any:
    if kind == "function":
        return fn(*args)
    if kind == "coroutine":
        return asyncio.run(fn(*args))
    assert emitter is not None
    if kind == "generator":
        for item in fn(*args):
            emitter.emit_from_thread(item, loop)
        return None
    asyncio.run(_emit_all(fn(*args), emitter, loop))
    return None


async def run_in_thread(
    task: str,
    fn: Callable[..., Any],
    args: list[Any],
    kind: FunctionKind,
    emitter: Emitter | None,
    timeout_s: float | None,
) -> Any:
    """Run one try in a new thread; raise ``TaskTimeoutError`` if it outlives ``timeout_s``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def target() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = _body(fn, args, kind, emitter, loop)
        except BaseException as exc:
            error = exc
        # RuntimeError: the loop is closed, an abandoned thread finished after its run ended.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, value, error)

    thread = threading.Thread(target=target, name=f"streamcore-task-{task}", daemon=True)
    thread.start()
    if timeout_s is None:
        try:
            return await future
        except asyncio.CancelledError:
            if emitter is not None:
                emitter.abandoned = True
            raise
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            return await future
    except TimeoutError:
        if not scope.expired():
            raise
    except asyncio.CancelledError:
        if emitter is not None:
            emitter.abandoned = True
        raise
    if emitter is not None:
        emitter.abandoned = True
    raise TaskTimeoutError(
        task, timeout_s, f"its thread {thread.name!r} was abandoned and may still be running"
    )
