"""Turning a task function call into one value, in whatever process or thread runs it.

Process and Dask workers cannot stream items back one by one, so there a generator is
drained into a list and an ``async`` function gets its own event loop. This module is
imported in worker processes: it must stay light and free of engine state.
Design: docs/batch.md#executors
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from typing import Any

from streamcore.batch.failures import RemoteTaskError
from streamcore.batch.task import function_kind

__all__ = ["call_to_value", "child_main"]


async def _drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def call_to_value(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``fn(*args)`` to completion: a generator's items come back as a list."""
    kind = function_kind(fn)
    if kind == "coroutine":
        return asyncio.run(fn(*args))
    if kind == "async_generator":
        return asyncio.run(_drain(fn(*args)))
    if kind == "generator":
        return list(fn(*args))
    return fn(*args)


def child_main(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Entry point of a dedicated worker process: send back ``("ok", value)`` or ``("error", exc)``."""
    try:
        value = call_to_value(fn, args)
    except BaseException as exc:
        try:
            conn.send(("error", exc))
        except Exception:
            # The user's exception does not pickle: send its text instead.
            text = "".join(traceback.format_exception(exc))
            conn.send(("error", RemoteTaskError(f"{type(exc).__name__}: {exc}\n{text}")))
    else:
        try:
            conn.send(("ok", value))
        except Exception as exc:
            conn.send(("error", RemoteTaskError(f"the task's output cannot be pickled: {exc!r}")))
    finally:
        conn.close()
