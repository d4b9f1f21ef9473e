"""The flow the Kafka crash test kills: topic -> keyed tumbling windows -> topic, exactly once.

Run as ``python kafka_crash_job.py BOOTSTRAP TOPIC_IN TOPIC_OUT REDIS_URL KEY_PREFIX``;
prints ``started`` once running and ``checkpoint <n>`` as checkpoints complete. The source stops at the end of what the topic held
when it started, so an uninterrupted run ends by itself.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import streamcore as sc
from connectors.kafka import KafkaSink, KafkaSource


def build(bootstrap: str, topic_in: str, topic_out: str, *, rate: float | None) -> sc.Dataflow:
    """Windows per user over the input topic, written to the output topic in transactions."""
    flow = sc.Dataflow(f"kafka-crash-{topic_in}")
    (
        flow.source(
            # Small fetches per partition make each batch mix the partitions, so the
            # watermark (the minimum over partitions) advances while the backlog is read.
            KafkaSource(topic_in, bootstrap_servers=bootstrap, group_id=f"g-{topic_in}", stop_at_end=True,
                        max_partition_fetch_bytes=4096),
            name="kafka",
            timestamp=lambda r: r.value["ts"],
            batch_size=200,
            max_rate=rate,
        )
        .map(lambda r: r.value)
        .key_by(lambda e: e["user"], prepartitioned=True)  # the input is keyed by user
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: {"user": r.key, "start": r.start, "n": r.value["n"], "total": r.value["total"]})
        .sink(KafkaSink(topic_out, bootstrap_servers=bootstrap, key=lambda v: v["user"], exactly_once=True))
    )
    return flow


class Progress(logging.Handler):
    """Prints each completed checkpoint and the records read so far, so the test can kill
    the job mid-stream."""

    def __init__(self, flow: sc.Dataflow) -> None:
        super().__init__()
        self.flow = flow

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("checkpoint complete"):
            read = self.flow.statistics().actor("kafka").records_out
            print(f"checkpoint {record.args[1]} read {read}", flush=True)  # type: ignore[index]


async def main(bootstrap: str, topic_in: str, topic_out: str, url: str, prefix: str) -> None:
    # Per partition task (4 of them): about 3,000 records/s in all, so the kills land mid-stream.
    flow = build(bootstrap, topic_in, topic_out, rate=750)
    logger = logging.getLogger("streamcore.checkpoint")
    logger.setLevel(logging.INFO)
    logger.addHandler(Progress(flow))
    print("started", flush=True)
    store = sc.RedisStateStore(url, key_prefix=prefix)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.2))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
