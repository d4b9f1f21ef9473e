"""The window stage at run time: pane windows (tumbling, sliding) and session windows.

Semantics (exact; docs/event-time.md restates them and the tests check them against an oracle):
1. Records of a batch are processed against the watermark ``W`` from before the batch.
2. A window ``[start, end)`` fires when ``W >= end`` and is freed when ``W >= end + lateness``.
3. A record whose windows are all freed goes to the late output unchanged (and is counted).
4. A record landing in a fired but kept window updates it; at the end of the batch each
   such window emits its full value once with ``is_update=True``.
5. End of stream is ``W = +inf``: every window not yet fired fires once.
Tumbling and sliding windows aggregate records into panes of ``gcd(size, slide)`` (one
state update per record) and merge panes when a window fires.
Design: docs/event-time.md
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import Any

from streamcore.drop_log import DropLog
from streamcore.graph.nodes import WindowNode
from streamcore.item_lookup import item_lookup
from streamcore.operators.event_time_step import EventTimeStep, insert_start, pop_due
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.keys import explain_key_failure
from streamcore.runtime.steps import Step, stage_error
from streamcore.state.snapshot import StepSnapshot, remember_stored
from streamcore.time.accumulate import Combiners, add_statements, create_expression
from streamcore.time.aggregators import Aggregation
from streamcore.time.windows import SessionWindows, WindowResult

__all__ = ["WindowStatistics", "make_window_step"]

POS_INF = math.inf
NEG_INF = -math.inf
_names = itertools.count()
log = logging.getLogger("streamcore.time")


@dataclass(frozen=True)
class WindowStatistics:
    """State and counters of one window stage."""

    windows: int
    """Open panes (tumbling/sliding) or sessions."""
    accumulators: int
    """Key-and-window accumulators held."""
    fired: int
    updates: int
    late: int
    watermark_ms: float


def make_window_step(node: WindowNode, late: Step, on_failure: Callable[..., None]) -> Step:
    """The step for a window node; ``late`` receives the records later than the lateness."""
    if isinstance(node.assigner, SessionWindows):
        return SessionWindowStep(node, late, on_failure)
    return PaneWindowStep(node, late, on_failure)


class _WindowStepBase(EventTimeStep):
    def __init__(self, node: WindowNode, late: Step, on_failure: Callable[..., None]) -> None:
        self.node = node
        self.name = node.name
        self.late_step = late
        self.on_failure = on_failure
        self.agg: Aggregation = node.aggregation
        assert node.key is not None, "window stages follow key_by"
        self.key: Callable[[Any], Any] = node.key
        self.lateness_ms = node.allowed_lateness_ms
        self.watermark_ms: float = NEG_INF
        self.seq = 0
        self.fired = 0
        self.updates = 0
        self.late = 0
        self._stage = StatelessStage(node.name, "window", self.key, node.on_error)
        # Late records go to ``.late`` (counted in ``late``): information, not a fault.
        self._drops = DropLog(log, level=logging.INFO)
        self.combiners = Combiners(self.agg, WindowResult)
        self._dirty: set[Any] | None = None
        """Keys whose state changed since the last snapshot (only under checkpointing)."""
        self._stored: set[Any] = set()
        """Keys the checkpoints hold state for, so a delta writes tombstones only for them."""
        self._places: dict[int, dict[Any, int]] = {}

    def _remember_stored(self, entries: dict[Any, Any], deleted: list[Any], full: bool) -> None:
        self._stored = remember_stored(self._stored, entries, deleted, full)
        if self._dirty is not None:
            self._dirty.clear()

    def enable_checkpoints(self) -> None:
        """Track changed keys from now on, for incremental snapshots."""
        self._dirty = set()
        self._recompile()

    def _recompile(self) -> None:
        """Build the per-batch loop again (after switching key tracking on)."""

    def _meta(self) -> dict[str, Any]:
        return {
            "watermark_ms": self.watermark_ms,
            "seq": self.seq,
            "fired": self.fired,
            "updates": self.updates,
            "late": self.late,
        }

    def _restore_meta(self, meta: Any) -> None:
        if meta is None:
            return
        self.watermark_ms = meta["watermark_ms"]
        self.seq = meta["seq"]
        self.fired = meta["fired"]
        self.updates = meta["updates"]
        self.late = meta["late"]

    def _compile(self, template: str, extra: dict[str, Any]) -> Callable[..., Any]:
        """Compile the per-batch loop; ``{ADD:n}`` in the template becomes the adds, indented n."""
        namespace: dict[str, Any] = {"key": self.key, "create": self.agg.create, **extra}
        body = template.replace("CREATE", create_expression(self.agg, namespace))
        lookup = item_lookup(self.key)
        if lookup is None:
            body = body.replace("{KEY}", "key(x)")
        else:  # lambda e: e["user"], written in place (streamcore/item_lookup.py)
            namespace["KEY"] = lookup[0]
            body = body.replace("{KEY}", "x[KEY]")
        for width in (12, 16, 20):
            adds = add_statements(self.agg, namespace, " " * width)
            if self.agg.sequenced:
                adds.insert(0, " " * width + "seq += 1")
            body = body.replace(f"{{ADD:{width}}}", "\n".join(adds))
        careful = self.node.on_error != "fail"
        if careful:
            body = body.replace("{TRY}", "try:").replace(
                "{EXCEPT}", "except Exception as exc:\n                fail(x, exc)\n                continue"
            )
        else:
            body = body.replace("{TRY}", "if True:").replace("{EXCEPT}", "")
        namespace["fail"] = self._record_failed
        if self._dirty is not None:
            namespace["dirty_add"] = self._dirty.add
            body = body.replace("{DIRTY}", "            dirty_add(k)")
        else:
            body = body.replace("{DIRTY}\n", "")
        code = compile(body, f"<streamcore window {next(_names)}>", "exec")
        exec(code, namespace)
        fn: Callable[..., Any] = namespace["process"]
        return fn

    def _record_failed(self, record: Any, error: BaseException) -> None:
        keyed = explain_key_failure(error, self.node.key_stage, self.key, record)
        if self.node.on_error == "fail":
            raise keyed or stage_error(self.name, record, error) from error
        self.on_failure(self._stage, record, keyed or error)

    async def _emit(self, results: list[WindowResult]) -> None:
        if results:
            await self.next.on_batch(results, [r.end - 1 for r in results])

    async def _emit_late(self, late: list[Any], late_ts: list[int]) -> None:
        self.late += len(late)
        for t in late_ts:
            self._drops.record(
                "late", self.name,
                f"timestamp_ms={t} watermark_ms={self.watermark_ms:.0f} allowed_lateness_ms={self.lateness_ms}",
            )
        await self.late_step.on_batch(late, late_ts)

    def _explain(self, exc: Exception) -> BaseException:
        """A failure inside the generated loop: find the record from its frame.

        ``x`` is bound by a ``for`` statement of the generated function itself, not by a
        comprehension, so its frame still holds it on Python 3.12+ (see chain.py).
        """
        tb = exc.__traceback__
        record = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith("<streamcore window"):
                record = tb.tb_frame.f_locals.get("x")
            tb = tb.tb_next
        return explain_key_failure(exc, self.node.key_stage, self.key, record) or stage_error(
            self.name, record, exc
        )


_PANE_LOOP = """
def process(records, timestamps, W, panes, new_pane, late, late_ts, touched, seq):
    cur = None
    for x, t in zip(records, timestamps):
        {TRY}
            s = t - t % PANE
            if s != cur:
                cur = s
                gone = W >= s - s % SLIDE + LAST_END_PLUS_LATENESS
                fired = W >= FIRST_END
                d = panes.get(s)
            if gone:
                late.append(x)
                late_ts.append(t)
                continue
            k = {KEY}
{DIRTY}
            if d is not None:
                a = d.get(k)
                if a is not None:
{ADD:20}
                else:
                    a = CREATE
{ADD:20}
                    d[k] = a
            else:
                a = CREATE
{ADD:16}
                d = new_pane(s)
                d[k] = a
            if fired:
                touched[(s, k)] = None
        {EXCEPT}
    return seq
