"""The repartition topic's framing and stage 2's watermark, without a broker.

Against a real broker the whole path is in test_kafka_scale_out.py; here are the cases
a run does not reliably reach: idle and ended writers, writers not heard from, markers
naming their partition, and the writers' state in the checkpointed position."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from connectors.kafka import KafkaSource
from connectors.kafka.group import KafkaPartitionGroup
from connectors.kafka.repartition import (
    BATCH,
    MARK,
    RepartitionSource,
    _partitioner,
    key_partition,
    repartition_topic_name,
)
from streamcore.io import SourceContext
from streamcore.state.serde import decode, encode


@dataclass
class Message:
    key: bytes
    value: bytes
    topic: str = "rep"
    partition: int = 0
    offset: int = 0


def stage2_source(writers: list[str]) -> RepartitionSource:
    group = KafkaPartitionGroup(KafkaSource("in", bootstrap_servers="127.0.0.1:9", group_id="g"))
    repartition = group.repartition("flow", "key_by", lambda r: r["user"], encode, decode)
    repartition.writers = writers
    repartition.partitions = 4
    source = repartition.source_for("flow-key_by-repartition:1")
    assert isinstance(source, RepartitionSource)
    source.context = SourceContext("s")
    source._writers = {w: [-math.inf, False, False] for w in writers}
    return source


def marker(**fields: Any) -> Message:
    return Message(MARK + b"1", encode(fields))


def test_batches_and_markers_go_to_the_partition_they_name_records_by_their_key() -> None:
    assert _partitioner(MARK + b"3", [2, 0, 3, 1], []) == 3
    assert _partitioner(BATCH + b"2", [2, 0, 3, 1], []) == 2
    assert key_partition("u7", 4, encode) == zlib.crc32(b"u7") % 4
    assert key_partition(("a", 1), 4, encode) == zlib.crc32(encode(("a", 1))) % 4


def test_stage_two_watermark_is_the_minimum_over_writers_not_idle() -> None:
    source = stage2_source(["in:0", "in:1"])
    out: list[Any] = []
    source._decode([marker(p="in:0", w=100)], out)
    assert source.watermark() == -math.inf  # in:1 not heard from: holds it back
    rows = [[70, {"user": "u1"}], [65, {"user": "u5"}]]
    source._decode([marker(p="in:1", w=50), Message(BATCH + b"1", encode(rows))], out)
    assert source.watermark() == 50
    assert out == [{"user": "u1"}, {"user": "u5"}] and source.record_timestamps() == [70, 65]
    source._decode([marker(p="in:1", idle=True)], out)
    assert source.watermark() == 100  # an idle writer is left out
    source._decode([marker(p="in:0", idle=True)], out)
    assert source.watermark() is None  # every writer idle: nothing to say
    source._decode([marker(p="in:1", w=60)], out)  # a watermark is activity
    assert source.watermark() == 60
    source._decode([marker(p="in:0", end=True), marker(p="in:1", end=True)], out)
    assert source.watermark() == math.inf


def test_the_position_carries_the_writers_state() -> None:
    source = stage2_source(["in:0", "in:1"])
    source._decode([marker(p="in:0", w=100), marker(p="in:1", idle=True)], [])
    position = source.position()
    assert position["writers"] == {"in:0": [100, False, False], "in:1": [None, True, False]}
    assert encode(position)  # it goes into the checkpoint manifest


def test_a_record_that_does_not_decode_goes_to_the_error_policy() -> None:
    source = stage2_source(["in:0"])
    dead: list[Any] = []
    source.context = SourceContext("s", on_error="dead_letter", dead_letter=lambda raw, err: dead.append(err))
    out: list[Any] = []
    source._decode([Message(BATCH + b"0", b"not the serde")], out)
    assert out == [] and len(dead) == 1 and "repartition topic rep partition 0 offset 0" in str(dead[0])


def test_repartition_topic_names_keep_to_what_kafka_accepts() -> None:
    assert repartition_topic_name("clicks@v2", "by user") == "clicks_v2-by_user-repartition"
