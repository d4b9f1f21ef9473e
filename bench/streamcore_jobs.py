"""The streamcore implementations of the benchmark workloads, written against the public API.

Each job builds a ``Dataflow``, runs it with ``run_sync`` and returns the same checksum
as its bare-Python counterpart in ``bare_jobs.py``; the sinks only count and sum, so
what is timed is the engine.

Run: ``python bench/streamcore_jobs.py {w1|hop10|w2|slide|session} INPUT N``
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

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

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import IterableSource


class PairSumSink(sc.Sink):
    """Counts ``(key, value)`` pairs and sums their values in arrival order.

    A plain ``+=`` loop rather than ``sum()`` or ``fsum``, so that records arriving in
    input order give the bare loop's float sum bit for bit.
    """

    default_name = "pair_sum"

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def write_batch(self, records: list[Any]) -> None:
        total = self.total
        for r in records:
            total += r[1]
        self.total = total
        self.count += len(records)


class IntSumSink(sc.Sink):
    """Counts and sums integer records."""

    default_name = "int_sum"

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def write_batch(self, records: list[Any]) -> None:
        self.count += len(records)
        self.total += sum(records)


class WindowSumSink(sc.Sink):
    """Counts window results and their ``n`` and sums their ``total`` (see ``sum_units``)."""

    default_name = "window_sum"

    def __init__(self) -> None:
        self.windows = 0
        self.count = 0
        self.units = 0
        self.updates = 0

    def write_batch(self, records: list[sc.WindowResult]) -> None:
        self.windows += len(records)
        count, units, updates = self.count, self.units, self.updates
        for r in records:
            count += r.value["n"]
            units += sum_units(r.value["total"])
            # The input is never late, so an update would be an engine bug worth seeing.
            updates += r.is_update
        self.count, self.units, self.updates = count, units, updates


def w1(path: str, n: int) -> dict[str, Any]:
    """JSON lines -> filter -> map -> summing sink."""
    flow = sc.Dataflow("bench-w1")
    sink = PairSumSink()
    (
        flow.source(JsonLinesSource(path))
        .filter(lambda e: e["amount"] >= THRESHOLD)
        .map(lambda e: (e["user"], e["amount"] * FACTOR))
        .sink(sink)
    )
    flow.run_sync()
    return w1_checksum(sink.count, sink.total)


def hop10(path: str, n: int) -> dict[str, Any]:
    """``HOPS`` identity maps, each its own actor (chaining off), over ``range(n)``."""
    flow = sc.Dataflow("bench-hop10", chaining=False)
    stream = flow.source(IterableSource(range(n)))
    for i in range(HOPS):
        stream = stream.map(identity, name=f"hop{i}")
    sink = IntSumSink()
    stream.sink(sink)
    flow.run_sync()
    return {"count": sink.count, "sum": sink.total}


def _windowed(name: str, path: str, assigner: Any) -> dict[str, Any]:
    flow = sc.Dataflow(name)
    sink = WindowSumSink()
    (
        flow.source(
            JsonLinesSource(path),
            timestamp=lambda e: e["ts"],
            max_out_of_orderness=timedelta(milliseconds=OUT_OF_ORDER_MS),
        )
        .key_by(lambda e: e["user"])
        .window(assigner)
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .sink(sink)
    )
    flow.run_sync()
    checksum = window_checksum(sink.windows, sink.count, sink.units)
    if sink.updates:
        checksum["updates"] = sink.updates
    return checksum


def w2(path: str, n: int) -> dict[str, Any]:
    """Tumbling event-time windows per user."""
    return _windowed("bench-w2", path, sc.TumblingWindows(timedelta(milliseconds=TUMBLE_MS)))


def slide(path: str, n: int) -> dict[str, Any]:
    """Sliding event-time windows per user."""
    assigner = sc.SlidingWindows(
        timedelta(milliseconds=SLIDE_SIZE_MS), timedelta(milliseconds=SLIDE_STEP_MS)
    )
    return _windowed("bench-slide", path, assigner)


def session(path: str, n: int) -> dict[str, Any]:
    """Session windows per user."""
    return _windowed(
        "bench-session", path, sc.SessionWindows(timedelta(milliseconds=SESSION_GAP_MS))
    )


if __name__ == "__main__":
    jobs = {"w1": w1, "hop10": hop10, "w2": w2, "slide": slide, "session": session}
    # Which copy of the engine was imported (run.py benchmarks a snapshot by default).
    main("streamcore", jobs, {"engine_path": str(Path(sc.__file__).parent)})
