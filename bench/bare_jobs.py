"""The bare-Python baselines: one plain loop per workload, dicts for state, no framework.

They are the practical floor of per-event cost in CPython (same orjson parse as the
engine) and the reference every streamcore checksum is compared with. Window semantics
follow docs/windows.md: windows are ``[start, end)``; the watermark is the largest
event time seen minus ``OUT_OF_ORDER_MS``; a window fires once the watermark reaches
its end; the end of the input fires the rest. The generated input is never later than
that watermark, so the results do not depend on how often the watermark advances
(per record here, per batch in the engine).

Run: ``python bench/bare_jobs.py {w1|hop10|w2|slide|session} INPUT N``
"""

from __future__ import annotations

import heapq
import itertools
from bisect import insort
from collections import deque
from typing import Any

import orjson
from _common import (
    FACTOR,
    HOPS,
    OUT_OF_ORDER_MS,
    SESSION_GAP_MS,
    SLIDE_SIZE_MS,
    SLIDE_STEP_MS,
    THRESHOLD,
    TUMBLE_MS,
    identity,
    main,
    sum_units,
    w1_checksum,
    window_checksum,
)

INF = float("inf")


def w1(path: str, n: int) -> dict[str, Any]:
    """Filter ``amount >= 50``, map to ``(user, amount * 1.1)``, count and sum."""
    loads = orjson.loads
    count = 0
    total = 0.0
    with open(path, "rb") as f:
        for line in f:
            e = loads(line)
            if e["amount"] >= THRESHOLD:
                out = (e["user"], e["amount"] * FACTOR)
                count += 1
                total += out[1]
    return w1_checksum(count, total)


def hop10(path: str, n: int) -> dict[str, Any]:
    """The same identity function called ``HOPS`` times per record, then count and sum."""
    f = identity
    count = 0
    total = 0
    for x in range(n):
        # Unrolled on purpose: a nested loop would add its own overhead to the baseline.
        x = f(f(f(f(f(f(f(f(f(f(x))))))))))
        count += 1
        total += x
    assert HOPS == 10, "the unrolled calls above must match HOPS"
    return {"count": count, "sum": total}


def w2(path: str, n: int) -> dict[str, Any]:
    """Per-user tumbling event-time windows: count and sum of ``amount``."""
    loads = orjson.loads
    windows: dict[int, dict[str, list[Any]]] = {}  # start -> user -> [count, sum]
    starts: list[int] = []  # open window starts, sorted
    fire_at = INF  # end of the earliest open window
    max_ts = -INF
    fired = 0
    counted = 0
    units = 0  # sum of window totals, see sum_units

    def fire(limit: float) -> None:
        nonlocal fired, counted, units, fire_at
        while starts and starts[0] + TUMBLE_MS <= limit:
            for acc in windows.pop(starts.pop(0)).values():
                fired += 1
                counted += acc[0]
                units += sum_units(acc[1])
        fire_at = starts[0] + TUMBLE_MS if starts else INF

    with open(path, "rb") as f:
        for line in f:
            e = loads(line)
            ts = e["ts"]
            start = ts - ts % TUMBLE_MS
            d = windows.get(start)
            if d is None:
                d = windows[start] = {}
                insort(starts, start)
                fire_at = min(fire_at, start + TUMBLE_MS)
            acc = d.get(e["user"])
            if acc is None:
                d[e["user"]] = [1, e["amount"]]
            else:
                acc[0] += 1
                acc[1] += e["amount"]
            if ts > max_ts:
                max_ts = ts
                if ts - OUT_OF_ORDER_MS >= fire_at:
                    fire(ts - OUT_OF_ORDER_MS)
    fire(INF)
    return window_checksum(fired, counted, units)


