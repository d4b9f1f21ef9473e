"""The interval join: pairs of one key with ``ts(l) + lower <= ts(r) <= ts(l) + upper``.

Semantics (exact; docs/joins.md#interval-join):
1. A record with ``ts < W`` (either side) goes to ``.late``.
2. Otherwise it is matched against the kept records of the other side of its key, each
   pair emitted in the same batch (partners in timestamp order, then arrival), and kept.
3. A left record is freed once ``W > ts + upper``, a right record once ``W > ts - lower``:
   no record that is not late could still match it.
State per key and side: ``[(ts, seq, record), ...]`` sorted, ``seq`` the arrival number.
Design: docs/joins.md
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection
from typing import Any

from streamcore.graph.nodes import IntervalJoinNode
from streamcore.operators.join_result import JoinResult
from streamcore.operators.two_input import LEFT, RIGHT, JoinStep
from streamcore.runtime.steps import Step

__all__ = ["IntervalJoinStep"]

POS_INF = math.inf


class IntervalJoinStep(JoinStep):
    """Inner interval join with inclusive bounds."""

    def __init__(self, node: IntervalJoinNode, late: Step, on_failure: Callable[..., None],
                 input_channels: list[list[int]] | None = None) -> None:
        super().__init__(node, late, on_failure, input_channels)
        self.lower_ms = node.lower_ms
        self.upper_ms = node.upper_ms
        self.held: dict[Any, tuple[list[tuple[int, int, Any]], list[tuple[int, int, Any]]]] = {}
        self._expiry: list[tuple[int, int, int, Any]] = []
        """(last W at which the record is kept, seq, side, key), one per kept record."""
        self.records = 0

    def _add(self, side: int, records: list[Any], timestamps: list[int], keys: list[Any],
             late: list[Any], late_ts: list[int], out: list[Any], out_ts: list[int]) -> None:
        W = self.watermark_ms
        lower, upper = self.lower_ms, self.upper_ms
        held, expiry = self.held, self._expiry
        dirty = self._dirty
        for x, t, k in zip(records, timestamps, keys, strict=True):
            if t < W:
                # Step 1.
                late.append(x)
                late_ts.append(t)
                continue
            sides = held.get(k)
            if sides is None:
                sides = held[k] = ([], [])
            other = sides[1 - side]
            if other:
                # Step 2.
                if side == LEFT:
                    lo, hi = t + lower, t + upper
                else:
                    lo, hi = t - upper, t - lower
                i, j = bisect_left(other, (lo,)), bisect_right(other, (hi, POS_INF))
                if i < j:
                    if side == LEFT:
                        out.extend([JoinResult(k, x, o, None, None) for _, _, o in other[i:j]])
                    else:
                        out.extend([JoinResult(k, o, x, None, None) for _, _, o in other[i:j]])
                    out_ts.extend([max(t, to) for to, _, _ in other[i:j]])
                    self.pairs += j - i
            self.seq += 1
            entry = (t, self.seq, x)
            own = sides[side]
            if not own or own[-1] < entry:
                own.append(entry)
            else:
                insort(own, entry)
            self.records += 1
            heapq.heappush(expiry, (t + upper if side == LEFT else t - lower, self.seq, side, k))
            if dirty is not None:
                dirty.add(k)

    def _fire(self, old_w: float, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        # Step 3: a record kept until W = its expiry is freed once W passes it.
        expiry, held = self._expiry, self.held
        lower, upper = self.lower_ms, self.upper_ms
        dirty = self._dirty
        while expiry and expiry[0][0] < new_w:
            _, _, side, k = heapq.heappop(expiry)
            sides = held.get(k)
            if sides is None:
                continue
            own = sides[side]
            n = 0
            if side == LEFT:
                while n < len(own) and own[n][0] + upper < new_w:
                    n += 1
            else:
                while n < len(own) and own[n][0] - lower < new_w:
                    n += 1
            if n:
                del own[:n]
                self.records -= n
                if dirty is not None:
                    dirty.add(k)
                if not sides[0] and not sides[1]:
                    del held[k]

    # -- state -----------------------------------------------------------------------

    def _held_keys(self) -> Collection[Any]:
        return list(self.held)

    def _key_state(self, key: Any) -> Any:
        sides = self.held.get(key)
        if sides is None:
            return None
        return [[[t, s, x] for t, s, x in sides[0]], [[t, s, x] for t, s, x in sides[1]]]

    def _restore_keys(self, entries: dict[Any, Any]) -> None:
        self.held, self._expiry, self.records = {}, [], 0
        lower, upper = self.lower_ms, self.upper_ms
        for k, (lefts, rights) in entries.items():
            sides = self.held[k] = (
                sorted((int(t), int(s), x) for t, s, x in lefts),
                sorted((int(t), int(s), x) for t, s, x in rights),
            )
            for side in (LEFT, RIGHT):
                for t, s, _ in sides[side]:
                    self._expiry.append((t + upper if side == LEFT else t - lower, s, side, k))
                    self.records += 1
        heapq.heapify(self._expiry)

    def _state_size(self) -> tuple[int, int]:
        return self.records, len(self.held)
