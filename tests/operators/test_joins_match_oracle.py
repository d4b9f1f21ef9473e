"""Every join kind against its brute-force model (join_oracle.py), on random scripts:
out-of-order and late records, several keys, each side quiet in turn, watermark jumps.
A checkpoint taken and restored at a random step must not change anything."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from join_oracle import as_rows, asof_join, interval_join, no_duplicates, session_join, window_join
from strategies import JoinRecord, join_scripts

import streamcore as sc
from streamcore.testing import JoinDriver

HOWS = ["inner", "left", "right", "outer"]


def key_of(r: JoinRecord) -> str:
    return r.key


def play(driver: JoinDriver, script: list[tuple[str, Any]], restore_at: int | None = None) -> JoinDriver:
    """Run ``script`` through ``driver`` (restoring from a checkpoint before step
    ``restore_at``, with a delta checkpoint before that), then end it."""
    early = None
    for n, (kind, arg) in enumerate(script):
        if restore_at is not None and n == restore_at // 2 and early is None:
            early = driver.snapshot(full=True)
        if restore_at is not None and n == restore_at:
            delta = driver.snapshot(full=False)
            fresh = JoinDriver.restored(driver.stream, [early, delta] if early is not None else [driver.snapshot()])
            fresh.output.batches = driver.output.batches
            fresh.late_output.batches = driver.late_output.batches
            driver = fresh
        if kind == "W":
            if arg > driver.watermark_ms:
                driver.advance_watermark(arg)
        else:
            driver.add_batch(0 if kind == "L" else 1, [(r, r.ts) for r in arg])
    driver.end()
    return driver


restore_points = st.one_of(st.none(), st.integers(1, 24))


@settings(max_examples=150, deadline=None)
@given(
    script=join_scripts(),
    size=st.integers(1, 15),
    slide_div=st.sampled_from([1, 1, 2, 3]),
    lateness=st.sampled_from([0, 0, 5, 20]),
    how=st.sampled_from(HOWS),
    restore_at=restore_points,
)
def test_window_joins_match_the_model(script: list[tuple[str, Any]], size: int, slide_div: int, lateness: int,
                                      how: str, restore_at: int | None) -> None:
    slide = max(1, size // slide_div)
    size = size - size % slide  # a multiple of the slide
    assigner = sc.TumblingWindows(size) if slide == size else sc.SlidingWindows(size, slide)
    driver = play(JoinDriver.window(assigner, key=key_of, how=how, allowed_lateness=lateness), script, restore_at)
    rows, late = window_join(script, size, slide, lateness, how)
    got = as_rows(driver.results)
    assert got == rows
    assert [r.id for r in driver.late] == late
    assert no_duplicates(got)
    stats = driver.statistics()
    assert stats.late == len(late) and stats.state_records == 0
    assert stats.pairs == sum(1 for r in rows if r[1] is not None and r[2] is not None)


# A right record within the lateness joins a fired session: only its new pair is emitted.
LATE_INTO_FIRED_SESSION = [
    ("L", [JoinRecord("L", "a", 0, 0)]), ("R", [JoinRecord("R", "a", 2, 1)]), ("W", 20),
    ("R", [JoinRecord("R", "a", 4, 2)]),
]


@settings(max_examples=300, deadline=None)
@example(script=LATE_INTO_FIRED_SESSION, gap=10, lateness=20, how="inner", restore_at=None)
@given(
    script=join_scripts(),
    gap=st.integers(1, 12),
    lateness=st.sampled_from([0, 0, 5, 20]),
    how=st.sampled_from(HOWS),
    restore_at=restore_points,
)
def test_session_window_joins_match_the_model(script: list[tuple[str, Any]], gap: int, lateness: int, how: str,
                                              restore_at: int | None) -> None:
    driver = play(JoinDriver.window(sc.SessionWindows(gap), key=key_of, how=how, allowed_lateness=lateness),
                  script, restore_at)
    rows, late = session_join(script, gap, lateness, how)
    got = as_rows(driver.results)
    assert got == rows
    assert [r.id for r in driver.late] == late
    assert no_duplicates(got)
    assert driver.statistics().state_records == 0


@settings(max_examples=150, deadline=None)
@given(script=join_scripts(), lower=st.integers(-10, 5), width=st.integers(0, 12), restore_at=restore_points)
def test_interval_joins_match_the_model(script: list[tuple[str, Any]], lower: int, width: int,
                                        restore_at: int | None) -> None:
    driver = play(JoinDriver.interval(lower=lower, upper=lower + width, key=key_of), script, restore_at)
    rows, late = interval_join(script, lower, lower + width)
    assert as_rows(driver.results) == rows
    assert [r.id for r in driver.late] == late
    assert driver.statistics().state_records == 0


@settings(max_examples=150, deadline=None)
@given(script=join_scripts(), how=st.sampled_from(["inner", "left"]), restore_at=restore_points)
def test_asof_joins_match_the_model(script: list[tuple[str, Any]], how: str, restore_at: int | None) -> None:
    driver = play(JoinDriver.asof(key=key_of, how=how), script, restore_at)
    rows, late = asof_join(script, how)
    assert as_rows(driver.results) == rows
    assert [r.id for r in driver.late] == late
    left_ok = sum(1 for kind, batch in script if kind == "L" for r in batch) - sum(
        1 for r in driver.late if r.side == "L")
    stats = driver.statistics()
    assert stats.pairs + stats.unmatched == left_ok