"""
# Consecutive records of a batch mostly fall in one pane, so what depends only on the
# pane (its dict, whether it is freed or fired) is looked up when the pane changes, not
# per record; every pane of the batch is judged against the same W, so this is exact.
# A new pane or accumulator is stored only after the record was added, so a record
# whose value cannot be extracted (on_error="skip") leaves no empty accumulator behind.


class PaneWindowStep(_WindowStepBase):
    """Tumbling and sliding windows over per-key accumulators in panes."""

    def __init__(self, node: WindowNode, late: Step, on_failure: Callable[..., None]) -> None:
        super().__init__(node, late, on_failure)
        a = node.assigner
        self.size_ms: int = a.size_ms
        self.slide_ms: int = a.slide_ms
        self.pane_ms: int = a.pane_ms
        self.tumbling = self.size_ms == self.slide_ms
        self.panes: dict[int, dict[Any, list[Any]]] = {}
        self.pane_starts: list[int] = []
        # Sliding windows: cached partial combinations of panes (see _sliding_value).
        self.panes_per_window = self.size_ms // self.pane_ms
        self._block: int | None = None
        self._suffix: dict[int, dict[Any, list[Any]]] = {}
        self._prefix: dict[Any, list[Any]] = {}
        self._prefix_last = 0
        self._cached_below_ms: float = NEG_INF
        size, slide = self.size_ms, self.slide_ms
        # End of the earliest window holding pane s: the first multiple of slide above s - size.
        first_end = "s + SIZE" if self.tumbling else "(s - SIZE) - (s - SIZE) % SLIDE + SLIDE + SIZE"
        self._template = _PANE_LOOP.replace("FIRST_END", first_end)
        self._constants = {
            "PANE": self.pane_ms,
            "SLIDE": slide,
            "SIZE": size,
            "LAST_END_PLUS_LATENESS": size + self.lateness_ms,
        }
        self._recompile()

    def _recompile(self) -> None:
        self._process = self._compile(self._template, self._constants)

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """Per key: ``[[pane start, accumulator, place], ...]`` over the panes still kept.

        ``place`` is the key's position in the pane, which only grows by appending, so
        a restored pane fires its keys in the same order as the original.
        """
        panes, starts = self.panes, self.pane_starts
        entries: dict[Any, list[list[Any]]] = {}
        deleted: list[Any] = []
        if full:
            for s in starts:
                for place, (k, acc) in enumerate(panes[s].items()):
                    entries.setdefault(k, []).append([s, acc, place])
        else:
            assert self._dirty is not None
            # Each pane's places once per snapshot, not once per dirty key and pane.
            kept = [(s, panes[s], self._place(s, panes[s])) for s in starts]
            stored = self._stored
            for k in self._dirty:
                held = [[s, pane[k], places[k]] for s, pane, places in kept if k in pane]
                if held:
                    entries[k] = held
                elif k in stored:
                    deleted.append(k)  # a key never stored needs no tombstone
        self._remember_stored(entries, deleted, full)
        return StepSnapshot(self._meta(), entries, deleted, full)

    def _place(self, start: int, pane: dict[Any, Any]) -> dict[Any, int]:
        """Each key's position in pane ``start``; keys only ever append, so the map is
        extended with the new tail instead of rebuilt."""
        places = self._places.get(start)
        if places is None:
            places = self._places[start] = {}
        if len(places) < len(pane):
            n = len(places)
            places.update((k, n + i) for i, k in enumerate(itertools.islice(pane, n, None)))
        return places

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Rebuild the panes from per-key entries (pane order by start)."""
        self._restore_meta(meta)
        placed: dict[int, list[tuple[int, Any, list[Any]]]] = {}
        for k, held in entries.items():
            for s, acc, place in held:
                placed.setdefault(int(s), []).append((place, k, list(acc)))
        self.pane_starts = sorted(placed)
        self.panes = {}
        for s in self.pane_starts:
            keyed = placed[s]
            keyed.sort(key=lambda item: item[0])
            self.panes[s] = {k: acc for _, k, acc in keyed}
        self._block, self._suffix, self._prefix = None, {}, {}
        self._cached_below_ms = NEG_INF
        self._places = {}
        self._stored = set(entries)
        if self.watermark_ms > NEG_INF:
            self._free(self.watermark_ms)

    def _new_pane(self, start: int) -> dict[Any, list[Any]]:
        d: dict[Any, list[Any]] = {}
        self.panes[start] = d
        insert_start(self.pane_starts, start)
        return d

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        assert timestamps is not None, "window stages receive event timestamps"
        late: list[Any] = []
        late_ts: list[int] = []
        touched: dict[tuple[int, Any], None] = {}
        if self._block is not None and timestamps and min(timestamps) < self._cached_below_ms:
            self._block = None  # a cached pane may change
        try:
            self.seq = self._process(
                records, timestamps, self.watermark_ms, self.panes, self._new_pane, late, late_ts, touched, self.seq
            )
        except Exception as exc:
            if getattr(exc, "stage", None) == self.name:
                raise
            raise self._explain(exc) from exc
        if late:
            await self._emit_late(late, late_ts)
        if touched:
            await self._emit(self._updates(touched))

    def _window_value(self, ws: int, key: Any) -> list[Any] | None:
        """The accumulator of ``key`` over the panes of window ``[ws, ws + size)``."""
        if self.tumbling:
            pane = self.panes.get(ws)
            return None if pane is None else pane.get(key)
        starts = self.pane_starts
        acc = None
        agg = self.agg
        for i in range(bisect_left(starts, ws), bisect_left(starts, ws + self.size_ms)):
            a = self.panes[starts[i]].get(key)
            if a is not None:
                acc = agg.copy(a) if acc is None else agg.merge(acc, a)
        return acc

    def _updates(self, touched: dict[tuple[int, Any], None]) -> list[WindowResult]:
        W = self.watermark_ms
        size, slide, lateness = self.size_ms, self.slide_ms, self.lateness_ms
        windows: dict[tuple[int, Any], None] = {}
        for s, k in touched:
            ws = s - s % slide
            while ws > s - size:
                end = ws + size
                if end <= W < end + lateness:
                    windows[(ws, k)] = None
                ws -= slide
        out = []
        for ws, k in sorted(windows, key=lambda w: w[0]):
            acc = self._window_value(ws, k)
            if acc is not None:
                out.append(WindowResult(k, ws, ws + size, self.combiners.result(acc), True))
        self.updates += len(out)
        return out

    async def _advance(self, new_w: float) -> None:
        old_w = self.watermark_ms
        if new_w <= old_w:
            return
        self.watermark_ms = new_w
        results = self._fire(old_w, new_w)
        self._free(new_w)
        await self._emit(results)

    def _fire(self, old_w: float, new_w: float) -> list[WindowResult]:
        """Results of the windows whose end is in ``(old_w, new_w]``."""
        size, slide = self.size_ms, self.slide_ms
        starts, panes = self.pane_starts, self.panes
        rows = self.combiners.rows
        out: list[WindowResult] = []
        if self.tumbling:
            lo = bisect_right(starts, old_w - size)
            hi = len(starts) if new_w == POS_INF else bisect_right(starts, new_w - size)
            for s in starts[lo:hi]:
                out.extend(rows(panes[s], s, s + size, False))
            self.fired += len(out)
            return out
        if not starts:
            return out
        # Window starts are multiples of slide; consider those ending in (old_w, new_w].
        if old_w == NEG_INF:
            ws = starts[0] - size + 1
        else:
            ws = int(old_w) - size + 1
        ws = ws - ws % slide + (slide if ws % slide else 0)
        limit = POS_INF if new_w == POS_INF else new_w - size
        while ws <= limit:
            i = bisect_left(starts, ws)
            if i == len(starts):
                break
            if starts[i] >= ws + size:
                # No pane in this window: jump to the first window holding pane starts[i].
                nxt = starts[i] - size + 1
                ws = max(ws + slide, nxt - nxt % slide + (slide if nxt % slide else 0))
                continue
            out.extend(self._sliding_rows(ws))
            ws += slide
        self.fired += len(out)
        return out

    def _sliding_rows(self, ws: int) -> list[WindowResult]:
        """The results of the sliding window starting at ``ws``.

        Merging all ``size / pane`` panes per window would cost that many merges per key
        and window. Instead, with panes numbered ``m = start // pane`` and cut into blocks
        of ``K = size / pane`` panes, window ``j`` (panes ``j .. j+K-1``) is the suffix of
        its block from ``j`` merged with the prefix of the next block up to ``j+K-1``.
        1. On entering block ``b``, compute every suffix of it, right to left.
        2. Grow the prefix of block ``b+1`` in place, one pane at a time, as windows fire.
        3. A window's values are its suffix merged with the prefix, per key.
        4. A batch with a record in a cached pane drops the cache (``on_batch``).
        Merges stay in time order, so first/last/collect and user merges see them in order.
        """
        pane, k = self.pane_ms, self.panes_per_window
        combine, panes = self.combiners.combine, self.panes
        j = ws // pane
        block = j // k
        if self._block != block:
            # Step 1.
            suffix: dict[int, dict[Any, list[Any]]] = {}
            acc: dict[Any, list[Any]] = {}
            for m in range((block + 1) * k - 1, block * k - 1, -1):
                d = panes.get(m * pane)
                if d:
                    acc = combine([d, acc]) if acc else combine([d])
                suffix[m] = acc
            self._block, self._suffix = block, suffix
            self._prefix, self._prefix_last = {}, (block + 1) * k - 1
        # Step 2.
        prefix = self._prefix
        while self._prefix_last < j + k - 1:
            self._prefix_last += 1
            d = panes.get(self._prefix_last * pane)
            if d:
                if prefix:
                    prefix.update(combine([prefix, d]))
                else:
                    prefix.update(combine([d]))
        self._cached_below_ms = (self._prefix_last + 1) * pane
        # Step 3.
        return self.combiners.rows_of_two(self._suffix[j], prefix, ws, ws + self.size_ms)

    def _free(self, w: float) -> None:
        """Drop panes all of whose windows are freed (``last end + lateness <= w``)."""
        starts, panes = self.pane_starts, self.panes
        size, slide, lateness = self.size_ms, self.slide_ms, self.lateness_ms
        n = 0
        dirty = self._dirty
        for s in starts:
            if s - s % slide + size + lateness <= w:
                if dirty is not None:
                    dirty.update(panes[s])
                    self._places.pop(s, None)
                del panes[s]
                n += 1
            else:
                break
        if n:
            del starts[:n]
        if not panes and self._block is not None:
            # Nothing left to combine: let go of the sliding-window cache too.
            self._block, self._suffix, self._prefix = None, {}, {}

    def statistics(self) -> WindowStatistics:
        """Current state size and counters."""
        return WindowStatistics(
            windows=len(self.panes),
            accumulators=sum(len(d) for d in self.panes.values()),
            fired=self.fired,
            updates=self.updates,
            late=self.late,
            watermark_ms=self.watermark_ms,
        )


