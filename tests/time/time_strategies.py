"""Hypothesis strategies and flow helpers shared by the event-time tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from time_oracle import VALUE_FNS, Batch, Emissions

import streamcore as sc
from streamcore.io import Sink
from streamcore.time.aggregators import reducer

KEYS = ("a", "b", "c")


def all_aggregators() -> dict[str, sc.Aggregator]:
    """One of each built-in aggregator over the record field ``v``, and two user ones."""
    v = lambda r: r["v"]  # noqa: E731
    return {
        "count": sc.agg.count(),
        "sum": sc.agg.sum(v),
        "min": sc.agg.min(v),
        "max": sc.agg.max(v),
        "mean": sc.agg.mean(v),
        "first": sc.agg.first(v),
        "last": sc.agg.last(v),
        "collect": sc.agg.collect(v),
        # User aggregators: a bag of values (order-free merge) and a pairwise reduce.
        "bag": sc.Aggregator(lambda: (), lambda acc, r: (*acc, r["v"]), lambda x, y: x + y, sorted),
        "reduced": reducer(lambda x, y: {"v": x["v"] + y["v"]}),
    }


def all_values(records: list[Any]) -> dict[str, Any]:
    """What ``all_aggregators()`` gives for ``records`` (in arrival order)."""
    return {name: fn(records) for name, fn in VALUE_FNS.items()}


def key_of(record: dict[str, Any]) -> Any:
    return record["k"]


@st.composite
def out_of_order_records(draw: st.DrawFn, max_records: int = 40) -> list[dict[str, Any]]:
    """Keyed records whose timestamps drift forward with bounded jitter (and a few outliers)."""
    n = draw(st.integers(0, max_records))
    jitter = draw(st.integers(0, 25))
    clock = draw(st.integers(-30, 30))
    records = []
    for i in range(n):
        clock += draw(st.integers(0, 6))
        ts = clock - draw(st.integers(0, jitter))
        if draw(st.integers(0, 19)) == 0:
            ts -= draw(st.integers(0, 80))  # an outlier, very late
        records.append({"k": draw(st.sampled_from(KEYS)), "v": draw(st.integers(-50, 50)), "ts": ts, "i": i})
    return records


@st.composite
def batched(draw: st.DrawFn, records: list[dict[str, Any]]) -> list[Batch]:
    """Cut ``records`` into source batches of a fixed drawn size."""
    size = draw(st.sampled_from([1, 1, 2, 3, 7, 1000]))
    return [[(r, r["ts"]) for r in records[i : i + size]] for i in range(0, len(records), size)]


pane_assigners = st.one_of(
    st.integers(1, 30).map(lambda size: (size, size)),
    st.tuples(st.integers(1, 8), st.integers(1, 5)).map(lambda p: (p[0] * p[1], p[0])),
    st.tuples(st.integers(1, 20), st.integers(1, 20)).map(lambda p: (max(p), min(p))),
)
"""(size_ms, slide_ms): tumbling, sliding with size a multiple of slide, and any slide <= size."""


class BatchSink(Sink):
    """Keeps each batch it is given, so tests can see how results were grouped."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def write_batch(self, records: list[Any]) -> None:
        self.batches.append(list(records))

    @property
    def items(self) -> list[Any]:
        return [r for b in self.batches for r in b]


class DriverModel:
    """The engine's window stage under ``StageDriver``, with the oracle's interface."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def add_batch(self, batch: Batch) -> None:
        self.driver.add_batch(batch)

    def advance_watermark(self, w: float) -> None:
        if w > self.driver.watermark_ms:
            self.driver.advance_watermark(w)

    def end(self) -> None:
        self.driver.end()

    @property
    def emissions(self) -> Emissions:
        return Emissions([list(b) for b in self.driver.batches], self.driver.late)
