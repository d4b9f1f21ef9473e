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
from connectors.kafka._transactions import Item
from connectors.kafka.group import KafkaPartitionGroup
from connectors.kafka.repartition import (
    BATCH,
    COLUMNS,
    MARK,
    RepartitionSink,
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


def stage2_source(writers: list[str], key: Any = lambda r: r["user"]) -> RepartitionSource:
    group = KafkaPartitionGroup(KafkaSource("in", bootstrap_servers="127.0.0.1:9", group_id="g"))
    repartition = group.repartition("flow", "key_by", key, encode, decode)
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


class CapturingSink(RepartitionSink):
    """Stage 1's sink with what it would hand to the producer kept instead of sent."""

    written: list[Item]
    calls: int

    async def _write_items(self, items: list[Item]) -> None:
        self.written.extend(items)
        self.calls += 1


def stage1_sink(source: RepartitionSource) -> CapturingSink:
    sink = CapturingSink(source.repartition, "in:0")
    sink.written, sink.calls = [], 0
    return sink


async def test_a_batch_crosses_as_two_columns_per_partition_and_reads_back_in_order() -> None:
    source = stage2_source(["in:0"])
    sink = stage1_sink(source)
    records = [{"user": f"u{i % 7}", "n": i} for i in range(40)]
    await sink.write_timed(records, list(range(1000, 1040)))
    await sink.write_timed(records[:3], [5, 6, 7])  # the second batch hits the key cache
    assert [k[:1] for k, _, _ in sink.written] == [COLUMNS] * len(sink.written)
    read: dict[int, tuple[list[Any], list[int]]] = {}
    for k, value, _ in sink.written:
        q = _partitioner(k, [0, 1, 2, 3], [])
        out: list[Any] = []
        source._decode([Message(k, value, partition=q)], out)
        got = read.setdefault(q, ([], []))
        got[0].extend(out)
        got[1].extend(source.record_timestamps())
        source._times = []
    batches = [(records, list(range(1000, 1040))), (records[:3], [5, 6, 7])]
    for q, (out, stamps) in read.items():
        assert all(key_partition(r["user"], 4, encode) == q for r in out)
        expected = [
            (r, t)
            for rs, ts in batches
            for r, t in zip(rs, ts, strict=True)
            if key_partition(r["user"], 4, encode) == q
        ]
        assert list(zip(out, stamps, strict=True)) == expected  # each partition keeps the order
    assert sum(len(out) for out, _ in read.values()) == 43


async def test_a_batch_is_sent_with_the_marker_that_follows_it_or_at_the_checkpoint() -> None:
    source = stage2_source(["in:0"])
    sink = stage1_sink(source)
    records = [{"user": f"u{i}"} for i in range(8)]
    await sink.write_timed(records, list(range(8)))
    assert sink.written == []  # held for the marker
    await sink.on_watermark(5)
    assert sink.calls == 1  # records and markers handed over together
    kinds = {q: [k[:1] for k, _, _ in sink.written if _partitioner(k, [0, 1, 2, 3], []) == q] for q in range(4)}
    assert all(marks[-1:] == [MARK] and MARK not in marks[:-1] for marks in kinds.values())
    assert sum(len(decode(v)[1]) for k, v, _ in sink.written if k[:1] == COLUMNS) == 8
    sink.written.clear()
    await sink.write_timed(records[:2], [6, 7])
    await sink.on_watermark(5)  # no advance: no marker, the batch stays held
    assert sink.written == []
    await sink.pre_commit(1)  # a checkpoint seals nothing without its records
    assert sum(len(decode(v)[1]) for k, v, _ in sink.written) == 2


async def test_keys_that_are_equal_across_types_still_go_by_their_own_encoding() -> None:
    source = stage2_source(["in:0"], key=lambda r: r["k"])
    sink = stage1_sink(source)
    keys: list[Any] = ["1", 1, 1.0, True, ("1",)]
    for k in keys + keys:  # twice: the second time from the cache where there is one
        sink.written.clear()
        await sink.write_timed([{"k": k}], [0])
        await sink.pre_commit(1)
        [(item_key, _, _)] = sink.written
        assert _partitioner(item_key, [0, 1, 2, 3], []) == key_partition(k, 4, encode)


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
    uneven = encode([[1, 2], [{"user": "u1"}]])
    source._decode(
        [Message(COLUMNS + b"0", uneven), Message(COLUMNS + b"0", encode({"a": 1}))], out
    )
    assert out == [] and len(dead) == 3 and "two lists of one length" in str(dead[1])


def test_repartition_topic_names_keep_to_what_kafka_accepts() -> None:
    assert repartition_topic_name("clicks@v2", "by user") == "clicks_v2-by_user-repartition"
