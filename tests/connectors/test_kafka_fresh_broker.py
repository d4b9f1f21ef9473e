"""An exactly-once Kafka sink started the moment a brand-new broker is ready.

On a cluster that has just formed, the group coordinator is not there yet (the offsets
topic is created by the first request that needs it): reading the sink's commit marker
first meets ``GroupCoordinatorNotAvailableError``, which is retriable. The sink must
retry it, not fail the flow. The test starts its own broker, in a temporary directory,
so that it is fresh whatever ran before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from services import KafkaBroker, ServiceError, create_topic, release, unavailable

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.kafka import KafkaSink
from tests.connectors.test_kafka import committed_values

pytestmark = pytest.mark.kafka


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, started now (scripts/kafka.sh in a tmp directory)."""
    broker = KafkaBroker(tmp_path / "kafka", "", owned=True)
    try:
        broker.start()
    except ServiceError as exc:
        unavailable(f"cannot start a private Kafka broker: {exc}")
    try:
        yield broker
    finally:
        release(broker)


async def test_an_exactly_once_sink_runs_as_soon_as_a_fresh_broker_is_ready(
    fresh_broker: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = fresh_broker.bootstrap
    topic = await create_topic(bootstrap, 1, prefix="fresh")
    records = [{"n": i} for i in range(50)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    flow = sc.Dataflow("fresh-broker")
    # A rewindable source: checkpoints (and so the commit marker) need one.
    flow.source(JsonLinesSource(events), batch_size=10).sink(
        KafkaSink(topic, bootstrap_servers=bootstrap, exactly_once=True), name="out"
    )
    await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.2))
    assert await committed_values(bootstrap, topic) == records
