"""Contract tests every ``Source`` and ``Sink`` must pass.

Subclass ``SourceContract`` in a test module (its name must start with ``Test``) and
provide a ``source_case`` fixture returning a ``SourceCase``: a factory making a new
source over one fixed, finite input, and how many records that input holds. Likewise
``SinkContract`` with a ``sink_case`` fixture returning a ``SinkCase``: a factory, the
records to write, and how to read back what the output holds. Every test method here
then runs against each case. Each test checks one clause of the contract in
``streamcore.io``; a new connector is done when it passes them (tests/connectors/
test_connector_contract.py runs every built-in connector through them).
Design: docs/testing.md#the-connector-contract
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from streamcore.io import Sink, SinkContext, Source, SourceContext

__all__ = ["SinkCase", "SinkContract", "SourceCase", "SourceContract", "read_records"]

_DEADLINE_S = 30.0
"""How long a read may take to deliver what the input holds (a real broker may be slow)."""


@dataclass(frozen=True)
class SourceCase:
    """A source to check: ``make()`` gives a new one over the same ``count`` records."""

    name: str
    make: Callable[[], Source]
    count: int
    same: Callable[[Any], Any] = field(default=lambda record: record)
    """What of a record two reads of the same input agree on (the record itself by default)."""

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class SinkCase:
    """A sink to check: ``make()`` gives a new one; ``written()`` what its output holds."""

    name: str
    make: Callable[[], Sink]
    records: list[Any]
    written: Callable[[], Awaitable[list[Any]]]
    """The records in the output, comparable with ``records`` (published ones only)."""

    def __repr__(self) -> str:
        return self.name


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _json_round_trip(value: Any) -> Any:
    # Positions and sink states are stored as JSON in checkpoints.
    return orjson.loads(orjson.dumps(value))


async def read_records(source: Source, count: int | None, max_records: int = 1000) -> list[Any]:
    """Read from an open ``source`` until its end, or until ``count`` records came.

    Fails if that takes longer than 30 s, or if a batch holds more than ``max_records``.
    """
    deadline = time.monotonic() + _DEADLINE_S
    out: list[Any] = []
    while count is None or len(out) < count:
        assert time.monotonic() < deadline, f"{source!r}: {len(out)} of {count} records after {_DEADLINE_S}s"
        batch = await source.read_batch(max_records, 0.05)
        if batch is None:
            break
        assert len(batch) <= max_records, f"a batch of {len(batch)} records where at most {max_records} were asked"
        out.extend(batch)
    return out


async def _read_from(case: SourceCase, place: Any) -> list[Any]:
    """Everything a new source of ``case`` reads when opened at ``place``."""
    source = case.make()
    await source.open(SourceContext("contract"), place)
    try:
        return await read_records(source, None)
    finally:
        await source.close()


class SourceContract:
    """Mix-in of source contract tests; needs a ``source_case`` fixture."""

    async def test_a_source_reads_every_record_of_its_input_then_ends(self, source_case: SourceCase) -> None:
        source = source_case.make()
        await source.open(SourceContext("contract"))
        try:
            records = await read_records(source, None, max_records=7)
        finally:
            await source.close()
        assert len(records) == source_case.count

    async def test_the_position_is_json_and_rewinding_to_it_reads_the_same_records(
        self, source_case: SourceCase
    ) -> None:
        first = source_case.make()
        if not first.rewindable:
            await _refused_under_checkpoints(first)
            return
        await first.open(SourceContext("contract"))
        try:
            head = await read_records(first, min(3, source_case.count), max_records=3)
            place = _json_round_trip(first.position())
            rest = await read_records(first, None)
        finally:
            await first.close()
        replay = await _read_from(source_case, place)
        assert len(head) + len(rest) == source_case.count
        assert [source_case.same(r) for r in replay] == [source_case.same(r) for r in rest]

    async def test_a_source_resumed_at_its_end_reads_nothing(self, source_case: SourceCase) -> None:
        first = source_case.make()
        if not first.rewindable:
            await _refused_under_checkpoints(first)
            return
        await first.open(SourceContext("contract"))
        try:
            await read_records(first, None)
            place = _json_round_trip(first.position())
        finally:
            await first.close()
        assert await _read_from(source_case, place) == []

    async def test_close_is_idempotent(self, source_case: SourceCase) -> None:
        source = source_case.make()
        await source.open(SourceContext("contract"))
        await read_records(source, 1)
        await source.close()
        await source.close()


async def _refused_under_checkpoints(source: Source) -> None:
    """A source that cannot rewind is refused before a checkpointed run reads anything."""
    from streamcore.dataflow.flow import Dataflow
    from streamcore.errors import SetupError
    from streamcore.state.checkpointing import Checkpointing
    from streamcore.state.memory import MemoryStateStore

    flow = Dataflow("contract-refused")
    flow.source(source, name="src").sink(lambda record: None, name="out")
    with pytest.raises(SetupError, match="cannot rewind"):
        await flow.run(checkpoint=Checkpointing(MemoryStateStore()))


class SinkContract:
    """Mix-in of sink contract tests; needs a ``sink_case`` fixture."""

    async def test_records_written_are_in_the_output_after_close(self, sink_case: SinkCase) -> None:
        sink = sink_case.make()
        await sink.open(SinkContext("contract", "contract-flow"))
        half = len(sink_case.records) // 2
        await _maybe(sink.write_batch(sink_case.records[:half]))
        await _maybe(sink.write_batch(sink_case.records[half:]))
        await sink.close()
        assert await sink_case.written() == sink_case.records

    async def test_a_checkpointed_sink_publishes_what_it_pre_committed_at_commit(
        self, sink_case: SinkCase
    ) -> None:
        sink = sink_case.make()
        if not sink.supports_checkpoints:
            # Its flag must not lie: a sink without checkpoint state keeps none at a barrier,
            # and what it wrote before it is in its output after close.
            await sink.open(SinkContext("contract", "contract-flow", checkpointing=True))
            await _maybe(sink.write_batch(sink_case.records))
            assert await _maybe(sink.pre_commit(1)) is None, f"{sink_case.name} kept checkpoint state"
            await sink.close()
            assert await sink_case.written() == sink_case.records
            return
        await sink.restore(None)
        await sink.open(SinkContext("contract", "contract-flow", checkpointing=True))
        half = len(sink_case.records) // 2
        await _maybe(sink.write_batch(sink_case.records[:half]))
        state = _json_round_trip(await _maybe(sink.pre_commit(1)))
        await _maybe(sink.commit(1, state))
        await _maybe(sink.write_batch(sink_case.records[half:]))
        state = _json_round_trip(await _maybe(sink.pre_commit(2)))
        await _maybe(sink.commit(2, state))
        await sink.close()
        assert await sink_case.written() == sink_case.records
