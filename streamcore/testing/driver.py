"""A virtual-time driver for one event-time stage (window or keyed process).

Like Beam's ``TestStream`` or Kafka Streams' ``TopologyTestDriver``: a test feeds the
stage batches of records with explicit event timestamps and moves the watermark by hand,
then reads what the stage emitted, in order. No event loop, no actors, no clock: the
stage's steps run synchronously, so a test never sleeps and every run is deterministic.

What the stage sees is exactly what it would see inside a flow:
1. ``add`` / ``add_batch`` deliver one batch; its records are processed against the
   current watermark (the one from before the batch).
2. ``advance_watermark(w)`` fires what ``W = w`` makes due; a watermark never goes back.
3. ``end()`` is the end of a finite stream (``W = +inf``).
Design: docs/event-time.md#the-test-kit
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from streamcore.dataflow.flow import Dataflow, Stream
from streamcore.duration import to_duration_ms, to_timestamp_ms
from streamcore.errors import GraphError
from streamcore.graph.nodes import ProcessNode, WindowNode
from streamcore.io import Source
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.steps import DeadLetter, Step

__all__ = ["StageDriver", "VirtualTimeDriver"]


class _Capture(Step):
    """The end of a port under test: keeps each batch it receives."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.timestamps: list[list[int]] = []
        self.unread = 0

    async def on_batch(self, records: list[Any], timestamps: list[int] | None) -> None:
        self.batches.append(list(records))
        self.timestamps.append(list(timestamps or []))

    async def on_watermark(self, timestamp_ms: float) -> None:
        pass

    async def on_end(self) -> None:
        pass

    def items(self) -> list[Any]:
        return [r for batch in self.batches for r in batch]


class _NoInput(Source):
    """Stands for the upstream of a stage built by ``StageDriver.window`` / ``.process``."""

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        return None


def _run(coro: Any) -> None:
    """Run a step call to completion; steps under the driver never wait for anything."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError(
        "the stage under StageDriver awaited something; the driver runs stages without an "
        "event loop, so async user functions are not supported here"
    )


class VirtualTimeDriver:
    """What every virtual-time driver shares: watermark moves, end of stream, captured
    output, failed records. Subclasses build ``self.step`` and deliver records."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.output = _Capture()
        self.late_output = _Capture()
        self.dead_letters: list[DeadLetter] = []
        """Records that failed with ``on_error="dead_letter"``."""
        self.skipped = 0
        """Records that failed with ``on_error="skip"``."""
        self.step: Any = None
        self.watermark_ms: float = -math.inf
        self.ended = False
        self._read = 0
        self._read_late = 0


    def _batch(self, pairs: Iterable[tuple[Any, Any]]) -> tuple[list[Any], list[int]]:
        """Records and their timestamps in ms, for a batch about to be delivered."""
        self._check_open()
        records: list[Any] = []
        stamps: list[int] = []
        for record, timestamp in pairs:
            records.append(record)
            stamps.append(to_timestamp_ms(timestamp))
        return records, stamps

    def advance_watermark(self, watermark: Any) -> None:
        """Move the watermark to ``watermark`` (int ms, datetime or ``math.inf``)."""
        self._check_open()
        w = watermark if isinstance(watermark, float) and math.isinf(watermark) else to_timestamp_ms(watermark)
        if w < self.watermark_ms:
            raise ValueError(f"watermarks never go back: at {self.watermark_ms}, asked for {w}")
        if w == self.watermark_ms:
            return
        self.watermark_ms = w
        if w == math.inf:
            self.end()
            return
        _run(self.step.on_watermark(w))

    def advance_watermark_by(self, duration: Any) -> None:
        """Move the watermark forward by ``duration`` (timedelta or int ms)."""
        base = 0 if self.watermark_ms == -math.inf else self.watermark_ms
        self.advance_watermark(int(base + to_duration_ms(duration, "duration")))

    def end(self) -> None:
        """End the stream: the watermark becomes +inf and everything left fires."""
        self._check_open()
        self.ended = True
        self.watermark_ms = math.inf
        _run(self.step.on_end())

    def _check_open(self) -> None:
        if self.ended:
            raise RuntimeError(f"stage {self.name!r} already saw the end of its stream")

    def _failed(self, stage: StatelessStage, record: Any, error: BaseException) -> None:
        if stage.on_error == "dead_letter":
            self.dead_letters.append(DeadLetter(stage.name, record, error))
        else:
            self.skipped += 1

    # -- output ------------------------------------------------------------------

    @property
    def results(self) -> list[Any]:
        """Everything the stage emitted so far, in order."""
        return self.output.items()

    @property
    def batches(self) -> list[list[Any]]:
        """The emitted records grouped as the stage emitted them (one list per emission)."""
        return [list(b) for b in self.output.batches]

    @property
    def late(self) -> list[Any]:
        """Records the stage sent to its ``.late`` output, in order."""
        return self.late_output.items()

    def read(self) -> list[Any]:
        """What the stage emitted since the last ``read()``, in order."""
        items = self.results
        new = items[self._read :]
        self._read = len(items)
        return new

    def read_late(self) -> list[Any]:
        """Late records since the last ``read_late()``."""
        items = self.late
        new = items[self._read_late :]
        self._read_late = len(items)
        return new

    def statistics(self) -> Any:
        """The stage's statistics (window state size, late records, timers...)."""
        return self.step.statistics()


