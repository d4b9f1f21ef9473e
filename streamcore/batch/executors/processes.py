"""The process executor: CPU-bound tasks in other processes; functions and values are pickled.

Tries without a timeout share a process pool. A try with a timeout gets a dedicated
process, so that on timeout the engine can terminate it (SIGTERM, then SIGKILL if it
does not exit) without harming other tasks; a pooled worker could not be stopped alone.
Workers start with ``forkserver`` where available (``spawn`` elsewhere): forking a
process that runs threads and an event loop is unsafe.
Design: docs/batch.md#process-executor
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any

from streamcore.batch.executors.calling import call_to_value, child_main
from streamcore.batch.failures import RemoteTaskError, TaskTimeoutError

__all__ = ["ProcessExecutor"]

_TERMINATE_GRACE_S = 2.0


def _context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class ProcessExecutor:
    """Runs tries in worker processes for one pipeline run."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max(1, max_workers)
        self._context = _context()
        self._pool: ProcessPoolExecutor | None = None

    async def run(
        self, task: str, fn: Callable[..., Any], args: list[Any], timeout_s: float | None
    ) -> Any:
        """The value of ``fn(*args)`` computed in another process."""
        if timeout_s is None:
            return await self._run_pooled(fn, args)
        return await self._run_dedicated(task, fn, args, timeout_s)

    async def _run_pooled(self, fn: Callable[..., Any], args: list[Any]) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._max_workers, mp_context=self._context)
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call_to_value, fn, tuple(args))
        except BrokenProcessPool:
            # A worker died (killed, out of memory): later tries get a fresh pool.
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    async def _run_dedicated(
        self, task: str, fn: Callable[..., Any], args: list[Any], timeout_s: float
    ) -> Any:
        loop = asyncio.get_running_loop()
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=child_main,
            args=(sender, fn, tuple(args)),
            name=f"streamcore-task-{task}",
            daemon=True,
        )
        readable: asyncio.Future[None] = loop.create_future()
        try:
            process.start()
            sender.close()
            loop.add_reader(receiver.fileno(), _set_once, readable)
            scope = asyncio.timeout(timeout_s)
            try:
                async with scope:
                    await readable
            except TimeoutError:
                if not scope.expired():
                    raise
                await _stop(process)
                raise TaskTimeoutError(
                    task, timeout_s, f"its worker process (pid {process.pid}) was terminated"
                ) from None
            loop.remove_reader(receiver.fileno())
            try:
                # Off the loop: a large result arrives in many pipe reads.
                outcome, value = await asyncio.to_thread(receiver.recv)
            except EOFError:
                await asyncio.to_thread(process.join)
                raise RemoteTaskError(
                    f"task {task!r}: its worker process exited with code {process.exitcode} "
                    "before sending a result"
                ) from None
        except BaseException:
            if process.is_alive():
                await asyncio.shield(_stop(process))
            raise
        finally:
            if not receiver.closed:
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(receiver.fileno())
                receiver.close()
        await asyncio.to_thread(process.join)
        process.close()
        if outcome == "error":
            raise value
        return value

    async def close(self, wait: bool = True) -> None:
        """Shut the pool down; with ``wait=False`` running tries finish unobserved."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait, cancel_futures=True)


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _stop(process: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM, then SIGKILL if the process is still there after a grace period."""
    if process.pid is None:
        return
    process.terminate()
    await asyncio.to_thread(process.join, _TERMINATE_GRACE_S)
    if process.is_alive():
        process.kill()
        await asyncio.to_thread(process.join)
