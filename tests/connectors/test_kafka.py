"""KafkaSource and KafkaSink against the real broker the test command starts.

Sources are read to the end with ``stop_at_end=True``; conditions on a live source are
awaited by reading with a deadline, never by sleeping.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from services import TopicFactory

import streamcore as sc
from connectors.kafka import KafkaRecord, KafkaSink, KafkaSource
from connectors.memory import IterableSource, ListSink
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext, SourceContext

pytestmark = pytest.mark.kafka

SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "ts", "type": "long"},
    ],
}
READINGS = [{"sensor": f"s{i % 3}", "value": i * 0.5, "ts": 1_000 + i} for i in range(20)]


# -- helpers ------------------------------------------------------------------------------


async def read_topic(bootstrap: str, topic: str, **options: Any) -> list[KafkaRecord]:
    """Everything in ``topic`` now (a finite read with stop_at_end)."""
    source = KafkaSource(topic, bootstrap_servers=bootstrap, stop_at_end=True, **options)
    await source.open(SourceContext("read"))
    out: list[KafkaRecord] = []
    try:
        while (batch := await source.read_batch(1000, 0.1)) is not None:
            out.extend(batch)
    finally:
        await source.close()
    return out


async def committed_values(bootstrap: str, topic: str) -> list[Any]:
    """The values a ``read_committed`` consumer sees in ``topic``."""
    return [r.value for r in await read_topic(bootstrap, topic, isolation_level="read_committed")]


async def wait_committed(
    bootstrap: str, topic: str, expected: list[Any], timeout_s: float = 30.0
) -> None:
    """Read ``topic`` with ``read_committed`` until it holds ``expected``; fail after
    ``timeout_s``. A commit returns once the transaction is decided; the broker writes
    its markers to the partitions just after, so a reader may not see it at once."""
    deadline = time.monotonic() + timeout_s
    while (got := await committed_values(bootstrap, topic)) != expected:
        assert time.monotonic() < deadline, f"read_committed saw {got!r}, not {expected!r}"


async def produce_raw(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def read_until(
    source: KafkaSource, done: Any, out: list[Any], timeout_s: float = 15.0
) -> None:
    """Read batches into ``out`` until ``done()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        batch = await source.read_batch(2, 0.05)
        assert batch is not None
        out.extend(batch)


async def next_batch(source: KafkaSource, timeout_s: float = 15.0) -> list[Any]:
    """The next batch that is not empty; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        batch = await source.read_batch(2, 0.05)
        assert batch is not None
        if batch:
            return batch
        assert time.monotonic() < deadline, "no record came in time"


def sink_context(flow: str, *, checkpointing: bool = True) -> SinkContext:
    return SinkContext("out", flow, checkpointing=checkpointing)


async def opened_exactly_once(bootstrap: str, topic: str) -> KafkaSink:
    """An exactly-once sink of ``topic`` opened under checkpointing, nothing restored."""
    sink = KafkaSink(topic, bootstrap_servers=bootstrap, exactly_once=True)
    await sink.restore(None)
    await sink.open(sink_context(topic))
    return sink


async def crash(sink: KafkaSink) -> None:
    """Drop the sink's producer as a dying process would: no commit, no abort."""
    producer = sink._producer
    assert producer is not None
    sink._producer = None
    await producer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers (a hung broker)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# -- formats ------------------------------------------------------------------------------


