"""The window stages against a brute-force oracle of the exact event-time semantics.

Random out-of-order keyed streams, random assigners, lateness, out-of-orderness bounds
and batch sizes; the engine's results (fires, updates, their grouping per batch or
watermark step) and its late records must equal the oracle's. Run both under the
virtual-time ``StageDriver`` (many examples) and as whole flows (fewer).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from time_oracle import PaneOracle, SessionOracle, canonical, run_batches
from time_strategies import (
    BatchSink,
    DriverModel,
    all_aggregators,
    all_values,
    batched,
    key_of,
    out_of_order_records,
    pane_assigners,
)

import streamcore as sc
from connectors.memory import IterableSource
from streamcore.testing import StageDriver

lateness_ms = st.sampled_from([0, 0, 1, 5, 13, 40])
bound_ms = st.sampled_from([0, 0, 2, 7, 20])


def assert_same(engine: Any, oracle: Any) -> None:
    assert canonical(engine.groups) == canonical(oracle.groups)
    assert engine.late == oracle.late


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    records=out_of_order_records(),
    window=pane_assigners,
    lateness=lateness_ms,
    bound=bound_ms,
)
def test_tumbling_and_sliding_windows_match_the_oracle(
    data: st.DataObject, records: list[dict[str, Any]], window: tuple[int, int], lateness: int, bound: int
) -> None:
    size, slide = window
    batches = data.draw(batched(records))
    assigner = sc.TumblingWindows(size) if size == slide else sc.SlidingWindows(size, slide)
    driver = StageDriver.window(assigner, all_aggregators(), key=key_of, allowed_lateness=lateness)
    engine = run_batches(DriverModel(driver), batches, bound)
    oracle = run_batches(PaneOracle(size, slide, all_values, key_of, lateness), batches, bound)
    assert_same(engine, oracle)
    stats = driver.statistics()
    assert (stats.windows, stats.accumulators) == (0, 0)
    assert stats.late == len(oracle.late)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    records=out_of_order_records(),
    gap=st.integers(1, 25),
    lateness=lateness_ms,
    bound=bound_ms,
)
def test_session_windows_match_the_oracle(
    data: st.DataObject, records: list[dict[str, Any]], gap: int, lateness: int, bound: int
) -> None:
    batches = data.draw(batched(records))
    driver = StageDriver.window(sc.SessionWindows(gap), all_aggregators(), key=key_of, allowed_lateness=lateness)
    engine = run_batches(DriverModel(driver), batches, bound)
    oracle = run_batches(SessionOracle(gap, all_values, key_of, lateness), batches, bound)
    assert_same(engine, oracle)
    assert driver.statistics().windows == 0


@settings(max_examples=60, deadline=None)
@given(data=st.data(), records=out_of_order_records())
def test_state_between_watermarks_is_what_the_oracle_keeps(
    data: st.DataObject, records: list[dict[str, Any]]
) -> None:
    # Freed means freed: after each watermark step, the engine holds exactly the
    # (key, window) accumulators the oracle still keeps.
    size = data.draw(st.integers(1, 20))
    lateness = data.draw(lateness_ms)
    batches = data.draw(batched(records))
    driver = StageDriver.window(sc.TumblingWindows(size), sc.agg.count(), key=key_of, allowed_lateness=lateness)
    oracle = PaneOracle(size, size, len, key_of, lateness)
    for batch in batches:
        driver.add_batch(batch)
        oracle.add_batch(batch)
        w = max(t for _, t in batch)
        if w > driver.watermark_ms:
            driver.advance_watermark(w)
            oracle.advance_watermark(w)
        assert driver.statistics().accumulators == oracle.state_size()


def run_flow(records: list[dict[str, Any]], window: Any, lateness: int, bound: int, batch_size: int) -> Any:
    from time_oracle import Emissions

    flow = sc.Dataflow("oracle")
    results = (
        flow.source(
            IterableSource(records), timestamp=lambda r: r["ts"], max_out_of_orderness=bound, batch_size=batch_size
        )
        .key_by(key_of)
        .window(window, allowed_lateness=lateness)
        .aggregate(all_aggregators())
    )
    out, late = BatchSink(), BatchSink()
    results.sink(out)
    results.late.sink(late)
    flow.run_sync()
    return Emissions(out.batches, late.items)


@settings(max_examples=25, deadline=None)
@given(
    records=out_of_order_records(),
    window=pane_assigners,
    lateness=lateness_ms,
    bound=bound_ms,
    batch_size=st.sampled_from([1, 3, 1000]),
)
def test_pane_windows_in_a_running_flow_match_the_oracle(
    records: list[dict[str, Any]], window: tuple[int, int], lateness: int, bound: int, batch_size: int
) -> None:
    size, slide = window
    assigner = sc.TumblingWindows(size) if size == slide else sc.SlidingWindows(size, slide)
    batches = [[(r, r["ts"]) for r in records[i : i + batch_size]] for i in range(0, len(records), batch_size)]
    engine = run_flow(records, assigner, lateness, bound, batch_size)
    oracle = run_batches(PaneOracle(size, slide, all_values, key_of, lateness), batches, bound)
    assert_same(engine, oracle)


@settings(max_examples=25, deadline=None)
@given(
    records=out_of_order_records(),
    gap=st.integers(1, 25),
    lateness=lateness_ms,
    bound=bound_ms,
    batch_size=st.sampled_from([1, 3, 1000]),
)
def test_session_windows_in_a_running_flow_match_the_oracle(
    records: list[dict[str, Any]], gap: int, lateness: int, bound: int, batch_size: int
) -> None:
    batches = [[(r, r["ts"]) for r in records[i : i + batch_size]] for i in range(0, len(records), batch_size)]
    engine = run_flow(records, sc.SessionWindows(gap), lateness, bound, batch_size)
    oracle = run_batches(SessionOracle(gap, all_values, key_of, lateness), batches, bound)
    assert_same(engine, oracle)
