"""Brute-force models of the joins, written from docs/joins.md, not from the engine.

Each model takes a script (steps of batches to a side and watermark moves, see
``strategies.join_scripts``) and returns what the join must emit, as a sorted list of
``(key, left id, right id, start, end, is_update)`` (None for a missing side or window),
and the ids of the late records. The window, interval and as-of models are declarative:
they look at each record's watermark on arrival, not at any state. Sessions are
simulated, with sessions recomputed from scratch after every step.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from strategies import JoinRecord

from streamcore.state.serde import DEFAULT_REGISTRY, register_codec

if JoinRecord not in getattr(DEFAULT_REGISTRY, "_by_type", {}):
    # Join state holds the records themselves: checkpoints need to write them.
    try:
        register_codec(JoinRecord, "tests.JoinRecord", lambda r: [r.side, r.key, r.ts, r.id],
                       lambda d: JoinRecord(*d))
    except Exception:  # already registered by another test module
        pass

Row = tuple[Any, Any, Any, Any, Any, bool]
INF = math.inf


def arrivals(script: list[tuple[str, Any]]) -> list[tuple[JoinRecord, float, int]]:
    """Every record with the watermark from before its batch and its batch number."""
    out = []
    w: float = -INF
    for n, (kind, arg) in enumerate(script):
        if kind == "W":
            w = max(w, arg)
        else:
            out.extend((r, w, n) for r in arg)
    return out


def windows_of(ts: int, size: int, slide: int) -> list[tuple[int, int]]:
    """Every window [start, end) of a tumbling/sliding assigner holding ``ts``."""
    out = []
    start = ts - ts % slide
    while start > ts - size:
        out.append((start, start + size))
        start -= slide
    return out


def window_join(script: list[tuple[str, Any]], size: int, slide: int, lateness: int,
                how: str) -> tuple[list[Row], list[int]]:
    outer = {"L": how in ("left", "outer"), "R": how in ("right", "outer")}
    recs = arrivals(script)
    order = {r.id: i for i, (r, _, _) in enumerate(recs)}
    members: dict[tuple[Any, int, int], list[tuple[JoinRecord, float]]] = {}
    late = []
    for r, w, _ in recs:
        kept = [(s, e) for s, e in windows_of(r.ts, size, slide) if w < e + lateness]
        if not kept:
            late.append(r.id)
        for s, e in kept:
            members.setdefault((r.key, s, e), []).append((r, w))
    rows: list[Row] = []
    for (k, s, e), held in members.items():
        lefts = [(r, w) for r, w in held if r.side == "L"]
        rights = [(r, w) for r, w in held if r.side == "R"]
        for lr, lw in lefts:
            for rr, rw in rights:
                rows.append((k, lr.id, rr.id, s, e, lw >= e or rw >= e))
        for mine, others, side in ((lefts, rights, "L"), (rights, lefts, "R")):
            if not outer[side]:
                continue
            for r, w in mine:
                if w < e:
                    # Evaluated when the window fires: partners that arrived before then.
                    alone = not any(ow < e for _, ow in others)
                else:
                    alone = not any(order[o.id] < order[r.id] for o, _ in others)
                if alone:
                    left, right = (r.id, None) if side == "L" else (None, r.id)
                    rows.append((k, left, right, s, e, w >= e))
    return sorted(rows, key=repr), late


def interval_join(script: list[tuple[str, Any]], lower: int, upper: int) -> tuple[list[Row], list[int]]:
    recs = arrivals(script)
    late = [r.id for r, w, _ in recs if r.ts < w]
    ok = [r for r, w, _ in recs if r.ts >= w]
    rows: list[Row] = [
        (left.key, left.id, right.id, None, None, False)
        for left in ok if left.side == "L"
        for right in ok if right.side == "R"
        if right.key == left.key and left.ts + lower <= right.ts <= left.ts + upper
    ]
    return sorted(rows, key=repr), late


def asof_join(script: list[tuple[str, Any]], how: str) -> tuple[list[Row], list[int]]:
    recs = arrivals(script)
    late = [r.id for r, w, _ in recs if r.ts < w]
    ok = [r for r, w, _ in recs if r.ts >= w]
    rows: list[Row] = []
    for left in ok:
        if left.side != "L":
            continue
        best = None
        for j, right in enumerate(ok):
            candidate = right.side == "R" and right.key == left.key and right.ts <= left.ts
            if candidate and (best is None or (right.ts, j) > best[0]):
                best = ((right.ts, j), right)
        if best is not None:
            rows.append((left.key, left.id, best[1].id, None, None, False))
        elif how == "left":
            rows.append((left.key, left.id, None, None, None, False))
    return sorted(rows, key=repr), late


def session_join(script: list[tuple[str, Any]], gap: int, lateness: int, how: str) -> tuple[list[Row], list[int]]:
    """Simulated: kept records per key; sessions recomputed after every change."""
    outer = {"L": how in ("left", "outer"), "R": how in ("right", "outer")}
    kept: dict[str, list[JoinRecord]] = {}
    fired: set[int] = set()  # records that took part in an emission
    pairs_done: set[tuple[int, int]] = set()
    rows: list[Row] = []
    late: list[int] = []
    w: float = -INF

    def sessions(key: str) -> list[list[JoinRecord]]:
        recs = sorted(kept.get(key, []), key=lambda r: r.ts)
        groups: list[list[JoinRecord]] = []
        end = -INF
        for r in recs:
            if groups and r.ts < end:
                groups[-1].append(r)
                end = max(end, r.ts + gap)
            else:
                groups.append([r])
                end = r.ts + gap
        return groups

    def bounds(group: list[JoinRecord]) -> tuple[int, int]:
        return min(r.ts for r in group), max(r.ts for r in group) + gap

    def emit(key: str, group: list[JoinRecord]) -> None:
        start, end = bounds(group)
        update = any(r.id in fired for r in group)
        lefts = [r for r in group if r.side == "L"]
        rights = [r for r in group if r.side == "R"]
        if lefts and rights:
            for left in lefts:
                for right in rights:
                    if (left.id, right.id) not in pairs_done:
                        pairs_done.add((left.id, right.id))
                        rows.append((key, left.id, right.id, start, end, update))
        else:
            for r in lefts + rights:
                if outer[r.side] and r.id not in fired:
                    rows.append((key, r.id if r.side == "L" else None, r.id if r.side == "R" else None,
                                 start, end, update))
        fired.update(r.id for r in group)

    for kind, arg in [*script, ("W", INF)]:
        if kind == "W":
            new_w = max(w, arg)
            if new_w == w:
                continue
            for key in sorted(kept):
                for group in sessions(key):
                    if bounds(group)[1] <= new_w:
                        emit(key, group)
            w = new_w
            for key in list(kept):
                for group in sessions(key):
                    if bounds(group)[1] + lateness <= w:
                        ids = {r.id for r in group}
                        kept[key] = [r for r in kept[key] if r.id not in ids]
            continue
        for r in arg:
            overlaps = any(s < r.ts + gap and r.ts < e for s, e in map(bounds, sessions(r.key)))
            if not overlaps and w >= r.ts + gap + lateness:
                late.append(r.id)
                continue
            kept.setdefault(r.key, []).append(r)
        batch_ids = {r.id for r in arg}
        for key in sorted({r.key for r in arg}):
            for group in sessions(key):
                if bounds(group)[1] <= w and any(r.id in batch_ids for r in group):
                    emit(key, group)
    return sorted(rows, key=repr), late


def as_rows(results: list[Any]) -> list[Row]:
    """Engine ``JoinResult``s as oracle rows (records are ``JoinRecord``s)."""
    return sorted(
        ((r.key, None if r.left is None else r.left.id, None if r.right is None else r.right.id,
          r.start, r.end, r.is_update) for r in results),
        key=repr,
    )


def no_duplicates(rows: list[Row]) -> bool:
    """No pair emitted twice."""
    return all(n == 1 for n in Counter((k, left, right, s, e) for k, left, right, s, e, _ in rows).values())
