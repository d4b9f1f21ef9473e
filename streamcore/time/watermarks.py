"""How a source's watermark is made: one small strategy object per rule.

A source actor reads batches; what its watermark is, and when it stops holding the
watermark back, is decided here, apart from the reading, so that each rule is tested on
its own with a manual clock (tests/time/test_watermark_strategies.py).

- ``BoundedOutOfOrderness``: ``W = max event time seen - bound`` (one stream).
- ``PerPartition``: the same per partition, and the minimum over the partitions that are
  not idle; a partition is idle when it is caught up (nothing left to read) and gave no
  record for ``idle_timeout`` (without one: caught up and never gave a record).
- ``SourceGiven``: the source knows its watermark itself (a repartition topic).
- ``Idleness``: when a whole source, quiet while waiting for input, stops holding the
  watermark of its consumers back.

Every strategy only moves forward: it returns a new watermark only when it is higher.
Design: docs/event-time.md
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from typing import Any

__all__ = ["BoundedOutOfOrderness", "Idleness", "PerPartition", "SourceGiven"]

NEG_INF = -math.inf
POS_INF = math.inf

#: Seconds on a monotonic clock (``time.monotonic`` unless a test gives its own).
Clock = Callable[[], float]


class BoundedOutOfOrderness:
    """``W = max event time seen - bound_ms`` over one stream of event times."""

    def __init__(self, bound_ms: int) -> None:
        self.bound_ms = bound_ms
        self.max_timestamp_ms: float = NEG_INF
        self.watermark_ms: float = NEG_INF

    def on_timestamps(self, timestamps: list[int]) -> float | None:
        """After a batch with these event times: the new watermark, or None if it stays."""
        if not timestamps:
            return None
        top = max(timestamps)
        if top <= self.max_timestamp_ms:
            return None
        self.max_timestamp_ms = top
        return self.advance_to(top - self.bound_ms)

    def advance_to(self, watermark_ms: float) -> float | None:
        """Move to ``watermark_ms`` if that is forward (a quiet source's clock rule uses it)."""
        if watermark_ms > self.watermark_ms:
            self.watermark_ms = watermark_ms
            return watermark_ms
        return None


class PerPartition(BoundedOutOfOrderness):
    """Per-partition event times; the watermark is the minimum over partitions not idle."""

    def __init__(self, bound_ms: int, idle_timeout_s: float | None, clock: Clock) -> None:
        super().__init__(bound_ms)
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.partition_max: dict[Any, float] = {}
        self.last_record_s: dict[Any, float] = {}
        self.held_back_by: Any = None
        """The partition whose event time holds the watermark back."""

    def on_batch(
        self,
        partitions: list[Any] | None,
        timestamps: list[int] | None,
        assigned: Iterable[Any],
        caught_up: Collection[Any],
    ) -> float | None:
        """After a batch (or an empty read: ``partitions`` None): the new watermark, if any."""
        now = self.clock()
        top, seen = self.partition_max, self.last_record_s
        if partitions and timestamps is not None and len(partitions) == len(timestamps):
            for p, t in zip(partitions, timestamps, strict=True):
                if t > top.get(p, NEG_INF):
                    top[p] = t
            for p in set(partitions):
                seen[p] = now
        timeout = self.idle_timeout_s
        best, holder, active = POS_INF, None, False
        for p in assigned:
            last = seen.setdefault(p, now)
            if p in caught_up and (p not in top if timeout is None else now - last >= timeout):
                continue  # idle: it holds nothing back
            active = True
            m = top.get(p, NEG_INF)
            if m < best:
                best, holder = m, p
        self.held_back_by = holder
        if not active or best == NEG_INF:
            return None
        if best > self.max_timestamp_ms:
            self.max_timestamp_ms = best
        return self.advance_to(best - self.bound_ms)

    def never_gave_and_caught_up(self, assigned: Collection[Any], caught_up: Collection[Any]) -> bool:
        """Caught up without a record ever (a restored run's records count), so the whole
        source holds nothing back (e.g. an empty partition's task)."""
        if self.partition_max or self.max_timestamp_ms != NEG_INF:
            return False
        return bool(assigned) and set(assigned) <= set(caught_up)


class SourceGiven:
    """The source's own watermark (``Source.watermark()``), taken when it moves forward."""

    def __init__(self) -> None:
        self.max_timestamp_ms: float = NEG_INF
        self.watermark_ms: float = NEG_INF

    def on_source(self, given: float | None) -> float | None:
        """The source says ``given``: the new watermark, or None if it stays."""
        if given is None or not self.watermark_ms < given < POS_INF:
            return None
        self.watermark_ms = given
        if given > self.max_timestamp_ms:
            self.max_timestamp_ms = given
        return given


class Idleness:
    """When a source quiet for ``timeout_s`` (waiting for input, not blocked sending)
    stops holding its consumers' watermark back."""

    def __init__(self, timeout_s: float | None, clock: Clock) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self.last_data_s = clock()
        self.is_idle = False

    def on_data(self) -> bool:
        """Records came (or were handed on): the quiet time restarts. True if the source
        was idle and is active again."""
        self.last_data_s = self.clock()
        was, self.is_idle = self.is_idle, False
        return was

    def goes_idle(self, caught_up: bool = True) -> bool:
        """After an empty read: True when the source becomes idle now (once)."""
        if self.is_idle or self.timeout_s is None or not caught_up:
            return False
        if self.clock() - self.last_data_s >= self.timeout_s:
            self.is_idle = True
            return True
        return False
