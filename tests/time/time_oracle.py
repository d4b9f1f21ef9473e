"""A brute-force model of the event-time semantics, written from docs/event-time.md.

It keeps every record of every window (no panes, no heaps, no incremental state) and
recomputes each value from scratch, so it is slow and obviously right. The property
tests feed it and the engine the same source batches and compare what comes out.

The source model (API.md, "Event-time semantics (exact)"):
1. Records of a batch are processed against the watermark from before the batch.
2. After every batch, W = max(W, max event time seen - bound).
3. A window [start, end) fires when W >= end; its state is freed when W >= end + lateness.
4. A record reaching a fired, kept window updates it: one is_update=True result per
   window per batch. A record all of whose windows are freed goes to late, unchanged.
5. End of stream: W = +inf, every remaining window fires once.
Sessions: a record opens [t, t + gap) and merges with every kept session of its key that
strictly overlaps it; it is late only when it overlaps none and W >= t + gap + lateness.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamcore import WindowResult

Batch = list[tuple[Any, int]]

# Aggregations the oracle knows, as functions of the window's records in arrival order.
VALUE_FNS: dict[str, Callable[[list[Any]], Any]] = {
    "count": len,
    "sum": lambda rs: sum(r["v"] for r in rs),
    "min": lambda rs: min(r["v"] for r in rs),
    "max": lambda rs: max(r["v"] for r in rs),
    "mean": lambda rs: sum(r["v"] for r in rs) / len(rs),
    "first": lambda rs: rs[0]["v"],
    "last": lambda rs: rs[-1]["v"],
    "collect": lambda rs: [r["v"] for r in rs],
    "bag": lambda rs: sorted(r["v"] for r in rs),
    "reduced": lambda rs: functools.reduce(lambda x, y: {"v": x["v"] + y["v"]}, rs),
}


@dataclass
class Emissions:
    """What a window stage emitted: result groups in order, and late records in order."""

    groups: list[list[WindowResult]] = field(default_factory=list)
    late: list[Any] = field(default_factory=list)

    def emit(self, group: list[WindowResult]) -> None:
        if group:
            self.groups.append(group)


def canonical(groups: list[list[WindowResult]]) -> list[list[str]]:
    """Groups with their order inside each group forgotten (the semantics leave it open)."""
    return [sorted(repr(r) for r in g) for g in groups]


def run_batches(
    model: Any, batches: list[Batch], bound_ms: int
) -> Emissions:
    """Drive ``model`` (oracle or engine adapter) like a source with ``bound_ms`` would."""
    max_seen = -math.inf
    for batch in batches:
        model.add_batch(batch)
        if batch:
            max_seen = max(max_seen, max(t for _, t in batch))
            model.advance_watermark(max_seen - bound_ms)
    model.end()
    return model.emissions


class _OracleBase:
    def __init__(self, value: Callable[[list[Any]], Any], key: Callable[[Any], Any], lateness_ms: int):
        self.value = value
        self.key = key
        self.lateness = lateness_ms
        self.W: float = -math.inf
        self.seq = 0
        self.emissions = Emissions()

    def _value(self, recs: list[tuple[int, Any]]) -> Any:
        return self.value([x for _, x in sorted(recs, key=lambda p: p[0])])

    def advance_watermark(self, w: float) -> None:
        if w > self.W:
            old, self.W = self.W, w
            self._advance(old, w)

    def end(self) -> None:
        self.advance_watermark(math.inf)

    def _advance(self, old: float, new: float) -> None:
        raise NotImplementedError


class PaneOracle(_OracleBase):
    """Tumbling (slide == size) and sliding windows, one record list per key and window."""

    def __init__(self, size_ms: int, slide_ms: int, value: Callable[[list[Any]], Any],
                 key: Callable[[Any], Any], lateness_ms: int):
        super().__init__(value, key, lateness_ms)
        self.size, self.slide = size_ms, slide_ms
        self.windows: dict[tuple[Any, int], list[tuple[int, Any]]] = {}

    def assign(self, t: int) -> list[int]:
        """Starts of every window holding ``t``: multiples of slide in (t - size, t]."""
        last = t - t % self.slide
        return [s for s in range(last, t - self.size, -self.slide)]

    def add_batch(self, batch: Batch) -> None:
        W = self.W
        updated: dict[tuple[Any, int], None] = {}
        for x, t in batch:
            self.seq += 1
            kept = [s for s in self.assign(t) if not W >= s + self.size + self.lateness]
            if not kept:
                self.emissions.late.append(x)
                continue
            k = self.key(x)
            for s in kept:
                self.windows.setdefault((k, s), []).append((self.seq, x))
                if W >= s + self.size:
                    updated[(k, s)] = None
        self.emissions.emit([
            WindowResult(k, s, s + self.size, self._value(self.windows[(k, s)]), True) for k, s in updated
        ])

    def _advance(self, old: float, new: float) -> None:
        fired = [
            WindowResult(k, s, s + self.size, self._value(recs), False)
            for (k, s), recs in self.windows.items()
            if old < s + self.size <= new
        ]
        self.emissions.emit(fired)
        for (k, s) in list(self.windows):
            if s + self.size + self.lateness <= new:
                del self.windows[(k, s)]

    def state_size(self) -> int:
        return len(self.windows)


@dataclass(eq=False)
class _Session:
    start: int
    end: int
    recs: list[tuple[int, Any]]
    emitted: bool = False


class SessionOracle(_OracleBase):
    """Session windows: merge on strict overlap, late only if nothing kept overlaps."""

    def __init__(self, gap_ms: int, value: Callable[[list[Any]], Any],
                 key: Callable[[Any], Any], lateness_ms: int):
        super().__init__(value, key, lateness_ms)
        self.gap = gap_ms
        self.sessions: dict[Any, list[_Session]] = {}

    def add_batch(self, batch: Batch) -> None:
        W = self.W
        changed: list[tuple[Any, _Session]] = []
        for x, t in batch:
            self.seq += 1
            k = self.key(x)
            lst = self.sessions.setdefault(k, [])
            over = [s for s in lst if s.start < t + self.gap and t < s.end]
            if not over and W >= t + self.gap + self.lateness:
                self.emissions.late.append(x)
                continue
            merged = _Session(
                min([t] + [s.start for s in over]),
                max([t + self.gap] + [s.end for s in over]),
                [p for s in over for p in s.recs] + [(self.seq, x)],
                any(s.emitted for s in over),
            )
            for s in over:
                lst.remove(s)
            lst.append(merged)
            changed.append((k, merged))
        group = []
        for k, s in changed:
            if s in self.sessions[k] and s.end <= W:
                s.emitted = True
                group.append(WindowResult(k, s.start, s.end, self._value(s.recs), True))
        self.emissions.emit(group)

    def _advance(self, old: float, new: float) -> None:
        group = []
        for k, lst in self.sessions.items():
            for s in lst:
                if old < s.end <= new:
                    group.append(WindowResult(k, s.start, s.end, self._value(s.recs), s.emitted))
                    s.emitted = True
        self.emissions.emit(group)
        for k in list(self.sessions):
            self.sessions[k] = [s for s in self.sessions[k] if s.end + self.lateness > new]
            if not self.sessions[k]:
                del self.sessions[k]

    def state_size(self) -> int:
        return sum(len(v) for v in self.sessions.values())