async def test_records_written_by_the_sink_come_back_with_key_headers_partition_offset_and_time(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory(2)
    records = [{"user": f"u{i % 4}", "n": i} for i in range(40)]
    before_ms = int(time.time() * 1000)
    write = sc.Dataflow("kafka-json-write")
    write.source(IterableSource(records)).sink(
        KafkaSink(
            topic,
            bootstrap_servers=kafka_bootstrap,
            key=lambda r: r["user"],
            headers=lambda r: [("n", str(r["n"])), ("origin", b"test")],
        )
    )
    await write.run()
    after_ms = int(time.time() * 1000)

    got = ListSink()
    read = sc.Dataflow("kafka-json-read")
    read.source(
        KafkaSource(topic, bootstrap_servers=kafka_bootstrap, key_format="str", stop_at_end=True),
        timestamp=lambda r: r.timestamp_ms,
        batch_size=7,
    ).sink(got)
    await read.run()

    out: list[KafkaRecord] = got.items
    assert sorted(r.value["n"] for r in out) == list(range(40))
    for r in out:
        assert r.topic == topic and r.partition in (0, 1)
        assert r.key == r.value["user"]
        assert r.headers == (("n", str(r.value["n"]).encode()), ("origin", b"test"))
        assert before_ms - 1000 <= r.timestamp_ms <= after_ms + 1000
    # One key, one partition, the one aiokafka's partitioner gives it (the sink remembers
    # it per key); offsets count up from 0 in each partition, in write order.
    assert len({(r.key, r.partition) for r in out}) == 4
    assert all(r.partition == DefaultPartitioner()(r.key.encode(), [0, 1], [0, 1]) for r in out)
    for p in (0, 1):
        mine = [r for r in out if r.partition == p]
        assert [r.offset for r in mine] == list(range(len(mine)))
        assert [r.value["n"] for r in mine] == sorted(r.value["n"] for r in mine)


async def test_avro_values_round_trip_with_a_schema(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = KafkaSink(
        topic, bootstrap_servers=kafka_bootstrap, value_format="avro", avro_schema=SCHEMA
    )
    await sink.open(sink_context("avro", checkpointing=False))
    await sink.write_batch(READINGS)
    await sink.close()
    out = await read_topic(kafka_bootstrap, topic, value_format="avro", avro_schema=SCHEMA)
    assert [r.value for r in out] == READINGS


async def test_avro_values_round_trip_in_the_confluent_wire_format(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = KafkaSink(
        topic,
        bootstrap_servers=kafka_bootstrap,
        value_format="avro",
        avro_schema=SCHEMA,
        confluent_schema_id=42,
    )
    await sink.open(sink_context("confluent", checkpointing=False))
    await sink.write_batch(READINGS)
    await sink.close()
    raw = await read_topic(kafka_bootstrap, topic, value_format="bytes")
    assert all(r.value[:5] == b"\x00\x00\x00\x00\x2a" for r in raw)
    out = await read_topic(
        kafka_bootstrap,
        topic,
        value_format="avro",
        confluent_schemas={42: SCHEMA, 7: {"type": "string"}},
    )
    assert [r.value for r in out] == READINGS
    # A schema id missing from the map is a bad record, reported with where it was.
    with pytest.raises(SourceError, match=rf"topic {topic} partition 0 offset 0: .*schema id 42"):
        await read_topic(kafka_bootstrap, topic, value_format="avro", confluent_schemas={7: SCHEMA})


async def test_a_record_that_cannot_be_serialised_fails_the_batch_naming_its_index_and_type(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = KafkaSink(topic, bootstrap_servers=kafka_bootstrap)
    await sink.open(sink_context("unserialisable", checkpointing=False))
    try:
        with pytest.raises(SinkError, match=r"record 2 of the batch \(type set\)"):
            await sink.write_batch([{"a": 1}, {"a": 2}, {1, 2}])
    finally:
        await sink.close()
    assert await read_topic(kafka_bootstrap, topic) == []  # nothing of that batch was sent


# -- bad records --------------------------------------------------------------------------


async def test_json_integers_beyond_64_bits_come_through_exact(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    await produce_raw(
        kafka_bootstrap, topic, [b'{"id": 100000000000000000000000000001}', b'{"id": 2}']
    )
    records = await read_topic(kafka_bootstrap, topic)
    assert [r.value for r in records] == [{"id": 100000000000000000000000000001}, {"id": 2}]
    assert type(records[0].value["id"]) is int


async def test_a_poison_record_goes_to_the_dead_letters_naming_topic_partition_and_offset(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, topic, [b'{"a": 1}', b'{"a": ', b'{"a": 3}'])
    flow = sc.Dataflow("kafka-poison-dead")
    good, dead = ListSink(), ListSink()
    flow.source(
        KafkaSource(topic, bootstrap_servers=kafka_bootstrap, stop_at_end=True),
        name="events",
        on_error="dead_letter",
    ).map(lambda r: r.value).sink(good)
    flow.dead_letters.sink(dead)
    await flow.run()
    assert good.items == [{"a": 1}, {"a": 3}]
    [letter] = dead.items
    assert letter.stage == "events" and letter.record == b'{"a": '
    assert isinstance(letter.error, SourceError)
    assert f"topic {topic} partition 0 offset 1" in str(letter.error)


async def test_a_poison_record_fails_the_flow_by_default_naming_topic_partition_and_offset(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, topic, [b'{"a": 1}', b"not json"])
    flow = sc.Dataflow("kafka-poison-fail")
    flow.source(KafkaSource(topic, bootstrap_servers=kafka_bootstrap, stop_at_end=True)).sink(
        ListSink()
    )
    with pytest.raises(SourceError, match=rf"cannot decode topic {topic} partition 0 offset 1"):
        await flow.run()


# -- positions and partitions -------------------------------------------------------------


async def test_a_second_session_resumes_exactly_after_the_last_record_returned(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, topic, [orjson.dumps(i) for i in range(30)])

    first = KafkaSource(topic, bootstrap_servers=kafka_bootstrap)
    await first.open(SourceContext("first"))
    seen: list[KafkaRecord] = []
    try:
        await read_until(first, lambda: len(seen) >= 7, seen)
        position = first.position()
    finally:
        await first.close()
    assert position == {f"{topic}:0": seen[-1].offset + 1}
    assert orjson.loads(orjson.dumps(position)) == position  # JSON-serialisable

    second = KafkaSource(topic, bootstrap_servers=kafka_bootstrap, stop_at_end=True)
    await second.open(SourceContext("second"), position)
    rest: list[KafkaRecord] = []
    try:
        while (batch := await second.read_batch(100, 0.1)) is not None:
            rest.extend(batch)
    finally:
        await second.close()
    assert rest[0].offset == seen[-1].offset + 1
    assert [r.value for r in seen + rest] == list(range(30))


async def test_commit_offsets_stores_the_position_in_the_consumer_group(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    group = f"{topic}-group"
    await produce_raw(kafka_bootstrap, topic, [orjson.dumps(i) for i in range(10)])
    first = KafkaSource(topic, bootstrap_servers=kafka_bootstrap, group_id=group)
    await first.open(SourceContext("first"))
    seen: list[KafkaRecord] = []
    try:
        await read_until(first, lambda: len(seen) >= 4, seen)
        await first.commit_offsets(first.position())
    finally:
        await first.close()
    # Without a position, a consumer of the group starts at the committed offset.
    rest = await read_topic(kafka_bootstrap, topic, group_id=group)
    assert [r.value for r in seen + rest] == list(range(10))


async def test_an_empty_partition_is_caught_up_and_a_partition_with_a_backlog_is_not(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory(2)
    full, empty = f"{topic}:0", f"{topic}:1"
    await produce_raw(kafka_bootstrap, topic, [orjson.dumps(i) for i in range(6)], partition=0)
    source = KafkaSource(topic, bootstrap_servers=kafka_bootstrap, max_batch=2)
    await source.open(SourceContext("parts"))
    out: list[KafkaRecord] = []
    try:
        assert source.assigned() == {full, empty}
        # The first fetch reports both high-water marks: the empty partition is caught up
        # at once, the other one only once its backlog has been read.
        await read_until(source, lambda: empty in source.caught_up(), out)
        if len(out) < 6:
            assert full not in source.caught_up()
            assert source.lag()[full] == 6 - len(out)  # consumer lag, for the metrics
        while len(out) < 6:
            batch = await next_batch(source)
            out.extend(batch)
            assert source.record_partitions() == [full] * len(batch) and len(batch) <= 2
        assert [r.value for r in out] == list(range(6))
        await read_until(source, lambda: full in source.caught_up(), out)
        assert source.caught_up() == {full, empty}
        assert source.position() == {full: 6, empty: 0}
        assert source.lag() == {full: 0, empty: 0}
        # New data: the partition holding it is behind again until it is read.
        await produce_raw(kafka_bootstrap, topic, [b"6"], partition=1)
        await read_until(source, lambda: len(out) == 7, out)
        assert source.record_partitions() == [empty]
        assert out[-1].value == 6
    finally:
        await source.close()


async def test_a_pattern_reads_every_matching_topic(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    first, second = await kafka_topic_factory(), await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, first, [b"1", b"2"])
    await produce_raw(kafka_bootstrap, second, [b"3"])
    pattern = "|".join(re.escape(t) for t in (first, second))
    source = KafkaSource(pattern=pattern, bootstrap_servers=kafka_bootstrap, stop_at_end=True)
    await source.open(SourceContext("pattern"))
    out: list[KafkaRecord] = []
    try:
        while (batch := await source.read_batch(100, 0.1)) is not None:
            out.extend(batch)
        assert source.assigned() == {f"{first}:0", f"{second}:0"}
    finally:
        await source.close()
    assert sorted((r.topic, r.value) for r in out) == sorted([(first, 1), (first, 2), (second, 3)])


async def test_start_latest_skips_what_was_there_before_open(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, topic, [b"1", b"2"])
    source = KafkaSource(topic, bootstrap_servers=kafka_bootstrap, start="latest")
    await source.open(SourceContext("latest"))
    out: list[KafkaRecord] = []
    try:
        await read_until(source, lambda: f"{topic}:0" in source.caught_up(), out)
        assert source.position() == {f"{topic}:0": 2}
        await produce_raw(kafka_bootstrap, topic, [b"3"])
        await read_until(source, lambda: len(out) == 1, out)
    finally:
        await source.close()
    assert [(r.offset, r.value) for r in out] == [(2, 3)]


# -- connecting ---------------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["refused", "silent"])
async def test_an_unreachable_broker_fails_open_with_a_source_error_in_bounded_time(
    broker: str, silent_server: str
) -> None:
    servers = f"127.0.0.1:{free_port()}" if broker == "refused" else silent_server
    source = KafkaSource(
        "events", bootstrap_servers=servers, connect_attempts=2, connect_timeout_s=2.0
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"bootstrap servers '{servers}' after 2 attempt"):
        await source.open(SourceContext("unreachable"))
    assert time.monotonic() - started < 4.0
    await source.close()


async def test_an_unreachable_broker_fails_the_sink_open_with_a_sink_error(
    silent_server: str,
) -> None:
    sink = KafkaSink(
        "out", bootstrap_servers=silent_server, connect_attempts=1, connect_timeout_s=1.0
    )
    started = time.monotonic()
    with pytest.raises(SinkError, match=f"bootstrap servers '{silent_server}'") as caught:
        await sink.open(sink_context("unreachable", checkpointing=False))
    assert time.monotonic() - started < 3.0
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_a_missing_topic_is_reported_at_open(kafka_bootstrap: str) -> None:
    source = KafkaSource("no-such-topic-here", bootstrap_servers=kafka_bootstrap)
    with pytest.raises(SourceError, match=r"\['no-such-topic-here'\] do not exist"):
        await source.open(SourceContext("missing"))


# -- exactly once -------------------------------------------------------------------------


async def test_records_of_an_open_transaction_are_invisible_to_read_committed_until_commit(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = await opened_exactly_once(kafka_bootstrap, topic)
    try:
        await sink.write_batch(list(range(5)))
        state = await sink.pre_commit(1)
        assert await committed_values(kafka_bootstrap, topic) == []
        # Written after pre_commit(1): waits in memory for the next transaction.
        await sink.write_batch(list(range(5, 8)))
        await sink.commit(1, state)
        await wait_committed(kafka_bootstrap, topic, list(range(5)))
        state = await sink.pre_commit(2)
        await sink.commit(2, state)
        await wait_committed(kafka_bootstrap, topic, list(range(8)))
        await sink.commit(2, state)  # idempotent
    finally:
        await sink.close()
    await wait_committed(kafka_bootstrap, topic, list(range(8)))


async def test_a_write_after_pre_commit_does_not_wait_for_the_commit_in_progress(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = await opened_exactly_once(kafka_bootstrap, topic)
    await sink.write_batch(list(range(5)))
    state = await sink.pre_commit(1)
    try:
        # A commit publishing checkpoint 1 holds the sink's lock across its round trips
        # to the broker; a write meanwhile only joins the buffer and returns at once.
        async with sink._lock:
            async with asyncio.timeout(10):
                await sink.write_batch(list(range(5, 8)))
        commit = asyncio.ensure_future(sink.commit(1, state))
        await sink.write_batch([8])  # while that commit runs
        await commit
        await wait_committed(kafka_bootstrap, topic, list(range(5)))
        await sink.commit(2, await sink.pre_commit(2))
        await wait_committed(kafka_bootstrap, topic, list(range(9)))
    finally:
        await sink.close()


async def test_restore_after_a_crash_before_commit_publishes_the_transaction_once(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    first = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await first.restore(None)
    await first.open(sink_context(topic))
    await first.write_batch(list(range(3)))
    state1 = await first.pre_commit(1)
    await first.commit(1, state1)
    await first.write_batch(list(range(3, 6)))
    state2 = await first.pre_commit(2)
    # Checkpoint 2 completed in the store, then the process died before commit(2).
    await crash(first)
    await wait_committed(kafka_bootstrap, topic, [0, 1, 2])

    second = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await second.restore(state2)
    await second.open(sink_context(topic))
    try:
        await wait_committed(kafka_bootstrap, topic, list(range(6)))
        await second.write_batch([6])
        await second.commit(3, await second.pre_commit(3))
    finally:
        await second.close()
    await wait_committed(kafka_bootstrap, topic, list(range(7)))


async def test_restore_after_a_crash_after_commit_publishes_nothing_again(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    first = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await first.restore(None)
    await first.open(sink_context(topic))
    await first.write_batch(list(range(4)))
    state = await first.pre_commit(1)
    await first.commit(1, state)
    await first.write_batch([99])  # in the next transaction, never committed
    await crash(first)

    second = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await second.restore(state)
    await second.open(sink_context(topic))
    await second.close()
    await wait_committed(kafka_bootstrap, topic, list(range(4)))


async def test_the_final_commit_after_close_publishes_with_the_kept_producer_or_a_new_one(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    kept_topic, expired_topic = await kafka_topic_factory(), await kafka_topic_factory()
    # The end of a checkpointed stream: pre_commit(n), close(), then commit(n).
    kept = KafkaSink(kept_topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await kept.restore(None)
    await kept.open(sink_context(kept_topic))
    await kept.write_batch([1, 2])
    state = await kept.pre_commit(1)
    await kept.close()
    assert await committed_values(kafka_bootstrap, kept_topic) == []
    await kept.commit(1, state)
    assert kept._producer is None
    await wait_committed(kafka_bootstrap, kept_topic, [1, 2])

    # When the commit comes later than commit_wait_s, the producer was stopped (its
    # transaction aborted): commit publishes from the state with a new producer.
    late = KafkaSink(
        expired_topic, bootstrap_servers=kafka_bootstrap, exactly_once=True, commit_wait_s=0.01
    )
    await late.restore(None)
    await late.open(sink_context(expired_topic))
    await late.write_batch([3, 4])
    state = await late.pre_commit(1)
    await late.close()
    assert late._watchdog is not None
    await asyncio.wait_for(asyncio.shield(late._watchdog), 10)
    assert late._producer is None
    await late.commit(1, state)
    await late.commit(1, state)  # idempotent: the marker says it is published
    await wait_committed(kafka_bootstrap, expired_topic, [3, 4])


class FailOnce:
    """A map that raises once, at its ``at``-th record."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.failed = False

    def __call__(self, record: KafkaRecord) -> Any:
        self.seen += 1
        if not self.failed and self.seen == self.at:
            self.failed = True
            raise RuntimeError("injected failure")
        return record.value


async def test_a_checkpointed_flow_restarted_after_a_failure_writes_each_record_once(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    source_topic, out_topic = await kafka_topic_factory(), await kafka_topic_factory()
    await produce_raw(kafka_bootstrap, source_topic, [orjson.dumps(i) for i in range(600)])
    fail = FailOnce(at=400)
    flow = sc.Dataflow(f"kafka-eos-{out_topic}")
    flow.source(
        KafkaSource(source_topic, bootstrap_servers=kafka_bootstrap, stop_at_end=True),
        batch_size=20,
        max_rate=2000,
    ).map(fail).sink(KafkaSink(out_topic, bootstrap_servers=kafka_bootstrap, exactly_once=True))
    await flow.run(
        checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
        restart=sc.RestartPolicy(1, delay=0.0),
    )
    assert fail.failed and flow._latest_run.restarts == 1
    assert flow._latest_run.attempt.coordinator.restored_from is not None
    assert await committed_values(kafka_bootstrap, out_topic) == list(range(600))


async def test_without_checkpoints_an_exactly_once_sink_commits_at_the_end_and_aborts_on_failure(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    ok_topic, failed_topic = await kafka_topic_factory(), await kafka_topic_factory()

    def flow_to(topic: str, fail: FailOnce | None) -> sc.Dataflow:
        flow = sc.Dataflow(f"kafka-eos-plain-{topic}")
        records = [KafkaRecord("in", 0, i, 0, None, i) for i in range(50)]
        stream = flow.source(IterableSource(records), batch_size=10)
        stream.map(fail or (lambda r: r.value)).sink(
            KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
        )
        return flow

    await flow_to(ok_topic, None).run()
    assert await committed_values(kafka_bootstrap, ok_topic) == list(range(50))
    with pytest.raises(sc.StageError, match="injected failure"):
        await flow_to(failed_topic, FailOnce(at=35)).run()
    # The batches written before the failure were aborted, not left open.
    assert await committed_values(kafka_bootstrap, failed_topic) == []
    raw = await read_topic(kafka_bootstrap, failed_topic)
    assert [r.value for r in raw] == list(range(30))  # visible only to read_uncommitted


# -- construction ---------------------------------------------------------------------------


def test_options_that_cannot_work_are_refused_when_the_connector_is_built() -> None:
    with pytest.raises(ValueError, match="topics or pattern"):
        KafkaSource(bootstrap_servers="x:1")
    with pytest.raises(ValueError, match="needs avro_schema= or confluent_schemas="):
        KafkaSource("t", bootstrap_servers="x:1", value_format="avro")
    with pytest.raises(ValueError, match="enable_auto_commit is set by KafkaSource"):
        KafkaSource("t", bootstrap_servers="x:1", enable_auto_commit=True)
    with pytest.raises(ValueError, match="start must be one of"):
        KafkaSource("t", bootstrap_servers="x:1", start="middle")
    with pytest.raises(ValueError, match="only used with exactly_once=True"):
        KafkaSink("t", bootstrap_servers="x:1", transactional_id="tid")
    assert KafkaSink("t", bootstrap_servers="x:1", exactly_once=True).supports_checkpoints
    assert not KafkaSink("t", bootstrap_servers="x:1").supports_checkpoints
