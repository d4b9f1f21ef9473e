"""Task outputs kept in a state store, so that a run started again with its run id resumes.

Protocol:
1. At the start of a run, every key under ``pipeline/<name>/<run_id>/`` is read; each one
   holds the output of a task that finished in an earlier attempt at this run.
2. Those tasks are not run again: their status is ``resumed`` and their output is decoded.
3. When a task succeeds, its output is encoded at once (an output that cannot be encoded
   fails the task, naming the codec) and queued for writing.
4. A writer coroutine stores queued outputs in batches (``put_many``), and the run
   flushes the queue before it returns, so every success is stored when ``run()`` ends.
Values go through ``streamcore.state.serde`` by default: no pickle, so reading a store
never executes code. ``streamcore.state.PickleCodec`` is an explicit opt-in for trusted stores.
Design: docs/batch.md#resume
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from streamcore.errors import PipelineError, SerializationError
from streamcore.state import serde
from streamcore.state.serde import Codec
from streamcore.state.store import StateStore

__all__ = ["Codec", "TaskCheckpoints", "checkpoint_prefix"]

log = logging.getLogger("streamcore.batch")


def checkpoint_prefix(pipeline: str, run_id: str) -> str:
    """Where the outputs of one run live in the store."""
    return f"pipeline/{pipeline}/{run_id}/"


class TaskCheckpoints:
    """Reads and writes the stored outputs of one run."""

    def __init__(self, store: StateStore, pipeline: str, run_id: str, codec: Codec | None = None) -> None:
        self.store = store
        self.prefix = checkpoint_prefix(pipeline, run_id)
        self.codec: Codec = codec if codec is not None else serde.JsonCodec()
        self._queued: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._error: BaseException | None = None

    async def open(self) -> dict[str, Any]:
        """Open the store and return the stored outputs by task name. Step 1 and 2."""
        await self.store.open()
        stored = await self.store.scan(self.prefix)
        outputs: dict[str, Any] = {}
        for key, data in stored.items():
            name = key[len(self.prefix):]
            try:
                outputs[name] = self.codec.decode(data)
            except Exception as exc:
                # Unreadable (another codec, a newer format): run the task again.
                log.warning("stored output unreadable; task will run again key=%s error=%r", key, exc)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return outputs

    def save(self, task: str, output: Any) -> None:
        """Encode ``output`` now and queue it for the writer. Step 3."""
        try:
            data = self.codec.encode(output)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"{type(self.codec).__name__} cannot encode it: {exc!r}") from exc
        self._queued[self.prefix + task] = data
        self._wake.set()

    async def _write_loop(self) -> None:
        # Step 4: batch whatever finished while the previous write was in flight.
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queued:
                batch, self._queued = self._queued, {}
                try:
                    await self.store.put_many(batch)
                except Exception as exc:
                    self._error = exc
                    return
            if self._closing:
                return

    async def close(self) -> None:
        """Flush queued outputs; raise ``PipelineError`` if any could not be stored."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        if self._error is not None:
            raise PipelineError(
                f"task outputs could not be stored in {self.store.describe()} under "
                f"{self.prefix!r}; a later run with this run id would run those tasks again"
            ) from self._error

    async def abort(self) -> None:
        """Stop the writer without flushing (the run was cancelled)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
