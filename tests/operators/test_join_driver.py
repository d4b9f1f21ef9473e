"""The join semantics of docs/joins.md, one readable case each, in virtual time."""

from __future__ import annotations

import streamcore as sc
from streamcore.testing import JoinDriver


def key(r: dict[str, str]) -> str:
    return r["k"]


def test_a_window_join_emits_when_the_window_fires_and_late_pairs_as_updates() -> None:
    driver = JoinDriver.window(sc.TumblingWindows(10), key=key, how="left", allowed_lateness=5)
    click, order = {"k": "a", "id": "c1"}, {"k": "a", "id": "o1"}
    driver.add_left(click, 3)
    driver.add_left({"k": "b", "id": "c2"}, 4)
    driver.advance_watermark(9)
    assert driver.read() == []  # the window [0, 10) has not fired
    driver.advance_watermark(10)
    assert driver.read() == [
        sc.JoinResult("a", click, None, 0, 10),
        sc.JoinResult("b", {"k": "b", "id": "c2"}, None, 0, 10),
    ]
    driver.add_right(order, 7)  # within the lateness: the new pair, flagged
    assert driver.read() == [sc.JoinResult("a", click, order, 0, 10, is_update=True)]
    driver.advance_watermark(15)  # freed: the next record of [0, 10) is late
    driver.add_right({"k": "a", "id": "o2"}, 8)
    assert driver.read() == [] and driver.late == [{"k": "a", "id": "o2"}]
    assert driver.statistics().late == 1 and driver.statistics().state_records == 0


def test_an_asof_join_waits_for_the_watermark_and_uses_the_version_of_its_time() -> None:
    driver = JoinDriver.asof(key=key, how="left")
    v1, v2 = {"k": "a", "price": 1}, {"k": "a", "price": 2}
    trade = {"k": "a", "trade": 1}
    driver.add_right(v1, 10)
    driver.add_left(trade, 15)
    driver.advance_watermark(15)
    assert driver.read() == []  # a version at 15 could still come
    driver.add_right(v2, 20)  # later than the trade: not its version
    driver.advance_watermark(16)
    assert driver.read() == [sc.JoinResult("a", trade, v1, None, None)]


def test_an_asof_join_keeps_only_the_versions_that_can_still_match() -> None:
    driver = JoinDriver.asof(key=key, how="inner")
    for t in range(0, 1000, 10):
        driver.add_right({"k": "a", "v": t}, t)
        driver.advance_watermark(t)
    # Freed when the key gets a version: at the last one (990, W = 980) the newest version
    # before W (970) is kept, and those at or after W (980, 990); 97 older ones are gone.
    assert driver.statistics().state_records == 3


def test_an_interval_join_pairs_at_once_and_frees_state_with_the_watermark() -> None:
    driver = JoinDriver.interval(lower=-2, upper=3, key=key)
    left, right = {"k": "a", "id": 1}, {"k": "a", "id": 2}
    driver.add_left(left, 10)
    driver.add_right(right, 13)  # 10 - 2 <= 13 <= 10 + 3: emitted at once
    assert driver.read() == [sc.JoinResult("a", left, right, None, None)]
    assert driver.statistics().state_records == 2
    driver.advance_watermark(16)  # the left is freed after 13, the right after 15
    assert driver.statistics().state_records == 0
