"""The window join over tumbling and sliding windows (sessions: ``session_join``).

Semantics (exact; docs/joins.md#window-join):
1. A record of either side is added to each of its windows that is still kept (``W <
   end + lateness``); a record with none goes to ``.late``.
2. When ``W >= end`` a window emits, key by key, every (left, right) pair, and with an
   outer ``how`` every record of a side without partner, with None on the other side.
3. A record added to a window that already fired emits, in its batch, the pairs it makes
   with the other side's records of that window (or itself unmatched), ``is_update=True``.
4. A window is freed when ``W >= end + lateness``.
State: ``windows[start][key] = [lefts, rights]``, with the starts kept sorted.
Design: docs/joins.md
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Collection
from typing import Any

from streamcore.graph.nodes import WindowJoinNode
from streamcore.operators.event_time_step import insert_start
from streamcore.operators.join_result import JoinResult
from streamcore.operators.two_input import LEFT, JoinStep
from streamcore.runtime.steps import Step

__all__ = ["OUTER_SIDES", "WindowJoinStep"]

POS_INF = math.inf

OUTER_SIDES = {"inner": (False, False), "left": (True, False), "right": (False, True), "outer": (True, True)}
"""Per ``how``: whether unmatched left records, and unmatched right records, are emitted."""


class WindowJoinStep(JoinStep):
    """Tumbling and sliding window joins."""

    def __init__(self, node: WindowJoinNode, late: Step, on_failure: Callable[..., None],
                 input_channels: list[list[int]] | None = None) -> None:
        super().__init__(node, late, on_failure, input_channels)
        a = node.assigner
        self.size_ms: int = a.size_ms
        self.slide_ms: int = a.slide_ms
        self.lateness_ms = node.allowed_lateness_ms
        self.outer = OUTER_SIDES[node.how]
        self.windows: dict[int, dict[Any, list[list[Any]]]] = {}
        self.starts: list[int] = []

    def _window(self, start: int) -> dict[Any, list[list[Any]]]:
        d: dict[Any, list[list[Any]]] = {}
        self.windows[start] = d
        insert_start(self.starts, start)
        return d

    def _add(self, side: int, records: list[Any], timestamps: list[int], keys: list[Any],
             late: list[Any], late_ts: list[int], out: list[Any], out_ts: list[int]) -> None:
        W = self.watermark_ms
        size, slide, keep = self.size_ms, self.slide_ms, self.size_ms + self.lateness_ms
        windows = self.windows
        dirty = self._dirty
        for x, t, k in zip(records, timestamps, keys, strict=True):
            last = t - t % slide
            if last + keep <= W:
                # Step 1: every window of the record is freed.
                late.append(x)
                late_ts.append(t)
                continue
            if dirty is not None:
                dirty.add(k)
            ws = last
            while ws > t - size:
                if ws + keep > W:
                    d = windows.get(ws)
                    if d is None:
                        d = self._window(ws)
                    cell = d.get(k)
                    if cell is None:
                        cell = d[k] = [[], []]
                    if ws + size <= W:
                        self._update(side, k, x, ws, cell, out, out_ts)
                    cell[side].append(x)
                ws -= slide

    def _update(self, side: int, k: Any, x: Any, ws: int, cell: list[list[Any]],
                out: list[Any], out_ts: list[int]) -> None:
        """Step 3: the results a record makes in a fired window."""
        end = ws + self.size_ms
        other = cell[1 - side]
        if other:
            if side == LEFT:
                out.extend([JoinResult(k, x, o, ws, end, True) for o in other])
            else:
                out.extend([JoinResult(k, o, x, ws, end, True) for o in other])
            self.pairs += len(other)
            self.updates += len(other)
            out_ts.extend([end - 1] * len(other))
        elif self.outer[side]:
            out.append(JoinResult(k, x, None, ws, end, True) if side == LEFT else JoinResult(k, None, x, ws, end, True))
            out_ts.append(end - 1)
            self.unmatched += 1
            self.updates += 1

    def _fire(self, old_w: float, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        size = self.size_ms
        starts, windows = self.starts, self.windows
        # Step 2: windows whose end is in (old_w, new_w].
        lo = bisect_right(starts, old_w - size)
        hi = len(starts) if new_w == POS_INF else bisect_right(starts, new_w - size)
        outer_left, outer_right = self.outer
        pairs = unmatched = 0
        new, JR = tuple.__new__, JoinResult  # skips the NamedTuple's Python-level __new__
        for ws in starts[lo:hi]:
            end = ws + size
            n = len(out)
            for k, (lefts, rights) in windows[ws].items():
                if lefts and rights:
                    for left in lefts:
                        out.extend([new(JR, (k, left, r, ws, end, False)) for r in rights])
                    pairs += len(lefts) * len(rights)
                elif lefts:
                    if outer_left:
                        out.extend([JoinResult(k, left, None, ws, end) for left in lefts])
                        unmatched += len(lefts)
                elif outer_right:
                    out.extend([JoinResult(k, None, r, ws, end) for r in rights])
                    unmatched += len(rights)
            out_ts.extend([end - 1] * (len(out) - n))
        self.pairs += pairs
        self.unmatched += unmatched
        # Step 4.
        keep = size + self.lateness_ms
        n = 0
        dirty = self._dirty
        for ws in starts:
            if ws + keep > new_w:
                break
            if dirty is not None:
                dirty.update(windows[ws])
            del windows[ws]
            n += 1
        if n:
            del starts[:n]

    # -- state -----------------------------------------------------------------------

    def _held_keys(self) -> Collection[Any]:
        keys: dict[Any, None] = {}
        for ws in self.starts:
            keys.update(dict.fromkeys(self.windows[ws]))
        return keys

    def _key_state(self, key: Any) -> Any:
        held = []
        for ws in self.starts:
            cell = self.windows[ws].get(key)
            if cell is not None:
                held.append([ws, cell[0], cell[1]])
        return held or None

    def _restore_keys(self, entries: dict[Any, Any]) -> None:
        self.windows, self.starts = {}, []
        by_start: dict[int, dict[Any, list[list[Any]]]] = {}
        for k, held in entries.items():
            for ws, lefts, rights in held:
                by_start.setdefault(int(ws), {})[k] = [list(lefts), list(rights)]
        for ws in sorted(by_start):
            self._window(ws).update(by_start[ws])

    def _state_size(self) -> tuple[int, int]:
        records = sum(len(c[0]) + len(c[1]) for d in self.windows.values() for c in d.values())
        return records, len(self._held_keys())
