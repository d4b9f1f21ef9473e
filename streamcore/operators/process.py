"""Keyed stateful user functions with per-key state and event-time timers.

For what the window API does not cover: subclass ``KeyedProcessFunction``, keep state in
``ctx.state`` (a dict private to the current key) and register event-time timers with
``ctx.register_timer(timestamp_ms)``. A timer fires once when the watermark reaches it
(``W >= timestamp``), with the same ``ctx`` for its key, timers in time order (then in
order of registration). The end of a finite stream fires every timer pending at that
moment in time order; timers registered from ``on_timer`` during that last flush are not
fired (a self-rescheduling timer would otherwise never let the stream end). Outputs are whatever ``process`` / ``on_timer``
return (an iterable of records, or None). State lives behind ``snapshot()`` / ``restore()``
so checkpoints can capture it.
Design: docs/event-time.md#keyed-process
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamcore.graph.nodes import ProcessNode
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.keys import explain_key_failure
from streamcore.runtime.steps import Step, stage_error
from streamcore.state.snapshot import StepSnapshot, remember_stored

__all__ = ["KeyedProcessFunction", "ProcessContext", "ProcessStatistics", "ProcessStep"]

POS_INF = math.inf


class ProcessContext:
    """What a ``KeyedProcessFunction`` sees of the current key and time."""

    __slots__ = ("_step", "key", "state", "timestamp_ms", "watermark_ms")

    def __init__(self, step: ProcessStep) -> None:
        self._step = step
        self.key: Any = None
        self.state: dict[str, Any] = {}
        self.timestamp_ms: int = 0
        self.watermark_ms: float = -math.inf

    def register_timer(self, timestamp_ms: int) -> None:
        """Call ``on_timer`` for this key once the watermark reaches ``timestamp_ms``."""
        self._step.register_timer(self.key, int(timestamp_ms))

    def clear_state(self) -> None:
        """Forget this key's state (frees it)."""
        self.state.clear()


class KeyedProcessFunction:
    """Base class of keyed stateful functions; override ``process`` (and ``on_timer``)."""

    def process(self, record: Any, ctx: ProcessContext) -> Iterable[Any] | None:
        """Handle one record of ``ctx.key``; return the records to emit."""
        raise NotImplementedError

    def on_timer(self, timestamp_ms: int, ctx: ProcessContext) -> Iterable[Any] | None:
        """A timer of ``ctx.key`` fired; return the records to emit."""
        return None


@dataclass(frozen=True)
class ProcessStatistics:
    """State size of a process stage."""

    keys: int
    timers: int
    watermark_ms: float


