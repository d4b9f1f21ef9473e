"""``KafkaSink`` hands records over one batch per partition: same partitions as the
producer's own ``send`` would pick, order kept within a partition, overflowing batches
split, keys and headers intact.

Design: docs/connectors-kafka.md#sink
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2
from services import TopicFactory
from test_kafka import sink_context

from connectors.kafka import KafkaSink
from streamcore.errors import SinkError

Committed = tuple[int, "bytes | None", Any, list[tuple[str, bytes]]]


async def read_all(bootstrap: str, topic: str, expected: int) -> list[Committed]:
    """(partition, key, value, headers) of ``expected`` committed records, in offset order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        isolation_level="read_committed", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    out: list[Committed] = []
    try:
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=1_000)
            for messages in batch.values():
                out += [
                    (m.partition, m.key, orjson.loads(m.value), list(m.headers)) for m in messages
                ]
            if len(out) >= expected:
                break
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_keyed_records_land_where_the_default_partitioner_puts_them_in_order(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, exactly_once: bool
) -> None:
    topic = await kafka_topic_factory(3)
    sink = KafkaSink(
        topic, bootstrap_servers=kafka_bootstrap, exactly_once=exactly_once,
        key=lambda r: r["user"], headers=lambda r: [("i", str(r["i"]))],
        max_batch_size=1024,  # a write of 2,000 records overflows many batches per partition
    )  # fmt: skip
    await sink.restore(None)
    await sink.open(sink_context(topic, checkpointing=False))
    records = [{"user": f"u{i % 17}", "i": i, "pad": "x" * (i % 50)} for i in range(2_000)]
    try:
        await sink.write_batch(records[:1_500])
        await sink.write_batch(records[1_500:])
    finally:
        await sink.close()
    got = await read_all(kafka_bootstrap, topic, len(records))
    assert len(got) == len(records)
    per_partition: dict[int, list[int]] = defaultdict(list)
    for partition, key, value, headers in got:
        assert partition == (murmur2(key) & 0x7FFFFFFF) % 3
        assert key == value["user"].encode() and headers == [("i", str(value["i"]).encode())]
        per_partition[partition].append(value["i"])
    for partition, order in per_partition.items():
        assert order == sorted(order), f"partition {partition} out of order"
    assert sorted(i for order in per_partition.values() for i in order) == list(range(2_000))


async def test_a_delivery_that_fails_after_write_batch_returned_fails_the_checkpoint(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """Under checkpoints write_batch does not wait for acknowledgements: a record the
    broker refuses must still fail the sink before its transaction is sealed."""
    topic = await kafka_topic_factory(1, config={"max.message.bytes": "2000"})
    sink = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await sink.restore(None)
    await sink.open(sink_context(topic))
    try:
        with pytest.raises(SinkError, match="sending failed"):
            await sink.write_batch([{"big": "x" * 10_000}])
            await sink.pre_commit(1)
    finally:
        await sink.abort()
    assert await read_all(kafka_bootstrap, topic, 0) == []
