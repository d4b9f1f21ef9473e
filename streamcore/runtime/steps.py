"""Steps: the pieces an actor is made of, one per stage (or per fused run of stages).

An actor pushes each inbox message into its first step; a step does its work and pushes
the result into the next step of the same actor, or into an ``Outlet`` that sends it
to the mailboxes of the actors downstream. Steps are called once per *batch*; the
per-record work is a tight loop inside a step.

Every step implements the same four calls, in stream order:
1. ``on_batch(records, timestamps)``: data; ``timestamps`` is None when no stage
   downstream needs event time.
2. ``on_watermark(timestamp_ms)``: the combined watermark of the actor's inputs advanced.
3. ``on_end()``: every input ended; flush and pass it on.
4. ``open()`` / ``close()``: around the run (``close`` also after a failure).
Design: docs/runtime.md#actors
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from streamcore.drop_log import DropLog
from streamcore.errors import MailboxFullError, SinkError, StageError
from streamcore.io import Sink, SinkContext
from streamcore.runtime.chain import ChainFailure, CompiledChain, StatelessStage
from streamcore.runtime.keys import explain_key_failure
from streamcore.runtime.mailbox import Mailbox
from streamcore.runtime.messages import Barrier, Batch, EndOfStream, Watermark
from streamcore.stage_options import OnError
from streamcore.state.snapshot import StepSnapshot

__all__ = [
    "AsyncOpStep",
    "ChainStep",
    "DeadLetter",
    "Outlet",
    "SinkStep",
    "Step",
    "Target",
]

log = logging.getLogger("streamcore.runtime")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that failed in ``stage`` with ``error``, kept instead of failing the flow."""

    stage: str
    record: Any
    error: BaseException


def stage_error(stage: str, record: object, error: BaseException) -> StageError:
    """The error that fails the flow when a user function raised in ``stage``."""
    shown = repr(record)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    err = StageError(
        f"stage {stage!r} failed on record {shown}: {type(error).__name__}: {error}",
        stage=stage,
        record=record,
    )
    err.__cause__ = error
    return err


class Step:
    """Base step: forwards everything to ``next``."""

    next: Step

    async def open(self) -> None:
        """Prepare before the first message."""

    async def close(self) -> None:
        """Release after the last message."""

    async def abort(self) -> None:
        """Release after a failure (by default the same as ``close``)."""
        await self.close()

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        """Process a batch."""
        await self.next.on_batch(records, timestamps)

    async def on_watermark(self, timestamp_ms: float) -> None:
        """The watermark advanced."""
        await self.next.on_watermark(timestamp_ms)

    async def on_end(self) -> None:
        """All inputs ended."""
        await self.next.on_end()

    async def on_idle(self, idle: bool) -> None:
        """Every input went idle (``True``), or one is active again (``False``)."""
        nxt = getattr(self, "next", None)
        if nxt is not None:
            await nxt.on_idle(idle)


class ChainStep(Step):
    """A fused run of stateless stages compiled into one batch function."""

    def __init__(self, stages: list[StatelessStage], on_failure: Callable[[StatelessStage, Any, BaseException], None]) -> None:
        self.chain = CompiledChain(stages, on_failure)
        self.names = [s.name for s in stages]

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        try:
            out, out_ts = self.chain(records, timestamps)
        except ChainFailure as failure:
            raise stage_error(failure.stage.name, failure.record, failure.error) from failure.error
        if out:
            await self.next.on_batch(out, out_ts)


class AsyncOpStep(Step):
    """One stateless stage whose function is ``async def``: a batch's calls run concurrently."""

    def __init__(self, stage: StatelessStage, on_failure: Callable[[StatelessStage, Any, BaseException], None]) -> None:
        self.stage = stage
        self.on_failure = on_failure

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        stage = self.stage
        results = await asyncio.gather(*[stage.fn(r) for r in records], return_exceptions=True)
        out: list[Any] = []
        out_ts: list[int] | None = None if timestamps is None else []
        for i, (record, result) in enumerate(zip(records, results, strict=True)):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError) or stage.on_error == "fail":
                    raise stage_error(stage.name, record, result) from result
                self.on_failure(stage, record if stage.on_error == "dead_letter" else None, result)
                continue
            if stage.op == "map":
                produced: list[Any] = [result]
            elif stage.op == "filter":
                produced = [record] if result else []
            else:
                produced = list(result)
            out.extend(produced)
            if out_ts is not None and timestamps is not None:
                out_ts.extend([timestamps[i]] * len(produced))
        if out:
            await self.next.on_batch(out, out_ts)


