"""Every built-in source and sink passes the connector contract (streamcore.testing).

Memory and file connectors run as they are; Kafka and Redis ones against the servers
the test command starts.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from connectors.files import (
    AvroSink,
    AvroSource,
    CsvSink,
    CsvSource,
    JsonLinesSink,
    JsonLinesSource,
)
from connectors.kafka import KafkaSink, KafkaSource
from connectors.memory import IterableSource, ListSink, QueueSink, QueueSource
from connectors.redis import RedisStreamSink, RedisStreamSource
from streamcore.io import Sink, SinkContext, Source, SourceContext
from streamcore.testing.connector_contract import (
    SinkCase,
    SinkContract,
    SourceCase,
    SourceContract,
    read_records,
)
from tests.connectors.redis_helpers import delete_matching, redis_client

COUNT = 23
ROWS = [{"id": str(i), "name": f"n{i}"} for i in range(COUNT)]
SCHEMA = {
    "type": "record",
    "name": "Row",
    "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}],
}

SOURCES = ["iterable", "queue", "json_lines", "csv", "avro", "kafka", "redis_stream"]
SINKS = ["list", "queue", "json_lines", "csv", "avro", "kafka", "kafka_exactly_once",
         "redis_stream", "redis_stream_exactly_once"]


def _unique(what: str) -> str:
    return f"contract-{what}-{uuid.uuid4().hex[:8]}"


def _queue_source() -> QueueSource:
    source = QueueSource(maxsize=COUNT)
    for row in ROWS:
        source.put_nowait(row)
    source.close()
    return source


async def _fill_kafka(bootstrap: str, topic: str) -> None:
    sink = KafkaSink(topic, bootstrap_servers=bootstrap)
    await sink.open(_sink_context())
    await sink.write_batch(ROWS)
    await sink.close()


async def _fill_redis(url: str, stream: str) -> None:
    sink = RedisStreamSink(stream, url=url, value_format="json")
    await sink.open(_sink_context())
    await sink.write_batch(ROWS)
    await sink.close()


def _sink_context() -> SinkContext:
    return SinkContext("fill", "contract-fill")


async def _kafka_values(bootstrap: str, topic: str) -> list[Any]:
    source = KafkaSource(topic, bootstrap_servers=bootstrap, stop_at_end=True, isolation_level="read_committed")
    await source.open(SourceContext("check"))
    try:
        return [r.value for r in await read_records(source, None)]
    finally:
        await source.close()


async def _redis_values(url: str, stream: str) -> list[Any]:
    source = RedisStreamSource(stream, url=url, value_format="json", stop_at_end=True)
    await source.open(SourceContext("check"))
    try:
        return [r.fields for r in await read_records(source, None)]
    finally:
        await source.close()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own, deleted afterwards (an async fixture cannot be
    asked for from inside another, so every case takes it)."""
    prefix = _unique("redis")
    yield prefix
    async with redis_client(redis_url) as client:
        await delete_matching(client, prefix)


@pytest.fixture(params=SOURCES)
async def source_case(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> SourceCase:
    kind: str = request.param
    if kind == "iterable":
        return SourceCase(kind, lambda: IterableSource(ROWS), COUNT)
    if kind == "queue":
        return SourceCase(kind, _queue_source, COUNT)
    if kind == "json_lines":
        path = tmp_path / "rows.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
        return SourceCase(kind, lambda: JsonLinesSource(path), COUNT)
    if kind == "csv":
        path = tmp_path / "rows.csv"
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, ["id", "name"])
            writer.writeheader()
            writer.writerows(ROWS)
        return SourceCase(kind, lambda: CsvSource(path), COUNT)
    if kind == "avro":
        path = tmp_path / "rows.avro"
        with path.open("wb") as file:
            # Small blocks, so that a rewind lands inside a block as well as between them.
            fastavro.writer(file, SCHEMA, ROWS, sync_interval=64)
        return SourceCase(kind, lambda: AvroSource(path), COUNT)
    if kind == "kafka":
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        topic = await request.getfixturevalue("kafka_topic_factory")()
        await _fill_kafka(bootstrap, topic)
        return SourceCase(
            kind,
            lambda: KafkaSource(topic, bootstrap_servers=bootstrap, stop_at_end=True),
            COUNT,
            same=lambda r: (r.partition, r.offset, r.value),
        )
    assert kind == "redis_stream"
    url: str = request.getfixturevalue("redis_url")
    stream = f"{redis_prefix}:in"
    await _fill_redis(url, stream)
    return SourceCase(
        kind,
        lambda: RedisStreamSource(stream, url=url, value_format="json", stop_at_end=True),
        COUNT,
        same=lambda r: (r.id, r.fields),
    )