class StageDriver(VirtualTimeDriver):
    """Feeds one window or process stage records and watermarks, in virtual time.

    Build it from the result stream of ``.aggregate()`` / ``.reduce()`` / ``.process()``
    in a flow, or directly with ``StageDriver.window(...)`` / ``StageDriver.process(...)``::

        driver = StageDriver.window(sc.TumblingWindows(10), sc.agg.count(), key=lambda r: r["user"])
        driver.add({"user": "a"}, 3)
        driver.advance_watermark(10)
        driver.read()   # [WindowResult(key='a', start=0, end=10, value=1, is_update=False)]
    """

    def __init__(self, stream: Stream) -> None:
        node = stream.node
        if not isinstance(node, WindowNode | ProcessNode):
            raise GraphError(
                f"StageDriver drives a window or process stage; {stream!r} comes from a "
                f"{node.kind} stage"
            )
        super().__init__(node.name)
        if isinstance(node, WindowNode):
            from streamcore.operators.window_step import make_window_step

            self.step = make_window_step(node, self.late_output, self._failed)
        else:
            from streamcore.operators.process import ProcessStep

            self.step = ProcessStep(node, self._failed)
        self.step.next = self.output

    # -- building without a flow ---------------------------------------------------

    @classmethod
    def window(
        cls,
        assigner: Any,
        aggregation: Any,
        *,
        key: Callable[[Any], Any],
        allowed_lateness: Any = 0,
        on_error: str = "fail",
    ) -> StageDriver:
        """A driver over ``key_by(key).window(assigner, ...).aggregate(aggregation)``."""
        keyed = cls._keyed(key)
        return cls(keyed.window(assigner, allowed_lateness=allowed_lateness).aggregate(aggregation, on_error=on_error))

    @classmethod
    def reduce(
        cls,
        assigner: Any,
        fn: Callable[[Any, Any], Any],
        *,
        key: Callable[[Any], Any],
        allowed_lateness: Any = 0,
        on_error: str = "fail",
    ) -> StageDriver:
        """A driver over ``key_by(key).window(assigner, ...).reduce(fn)``."""
        keyed = cls._keyed(key)
        return cls(keyed.window(assigner, allowed_lateness=allowed_lateness).reduce(fn, on_error=on_error))

    @classmethod
    def process(cls, fn: Any, *, key: Callable[[Any], Any], on_error: str = "fail") -> StageDriver:
        """A driver over ``key_by(key).process(fn)``."""
        return cls(cls._keyed(key).process(fn, on_error=on_error))

    @staticmethod
    def _keyed(key: Callable[[Any], Any]) -> Any:
        flow = Dataflow("stage-driver")
        return flow.source(_NoInput(), timestamp=lambda r: 0).key_by(key)

    # -- input -------------------------------------------------------------------

    def add(self, record: Any, timestamp: Any) -> None:
        """Deliver one record (a batch of one) with its event time (int ms or datetime)."""
        self.add_batch([(record, timestamp)])

    def add_batch(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Deliver one batch of ``(record, timestamp)`` pairs, in order."""
        records, stamps = self._batch(pairs)
        if records:
            _run(self.step.on_batch(records, stamps))
