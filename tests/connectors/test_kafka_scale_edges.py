"""Edges of scale-out against the real broker, with the group's members in this process:
repartition topics purged up to what stage 2 checkpointed, and a finite member the
group gives no partition ending instead of waiting for the others.
(Fencing a zombie's checkpoints: tests/runtime/test_partitioned_tasks.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import streamcore as sc
from connectors.kafka import KafkaSource
from connectors.kafka.repartition import repartition_topic_name
from connectors.memory import ListSink
from streamcore.errors import SourceError
from streamcore.io import SourceContext
from streamcore.scaleout import PartitionedRuntime
from streamcore.state.serde import decode, encode
from tests.connectors.test_kafka_exactly_once import events, expected
from tests.connectors.test_kafka_scale_out import produce

pytestmark = pytest.mark.kafka

DEADLINE_S = 60.0


def windows_flow(name: str, bootstrap: str, topic: str, out: ListSink, *, rekey: bool, rate: float | None) -> sc.Dataflow:
    """Per-user tumbling windows over ``topic``, read to its end by the group ``g-<name>``."""
    flow = sc.Dataflow(name)
    (
        flow.source(
            KafkaSource(
                topic,
                bootstrap_servers=bootstrap,
                group_id=f"g-{name}",
                stop_at_end=True,
                # A member joining is noticed within a heartbeat.
                session_timeout_ms=6000,
                heartbeat_interval_ms=500,
            ),
            name="kafka",
            timestamp=lambda r: r.value["ts"],
            batch_size=100,
            max_rate=rate,
        )
        .map(lambda r: r.value)
        .key_by(lambda e: e["user"], prepartitioned=not rekey)
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: {"user": r.key, "start": r.start, "n": r.value["n"], "total": r.value["total"]})
        .sink(out, name="out")
    )
    return flow


async def offsets_of(bootstrap: str, topic: str, group: str, partitions: int) -> list[tuple[int, int | None]]:
    """Per partition: (first offset still in the log, the group's committed offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        starts = await consumer.beginning_offsets(tps)
        return [(starts[tp], await consumer.committed(tp)) for tp in tps]
    finally:
        await consumer.stop()


async def test_a_repartition_topic_is_purged_up_to_what_stage_2_checkpointed(
    kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic_in = await kafka_topic_factory(4)
    records = events()[:3000]
    await produce(kafka_bootstrap, topic_in, records, keyed=False)
    name = f"purge-{topic_in}"
    out = ListSink()
    flow = windows_flow(name, kafka_bootstrap, topic_in, out, rekey=True, rate=None)
    await asyncio.wait_for(flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.2)), 120)
    assert Counter(orjson.dumps(r) for r in out.items) == expected(records)
    repartition = repartition_topic_name(name, "key_by")
    found = await offsets_of(kafka_bootstrap, repartition, f"g-{name}", 4)
    # Everything stage 2 read is checkpointed at the end; what comes before the offset
    # of its last checkpoint (the offset committed with it) is gone from the log.
    for start, committed in found:
        assert committed is not None and committed > 0
        assert start == committed, found
    # A checkpoint older than the purge cannot be replayed: said, not skipped over.
    source = flow.nodes[0].source  # type: ignore[attr-defined]
    group = source.partition_group()
    stage2 = group.repartition(name, "key_by", lambda e: e["user"], encode, decode).source_for(f"{repartition}:0")
    with pytest.raises(SourceError, match=rf"offset 0, but records before {found[0][0]} were deleted"):
        await stage2.open(SourceContext("check"), {"offsets": {f"{repartition}:0": 0}, "writers": {}})


async def test_a_finite_member_the_group_gives_no_partition_ends_while_the_other_reads(
    kafka_bootstrap: str, kafka_topic_factory: Any, redis_url: str
) -> None:
    topic = await kafka_topic_factory(1)
    records = events()[:3000]
    await produce(kafka_bootstrap, topic, records)
    name = f"idle-{topic}"
    prefix = f"idle-{uuid.uuid4().hex[:8]}"

    def member() -> PartitionedRuntime:
        # Slow (about 150 s for the topic) so that the one holding the partition is far
        # from done when the other, given nothing, ends.
        flow = windows_flow(name, kafka_bootstrap, topic, ListSink(), rekey=False, rate=20)
        return PartitionedRuntime(flow, sc.Checkpointing(sc.RedisStateStore(redis_url, key_prefix=prefix), interval=0.5))

    a, b = member(), member()
    a_run = asyncio.ensure_future(a.run())
    b_run: asyncio.Future[None] | None = None
    try:
        await until(lambda: a.ready and bool(a.tasks))
        b_run = asyncio.ensure_future(b.run())
        # One partition, two members: after the rebalance one of them holds nothing.
        await until(lambda: a_run.done() or b_run.done())
        ended, running = (a, b) if a_run.done() else (b, a)
        ended_run, running_run = (a_run, b_run) if a_run.done() else (b_run, a_run)
        ended_run.result()
        assert ended.tasks == {}
        assert not running_run.done() and list(running.tasks) == [f"{topic}:0"]
        assert not running.finished
        # The holder's task fences its checkpoints with the group's generation: the one
        # of the rebalance that followed the second member's join, claimed in the store.
        generation = running.group.generation  # type: ignore[attr-defined]
        assert isinstance(generation, int) and generation >= 2
        await until(lambda: running.ready)
        async with sc.RedisStateStore(redis_url, key_prefix=prefix) as store:
            assert await store.get(f"{name}@{topic}:0/fence") == b"%d" % generation
        running.request_stop()
        await asyncio.wait_for(running_run, 120)
    finally:
        for run in (a_run, b_run):
            if run is not None and not run.done():
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
        async with sc.RedisStateStore(redis_url, key_prefix=prefix) as store:
            await store.delete_prefix("")


async def until(condition: Any, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