def slide(path: str, n: int) -> dict[str, Any]:
    """Per-user sliding windows (size ``SLIDE_SIZE_MS`` every ``SLIDE_STEP_MS``).

    Records go into one-slide panes (one update each); a firing window combines its
    panes in time order, which is the order the engine combines them in, so the float
    sums agree exactly.
    """
    loads = orjson.loads
    size, step = SLIDE_SIZE_MS, SLIDE_STEP_MS
    panes: dict[int, dict[str, list[Any]]] = {}
    pane_starts: deque[int] = deque()  # sorted
    next_ws: int | None = None  # start of the next window to fire
    fire_at = INF  # a lower bound of the end of the next window with data
    max_ts = -INF
    fired = 0
    counted = 0
    units = 0  # sum of window totals, see sum_units

    def fire(limit: float) -> None:
        nonlocal next_ws, fire_at, fired, counted, units
        if next_ws is None and pane_starts:
            next_ws = pane_starts[0] - size + step
        while pane_starts and next_ws is not None and next_ws + size <= limit:
            while pane_starts and pane_starts[0] < next_ws:
                del panes[pane_starts.popleft()]  # every window holding it has fired
            if not pane_starts:
                break
            end = next_ws + size
            if pane_starts[0] >= end:
                # No data in this window: skip to the first one holding a pane, but never
                # past a window that has not ended yet (a later record may still land there).
                jump = pane_starts[0] - size + step
                if limit != INF:
                    jump = min(jump, int(limit) - size - (int(limit) - size) % step + step)
                next_ws = max(next_ws + step, jump)
                continue
            combined: dict[str, list[Any]] = {}
            for p in pane_starts:
                if p >= end:
                    break
                for user, acc in panes[p].items():
                    c = combined.get(user)
                    if c is None:
                        combined[user] = [acc[0], acc[1]]
                    else:
                        c[0] += acc[0]
                        c[1] += acc[1]
            for acc in combined.values():
                fired += 1
                counted += acc[0]
                units += sum_units(acc[1])
            next_ws += step
        fire_at = next_ws + size if (pane_starts and next_ws is not None) else INF

    with open(path, "rb") as f:
        for line in f:
            e = loads(line)
            ts = e["ts"]
            p = ts - ts % step
            d = panes.get(p)
            if d is None:
                d = panes[p] = {}
                if not pane_starts or p > pane_starts[-1]:
                    pane_starts.append(p)
                else:
                    insort(pane_starts, p)
                fire_at = min(fire_at, p + step)
            acc = d.get(e["user"])
            if acc is None:
                d[e["user"]] = [1, e["amount"]]
            else:
                acc[0] += 1
                acc[1] += e["amount"]
            if ts > max_ts:
                max_ts = ts
                if ts - OUT_OF_ORDER_MS >= fire_at:
                    fire(ts - OUT_OF_ORDER_MS)
    fire(INF)
    return window_checksum(fired, counted, units)


class _Session:
    __slots__ = ("alive", "count", "end", "start", "total", "user")

    def __init__(self, user: str, start: int, end: int, count: int, total: float) -> None:
        self.user, self.start, self.end = user, start, end
        self.count, self.total = count, total
        self.alive = True


def session(path: str, n: int) -> dict[str, Any]:
    """Per-user session windows: a record at ``t`` opens ``[t, t + gap)``; overlapping
    sessions (touching ones stay apart) merge, their sums added in order of start."""
    loads = orjson.loads
    gap = SESSION_GAP_MS
    open_sessions: dict[str, list[_Session]] = {}
    heap: list[tuple[int, int, _Session]] = []  # (end when queued, tie, session)
    tie = itertools.count()
    max_ts = -INF
    fired = 0
    counted = 0
    units = 0  # sum of window totals, see sum_units

    def fire(limit: float) -> None:
        nonlocal fired, counted, units
        while heap and heap[0][0] <= limit:
            end, _, s = heapq.heappop(heap)
            if not s.alive:
                continue
            if s.end != end:  # grew since it was queued: queue it at its new end
                heapq.heappush(heap, (s.end, next(tie), s))
                continue
            s.alive = False
            lst = open_sessions[s.user]
            lst.remove(s)
            if not lst:
                del open_sessions[s.user]
            fired += 1
            counted += s.count
            units += sum_units(s.total)

    with open(path, "rb") as f:
        for line in f:
            e = loads(line)
            ts, user, amount = e["ts"], e["user"], e["amount"]
            new_end = ts + gap
            lst = open_sessions.get(user)
            hits = [s for s in lst if s.start < new_end and ts < s.end] if lst else []
            if not hits:
                s = _Session(user, ts, new_end, 1, amount)
                if lst is None:
                    open_sessions[user] = [s]
                else:
                    lst.append(s)
                heapq.heappush(heap, (new_end, next(tie), s))
            elif len(hits) == 1:
                s = hits[0]
                s.count += 1
                s.total += amount
                s.start = min(s.start, ts)
                s.end = max(s.end, new_end)
            else:
                hits.sort(key=lambda h: h.start)
                s = hits[0]
                for other in hits[1:]:
                    s.count += other.count
                    s.total += other.total
                    s.end = max(s.end, other.end)
                    other.alive = False
                    lst.remove(other)  # type: ignore[union-attr]
                s.count += 1
                s.total += amount
                s.start = min(s.start, ts)
                s.end = max(s.end, new_end)
            if ts > max_ts:
                max_ts = ts
                if heap and ts - OUT_OF_ORDER_MS >= heap[0][0]:
                    fire(ts - OUT_OF_ORDER_MS)
    fire(INF)
    return window_checksum(fired, counted, units)


if __name__ == "__main__":
    main("bare", {"w1": w1, "hop10": hop10, "w2": w2, "slide": slide, "session": session})