class _Session:
    __slots__ = ("acc", "alive", "emitted", "end", "key", "queued", "start")

    def __init__(self, key: Any, start: int, end: int, acc: list[Any]) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.acc = acc
        self.emitted = False
        """A result of this session (or of one merged into it) was emitted."""
        self.alive = True
        """False once merged into another session or freed."""
        self.queued = False
        """The session has an entry in the fire heap."""


_SESSION_LOOP = """
def process(records, timestamps, W, sessions, late, late_ts, touched, seq, free_heap, fire_heap, tie, bridge):
    created = 0
    for x, t in zip(records, timestamps):
        {TRY}
            k = {KEY}
{DIRTY}
            new_end = t + GAP
            lst = sessions.get(k)
            if lst is None:
                overlapping = NONE
            elif len(lst) == 1:
                s = lst[0]
                overlapping = lst if s.start < new_end and t < s.end else NONE
            else:
                overlapping = [s for s in lst if s.start < new_end and t < s.end]
            if not overlapping:
                if W >= new_end + LATENESS:
                    late.append(x)
                    late_ts.append(t)
                    continue
                a = CREATE
{ADD:16}
                s = Session(k, t, new_end, a)
                if lst is None:
                    sessions[k] = [s]
                else:
                    lst.append(s)
                created += 1
{FREE_PUSH}
                if new_end > W:
                    s.queued = True
                    heappush(fire_heap, (new_end, next(tie), s))
            elif len(overlapping) == 1:
                s = overlapping[0]
                a = s.acc
{ADD:16}
                if t < s.start:
                    s.start = t
                if new_end > s.end:
                    s.end = new_end
                    if new_end > W and not s.queued:
                        s.queued = True
                        heappush(fire_heap, (new_end, next(tie), s))
            else:
                a = CREATE
{ADD:16}
                s = bridge(lst, overlapping, a, t, new_end)
            if s.end <= W:
                touched[id(s)] = s
        {EXCEPT}
    return seq, created
"""
# The whole batch in one generated function, the aggregation's updates written in place
# (as in _PANE_LOOP), since a call per record to add was a fifth of the stage's time.
# The three cases are steps 1 to 3 of SessionWindowStep; the rare bridging merge is a
# method. Fire and free entries take their tie numbers in the same order as
# _queue_fire after a new session's free entry, so equal ends fire in the same order.