class ProcessStep(Step):
    """Runs a ``KeyedProcessFunction`` over a keyed stream."""

    def __init__(self, node: ProcessNode, on_failure: Callable[..., None]) -> None:
        self.node = node
        self.name = node.name
        self.fn: KeyedProcessFunction = node.fn
        self.key = node.key
        self.on_failure = on_failure
        self.states: dict[Any, dict[str, Any]] = {}
        self.timers: list[tuple[int, int, Any]] = []
        self._timer_set: set[tuple[int, Any]] = set()
        self._tie = 0
        self._ending = False
        self.dropped_timers = 0
        """Timers registered during the end-of-stream flush (never fired)."""
        self.ctx = ProcessContext(self)
        self._dirty: set[Any] | None = None
        self._stored: set[Any] = set()
        self._stage = StatelessStage(node.name, "process", node.fn.process, node.on_error)

    def register_timer(self, key: Any, timestamp_ms: int) -> None:
        """Add a timer (duplicates of the same key and time fire once)."""
        if self._ending:
            self.dropped_timers += 1
            return
        if (timestamp_ms, key) in self._timer_set:
            return
        self._timer_set.add((timestamp_ms, key))
        self._tie += 1
        heapq.heappush(self.timers, (timestamp_ms, self._tie, key))

    def enable_checkpoints(self) -> None:
        """Track changed keys from now on, for incremental snapshots."""
        self._dirty = set()

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """Per key: ``{"state": dict, "timers": [timestamps]}``."""
        timers: dict[Any, list[int]] = {}
        for ts, k in self._timer_set:
            timers.setdefault(k, []).append(ts)
        keys = set(self.states) | set(timers) if full else (self._dirty or set())
        entries: dict[Any, dict[str, Any]] = {}
        deleted: list[Any] = []
        for k in keys:
            state = self.states.get(k)
            pending = sorted(timers.get(k, ()))
            if state or pending:
                entries[k] = {"state": state or {}, "timers": pending}
            elif k in self._stored:
                deleted.append(k)  # a key never stored needs no tombstone
        self._stored = remember_stored(self._stored, entries, deleted, full)
        if self._dirty is not None:
            self._dirty.clear()
        meta = {"watermark_ms": self.ctx.watermark_ms, "dropped_timers": self.dropped_timers}
        return StepSnapshot(meta, entries, deleted, full)

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Take back per-key state and timers (timers of equal time fire in key order of the store)."""
        if meta is not None:
            self.ctx.watermark_ms = meta["watermark_ms"]
            self.dropped_timers = meta["dropped_timers"]
        self.states, self.timers, self._timer_set = {}, [], set()
        self._stored = set(entries)
        for k, entry in entries.items():
            if entry["state"]:
                self.states[k] = dict(entry["state"])
            for ts in entry["timers"]:
                self.register_timer(k, int(ts))

    def _bind(self, key: Any) -> ProcessContext:
        if self._dirty is not None:
            self._dirty.add(key)
        ctx = self.ctx
        ctx.key = key
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = {}
        ctx.state = state
        return ctx

    def _unbind(self, key: Any) -> None:
        if not self.ctx.state:
            self.states.pop(key, None)

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        assert timestamps is not None, "process stages receive event timestamps"
        out: list[Any] = []
        out_ts: list[int] = []
        fn, key = self.fn, self.key
        assert key is not None
        for x, t in zip(records, timestamps, strict=True):
            try:
                k = key(x)
                ctx = self._bind(k)
                ctx.timestamp_ms = t
                produced = fn.process(x, ctx)
                self._unbind(k)
            except Exception as exc:
                error = explain_key_failure(exc, self.node.key_stage, key, x)
                if self.node.on_error == "fail":
                    raise error or stage_error(self.name, x, exc) from exc
                self.on_failure(self._stage, x, error or exc)
                continue
            _collect(produced, t, out, out_ts)
        if out:
            await self.next.on_batch(out, out_ts)

    async def _fire(self, w: float) -> None:
        out: list[Any] = []
        out_ts: list[int] = []
        self.ctx.watermark_ms = w
        while self.timers and self.timers[0][0] <= w:
            ts, _, k = heapq.heappop(self.timers)
            self._timer_set.discard((ts, k))
            ctx = self._bind(k)
            ctx.timestamp_ms = ts
            try:
                produced = self.fn.on_timer(ts, ctx)
            except Exception as exc:
                raise stage_error(self.name, f"timer {ts} of key {k!r}", exc) from exc
            self._unbind(k)
            _collect(produced, ts, out, out_ts)
        if out:
            await self.next.on_batch(out, out_ts)

    async def on_watermark(self, timestamp_ms: float) -> None:
        await self._fire(timestamp_ms)
        await self.next.on_watermark(timestamp_ms)

    async def on_end(self) -> None:
        self._ending = True
        await self._fire(POS_INF)
        await self.next.on_end()

    def snapshot(self) -> dict[str, Any]:
        """The stage's state: per-key dicts and pending timers."""
        return {"states": self.states, "timers": sorted(self._timer_set, key=lambda p: p[0])}

    def statistics(self) -> ProcessStatistics:
        """Current state size."""
        return ProcessStatistics(keys=len(self.states), timers=len(self.timers), watermark_ms=self.ctx.watermark_ms)


def _collect(produced: Iterable[Any] | None, timestamp_ms: int, out: list[Any], out_ts: list[int]) -> None:
    """Append what a callback produced to ``out``, each with ``timestamp_ms`` in ``out_ts``."""
    if produced is not None:
        items = list(produced)
        out.extend(items)
        out_ts.extend([timestamp_ms] * len(items))
