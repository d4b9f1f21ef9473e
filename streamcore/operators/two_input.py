"""The base of the join steps: two keyed inputs told apart by channel, late output,
keyed state with incremental snapshots.

A join heads its actor (the planner gives a node with two inputs an actor of its own), so
the actor hands it each batch with the channel it came on (``on_channel_batch``); the
runner tells the step which channels belong to the left input and which to the right.
The watermark the step sees is the minimum of both inputs' (the actor's rule).

Snapshot protocol (as for windows, docs/checkpoints.md):
1. Every key whose state changes is added to ``_dirty`` (only under checkpointing).
2. At a barrier, a full snapshot writes every key's state; a delta writes the dirty keys,
   with a tombstone for a dirty key left without state that the checkpoints hold.
3. ``restore_state`` rebuilds the state from the per-key entries and the meta.
Design: docs/joins.md
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from streamcore.graph.nodes import JoinNode
from streamcore.operators.event_time_step import EventTimeStep
from streamcore.operators.join_result import JoinStatistics
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.steps import Step, stage_error
from streamcore.state.snapshot import StepSnapshot, remember_stored

__all__ = ["LEFT", "RIGHT", "JoinStep"]

LEFT = 0
RIGHT = 1
NEG_INF = -math.inf


class JoinStep(EventTimeStep):
    """Routing, keys, late records, watermarks and snapshots shared by every join."""

    def __init__(self, node: JoinNode, late: Step, on_failure: Callable[..., None],
                 input_channels: list[list[int]] | None = None) -> None:
        self.node = node
        self.name = node.name
        self.late_step = late
        self.on_failure = on_failure
        assert node.left_key is not None and node.right_key is not None, "joins follow key_by"
        self.keys_of = (node.left_key, node.right_key)
        self.side_of: dict[int, int] = {}
        for side, channels in enumerate(input_channels or [[0], [1]]):
            for channel in channels:
                self.side_of[channel] = side
        self.watermark_ms: float = NEG_INF
        self.pairs = 0
        self.unmatched = 0
        self.updates = 0
        self.late = 0
        self.seq = 0
        """Arrival number of the last record kept (ties in time are broken by arrival)."""
        self._stages = (
            StatelessStage(node.name, "join", node.left_key, node.on_error),
            StatelessStage(node.name, "join", node.right_key, node.on_error),
        )
        self._dirty: set[Any] | None = None
        self._stored: set[Any] = set()

    # -- input ---------------------------------------------------------------------

    async def on_channel_batch(self, channel: int, records: list[Any], timestamps: list[int] | None) -> None:
        """A batch from the input on ``channel``."""
        await self.on_side_batch(self.side_of[channel], records, timestamps)

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        raise AssertionError(f"join {self.name!r} takes batches with their channel (on_channel_batch)")

    async def on_side_batch(self, side: int, records: list[Any], timestamps: list[int] | None) -> None:
        """A batch of the left (``LEFT``) or right (``RIGHT``) input."""
        assert timestamps is not None, "join stages receive event timestamps"
        keys = self._keys(side, records, timestamps)
        if keys is None:
            return
        records, timestamps, ks = keys
        late: list[Any] = []
        late_ts: list[int] = []
        out: list[Any] = []
        out_ts: list[int] = []
        self._add(side, records, timestamps, ks, late, late_ts, out, out_ts)
        if late:
            self.late += len(late)
            await self.late_step.on_batch(late, late_ts)
        if out:
            await self.next.on_batch(out, out_ts)

    def _keys(
        self, side: int, records: list[Any], timestamps: list[int]
    ) -> tuple[list[Any], list[int], list[Any]] | None:
        """The records (those whose key could be computed), their timestamps and keys."""
        key = self.keys_of[side]
        try:
            return records, timestamps, [key(x) for x in records]
        except Exception:
            pass
        kept: list[Any] = []
        kept_ts: list[int] = []
        ks: list[Any] = []
        stage = self._stages[side]
        for x, t in zip(records, timestamps, strict=True):
            try:
                k = key(x)
            except Exception as exc:
                if stage.on_error == "fail":
                    raise stage_error(self.name, x, exc) from exc
                self.on_failure(stage, x if stage.on_error == "dead_letter" else None, exc)
                continue
            kept.append(x)
            kept_ts.append(t)
            ks.append(k)
        return (kept, kept_ts, ks) if kept else None

    def _add(self, side: int, records: list[Any], timestamps: list[int], keys: list[Any],
             late: list[Any], late_ts: list[int], out: list[Any], out_ts: list[int]) -> None:
        """Take a batch of one side into the state; collect late records and results."""
        raise NotImplementedError

    # -- time ------------------------------------------------------------------------

    async def _advance(self, new_w: float) -> None:
        if new_w <= self.watermark_ms:
            return
        old_w, self.watermark_ms = self.watermark_ms, new_w
        out: list[Any] = []
        out_ts: list[int] = []
        self._fire(old_w, new_w, out, out_ts)
        if out:
            await self.next.on_batch(out, out_ts)

    def _fire(self, old_w: float, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        """Emit what the watermark moving from ``old_w`` to ``new_w`` makes due; free state."""
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------

    def enable_checkpoints(self) -> None:
        """Track changed keys from now on, for incremental snapshots."""
        self._dirty = set()

    def _held_keys(self) -> Collection[Any]:
        """Every key with state."""
        raise NotImplementedError

    def _key_state(self, key: Any) -> Any:
        """The serialisable state of ``key`` (None when it has none)."""
        raise NotImplementedError

    def _restore_keys(self, entries: dict[Any, Any]) -> None:
        """Rebuild the state from ``_key_state`` values."""
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        return {
            "watermark_ms": self.watermark_ms,
            "pairs": self.pairs,
            "unmatched": self.unmatched,
            "updates": self.updates,
            "late": self.late,
            "seq": self.seq,
        }

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        self.watermark_ms = meta["watermark_ms"]
        self.pairs = meta["pairs"]
        self.unmatched = meta["unmatched"]
        self.updates = meta["updates"]
        self.late = meta["late"]
        self.seq = meta["seq"]

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """Steps 1-2 of the snapshot protocol."""
        entries: dict[Any, Any] = {}
        deleted: list[Any] = []
        keys = self._held_keys() if full else (self._dirty or ())
        for k in keys:
            state = self._key_state(k)
            if state is not None:
                entries[k] = state
            elif k in self._stored:
                deleted.append(k)
        self._stored = remember_stored(self._stored, entries, deleted, full)
        if self._dirty is not None:
            self._dirty.clear()
        return StepSnapshot(self._meta(), entries, deleted, full)

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Step 3 of the snapshot protocol."""
        if meta is not None:
            self._restore_meta(meta)
        self._stored = set(entries)
        self._restore_keys(entries)

    # -- statistics ------------------------------------------------------------------

    def _state_size(self) -> tuple[int, int]:
        """(records held, keys held)."""
        raise NotImplementedError

    def statistics(self) -> JoinStatistics:
        """Current state size and counters."""
        records, keys = self._state_size()
        return JoinStatistics(records, keys, self.pairs, self.unmatched, self.updates, self.late, self.watermark_ms)