class SessionWindowStep(_WindowStepBase):
    """Merging per-key session windows.

    A record at ``t`` opens ``[t, t + gap)``; every kept session of its key that overlaps
    that interval (strictly: touching sessions stay apart) merges with it, accumulators
    merged in order of start. A session is late (its record goes to ``.late``) only when
    the record overlaps no kept session and ``W >= t + gap + lateness``. A session that
    emitted a result (or absorbed one that did) emits its later results as updates.

    Firing and freeing are two heaps with one entry per session, moved lazily: when an
    entry comes up for a session whose end has grown since, it is pushed again at the
    new end, so extending a session costs no heap operation.
    """

    def __init__(self, node: WindowNode, late: Step, on_failure: Callable[..., None]) -> None:
        super().__init__(node, late, on_failure)
        self.gap_ms: int = node.assigner.gap_ms
        self.sessions: dict[Any, list[_Session]] = {}
        self._fire_heap: list[tuple[int, int, _Session]] = []
        self._free_heap: list[tuple[int, int, _Session]] = []
        self._tie = itertools.count()
        self.count = 0
        # With no allowed lateness a session is freed when it fires, so the fire heap
        # frees it too and the free heap stays empty: half the heap operations.
        self._free_apart = self.lateness_ms > 0
        self._constants = {
            "GAP": self.gap_ms,
            "LATENESS": self.lateness_ms,
            "NONE": (),
            "Session": _Session,
            "heappush": heapq.heappush,
        }
        self._recompile()

    def _recompile(self) -> None:
        push = "                heappush(free_heap, (new_end + LATENESS, next(tie), s))\n"
        template = _SESSION_LOOP.replace("{FREE_PUSH}\n", push if self._free_apart else "")
        self._process = self._compile(template, self._constants)

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot:
        """Per key: ``[[start, end, accumulator, emitted], ...]`` of its kept sessions."""
        sessions = self.sessions
        keys = sessions.keys() if full else (self._dirty or ())
        entries: dict[Any, list[list[Any]]] = {}
        deleted: list[Any] = []
        for k in keys:
            lst = sessions.get(k)
            if lst:
                entries[k] = [[x.start, x.end, x.acc, x.emitted] for x in lst]
            elif k in self._stored:
                deleted.append(k)
        self._remember_stored(entries, deleted, full)
        return StepSnapshot(self._meta(), entries, deleted, full)

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Rebuild the sessions and their fire and free queues."""
        self._restore_meta(meta)
        self._stored = set(entries)
        self.sessions, self._fire_heap, self._free_heap, self.count = {}, [], [], 0
        for k, held in entries.items():
            lst = self.sessions[k] = []
            for start, end, acc, emitted in held:
                if not self._free_apart and int(end) <= self.watermark_ms:
                    continue  # freed when it fired (no allowed lateness)
                session = _Session(k, int(start), int(end), list(acc))
                session.emitted = bool(emitted)
                lst.append(session)
                self.count += 1
                if self._free_apart:
                    heapq.heappush(self._free_heap, (session.end + self.lateness_ms, next(self._tie), session))
                if session.end > self.watermark_ms:
                    self._queue_fire(session)

    def _queue_fire(self, s: _Session) -> None:
        s.queued = True
        heapq.heappush(self._fire_heap, (s.end, next(self._tie), s))

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        """Steps 1 to 3 for each record (the generated ``_SESSION_LOOP``), then step 4."""
        assert timestamps is not None, "window stages receive event timestamps"
        W = self.watermark_ms
        late: list[Any] = []
        late_ts: list[int] = []
        touched: dict[int, _Session] = {}
        try:
            self.seq, created = self._process(
                records, timestamps, W, self.sessions, late, late_ts, touched, self.seq,
                self._free_heap, self._fire_heap, self._tie, self._bridge,
            )
        except Exception as exc:
            if getattr(exc, "stage", None) == self.name:
                raise
            raise self._explain(exc) from exc
        self.count += created
        if late:
            await self._emit_late(late, late_ts)
        if touched:
            # Step 4: one update per session changed behind the watermark; a session the
            # batch extended past W waits for its own firing instead.
            changed = [s for s in touched.values() if s.alive and s.end <= W]
            changed.sort(key=lambda s: s.end)
            result = self.combiners.result
            out = [WindowResult(s.key, s.start, s.end, result(s.acc), True) for s in changed]
            for s in changed:
                s.emitted = True
            self.updates += len(out)
            await self._emit(out)

    def _bridge(self, lst: list[_Session], overlapping: list[_Session], acc: list[Any], t: int, new_end: int) -> _Session:
        """Step 3: a record (already added to ``acc``) bridges sessions: merge them in time order."""
        agg = self.agg
        overlapping.sort(key=lambda s: s.start)
        s = overlapping[0]
        merged = s.acc
        end = max(s.end, new_end)
        for other in overlapping[1:]:
            merged = agg.merge(merged, other.acc)
            other.alive = False
            s.emitted = s.emitted or other.emitted
            end = max(end, other.end)
            lst.remove(other)
            self.count -= 1
        s.acc = agg.merge(merged, acc)
        s.start = min(s.start, t)
        s.end = end
        if end > self.watermark_ms and not s.queued:
            self._queue_fire(s)
        return s

    async def _advance(self, new_w: float) -> None:
        if new_w <= self.watermark_ms:
            return
        self.watermark_ms = new_w
        out: list[WindowResult] = []
        result = self.combiners.result
        dirty = self._dirty
        free_now = not self._free_apart
        # pop_due written out: this loop runs once per session and was a third of the stage.
        heap, tie = self._fire_heap, self._tie
        while heap and heap[0][0] <= new_w:
            limit, _, s = heappop(heap)
            if not s.alive:
                continue
            if s.end > limit:  # extended since it was queued
                heappush(heap, (s.end, next(tie), s))
                continue
            s.queued = False
            if dirty is not None:
                dirty.add(s.key)
            out.append(WindowResult(s.key, s.start, s.end, result(s.acc), s.emitted))
            if s.emitted:
                self.updates += 1
            s.emitted = True
            if free_now:
                self._forget(s)
        self.fired += len(out)
        if not free_now:
            lateness = self.lateness_ms
            for s in pop_due(self._free_heap, new_w, lambda s: s.end + lateness, tie):
                if dirty is not None:
                    dirty.add(s.key)
                self._forget(s)
        await self._emit(out)

    def _forget(self, s: _Session) -> None:
        """Free session ``s``."""
        s.alive = False
        lst = self.sessions[s.key]
        lst.remove(s)
        self.count -= 1
        if not lst:
            del self.sessions[s.key]

    def statistics(self) -> WindowStatistics:
        """Current state size and counters."""
        return WindowStatistics(
            windows=self.count,
            accumulators=self.count,
            fired=self.fired,
            updates=self.updates,
            late=self.late,
            watermark_ms=self.watermark_ms,
        )
