"""Property: any chain of map / filter / flat_map gives the same list as plain Python."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import StageSpec, batch_sizes, chains, int_records, mailbox_capacities

import streamcore as sc
from connectors.memory import IterableSource, ListSink


def call(spec: StageSpec, x: int) -> Any:
    """The library function's result for ``x``, awaited if it is ``async``."""
    result = spec.fn(x)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


def plain_python(specs: list[StageSpec], records: list[int]) -> list[Any]:
    out: list[Any] = list(records)
    for spec in specs:
        if spec.op == "map":
            out = [call(spec, x) for x in out]
        elif spec.op == "filter":
            out = [x for x in out if call(spec, x)]
        else:
            out = [y for x in out for y in call(spec, x)]
    return out


def run_flow(
    specs: list[StageSpec], records: list[int], batch_size: int, chaining: bool, capacity: int
) -> list[Any]:
    out = ListSink()
    flow = sc.Dataflow("property", chaining=chaining, mailbox_capacity=capacity)
    stream = flow.source(IterableSource(records), batch_size=batch_size)
    for spec in specs:
        if spec.op == "map":
            stream = stream.map(spec.fn, on_error=spec.on_error)
        elif spec.op == "filter":
            stream = stream.filter(spec.fn, on_error=spec.on_error)
        else:
            stream = stream.flat_map(spec.fn, on_error=spec.on_error)
    stream.sink(out)
    flow.run_sync()
    return out.items


@settings(max_examples=60, deadline=None)
@given(
    specs=chains(),
    records=int_records(),
    batch_size=batch_sizes(),
    chaining=st.booleans(),
    capacity=mailbox_capacities(),
)
def test_a_chain_of_stateless_stages_gives_the_same_list_as_plain_python(
    specs: list[StageSpec], records: list[int], batch_size: int, chaining: bool, capacity: int
) -> None:
    assert run_flow(specs, records, batch_size, chaining, capacity) == plain_python(specs, records)


def plain_python_with_time(specs: list[StageSpec], records: list[int]) -> list[tuple[Any, int]]:
    """Like ``plain_python``, each output paired with the event time of its source record."""
    out: list[tuple[Any, int]] = [(x, event_time(x)) for x in records]
    for spec in specs:
        if spec.op == "map":
            out = [(call(spec, x), t) for x, t in out]
        elif spec.op == "filter":
            out = [(x, t) for x, t in out if call(spec, x)]
        else:
            out = [(y, t) for x, t in out for y in call(spec, x)]
    return out


def event_time(x: int) -> int:
    return abs(x) * 10


class WithTimestamp(sc.KeyedProcessFunction):
    """Emits each record paired with the event time it carries."""

    def process(self, record: Any, ctx: sc.ProcessContext) -> list[tuple[Any, int]]:
        return [(record, ctx.timestamp_ms)]


@settings(max_examples=40, deadline=None)
@given(
    specs=chains(),
    records=int_records(),
    batch_size=batch_sizes(),
    chaining=st.booleans(),
)
def test_event_timestamps_stay_with_their_records_through_a_chain(
    specs: list[StageSpec], records: list[int], batch_size: int, chaining: bool
) -> None:
    out = ListSink()
    flow = sc.Dataflow("property-time", chaining=chaining)
    stream = flow.source(IterableSource(records), batch_size=batch_size, timestamp=event_time)
    for spec in specs:
        stream = getattr(stream, spec.op)(spec.fn, on_error=spec.on_error)
    stream.key_by(lambda x: 0).process(WithTimestamp()).sink(out)
    flow.run_sync()
    assert out.items == plain_python_with_time(specs, records)


def test_the_plain_python_model_follows_the_library() -> None:
    specs = [StageSpec("map", "inc"), StageSpec("flat_map", "duplicate"), StageSpec("filter", "even")]
    assert plain_python(specs, [1, 2, 3]) == [2, 2, 4, 4]
    assert plain_python([StageSpec("map", "async_add_three")], [1]) == [4]
