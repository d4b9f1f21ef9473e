"""The as-of join: each left record with the right record of its key current at its time.

Semantics (exact; docs/joins.md#as-of-join):
1. A record of either side with ``ts < W`` goes to ``.late``.
2. A right record is a version of its key: kept sorted by ``(ts, arrival)``; inserting it
   frees the versions no left record can still need (all but the newest before ``W``).
3. A left record waits until ``W > ts(l)``; then, in timestamp order (ties by arrival),
   it is joined with the newest version at or before ``ts(l)`` (the last to arrive among
   equal timestamps), or with None (``how="left"``), or dropped and counted
   (``how="inner"``). Matching frees the versions older than the one matched.
State: ``versions[key] = [(ts, seq, record), ...]`` and the waiting left records.
Design: docs/joins.md
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection
from operator import itemgetter
from typing import Any

from streamcore.graph.nodes import AsofJoinNode
from streamcore.operators.join_result import JoinResult
from streamcore.operators.two_input import LEFT, JoinStep
from streamcore.runtime.steps import Step
from streamcore.state.snapshot import StepSnapshot

__all__ = ["AsofJoinStep"]

POS_INF = math.inf
_timestamp = itemgetter(0)


class AsofJoinStep(JoinStep):
    """As-of join, inner or left."""

    def __init__(self, node: AsofJoinNode, late: Step, on_failure: Callable[..., None],
                 input_channels: list[list[int]] | None = None) -> None:
        super().__init__(node, late, on_failure, input_channels)
        self.keep_unmatched = node.how == "left"
        self.versions: dict[Any, list[tuple[int, int, Any]]] = {}
        self.pending: list[tuple[int, int, Any, Any]] = []
        """Left records waiting for the watermark: (ts, seq, key, record)."""
        self.version_count = 0
        self._waiting: dict[Any, list[list[Any]]] = {}

    def _add(self, side: int, records: list[Any], timestamps: list[int], keys: list[Any],
             late: list[Any], late_ts: list[int], out: list[Any], out_ts: list[int]) -> None:
        W = self.watermark_ms
        seq = self.seq
        dirty = self._dirty
        if side == LEFT and min(timestamps) >= W:
            # The common case, nothing late: the whole batch waits, built in C.
            self.pending.extend(zip(timestamps, range(seq + 1, seq + 1 + len(records)), keys, records, strict=True))
            self.seq = seq + len(records)
            if dirty is not None:
                dirty.update(keys)
            return
        versions = self.versions
        for x, t, k in zip(records, timestamps, keys, strict=True):
            if t < W:
                late.append(x)
                late_ts.append(t)
                continue
            seq += 1
            if dirty is not None:
                dirty.add(k)
            if side == LEFT:
                self.pending.append((t, seq, k, x))
                continue
            entry = (t, seq, x)
            held = versions.get(k)
            if held is None:
                versions[k] = [entry]
                self.version_count += 1
            else:
                if held[-1] < entry:
                    held.append(entry)
                else:
                    insort(held, entry)
                # Step 2: keep the newest version before W and everything after.
                drop = bisect_left(held, (W,)) - 1
                if drop > 0:
                    del held[:drop]
                self.version_count += 1 - max(drop, 0)
        self.seq = seq

    def _fire(self, old_w: float, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        self._emit_due(new_w, out, out_ts)
        if new_w == POS_INF:
            # End of both streams: no left record can need a version any more.
            if self._dirty is not None:
                self._dirty.update(self.versions)
            self.versions, self.version_count = {}, 0

    def _emit_due(self, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        pending = self.pending
        if not pending:
            return
        pending.sort(key=_timestamp)  # stable: ties stay in arrival order
        if new_w == POS_INF or pending[-1][0] < new_w:
            due, self.pending = pending, []
        else:
            cut = bisect_left(pending, new_w, key=_timestamp)
            if not cut:
                return
            due = pending[:cut]
            del pending[:cut]
        # Step 3.
        versions = self.versions
        keep_unmatched = self.keep_unmatched
        dirty = self._dirty
        unmatched = 0
        new, JR = tuple.__new__, JoinResult  # skips the NamedTuple's Python-level __new__
        append, append_ts = out.append, out_ts.append
        for t, _, k, x in due:
            held = versions.get(k)
            if held is not None:
                if len(held) == 1:
                    match = held[0] if held[0][0] <= t else None
                else:
                    i = bisect_right(held, (t, POS_INF)) - 1
                    match = held[i] if i >= 0 else None
                    if i > 0:
                        del held[:i]
                        self.version_count -= i
                        if dirty is not None:
                            dirty.add(k)
                if match is not None:
                    append(new(JR, (k, x, match[2], None, None, False)))
                    append_ts(t)
                    continue
            unmatched += 1
            if keep_unmatched:
                out.append(JoinResult(k, x, None, None, None))
                out_ts.append(t)
        self.unmatched += unmatched
        self.pairs += len(due) - unmatched
        if dirty is not None:
            dirty.update([k for _, _, k, _ in due])

    # -- state -----------------------------------------------------------------------

    def _held_keys(self) -> Collection[Any]:
        keys = dict.fromkeys(self.versions)
        keys.update(dict.fromkeys(k for _, _, k, _ in self.pending))
        return keys

    def _key_state(self, key: Any) -> Any:
        held = self.versions.get(key)
        waiting = self._waiting.get(key, [])
        if held is None and not waiting:
            return None
        return [[[t, s, x] for t, s, x in held or ()], waiting]

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """As the base; the waiting left records are grouped by key once, not per key."""
        self._waiting = {}
        for t, s, k, x in self.pending:
            self._waiting.setdefault(k, []).append([t, s, x])
        try:
            return super().snapshot_state(checkpoint_id, full)
        finally:
            self._waiting = {}

    def _restore_keys(self, entries: dict[Any, Any]) -> None:
        self.versions, self.pending, self.version_count = {}, [], 0
        for k, (held, waiting) in entries.items():
            if held:
                self.versions[k] = sorted((int(t), int(s), x) for t, s, x in held)
                self.version_count += len(held)
            self.pending.extend((int(t), int(s), k, x) for t, s, x in waiting)
        self.pending.sort(key=_timestamp)

    def _state_size(self) -> tuple[int, int]:
        return self.version_count + len(self.pending), len(self._held_keys())
