"""Event timestamps at the source: int ms, datetimes converted, bad ones reported clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.time.duration import to_duration_ms, to_timestamp_ms

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = 1_704_067_200_000


def count_per_minute(records: list[Any], **source_args: Any) -> tuple[sc.Dataflow, ListSink]:
    flow = sc.Dataflow("stamps")
    out = ListSink()
    (
        flow.source(IterableSource(records), **source_args)
        .key_by(lambda r: "all")
        .window(sc.TumblingWindows(timedelta(minutes=1)))
        .aggregate(sc.agg.count())
        .sink(out)
    )
    return flow, out


def test_datetime_timestamps_are_converted_to_int_milliseconds() -> None:
    records = [T0 + timedelta(seconds=10), T0 + timedelta(seconds=70, milliseconds=1), T0.replace(tzinfo=None)]
    flow, out = count_per_minute(records, timestamp=lambda r: r)
    flow.run_sync()
    assert out.items == [
        sc.WindowResult("all", T0_MS, T0_MS + 60_000, 2, False),
        sc.WindowResult("all", T0_MS + 60_000, T0_MS + 120_000, 1, False),
    ]


def test_a_naive_datetime_is_taken_as_utc_and_an_aware_one_keeps_its_offset() -> None:
    assert to_timestamp_ms(datetime(2024, 1, 1)) == T0_MS
    assert to_timestamp_ms(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == T0_MS
    assert to_timestamp_ms(1.9) == 1  # float milliseconds are truncated
    assert to_timestamp_ms(datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)) == -1


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**12), 10**13))
def test_datetime_conversion_is_exact_to_the_millisecond(ms: int) -> None:
    assert to_timestamp_ms(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)) == ms
    assert to_duration_ms(timedelta(milliseconds=ms), "d") == ms


@pytest.mark.parametrize("bad", ["2024-01-01", None, float("nan"), float("inf"), True, object()])
def test_a_bad_timestamp_is_refused_with_what_was_given(bad: Any) -> None:
    with pytest.raises(TypeError, match="int milliseconds or a datetime"):
        to_timestamp_ms(bad)


def test_a_bad_timestamp_fails_the_flow_naming_the_source_and_the_record() -> None:
    flow, _ = count_per_minute([{"ts": 1}, {"ts": "yesterday"}], timestamp=lambda r: r["ts"], name="clicks")
    with pytest.raises(sc.SourceError, match=r"source 'clicks'.*event time.*yesterday.*int milliseconds"):
        flow.run_sync()


def test_a_record_without_a_timestamp_goes_to_dead_letters_with_on_error() -> None:
    records = [{"ts": 1}, {"no_ts": 2}, {"ts": "noon"}, {"ts": 3}]
    flow, out = count_per_minute(records, timestamp=lambda r: r["ts"], name="clicks", on_error="dead_letter")
    dead = ListSink()
    flow.dead_letters.sink(dead)
    flow.run_sync()
    assert out.items == [sc.WindowResult("all", 0, 60_000, 2, False)]
    assert [(d.stage, d.record) for d in dead.items] == [("clicks", {"no_ts": 2}), ("clicks", {"ts": "noon"})]
    assert all(isinstance(d.error, sc.SourceError) for d in dead.items)


def test_bad_timestamps_are_skipped_and_counted_with_on_error_skip() -> None:
    flow, out = count_per_minute([{"ts": 1}, {}, {"ts": 2}], timestamp=lambda r: r["ts"], on_error="skip")
    flow.run_sync()
    assert out.items == [sc.WindowResult("all", 0, 60_000, 2, False)]
    assert flow.statistics().actor("iterable").skipped == 1


def test_durations_take_timedelta_or_int_milliseconds() -> None:
    assert sc.TumblingWindows(timedelta(seconds=1.001)).size_ms == 1001
    assert sc.SlidingWindows(60_000, timedelta(seconds=1)).slide_ms == 1000
    for bad in (timedelta(0), -5):
        with pytest.raises(sc.GraphError, match="positive"):
            sc.TumblingWindows(bad)
    with pytest.raises(sc.GraphError, match="timedelta or int milliseconds"):
        sc.SessionWindows("30s")  # type: ignore[arg-type]
    with pytest.raises(sc.GraphError, match="slide"):
        sc.SlidingWindows(10, 20)
