"""Each aggregator, a user ``sc.Aggregator``, ``.reduce`` and dict aggregation, checked by hand."""

from __future__ import annotations

from typing import Any

import pytest

import streamcore as sc
from streamcore.testing import StageDriver

# Key "a": values 4, 1, 7 at 1, 2, 3 ms (arrival order); key "b": 5 at 4 ms. One 10 ms window.
RECORDS = [({"k": "a", "v": 4}, 1), ({"k": "a", "v": 1}, 2), ({"k": "a", "v": 7}, 3), ({"k": "b", "v": 5}, 4)]


def window_values(aggregation: Any, assigner: Any = None, records: Any = RECORDS) -> dict[Any, Any]:
    driver = StageDriver.window(assigner or sc.TumblingWindows(10), aggregation, key=lambda r: r["k"])
    driver.add_batch(records)
    driver.end()
    return {r.key: r.value for r in driver.results}


V = lambda r: r["v"]  # noqa: E731


@pytest.mark.parametrize(
    ("aggregator", "a", "b"),
    [
        (sc.agg.count(), 3, 1),
        (sc.agg.sum(V), 12, 5),
        (sc.agg.min(V), 1, 5),
        (sc.agg.max(V), 7, 5),
        (sc.agg.mean(V), 4.0, 5.0),
        (sc.agg.first(V), 4, 5),
        (sc.agg.last(V), 7, 5),
        (sc.agg.collect(V), [4, 1, 7], [5]),
    ],
    ids=lambda p: repr(p) if isinstance(p, sc.Aggregator) else None,
)
def test_each_builtin_aggregator_gives_its_value(aggregator: sc.Aggregator, a: Any, b: Any) -> None:
    assert window_values(aggregator) == {"a": a, "b": b}


def test_aggregators_without_a_function_aggregate_the_record_itself() -> None:
    records = [(3, 1), (9, 2), (6, 3)]
    driver = StageDriver.window(
        sc.TumblingWindows(10),
        {"sum": sc.agg.sum(), "max": sc.agg.max(), "collect": sc.agg.collect()},
        key=lambda r: "all",
    )
    driver.add_batch(records)
    driver.end()
    assert driver.read() == [sc.WindowResult("all", 0, 10, {"sum": 18, "max": 9, "collect": [3, 9, 6]}, False)]


def test_a_dict_aggregation_gives_a_dict_value_by_name() -> None:
    values = window_values({"n": sc.agg.count(), "total": sc.agg.sum(V), "seen": sc.agg.collect(V)})
    assert values == {"a": {"n": 3, "total": 12, "seen": [4, 1, 7]}, "b": {"n": 1, "total": 5, "seen": [5]}}


def test_a_user_aggregator_uses_create_add_and_result() -> None:
    spread = sc.Aggregator(
        create=lambda: (None, None),
        add=lambda acc, r: (V(r) if acc[0] is None else min(acc[0], V(r)), V(r) if acc[1] is None else max(acc[1], V(r))),
        merge=lambda x, y: (min(x[0], y[0]), max(x[1], y[1])),
        result=lambda acc: acc[1] - acc[0],
    )
    assert window_values(spread) == {"a": 6, "b": 0}


def test_a_user_aggregator_merges_panes_of_sliding_windows() -> None:
    total = sc.Aggregator(lambda: 0, lambda acc, r: acc + V(r), lambda x, y: x + y)
    records = [({"k": "a", "v": 1}, 1), ({"k": "a", "v": 10}, 6), ({"k": "a", "v": 100}, 11)]
    driver = StageDriver.window(sc.SlidingWindows(10, 5), total, key=lambda r: r["k"])
    driver.add_batch(records)
    driver.end()
    assert [(r.start, r.value) for r in driver.results] == [(-5, 1), (0, 11), (5, 110), (10, 100)]


def test_a_user_aggregator_without_merge_cannot_be_used_where_accumulators_merge() -> None:
    no_merge = sc.Aggregator(lambda: 0, lambda acc, r: acc + 1)
    assert window_values(no_merge) == {"a": 3, "b": 1}  # tumbling windows never merge
    for assigner in (sc.SlidingWindows(10, 5), sc.SessionWindows(5)):
        with pytest.raises(sc.GraphError, match="has no merge"):
            StageDriver.window(assigner, no_merge, key=lambda r: r["k"])


def test_reduce_folds_records_pairwise_in_arrival_order() -> None:
    driver = StageDriver.reduce(
        sc.TumblingWindows(10), lambda x, y: {"k": x["k"], "v": x["v"] * 10 + y["v"]}, key=lambda r: r["k"]
    )
    driver.add_batch(RECORDS)
    driver.end()
    assert {r.key: r.value for r in driver.results} == {"a": {"k": "a", "v": 417}, "b": {"k": "b", "v": 5}}


def test_reduce_and_first_last_collect_follow_arrival_order_across_merged_sessions() -> None:
    # Two sessions of "a" bridged by a later record: merged values keep arrival order.
    records = [({"k": "a", "v": 1}, 0), ({"k": "a", "v": 2}, 20), ({"k": "a", "v": 3}, 10)]
    agg = {
        "first": sc.agg.first(V),
        "last": sc.agg.last(V),
        "collect": sc.agg.collect(V),
        "concat": sc.Aggregator(lambda: "", lambda acc, r: acc + str(V(r)), lambda x, y: x + y),
    }
    driver = StageDriver.window(sc.SessionWindows(11), agg, key=lambda r: r["k"])
    for record, ts in records:
        driver.add(record, ts)
    driver.end()
    [result] = driver.results
    assert (result.start, result.end) == (0, 31)
    assert result.value["first"] == 1 and result.value["last"] == 3
    assert result.value["collect"] == [1, 2, 3]
    # A user merge is given the accumulators in time order of the sessions, then the record.
    assert result.value["concat"] == "123"


def test_min_and_max_accept_any_comparable_values() -> None:
    records = [({"k": "a", "v": "pear"}, 1), ({"k": "a", "v": "apple"}, 2), ({"k": "a", "v": "zucchini"}, 3)]
    assert window_values({"min": sc.agg.min(V), "max": sc.agg.max(V)}, records=records) == {
        "a": {"min": "apple", "max": "zucchini"}
    }


def test_bad_aggregation_specs_are_refused_at_build_time() -> None:
    for spec in ({}, {"n": len}, {1: sc.agg.count()}, "count", None):
        with pytest.raises(sc.GraphError, match="aggregate"):
            StageDriver.window(sc.TumblingWindows(10), spec, key=lambda r: r)
    with pytest.raises(sc.GraphError):
        sc.agg.sum(5)  # type: ignore[arg-type]
    with pytest.raises(sc.GraphError):
        sc.Aggregator(create=None, add=lambda a, r: a)  # type: ignore[arg-type]
