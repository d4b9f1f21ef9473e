"""The watermark strategies of the time layer, each on its own with a manual clock."""

from __future__ import annotations

import math

from streamcore.time.watermarks import BoundedOutOfOrderness, Idleness, PerPartition, SourceGiven


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bounded_out_of_orderness_is_the_max_seen_minus_the_bound_and_never_goes_back() -> None:
    marks = BoundedOutOfOrderness(2_000)
    assert marks.on_timestamps([]) is None and marks.watermark_ms == -math.inf
    assert marks.on_timestamps([5_000, 3_000]) == 3_000
    assert marks.on_timestamps([4_000]) is None  # older than the max: no move
    assert marks.on_timestamps([9_000]) == 7_000
    assert marks.advance_to(6_000) is None and marks.watermark_ms == 7_000
    assert marks.advance_to(8_000) == 8_000


def test_per_partition_is_the_minimum_over_partitions_that_are_not_idle() -> None:
    clock = Clock()
    marks = PerPartition(0, idle_timeout_s=5.0, clock=clock)
    assert marks.on_batch(["a", "b"], [10, 20], ["a", "b"], caught_up=set()) == 10
    assert marks.held_back_by == "a"
    assert marks.on_batch(["b"], [30], ["a", "b"], caught_up={"a"}) is None  # a still holds
    clock.now += 4.9
    assert marks.on_batch(None, None, ["a", "b"], caught_up={"a"}) is None
    clock.now += 0.2  # a: caught up and quiet for idle_timeout -> left out
    assert marks.on_batch(None, None, ["a", "b"], caught_up={"a"}) == 30
    assert marks.held_back_by == "b"


def test_a_partition_with_a_backlog_holds_the_watermark_however_long_it_is_quiet() -> None:
    clock = Clock()
    marks = PerPartition(0, idle_timeout_s=1.0, clock=clock)
    marks.on_batch(["a", "b"], [10, 20], ["a", "b"], caught_up=set())
    clock.now += 3600
    assert marks.on_batch(None, None, ["a", "b"], caught_up={"b"}) is None  # a is behind, not idle
    assert marks.held_back_by == "a"


def test_without_idle_timeout_only_a_caught_up_partition_that_never_gave_is_left_out() -> None:
    clock = Clock()
    marks = PerPartition(0, idle_timeout_s=None, clock=clock)
    assert marks.on_batch(["a"], [10], ["a", "empty"], caught_up={"empty"}) == 10
    clock.now += 3600
    assert marks.on_batch(None, None, ["a", "empty"], caught_up={"a", "empty"}) is None
    assert not marks.never_gave_and_caught_up(["a", "empty"], {"a", "empty"})
    fresh = PerPartition(0, idle_timeout_s=None, clock=clock)
    assert fresh.never_gave_and_caught_up(["empty"], {"empty"})
    assert not fresh.never_gave_and_caught_up(["empty"], set())


def test_a_source_given_watermark_is_taken_only_forward_and_finite() -> None:
    marks = SourceGiven()
    assert marks.on_source(None) is None
    assert marks.on_source(50) == 50 and marks.max_timestamp_ms == 50
    assert marks.on_source(40) is None
    assert marks.on_source(math.inf) is None and marks.watermark_ms == 50


def test_idleness_counts_quiet_time_from_the_last_data_and_fires_once() -> None:
    clock = Clock()
    idle = Idleness(2.0, clock)
    clock.now += 1.9
    assert not idle.goes_idle()
    clock.now += 0.2
    assert not idle.goes_idle(caught_up=False)  # a backlog is not idleness
    assert idle.goes_idle() and idle.is_idle
    assert not idle.goes_idle()  # once
    assert idle.on_data() and not idle.is_idle  # active again, and says so
    clock.now += 1.0
    assert not idle.goes_idle()


def test_without_a_timeout_a_source_never_goes_idle() -> None:
    clock = Clock()
    idle = Idleness(None, clock)
    clock.now += 1e9
    assert not idle.goes_idle()
