"""Window state is freed as soon as it can no longer change: memory stays flat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource

N_RECORDS = 60_000
USERS = 20


def long_stream() -> Iterator[dict[str, Any]]:
    """One record per millisecond, 20 users, a little out of order."""
    for i in range(N_RECORDS):
        yield {"user": f"u{i % USERS}", "ts": i - (i * 7919) % 50, "amount": i % 100}


@pytest.mark.parametrize(
    "assigner",
    [sc.TumblingWindows(100), sc.SlidingWindows(200, 50), sc.SessionWindows(30)],
    ids=["tumbling", "sliding", "session"],
)
def test_state_stays_bounded_over_a_long_stream_and_is_empty_at_the_end(assigner: Any) -> None:
    flow = sc.Dataflow("flat", mailbox_capacity=2_000)
    sizes: list[int] = []
    emitted = 0

    def sample(result: sc.WindowResult) -> None:
        nonlocal emitted
        emitted += 1
        if emitted % 200 == 0:
            sizes.append(flow.statistics().stages["window"].accumulators)

    (
        flow.source(IterableSource(long_stream()), timestamp=lambda r: r["ts"], max_out_of_orderness=50, batch_size=500)
        .key_by(lambda r: r["user"])
        .window(assigner, allowed_lateness=100)
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda r: r["amount"])}, name="window")
        .sink(sample)
    )
    flow.run_sync()
    stats = flow.statistics().stages["window"]
    assert (stats.windows, stats.accumulators) == (0, 0)
    assert stats.late == 0
    assert len(sizes) > 20
    # A batch spans 500 ms; with 50 ms out of order and 100 ms lateness, no more than
    # about a second of windows is ever held, whatever the length of the stream.
    per_window = USERS * (4 if isinstance(assigner, sc.SlidingWindows) else 1)
    assert max(sizes) <= per_window * 1000 / 50
    assert max(sizes[len(sizes) // 2 :]) <= 2 * max(sizes[: len(sizes) // 2]) + per_window


def test_statistics_count_fires_updates_and_late_records() -> None:
    from streamcore.testing import StageDriver

    driver = StageDriver.window(sc.TumblingWindows(10), sc.agg.count(), key=lambda r: r, allowed_lateness=10)
    driver.add_batch([("a", 1), ("b", 2), ("a", 15)])
    stats = driver.statistics()
    assert (stats.windows, stats.accumulators, stats.fired) == (2, 3, 0)
    driver.advance_watermark(10)
    driver.add("a", 3)
    driver.advance_watermark(20)
    driver.add_batch([("a", 4), ("b", 16)])  # a: freed at 20, late; b: updates [10, 20)
    stats = driver.statistics()
    assert (stats.windows, stats.accumulators) == (1, 2)
    assert (stats.fired, stats.updates, stats.late, stats.watermark_ms) == (3, 2, 1, 20)
