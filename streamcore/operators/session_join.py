"""The window join over session windows: sessions formed over both sides of a key.

Semantics (exact; docs/joins.md#window-join):
1. A record at ``t`` opens ``[t, t + gap)`` and merges with every kept session of its key
   it overlaps (strictly: touching sessions stay apart). A record overlapping no kept
   session whose own session is freed (``W >= t + gap + lateness``) goes to ``.late``.
2. A session fires when ``W >= end``, and again (as an update) whenever a record within
   the lateness changed it; at the end of a batch, each changed session whose end is
   still ``<= W`` emits at once.
3. Each emission of a session emits exactly the pairs never emitted before, and with an
   outer ``how`` the records never emitted that have no partner in the session. Every
   record carries the number of the emission it took part in: two records with the same
   number have had their pair emitted (numbers only meet inside one session, and an
   emission gives all of the session's records one new number).
4. A session is freed when ``W >= end + lateness``.
Design: docs/joins.md
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection
from typing import Any

from streamcore.graph.nodes import WindowJoinNode
from streamcore.operators.event_time_step import pop_due
from streamcore.operators.join_result import JoinResult
from streamcore.operators.two_input import JoinStep
from streamcore.operators.window_join import OUTER_SIDES
from streamcore.runtime.steps import Step

__all__ = ["SessionJoinStep"]

NEVER = -1
"""The emission number of a record that took part in no emission yet."""


class _Session:
    __slots__ = ("alive", "emitted", "end", "groups", "key", "queued", "records", "start")

    def __init__(self, key: Any, start: int, end: int) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.records: tuple[list[Any], list[Any]] = ([], [])
        """Left and right records, in arrival order."""
        self.groups: tuple[list[int], list[int]] = ([], [])
        """Per record, the number of the last emission it took part in (``NEVER``)."""
        self.emitted = False
        self.alive = True
        self.queued = False

    def size(self) -> int:
        return len(self.records[0]) + len(self.records[1])


def _end_of(s: _Session) -> int:
    return s.end


class SessionJoinStep(JoinStep):
    """Session window joins."""

    def __init__(self, node: WindowJoinNode, late: Step, on_failure: Callable[..., None],
                 input_channels: list[list[int]] | None = None) -> None:
        super().__init__(node, late, on_failure, input_channels)
        self.gap_ms: int = node.assigner.gap_ms
        self.lateness_ms = node.allowed_lateness_ms
        self.outer = OUTER_SIDES[node.how]
        self.sessions: dict[Any, list[_Session]] = {}
        self._fire_heap: list[tuple[int, int, _Session]] = []
        self._free_heap: list[tuple[int, int, _Session]] = []
        self._tie = itertools.count()

    def _queue(self, s: _Session) -> None:
        if not s.queued and s.end > self.watermark_ms:
            s.queued = True
            heapq.heappush(self._fire_heap, (s.end, next(self._tie), s))

    def _add(self, side: int, records: list[Any], timestamps: list[int], keys: list[Any],
             late: list[Any], late_ts: list[int], out: list[Any], out_ts: list[int]) -> None:
        W = self.watermark_ms
        gap, lateness = self.gap_ms, self.lateness_ms
        sessions = self.sessions
        dirty = self._dirty
        touched: dict[int, _Session] = {}
        for x, t, k in zip(records, timestamps, keys, strict=True):
            new_end = t + gap
            lst = sessions.get(k)
            overlapping = [] if lst is None else [s for s in lst if s.start < new_end and t < s.end]
            if not overlapping:
                if W >= new_end + lateness:
                    # Step 1: late.
                    late.append(x)
                    late_ts.append(t)
                    continue
                s = _Session(k, t, new_end)
                if lst is None:
                    sessions[k] = [s]
                else:
                    lst.append(s)
                heapq.heappush(self._free_heap, (new_end + lateness, next(self._tie), s))
            else:
                overlapping.sort(key=lambda s: s.start)
                s = overlapping[0]
                for other in overlapping[1:]:
                    # Merge in time order; emission numbers stay as they are (step 3).
                    for i in (0, 1):
                        s.records[i].extend(other.records[i])
                        s.groups[i].extend(other.groups[i])
                    s.emitted = s.emitted or other.emitted
                    s.end = max(s.end, other.end)
                    other.alive = False
                    assert lst is not None
                    lst.remove(other)
                s.start = min(s.start, t)
                s.end = max(s.end, new_end)
            s.records[side].append(x)
            s.groups[side].append(NEVER)
            if dirty is not None:
                dirty.add(k)
            if s.end <= W:
                touched[id(s)] = s
            else:
                self._queue(s)
        # Step 2: sessions changed behind the watermark emit now.
        for s in sorted(touched.values(), key=lambda s: s.end):
            if s.alive and s.end <= W:
                self._emit(s, out, out_ts)

    def _emit(self, s: _Session, out: list[Any], out_ts: list[int]) -> None:
        """Step 3: the session's pairs (and unmatched records) never emitted before."""
        update = s.emitted
        k, start, end = s.key, s.start, s.end
        (lefts, rights), (lgroups, rgroups) = s.records, s.groups
        n = len(out)
        if lefts and rights:
            for left, gl in zip(lefts, lgroups, strict=True):
                if gl == NEVER:
                    out.extend([JoinResult(k, left, r, start, end, update) for r in rights])
                else:
                    out.extend([
                        JoinResult(k, left, r, start, end, update)
                        for r, gr in zip(rights, rgroups, strict=True) if gr != gl
                    ])
            self.pairs += len(out) - n
        else:
            outer_left, outer_right = self.outer
            if lefts and outer_left:
                out.extend([JoinResult(k, left, None, start, end, update)
                            for left, g in zip(lefts, lgroups, strict=True) if g == NEVER])
            elif rights and outer_right:
                out.extend([JoinResult(k, None, r, start, end, update)
                            for r, g in zip(rights, rgroups, strict=True) if g == NEVER])
            self.unmatched += len(out) - n
        if update:
            self.updates += len(out) - n
        out_ts.extend([end - 1] * (len(out) - n))
        self.seq += 1  # emissions are numbered like arrivals: only equality matters
        g = self.seq
        for groups in s.groups:
            groups[:] = [g] * len(groups)
        s.emitted = True
        if self._dirty is not None:
            self._dirty.add(k)

    def _fire(self, old_w: float, new_w: float, out: list[Any], out_ts: list[int]) -> None:
        for s in pop_due(self._fire_heap, new_w, _end_of, self._tie):
            s.queued = False
            self._emit(s, out, out_ts)
        # Step 4.
        lateness = self.lateness_ms
        for s in pop_due(self._free_heap, new_w, lambda s: s.end + lateness, self._tie):
            s.alive = False
            if self._dirty is not None:
                self._dirty.add(s.key)
            lst = self.sessions[s.key]
            lst.remove(s)
            if not lst:
                del self.sessions[s.key]

    # -- state -----------------------------------------------------------------------

    def _held_keys(self) -> Collection[Any]:
        return list(self.sessions)

    def _key_state(self, key: Any) -> Any:
        lst = self.sessions.get(key)
        if not lst:
            return None
        return [[s.start, s.end, s.emitted, s.records[0], s.records[1], s.groups[0], s.groups[1]] for s in lst]

    def _restore_keys(self, entries: dict[Any, Any]) -> None:
        self.sessions, self._fire_heap, self._free_heap = {}, [], []
        for k, held in entries.items():
            lst = self.sessions[k] = []
            for start, end, emitted, lefts, rights, lgroups, rgroups in held:
                s = _Session(k, int(start), int(end))
                s.emitted = bool(emitted)
                s.records = (list(lefts), list(rights))
                s.groups = (list(lgroups), list(rgroups))
                lst.append(s)
                heapq.heappush(self._free_heap, (s.end + self.lateness_ms, next(self._tie), s))
                self._queue(s)

    def _state_size(self) -> tuple[int, int]:
        return sum(s.size() for lst in self.sessions.values() for s in lst), len(self.sessions)
