"""A virtual-time driver for one join stage: feed each side by hand, move the watermark.

Like ``StageDriver`` for windows: no event loop, no actors, no clock. A test delivers
batches to the left or right input with explicit event timestamps and moves the join's
watermark (in a flow, the minimum of both inputs'), then reads what the join emitted.
1. ``add_left`` / ``add_right`` / ``add_batch`` deliver one batch to one side, processed
   against the current watermark (the one from before the batch).
2. ``advance_watermark(w)`` emits what ``W = w`` makes due and frees state.
3. ``end()`` is the end of both inputs (``W = +inf``).
4. ``snapshot()`` takes a checkpoint of the join's state as bytes, the way a barrier
   does; ``JoinDriver.restored(stream, snapshots)`` builds a driver from a chain of them.
Design: docs/joins.md
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from streamcore.dataflow.flow import Dataflow, JoinResultStream, KeyedStream
from streamcore.errors import GraphError
from streamcore.graph.nodes import JoinNode
from streamcore.stage_options import OnError
from streamcore.state.snapshot import EncodedSnapshot, apply_blob, encode_snapshot
from streamcore.testing.driver import VirtualTimeDriver, _NoInput, _run

__all__ = ["JoinDriver"]

LEFT = 0
RIGHT = 1


class JoinDriver(VirtualTimeDriver):
    """Feeds one join stage records of either side and watermarks, in virtual time::

        driver = JoinDriver.window(sc.TumblingWindows(10), key=lambda r: r["k"])
        driver.add_left({"k": "a"}, 3)
        driver.add_right({"k": "a"}, 4)
        driver.advance_watermark(10)
        driver.read()   # [JoinResult(key='a', left={...}, right={...}, start=0, end=10)]
    """

    def __init__(self, stream: JoinResultStream) -> None:
        from streamcore.operators import join_step

        node = stream.node
        if not isinstance(node, JoinNode):
            raise GraphError(f"JoinDriver drives a join stage; {stream!r} comes from a {node.kind} stage")
        super().__init__(node.name)
        self.stream = stream
        self.step = join_step(node, self.late_output, self._failed)
        self.step.next = self.output
        self.step.enable_checkpoints()
        self._checkpoints = 0

    # -- building without a flow ---------------------------------------------------

    @staticmethod
    def _sides(key: Callable[[Any], Any], right_key: Callable[[Any], Any] | None) -> tuple[KeyedStream, KeyedStream]:
        flow = Dataflow("join-driver")
        left = flow.source(_NoInput(), timestamp=lambda r: 0).key_by(key)
        right = flow.source(_NoInput(), timestamp=lambda r: 0).key_by(right_key or key)
        return left, right

    @classmethod
    def window(cls, assigner: Any, *, key: Callable[[Any], Any], right_key: Callable[[Any], Any] | None = None,
               how: str = "inner", allowed_lateness: timedelta | int = 0, on_error: OnError = "fail") -> JoinDriver:
        """A driver over ``left.join(right, window=assigner, how=how, ...)``."""
        left, right = cls._sides(key, right_key)
        return cls(left.join(right, window=assigner, how=how, allowed_lateness=allowed_lateness, on_error=on_error))

    @classmethod
    def interval(cls, *, lower: timedelta | int, upper: timedelta | int, key: Callable[[Any], Any],
                 right_key: Callable[[Any], Any] | None = None, on_error: OnError = "fail") -> JoinDriver:
        """A driver over ``left.interval_join(right, lower=lower, upper=upper)``."""
        left, right = cls._sides(key, right_key)
        return cls(left.interval_join(right, lower=lower, upper=upper, on_error=on_error))

    @classmethod
    def asof(cls, *, key: Callable[[Any], Any], right_key: Callable[[Any], Any] | None = None,
             how: str = "inner", on_error: OnError = "fail") -> JoinDriver:
        """A driver over ``left.join_asof(right, how=how)``."""
        left, right = cls._sides(key, right_key)
        return cls(left.join_asof(right, how=how, on_error=on_error))

    # -- input -------------------------------------------------------------------

    def add_left(self, record: Any, timestamp: Any) -> None:
        """Deliver one left record (a batch of one)."""
        self.add_batch(LEFT, [(record, timestamp)])

    def add_right(self, record: Any, timestamp: Any) -> None:
        """Deliver one right record (a batch of one)."""
        self.add_batch(RIGHT, [(record, timestamp)])

    def add_batch(self, side: int, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Deliver one batch of ``(record, timestamp)`` pairs to ``side`` (0 left, 1 right)."""
        records, stamps = self._batch(pairs)
        if records:
            _run(self.step.on_side_batch(side, records, stamps))

    # -- checkpoints -------------------------------------------------------------

    def snapshot(self, *, full: bool = True) -> EncodedSnapshot:
        """The join's state as a checkpoint holds it: all keys, or (``full=False``) the
        keys changed since the previous snapshot."""
        self._checkpoints += 1
        return encode_snapshot(self.name, self.step.snapshot_state(self._checkpoints, full))

    @classmethod
    def restored(cls, stream: JoinResultStream, snapshots: list[EncodedSnapshot]) -> JoinDriver:
        """A driver whose join restarts from ``snapshots`` (a full one, then deltas)."""
        entries: dict[Any, Any] = {}
        for snap in snapshots:
            if snap.full:
                entries = {}
            for blob in snap.blobs.values():
                apply_blob(entries, blob)
        driver = cls(stream)
        meta = snapshots[-1].meta
        driver.step.restore_state(meta, entries)
        driver.watermark_ms = meta["watermark_ms"]
        return driver
