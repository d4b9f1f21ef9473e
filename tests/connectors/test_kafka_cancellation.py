"""Cancelling a flow that reads Kafka ends it within a second, busy or idle, leaving no task."""

from __future__ import annotations

import asyncio
from time import monotonic

import pytest
from runtime.runtime_helpers import GatedSink, flow_tasks, wait_until
from services import TopicFactory
from test_kafka import produce_raw

import streamcore as sc
from connectors.kafka import KafkaSource

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("busy", [True, False], ids=["busy", "idle"])
async def test_cancelling_a_kafka_flow_ends_it_within_a_second(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, busy: bool
) -> None:
    topic = await kafka_topic_factory(1)
    if busy:
        await produce_raw(kafka_bootstrap, topic, [b"%d" % i for i in range(3_000)])
    before = asyncio.all_tasks()
    gated = GatedSink()
    flow = sc.Dataflow(f"kafka-cancel-{'busy' if busy else 'idle'}", mailbox_capacity=100)
    source = KafkaSource(topic, bootstrap_servers=kafka_bootstrap, value_format="bytes")
    flow.source(source, batch_size=10, name="kafka").sink(gated, name="slow")
    run = asyncio.ensure_future(flow.run())
    await wait_until(lambda: len(flow_tasks()) == 2, what="the actors", timeout_s=30)
    if busy:
        await wait_until(
            lambda: flow.statistics().mailboxes["slow"].senders_waiting == 1,
            what="the source to block on the slow sink", timeout_s=30,
        )
    else:
        await wait_until(
            lambda: flow.statistics().actor("kafka").idle_s > 0.2, what="the source to wait for input", timeout_s=30
        )
    run.cancel()
    started = monotonic()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert monotonic() - started < 1.0
    assert flow_tasks() == []
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
