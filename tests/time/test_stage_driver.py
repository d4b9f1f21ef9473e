"""The virtual-time test kit, and the lateness rules shown step by step with it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource
from streamcore.testing import StageDriver

WR = sc.WindowResult


def counting(assigner: Any, lateness: int = 0) -> StageDriver:
    return StageDriver.window(assigner, sc.agg.count(), key=lambda r: r, allowed_lateness=lateness)


def test_nothing_fires_before_the_watermark_reaches_the_window_end() -> None:
    driver = counting(sc.TumblingWindows(10))
    driver.add("a", 3)
    driver.advance_watermark(9)
    assert driver.read() == []
    driver.advance_watermark(10)
    assert driver.read() == [WR("a", 0, 10, 1, False)]


def test_read_returns_only_what_is_new_and_results_keeps_everything() -> None:
    driver = counting(sc.TumblingWindows(10))
    driver.add("a", 1)
    driver.advance_watermark(10)
    driver.add("a", 11)
    driver.advance_watermark(20)
    assert driver.read() == [WR("a", 0, 10, 1, False), WR("a", 10, 20, 1, False)]
    assert driver.read() == []
    assert len(driver.results) == 2
    assert driver.batches == [[WR("a", 0, 10, 1, False)], [WR("a", 10, 20, 1, False)]]


def test_a_late_record_within_the_lateness_updates_the_window_with_its_full_value() -> None:
    driver = counting(sc.TumblingWindows(10), lateness=5)
    driver.add_batch([("a", 1), ("a", 2)])
    driver.advance_watermark(12)
    assert driver.read() == [WR("a", 0, 10, 2, False)]
    driver.add_batch([("a", 3), ("a", 4), ("b", 9)])  # one update per window and key per batch
    assert sorted(driver.read()) == [WR("a", 0, 10, 4, True), WR("b", 0, 10, 1, True)]
    driver.advance_watermark(14)
    driver.add("a", 5)
    assert driver.read() == [WR("a", 0, 10, 5, True)]


def test_at_end_plus_lateness_the_state_is_freed_and_later_records_go_to_late() -> None:
    driver = counting(sc.TumblingWindows(10), lateness=5)
    driver.add("a", 1)
    driver.advance_watermark(14)
    assert driver.statistics().accumulators == 1
    driver.advance_watermark(15)
    assert driver.statistics().accumulators == 0
    driver.add_batch([("a", 9), ("a", 15)])
    assert driver.read_late() == ["a"]  # unchanged record; counted
    assert driver.statistics().late == 1
    driver.end()
    assert driver.read() == [WR("a", 0, 10, 1, False), WR("a", 10, 20, 1, False)]


def test_without_lateness_a_record_behind_the_watermark_is_late_at_once() -> None:
    driver = counting(sc.TumblingWindows(10))
    driver.advance_watermark(10)
    driver.add("a", 9)
    assert driver.late == ["a"] and driver.results == []


def test_a_sliding_record_is_late_only_when_all_its_windows_are_freed() -> None:
    driver = counting(sc.SlidingWindows(10, 5))
    driver.advance_watermark(10)
    driver.add("a", 7)  # [0, 10) is freed, [5, 15) is open
    assert driver.late == []
    driver.end()
    assert driver.read() == [WR("a", 5, 15, 1, False)]


def test_session_windows_merge_and_a_late_bridge_updates_the_merged_session() -> None:
    driver = counting(sc.SessionWindows(5), lateness=20)
    driver.add_batch([("a", 0), ("a", 10)])
    driver.advance_watermark(16)
    assert driver.read() == [WR("a", 0, 5, 1, False), WR("a", 10, 15, 1, False)]
    driver.add("a", 5)  # [5, 10) overlaps neither: sessions are half open
    assert driver.read() == [WR("a", 5, 10, 1, True)]
    driver.add("a", 4)  # [4, 9) bridges [0, 5) and [5, 10)
    assert driver.read() == [WR("a", 0, 10, 3, True)]
    driver.add("a", 9)  # [9, 14) bridges [0, 10) and [10, 15)
    assert driver.read() == [WR("a", 0, 15, 5, True)]
    driver.advance_watermark(35)  # [0, 15) is freed at 15 + 20
    assert driver.statistics().windows == 0
    driver.advance_watermark(39)
    driver.add("a", 14)  # its own [14, 19) is freed at 19 + 20 too
    assert driver.late == ["a"]


def test_a_late_merge_that_extends_a_session_past_the_watermark_waits_for_its_end() -> None:
    driver = counting(sc.SessionWindows(10), lateness=10)
    driver.add("a", 0)
    driver.advance_watermark(10)
    assert driver.read() == [WR("a", 0, 10, 1, False)]
    driver.add("a", 8)  # merged session [0, 18): its end is not reached yet
    assert driver.read() == []
    driver.advance_watermark(18)
    assert driver.read() == [WR("a", 0, 18, 2, True)]  # replaces the earlier [0, 10) result


def test_the_end_of_stream_fires_every_open_window_once() -> None:
    driver = counting(sc.TumblingWindows(10), lateness=100)
    driver.add_batch([("a", 1), ("a", 25), ("b", 1000)])
    driver.advance_watermark(10)
    driver.end()
    assert driver.read() == [WR("a", 0, 10, 1, False), WR("a", 20, 30, 1, False), WR("b", 1000, 1010, 1, False)]
    assert driver.statistics().windows == 0


def test_advance_watermark_to_infinity_is_the_end_of_stream() -> None:
    driver = counting(sc.TumblingWindows(10))
    driver.add("a", 1)
    driver.advance_watermark(math.inf)
    assert driver.ended and driver.read() == [WR("a", 0, 10, 1, False)]
    with pytest.raises(RuntimeError, match="end of its stream"):
        driver.add("a", 2)


def test_watermarks_never_go_back() -> None:
    driver = counting(sc.TumblingWindows(10))
    driver.advance_watermark(20)
    driver.advance_watermark(20)
    with pytest.raises(ValueError, match="never go back"):
        driver.advance_watermark(19)


def test_the_driver_takes_datetimes_and_timedeltas() -> None:
    t0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    ms = int(t0.timestamp()) * 1000
    driver = counting(sc.TumblingWindows(timedelta(minutes=1)))
    driver.add("a", t0 + timedelta(seconds=5, milliseconds=7))
    driver.advance_watermark(t0)
    driver.advance_watermark_by(timedelta(seconds=60))
    assert driver.read() == [WR("a", ms, ms + 60_000, 1, False)]


def test_the_driver_runs_a_stage_built_in_a_flow() -> None:
    flow = sc.Dataflow("built")
    results = (
        flow.source(IterableSource([]), timestamp=lambda r: r["ts"])
        .map(lambda r: r)
        .key_by(lambda r: r["user"])
        .window(sc.TumblingWindows(10), allowed_lateness=5)
        .aggregate({"n": sc.agg.count()}, name="per_user", on_error="dead_letter")
    )
    driver = StageDriver(results)
    assert driver.name == "per_user"
    driver.add_batch([({"user": "u"}, 1), ({"nobody": 1}, 2)])
    driver.end()
    assert driver.read() == [WR("u", 0, 10, {"n": 1}, False)]
    [dead] = driver.dead_letters
    assert dead.stage == "per_user" and dead.record == {"nobody": 1} and isinstance(dead.error, KeyError)


def test_the_driver_refuses_a_stage_without_event_time() -> None:
    flow = sc.Dataflow("plain")
    stream = flow.source(IterableSource([])).map(lambda r: r)
    with pytest.raises(sc.GraphError, match="window or process"):
        StageDriver(stream)


@pytest.mark.parametrize("assigner", [sc.TumblingWindows(10), sc.SlidingWindows(10, 5), sc.SessionWindows(5)])
def test_a_failing_key_or_value_fails_the_stage_with_its_name_and_the_record(assigner: Any) -> None:
    driver = StageDriver.window(assigner, sc.agg.sum(lambda r: r["v"]), key=lambda r: r["k"])
    with pytest.raises(sc.StageError, match=r"window.* failed on record \{'k': 'a'\}: KeyError") as info:
        driver.add_batch([({"k": "b", "v": 1}, 1), ({"k": "a"}, 2)])
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.record == {"k": "a"}


@pytest.mark.parametrize("assigner", [sc.TumblingWindows(10), sc.SlidingWindows(10, 5), sc.SessionWindows(5)])
def test_a_skipped_record_leaves_no_empty_accumulator_behind(assigner: Any) -> None:
    driver = StageDriver.window(
        assigner, {"n": sc.agg.count(), "total": sc.agg.sum(lambda r: r["v"])}, key=lambda r: r["k"], on_error="skip"
    )
    driver.add_batch([({"k": "a"}, 1), ({"k": "b", "v": 2}, 2)])
    driver.end()
    assert driver.skipped == 1
    assert {r.key for r in driver.results} == {"b"}