class _Last:
    """Remembers the last sink a factory made, for reading back what it wrote."""

    def __init__(self, make: Callable[[], Sink]) -> None:
        self._make = make
        self.sink: Any = None

    def __call__(self) -> Sink:
        self.sink = self._make()
        return self.sink


def _read_jsonl(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _read_csv(path: Path) -> list[Any]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _read_avro(path: Path) -> list[Any]:
    if not path.exists():
        return []
    with path.open("rb") as file:
        return list(fastavro.reader(file))


@pytest.fixture(params=SINKS)
async def sink_case(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> SinkCase:
    kind: str = request.param
    if kind == "list":
        made = _Last(ListSink)

        async def listed() -> list[Any]:
            return list(made.sink.items)

        return SinkCase(kind, made, ROWS, listed)
    if kind == "queue":
        queued = _Last(lambda: QueueSink(maxsize=COUNT))

        async def drained() -> list[Any]:
            return [r async for r in queued.sink]

        return SinkCase(kind, queued, ROWS, drained)
    if kind in ("json_lines", "csv", "avro"):
        path = tmp_path / f"out.{kind}"
        make: Callable[[], Sink] = {
            "json_lines": lambda: JsonLinesSink(path),
            "csv": lambda: CsvSink(path),
            "avro": lambda: AvroSink(path, SCHEMA),
        }[kind]
        read = {"json_lines": _read_jsonl, "csv": _read_csv, "avro": _read_avro}[kind]

        async def in_file() -> list[Any]:
            return read(path)

        return SinkCase(kind, make, ROWS, in_file)
    if kind.startswith("kafka"):
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        topic = await request.getfixturevalue("kafka_topic_factory")()
        exactly_once = kind.endswith("exactly_once")

        async def in_topic() -> list[Any]:
            return await _kafka_values(bootstrap, topic)

        return SinkCase(
            kind, lambda: KafkaSink(topic, bootstrap_servers=bootstrap, exactly_once=exactly_once), ROWS, in_topic
        )
    url: str = request.getfixturevalue("redis_url")
    stream = f"{redis_prefix}:out"
    exactly_once = kind.endswith("exactly_once")

    async def in_stream() -> list[Any]:
        return await _redis_values(url, stream)

    return SinkCase(
        kind,
        lambda: RedisStreamSink(stream, url=url, value_format="json", exactly_once=exactly_once),
        ROWS,
        in_stream,
    )


class TestSources(SourceContract):
    """Every built-in source."""


class TestSinks(SinkContract):
    """Every built-in sink."""


def test_every_builtin_connector_is_in_the_contract_run() -> None:
    import connectors.files
    import connectors.kafka
    import connectors.memory
    import connectors.redis

    builtin = {
        name
        for package in (connectors.memory, connectors.files, connectors.kafka, connectors.redis)
        for name in package.__all__
        if isinstance(getattr(package, name), type) and issubclass(getattr(package, name), Source | Sink)
    }
    covered = {
        "IterableSource", "QueueSource", "JsonLinesSource", "CsvSource", "AvroSource", "KafkaSource",
        "RedisStreamSource", "ListSink", "QueueSink", "JsonLinesSink", "CsvSink", "AvroSink", "KafkaSink",
        "RedisStreamSink",
    }
    # RedisHashSink upserts by key (no ordered output to compare); its own tests cover it.
    assert builtin - covered == {"RedisHashSink"}, builtin - covered
