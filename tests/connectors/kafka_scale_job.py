"""The flows the scale-out tests run in several ``streamcore run`` processes at once.

``streamcore run tests/connectors/kafka_scale_job.py:flow --state REDIS_URL`` with
``SCALE_BOOTSTRAP``, ``SCALE_TOPIC_IN``, ``SCALE_TOPIC_OUT`` in the environment: the
input topic -> tumbling windows per user -> the output topic, exactly once, every
process in the consumer group ``g-<topic in>``.

- ``flow``: the input is keyed by user (``prepartitioned``). The stream never ends: the
  processes run until SIGTERM (or SIGKILL).
- ``rekeyed``: the input is not keyed by user, so the windows run after a repartition
  topic. The source stops at the end of what the topic held when each partition's task
  started, so the processes end by themselves.
"""

from __future__ import annotations

import os

import streamcore as sc
from connectors.kafka import KafkaSink, KafkaSource


def build(bootstrap: str, topic_in: str, topic_out: str, *, rekey: bool = False) -> sc.Dataflow:
    """Windows per user over the input topic, written to the output topic in transactions."""
    flow = sc.Dataflow(f"kafka-scale-{topic_in}")
    (
        flow.source(
            KafkaSource(
                topic_in,
                bootstrap_servers=bootstrap,
                group_id=f"g-{topic_in}",
                # A killed member's partitions move after the session timeout: the
                # broker's minimum, so the test does not wait longer than it must.
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
                stop_at_end=rekey,
            ),
            name="kafka",
            timestamp=lambda r: r.value["ts"],
            batch_size=200,
            # Per task: slow enough that the test sees the processes share the work.
            max_rate=600 if rekey else None,
        )
        .map(lambda r: r.value)
        .key_by(lambda e: e["user"], prepartitioned=not rekey)
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: {"user": r.key, "start": r.start, "n": r.value["n"], "total": r.value["total"]})
        .sink(KafkaSink(topic_out, bootstrap_servers=bootstrap, key=lambda v: v["user"], exactly_once=True),
              name="out")
    )
    return flow


def flow() -> sc.Dataflow:
    """The flow, from the environment (see the module docstring)."""
    return build(os.environ["SCALE_BOOTSTRAP"], os.environ["SCALE_TOPIC_IN"], os.environ["SCALE_TOPIC_OUT"])


def rekeyed() -> sc.Dataflow:
    """The flow with a repartition, from the environment (see the module docstring)."""
    return build(
        os.environ["SCALE_BOOTSTRAP"], os.environ["SCALE_TOPIC_IN"], os.environ["SCALE_TOPIC_OUT"], rekey=True
    )
