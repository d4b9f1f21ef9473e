"""Recognising ``lambda e: e[key]`` (streamcore/item_lookup.py), and flows that use
such functions behaving exactly as with any other function, errors included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.item_lookup import item_lookup


def named(e: Any) -> Any:
    return e["x"]


@pytest.mark.parametrize(
    ("fn", "want"),
    [
        (lambda e: e["user"], ("user",)),
        (lambda r: r[0], (0,)),
        (named, ("x",)),
    ],
)
def test_a_single_constant_lookup_is_recognised(fn: Any, want: tuple[Any]) -> None:
    assert item_lookup(fn) == want


def nested(e: Any) -> Any:
    return e["a"]["b"]


async def coroutine(e: Any) -> Any:
    return e["x"]


KEY = "k"


@pytest.mark.parametrize(
    "fn",
    [
        None,
        len,
        nested,
        coroutine,
        lambda e: e[KEY],  # a global: its value may change
        lambda e: e.value["ts"],
        lambda e, d=1: e["x"],
        lambda *e: e[0],
        (lambda k: lambda e: e[k])("x"),  # a closure
    ],
)
def test_anything_else_is_left_to_be_called(fn: Any) -> None:
    assert item_lookup(fn) is None


def window_flow(records: list[Any], key: Any, on_error: str = "fail") -> tuple[sc.Dataflow, ListSink, ListSink]:
    flow = sc.Dataflow("inline")
    out, late = ListSink(), ListSink()
    stream = (
        flow.source(IterableSource(records), timestamp=lambda e: e["ts"], max_out_of_orderness=timedelta(0))
        .key_by(key)
        .window(sc.TumblingWindows(timedelta(seconds=10)))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])}, on_error=on_error)
    )
    stream.sink(out)
    flow.dead_letters.sink(late)
    return flow, out, late


RECORDS = [
    {"user": "a", "amount": 1.5, "ts": 1_000},
    {"user": "b", "amount": 2.0, "ts": 2_000},
    {"user": "a", "amount": 3.0, "ts": 3_000},
    {"user": "a", "amount": 4.0, "ts": 12_000},
]


def results(sink: ListSink) -> list[tuple[Any, ...]]:
    return [(r.key, r.start, r.value["n"], r.value["total"]) for r in sink.items]


async def test_a_lookup_key_gives_the_windows_a_called_key_gives() -> None:
    flow, inlined, _ = window_flow(RECORDS, lambda e: e["user"])
    await flow.run()
    flow, called, _ = window_flow(RECORDS, lambda e: str(e["user"]))
    await flow.run()
    assert results(inlined) == results(called) == [
        ("a", 0, 2, 4.5),
        ("b", 0, 1, 2.0),
        ("a", 10_000, 1, 4.0),
    ]


async def test_a_record_without_the_key_is_a_dead_letter_with_the_lookups_error() -> None:
    records = [*RECORDS[:2], {"amount": 1.0, "ts": 2_500}, {"user": "b", "ts": 2_600}, RECORDS[3]]
    flow, out, dead = window_flow(records, lambda e: e["user"], on_error="dead_letter")
    await flow.run()
    assert results(out) == [("a", 0, 1, 1.5), ("b", 0, 1, 2.0), ("a", 10_000, 1, 4.0)]
    errors = [(d.record, type(d.error), str(d.error)) for d in dead.items]
    assert errors == [
        (records[2], KeyError, "'user'"),
        (records[3], KeyError, "'amount'"),
    ]


async def test_a_record_without_the_timestamp_field_fails_the_flow_naming_it() -> None:
    flow = sc.Dataflow("inline-ts")
    flow.source(IterableSource([{"ts": 1}, {"no": 2}]), timestamp=lambda e: e["ts"]).sink(ListSink())
    with pytest.raises(sc.StreamcoreError, match="cannot take the event time"):
        await flow.run()
