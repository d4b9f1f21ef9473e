"""The test services themselves: a real Redis and a real Kafka answer."""

from __future__ import annotations

import time
import uuid

import pytest
from services import RedisServer, TopicFactory, unique_topic_name


@pytest.mark.redis
async def test_redis_set_get(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        key = f"test-services:{uuid.uuid4().hex}"
        assert await client.set(key, b"value", ex=60)
        assert await client.get(key) == b"value"
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
        assert await client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_keeps_data_across_restart(redis_url: str, redis_restart: RedisServer) -> None:
    import redis.asyncio as aioredis

    key = f"test-services:restart:{uuid.uuid4().hex}"
    before = aioredis.Redis.from_url(redis_url)
    try:
        await before.set(key, b"kept")
    finally:
        await before.aclose()
    await redis_restart.arestart()
    assert redis_restart.url == redis_url
    # A clean stop flushes the append-only file, so the key is back with the server.
    after = aioredis.Redis.from_url(redis_url)
    try:
        assert await after.get(key) == b"kept"
        await after.delete(key)
    finally:
        await after.aclose()


@pytest.mark.kafka
async def test_kafka_round_trip_two_partitions(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = await kafka_topic_factory(2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = {}
        for partition in (0, 1):
            value = f"record-{partition}-{uuid.uuid4().hex}".encode()
            meta = await producer.send_and_wait(topic, value, key=b"k", partition=partition)
            assert meta.partition == partition
            sent[partition] = value
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-services-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + 30
        while len(received) < len(sent):
            assert time.monotonic() < deadline, f"got only {received} of {sent}"
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    assert record.key == b"k"
                    received[tp.partition] = record.value
    finally:
        await consumer.stop()
    assert received == sent


@pytest.mark.kafka
async def test_kafka_transaction_visible_only_when_committed(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = await kafka_topic_factory(1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while b"committed-2" not in values:
            assert time.monotonic() < deadline, f"read so far: {values}"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    assert values == [b"committed-1", b"committed-2"]


def test_unique_topic_names() -> None:
    names = {unique_topic_name("test_x[param/1]") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith("test_x-param-1-") for n in names)
