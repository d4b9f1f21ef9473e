"""Event timestamps at the source: int ms, datetimes converted, bad ones reported clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.duration import format_duration, to_duration_ms, to_timestamp_ms

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
    with pytest.raises(sc.GraphError, match="timedelta, int milliseconds or duration text"):
        sc.SessionWindows([30])  # type: ignore[arg-type]
    with pytest.raises(sc.GraphError, match="slide"):
        sc.SlidingWindows(10, 20)


# -- one duration parser for every duration argument ---------------------------------------


def test_duration_text_is_taken_everywhere_a_duration_is() -> None:
    assert sc.TumblingWindows("10s").size_ms == 10_000
    assert sc.SlidingWindows("1m", "500ms").slide_ms == 500
    assert sc.SessionWindows("2h").gap_ms == 7_200_000
    assert sc.TumblingWindows("1.5s").size_ms == 1_500
    flow = sc.Dataflow("texts")
    events = flow.source(IterableSource([]), max_out_of_orderness="2s", idle_timeout="5s", linger="10ms")
    assert (events.node.max_out_of_orderness_ms, events.node.idle_timeout_ms) == (2_000, 5_000)
    windowed = events.key_by(lambda r: r).window(sc.TumblingWindows("1m"), allowed_lateness="30s")
    assert windowed.allowed_lateness_ms == 30_000
    store = sc.MemoryStateStore()
    assert sc.Checkpointing(store, interval="500ms", timeout="1m").interval_s == 0.5
    policy = sc.RestartPolicy(2, delay="2s", max_delay="1m")
    assert (policy.delay_s, policy.max_delay_s) == (2.0, 60.0)
    assert sc.Retry(2, delay="250ms").delay_s == 0.25


def test_bare_numbers_keep_their_documented_unit() -> None:
    # Stream durations: int milliseconds. Wall-clock settings: seconds.
    assert sc.TumblingWindows(10).size_ms == 10
    assert sc.Checkpointing(sc.MemoryStateStore(), interval=10).interval_s == 10.0
    assert sc.RestartPolicy(1, delay=0.5).delay_s == 0.5
    assert sc.Retry(1, delay=2).delay_s == 2.0


def test_a_float_where_whole_milliseconds_are_expected_shows_both_readings() -> None:
    with pytest.raises(sc.GraphError) as info:
        sc.TumblingWindows(10.5)  # type: ignore[arg-type]
    message = str(info.value)
    assert "TumblingWindows size=10.5 is a float" in message
    assert "10.5 ms" in message and "10s500ms" in message and "10500 ms" in message
    assert isinstance(info.value, ValueError)  # DurationError is also a ValueError and a TypeError
    with pytest.raises(sc.GraphError, match=r"allowed_lateness=2\.0 is a float"):
        sc.Dataflow("f").source(IterableSource([])).key_by(lambda r: r).window(
            sc.TumblingWindows(10), allowed_lateness=2.0  # type: ignore[arg-type]
        )


def test_bad_duration_text_names_the_argument_and_the_forms() -> None:
    with pytest.raises(sc.GraphError, match=r"SessionWindows gap '10 parsecs' is not a duration.*'500ms', '10s'"):
        sc.SessionWindows("10 parsecs")
    with pytest.raises(ValueError, match="checkpoint interval 'soon' is not a duration"):
        sc.Checkpointing(sc.MemoryStateStore(), interval="soon")


def test_negative_durations_print_as_durations() -> None:
    with pytest.raises(sc.GraphError) as info:
        sc.TumblingWindows(timedelta(seconds=-5))
    assert "got -5s" in str(info.value) and "days" not in str(info.value)
    with pytest.raises(sc.GraphError, match="allowed_lateness must not be negative, got -1m30s"):
        sc.Dataflow("n").source(IterableSource([])).key_by(lambda r: r).window(
            sc.TumblingWindows(10), allowed_lateness=timedelta(seconds=-90)
        )
    with pytest.raises(ValueError, match="restart delay must not be negative, got -2s"):
        sc.RestartPolicy(1, delay=-2)
    assert [format_duration(ms) for ms in (0, 250, 90_000, -5_000, 86_400_001)] == [
        "0ms", "250ms", "1m30s", "-5s", "1d1ms"
    ]


@pytest.mark.parametrize(
    ("ts", "unit"),
    [(1_704_067_200, "seconds"), (1_704_067_200_000_000, "microseconds"), (1_704_067_200_000_000_000, "microseconds")],
    ids=["seconds", "microseconds", "nanoseconds"],
)
def test_timestamps_that_look_like_seconds_or_microseconds_log_one_warning_naming_the_source(
    ts: int, unit: str, caplog: pytest.LogCaptureFixture
) -> None:
    flow, _ = count_per_minute([{"ts": ts + i} for i in range(5)], timestamp=lambda r: r["ts"], name="clicks",
                               batch_size=1)
    with caplog.at_level("WARNING"):
        flow.run_sync()
    warnings = [r.getMessage() for r in caplog.records if "looks like" in r.getMessage()]
    assert len(warnings) == 1
    assert f"source 'clicks': event timestamp {ts} looks like {unit}" in warnings[0]


def test_millisecond_timestamps_log_no_unit_warning(caplog: pytest.LogCaptureFixture) -> None:
    flow, _ = count_per_minute([{"ts": T0_MS}, {"ts": 5}], timestamp=lambda r: r["ts"])
    with caplog.at_level("WARNING"):
        flow.run_sync()
    assert not [r for r in caplog.records if "looks like" in r.getMessage()]
