"""The exactly-once Kafka sink's write-ahead journal: framing, old states, memory held.

Design: docs/connectors-kafka.md#the-journal
"""

from __future__ import annotations

import base64
import gc
import tracemalloc

import pytest
from services import TopicFactory
from test_kafka import crash, sink_context, wait_committed
from test_kafka_sink_batches import read_all

from connectors.kafka import KafkaSink
from connectors.kafka._transactions import Item, Journal, decode_state, read_journal
from streamcore.errors import SinkError

ITEMS: list[Item] = [
    (b"k1", b'{"a":1}', None),
    (None, b"v", None),
    (b"", b"", [("h", b"x"), ("\u00e9t\u00e9", b"")]),
    (b"k4", None, []),
]


def test_a_journal_gives_back_its_items_in_order_with_none_and_headers() -> None:
    journal = Journal()
    journal.append(ITEMS[:2])
    journal.append(ITEMS[2:])
    assert len(journal) == 4
    sealed = journal.seal()
    assert len(journal) == 0 and journal.seal() == b""
    assert read_journal(sealed) == ITEMS
    # Twelve bytes of framing per record, plus the bytes themselves.
    assert len(read_journal(sealed[:12] + b"k1" + b'{"a":1}')) == 1


def test_a_truncated_journal_is_an_error_not_fewer_records() -> None:
    journal = Journal()
    journal.append(ITEMS)
    sealed = journal.seal()
    with pytest.raises(ValueError, match="truncated"):
        read_journal(sealed[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_journal(sealed[:5])


def _state_v1(items: list[Item]) -> dict[str, object]:
    """A checkpoint state as the previous version wrote it: records base64'd one by one."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")

    records = [
        [b64(k), b64(v), None if h is None else [[n, b64(b)] for n, b in h]] for k, v, h in items
    ]
    return {
        "version": 1,
        "transactional_id": "tid",
        "marker_group": "mg",
        "seq": 3,
        "groups": [{"seq": 3, "checkpoint": 7, "records": records}],
    }


def test_a_state_of_the_previous_version_is_still_read() -> None:
    state = decode_state(_state_v1(ITEMS))
    (group,) = state.groups
    assert (state.seq, group.seq, group.checkpoint, group.count) == (3, 3, 7, 4)
    assert read_journal(group.journal) == ITEMS


def test_a_state_whose_journal_disagrees_with_its_count_is_refused() -> None:
    journal = Journal()
    journal.append(ITEMS)
    state = {
        "version": 2,
        "transactional_id": "tid",
        "marker_group": "mg",
        "seq": 1,
        "groups": [
            {
                "seq": 1,
                "checkpoint": 1,
                "count": 5,
                "journal": base64.b64encode(journal.seal()).decode(),
            }
        ],
    }
    with pytest.raises(ValueError, match="another length than 5"):
        decode_state(state)


async def test_a_checkpoint_interval_of_output_is_held_in_a_few_bytes_a_record(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """orjson returns each value inside a 4 KiB buffer: kept as returned, 5,000 small
    records of an open transaction held about 20 MiB."""
    topic = await kafka_topic_factory()
    sink = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await sink.restore(None)
    await sink.open(sink_context(topic))
    records = [{"user": f"u{i}", "n": i} for i in range(5_000)]
    try:
        await sink.write_batch(records[:10])  # the client's first-use allocations
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for at in range(10, len(records), 500):
                await sink.write_batch(records[at : at + 500])
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert held < 2 * 1024 * 1024, f"the open transaction holds {held:,} bytes"
        state = await sink.pre_commit(1)
        await sink.commit(1, state)
    finally:
        await sink.close()
    await wait_committed(kafka_bootstrap, topic, records)


async def test_restore_from_a_previous_version_state_publishes_its_records_once(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    flow = topic
    sink = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    state = _state_v1([(b"k", b"1", [("h", b"v")]), (None, b"2", None)])
    state["transactional_id"] = f"streamcore-{flow}-out"
    state["marker_group"] = f"streamcore-sink-{flow}-out"
    await sink.restore(state)
    await sink.open(sink_context(flow))
    await sink.close()
    got = [(k, v, h) for _, k, v, h in await read_all(kafka_bootstrap, topic, 2)]
    assert got == [(b"k", 1, [("h", b"v")]), (None, 2, [])]
    # Restoring the same state again finds the marker and writes nothing twice.
    again = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await again.restore(state)
    await again.open(sink_context(flow))
    await again.close()
    await wait_committed(kafka_bootstrap, topic, [1, 2])


async def test_records_written_while_a_checkpoint_is_stored_are_published_after_a_crash(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """Records buffered between pre_commit and commit live only in the journal: a crash
    after the next checkpoint completes still publishes them, keys and headers kept."""
    topic = await kafka_topic_factory()
    first = KafkaSink(
        topic, bootstrap_servers=kafka_bootstrap, exactly_once=True,
        key=lambda r: r["k"], headers=lambda r: [("n", str(r["n"]))],
    )  # fmt: skip
    await first.restore(None)
    await first.open(sink_context(topic))
    await first.write_batch([{"k": "a", "n": 1}])
    state1 = await first.pre_commit(1)
    # Buffered: checkpoint 1 is not committed yet.
    await first.write_batch([{"k": "b", "n": 2}, {"k": "c", "n": 3}])
    state2 = await first.pre_commit(2)
    await first.commit(1, state1)  # publishes 1, sends group 2 in the next transaction
    await crash(first)
    await wait_committed(kafka_bootstrap, topic, [{"k": "a", "n": 1}])

    second = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await second.restore(state2)
    await second.open(sink_context(topic))
    await second.close()
    got = [(k, h) for _, k, _, h in await read_all(kafka_bootstrap, topic, 3)]
    assert got == [(b"a", [("n", b"1")]), (b"b", [("n", b"2")]), (b"c", [("n", b"3")])]


async def test_a_corrupt_journal_fails_the_restore_with_a_sink_error(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = await kafka_topic_factory()
    sink = KafkaSink(topic, bootstrap_servers=kafka_bootstrap, exactly_once=True)
    await sink.restore(
        {
            "version": 2, "transactional_id": f"streamcore-{topic}-out",
            "marker_group": f"streamcore-sink-{topic}-out", "seq": 1,
            "groups": [{"seq": 1, "checkpoint": 1, "count": 1, "journal": "AAAA"}],
        }
    )  # fmt: skip
    with pytest.raises(SinkError, match=r"cannot restore: .*truncated"):
        await sink.open(sink_context(topic))