class SinkStep(Step):
    """Writes batches to a sink connector or calls a function per record. The end of a chain."""

    def __init__(self, name: str, flow: str, sink: Any, on_error: OnError,
                 on_failure: Callable[[StatelessStage, Any, BaseException], None]) -> None:
        self.name = name
        self.flow = flow
        self.sink = sink
        self.on_error = on_error
        self.on_failure = on_failure
        self.records_written = 0
        self._write: Callable[[Any], Any]
        if isinstance(sink, Sink):
            self._write = sink.write_batch
            self._is_async = inspect.iscoroutinefunction(sink.write_batch)
            self._per_record = False
        else:
            self._write = sink
            # Also a callable object whose __call__ is ``async def``.
            self._is_async = inspect.iscoroutinefunction(sink) or inspect.iscoroutinefunction(
                getattr(sink, "__call__", None)  # noqa: B004
            )
            self._per_record = True
        self._stage = StatelessStage(name, "sink", sink, on_error)
        self._time_hooks = isinstance(sink, Sink) and sink.wants_time
        """The sink takes event time: timestamps with each batch, watermarks, idleness."""
        self.checkpointing = False
        self.restore_meta: Any = None

    async def open(self) -> None:
        if isinstance(self.sink, Sink):
            if self.checkpointing and self.sink.supports_checkpoints:
                await self.sink.restore(self.restore_meta)
            await self.sink.open(SinkContext(self.name, self.flow, checkpointing=self.checkpointing))

    @property
    def transactional(self) -> bool:
        """Whether the sink publishes only at checkpoints (exactly-once)."""
        return isinstance(self.sink, Sink) and self.sink.supports_checkpoints

    def enable_checkpoints(self) -> None:
        """The flow runs with checkpoints: seal output at barriers, publish on commit."""
        self.checkpointing = True

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot | Awaitable[StepSnapshot]:
        """At a barrier: ``pre_commit`` the sink; its state goes in the manifest."""
        if not self.transactional:
            return StepSnapshot(None)
        state = self.sink.pre_commit(checkpoint_id)
        if inspect.isawaitable(state):
            return self._awaited(state)
        return StepSnapshot(state)

    @staticmethod
    async def _awaited(state: Awaitable[Any]) -> StepSnapshot:
        return StepSnapshot(await state)

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Remember the sink state to restore when the sink opens."""
        self.restore_meta = meta

    async def close(self) -> None:
        if isinstance(self.sink, Sink):
            await self.sink.close()

    async def abort(self) -> None:
        if isinstance(self.sink, Sink):
            await self.sink.abort()

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        write = self._write
        if not self._per_record:
            try:
                await self._write_batch(records, timestamps)
            except Exception as exc:
                if self.on_error == "fail":
                    if isinstance(exc, SinkError):
                        raise
                    raise SinkError(
                        f"sink {self.name!r} failed writing a batch of {len(records)}: {exc}"
                    ) from exc
                # Skip / dead-letter: find the failing records by writing one at a time
                # (a connector's write_batch is all or nothing, so nothing is written twice).
                stamps = timestamps if timestamps is not None else [None] * len(records)
                for record, stamp in zip(records, stamps, strict=True):
                    try:
                        await self._write_batch([record], None if stamp is None else [stamp])
                    except Exception as record_exc:
                        self.on_failure(
                            self._stage, record if self.on_error == "dead_letter" else None, record_exc
                        )
        elif self.on_error == "fail" and not self._is_async:
            record = None
            try:
                for record in records:
                    write(record)
            except Exception as exc:
                raise stage_error(self.name, record, exc) from exc
        else:
            for record in records:
                try:
                    if self._is_async:
                        await write(record)
                    else:
                        write(record)
                except Exception as exc:
                    if self.on_error == "fail":
                        raise stage_error(self.name, record, exc) from exc
                    self.on_failure(self._stage, record if self.on_error == "dead_letter" else None, exc)
        self.records_written += len(records)

    async def _write_batch(self, records: list[Any], timestamps: list[int] | None = None) -> None:
        if self._time_hooks:
            await self.sink.write_timed(records, timestamps or [])
        elif self._is_async:
            await self._write(records)
        else:
            # The Sink contract lets a plain write_batch return an awaitable.
            pending = self._write(records)
            if pending is not None and inspect.isawaitable(pending):
                await pending

    async def on_watermark(self, timestamp_ms: float) -> None:
        if self._time_hooks:
            await self.sink.on_watermark(timestamp_ms)

    async def on_idle(self, idle: bool) -> None:
        if self._time_hooks:
            await self.sink.on_idle(idle)

    async def on_end(self) -> None:
        if self._time_hooks:
            await self.sink.on_watermark(math.inf)


@dataclass
class Target:
    """The mailboxes of one downstream stage (one per parallel actor) and our channel at each."""

    mailboxes: list[Mailbox]
    channels: list[int]
    key: Callable[[Any], Any] | None = None
    """Routes records by ``hash(key(record)) % len(mailboxes)`` when there are several."""
    key_stage: str | None = None
    """The ``key_by`` stage of ``key``, named when a key cannot be hashed."""


class Outlet(Step):
    """Sends an actor's output to the mailboxes of the actors downstream."""

    def __init__(self, targets: list[Target], overflow: str = "block", stage: str = "") -> None:
        self.targets = targets
        self.overflow = overflow
        self.stage = stage
        self._drops = DropLog(log)
        self.records_out = 0
        self.batches_out = 0
        self.blocked_s = 0.0
        self.dropped = 0

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        self.records_out += len(records)
        self.batches_out += 1
        last = len(self.targets) - 1
        for i, target in enumerate(self.targets):
            boxes = target.mailboxes
            if len(boxes) == 1:
                if i == last:
                    batch = Batch(records, timestamps, target.channels[0])
                else:
                    # A batch belongs to its receiver (actors share nothing mutable): with
                    # several consumers, all but the last get copies of the lists.
                    copied_ts = None if timestamps is None else list(timestamps)
                    batch = Batch(list(records), copied_ts, target.channels[0])
                await self._send(boxes[0], batch)
            else:
                await self._partition(target, records, timestamps)

    async def _partition(self, target: Target, records: list[Any], timestamps: list[int] | None) -> None:
        try:
            await self._route(target, records, timestamps)
        except TypeError as exc:
            # A failed hash() names no record; look for the one whose key cannot be hashed.
            assert target.key is not None
            for r in records:
                keyed = explain_key_failure(exc, target.key_stage, target.key, r)
                if keyed is not None:
                    raise keyed from exc
            raise

    async def _route(self, target: Target, records: list[Any], timestamps: list[int] | None) -> None:
        n = len(target.mailboxes)
        key = target.key
        assert key is not None
        parts: list[list[Any]] = [[] for _ in range(n)]
        if timestamps is None:
            for r in records:
                parts[hash(key(r)) % n].append(r)
            for i, part in enumerate(parts):
                if part:
                    await self._send(target.mailboxes[i], Batch(part, None, target.channels[i]))
        else:
            tparts: list[list[int]] = [[] for _ in range(n)]
            for r, t in zip(records, timestamps, strict=True):
                i = hash(key(r)) % n
                parts[i].append(r)
                tparts[i].append(t)
            for i, part in enumerate(parts):
                if part:
                    await self._send(target.mailboxes[i], Batch(part, tparts[i], target.channels[i]))

    async def _send(self, mailbox: Mailbox, batch: Batch) -> None:
        try:
            mailbox.send_nowait(batch)
            return
        except MailboxFullError:
            pass
        if self.overflow == "drop_newest":
            self.dropped += len(batch.records)
            self._drops.record("dropped", self.stage, f"records={len(batch.records)} overflow=drop_newest")
            return
        if self.overflow == "drop_oldest":
            room = max(len(batch.records), mailbox.size - mailbox.statistics().low_water)
            evicted = mailbox.evict_oldest(room)
            self.dropped += evicted
            self._drops.record("dropped", self.stage, f"records={evicted} overflow=drop_oldest")
        started = perf_counter()
        await mailbox.send(batch)
        self.blocked_s += perf_counter() - started

    async def on_watermark(self, timestamp_ms: float) -> None:
        for target in self.targets:
            for box, channel in zip(target.mailboxes, target.channels, strict=True):
                box.send_control(Watermark(timestamp_ms, channel))

    async def on_end(self) -> None:
        for target in self.targets:
            for box, channel in zip(target.mailboxes, target.channels, strict=True):
                box.send_control(EndOfStream(channel))

    def on_barrier(self, checkpoint_id: int, full: bool) -> None:
        """Pass checkpoint barrier ``checkpoint_id`` on (it never waits for room)."""
        for target in self.targets:
            for box, channel in zip(target.mailboxes, target.channels, strict=True):
                box.send_control(Barrier(checkpoint_id, channel, full))

    async def on_idle(self, idle: bool) -> None:
        """Every input of this actor went idle, or one is active again: so do we, for
        the actors downstream (they leave an idle channel out of their minimum)."""
        await self.on_watermark_status(idle=idle)

    async def on_watermark_status(self, *, idle: bool, timestamp_ms: float = -math.inf) -> None:
        """Tell downstream that our source went idle, or is active again."""
        for target in self.targets:
            for box, channel in zip(target.mailboxes, target.channels, strict=True):
                box.send_control(Watermark(timestamp_ms, channel, idle=idle))
