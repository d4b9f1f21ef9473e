"""Redis connectors against the real Redis the test command starts: round trips, positions,
per-stream watermarks, consumer groups and XACK, poison entries and error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio
from redis_helpers import (
    add_entries,
    delete_matching,
    redis_client,
    stream_fields,
    unique,
    wait_for,
)

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from connectors.redis import RedisHashSink, RedisStreamRecord, RedisStreamSink, RedisStreamSource
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext, SourceContext

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    async with redis_client(redis_url) as c:
        yield c


@pytest.fixture
async def base(client: redis.asyncio.Redis) -> AsyncIterator[str]:
    """A name prefix of this test's own; its keys are deleted afterwards."""
    name = unique("rs")
    yield name
    await delete_matching(client, name)


async def start(flow: sc.Dataflow, **run_options: Any) -> sc.FlowRun:
    """Run ``flow`` in the background; returns once it is running."""
    return await flow.start(**run_options)


async def stop(flow: sc.Dataflow, run: sc.FlowRun) -> None:
    """Stop a running flow gracefully (drain) and wait for its end."""
    await run.stop(timeout=60)


async def read_all(source: RedisStreamSource, position: Any = None) -> list[RedisStreamRecord]:
    await source.open(SourceContext("check"), position)
    out: list[RedisStreamRecord] = []
    try:
        while (batch := await source.read_batch(1000, 0.05)) is not None:
            out.extend(batch)
    finally:
        await source.close()
    return out


# -- round trips ------------------------------------------------------------------------


async def test_records_written_by_the_stream_sink_come_back_with_stream_id_and_fields(
    redis_url: str, base: str
) -> None:
    stream = f"{base}:out"
    rows = [{"user": f"u{i}", "amount": i, "tags": ["a", i]} for i in range(25)]
    flow = sc.Dataflow(f"{base}-write")
    flow.source(IterableSource(rows)).sink(RedisStreamSink(stream, url=redis_url))
    await flow.run()

    got = await read_all(RedisStreamSource(stream, url=redis_url, stop_at_end=True))
    assert [r.fields for r in got] == [
        {"user": f"u{i}", "amount": str(i), "tags": f'["a",{i}]'} for i in range(25)
    ]
    assert {r.stream for r in got} == {stream}
    ids = [r.id for r in got]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == 25
    assert all(abs(r.id_ms - got[0].id_ms) < 60_000 and r.id_ms == int(r.id.split("-")[0]) for r in got)


async def test_json_values_round_trip_with_their_types(redis_url: str, base: str) -> None:
    stream = f"{base}:json"
    rows = [{"n": i, "name": f"x{i}", "ok": i % 2 == 0, "nested": {"a": [i]}} for i in range(5)]
    flow = sc.Dataflow(f"{base}-json")
    flow.source(IterableSource(rows)).sink(RedisStreamSink(stream, url=redis_url, value_format="json"))
    await flow.run()
    got = await read_all(RedisStreamSource(stream, url=redis_url, value_format="json", stop_at_end=True))
    assert [r.fields for r in got] == rows


async def test_window_results_go_to_a_stream_and_to_hashes_by_default_field_names(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    events = [{"user": u, "ts": t} for t in range(0, 3000, 100) for u in ("a", "b")]
    flow = sc.Dataflow(f"{base}-windows")
    totals = (
        flow.source(IterableSource(events), timestamp=lambda e: e["ts"])
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(timedelta(seconds=1)))
        .aggregate({"n": sc.agg.count()})
    )
    totals.sink(RedisStreamSink(f"{base}:results", url=redis_url))
    totals.sink(RedisHashSink(url=redis_url, key=lambda r: f"{base}:h:{r.key}:{r.start}",
                              fields=lambda r: {"n": r.value["n"], "end": r.end}, ttl=timedelta(hours=1)))
    await flow.run()
    entries = await stream_fields(client, f"{base}:results")
    assert len(entries) == 6
    assert entries[0] == {"key": "a", "start": "0", "end": "1000", "value": '{"n":10}', "is_update": "false"}
    assert await client.hgetall(f"{base}:h:b:2000") == {b"n": b"10", b"end": b"3000"}
    assert 0 < await client.ttl(f"{base}:h:b:2000") <= 3600


async def test_the_hash_sink_upserts_so_writing_twice_leaves_the_same_hashes(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    sink = RedisHashSink(url=redis_url, key=lambda r: f"{base}:k{r['k']}", fields=lambda r: {"v": r["v"]})
    await sink.open(SinkContext("hash", "f"))
    try:
        await sink.write_batch([{"k": 1, "v": 1}, {"k": 2, "v": 2}, {"k": 1, "v": 3}])
        await client.hset(f"{base}:k2", "other", "kept")
        await sink.write_batch([{"k": 1, "v": 1}, {"k": 2, "v": 2}, {"k": 1, "v": 3}])
    finally:
        await sink.close()
    assert await client.hgetall(f"{base}:k1") == {b"v": b"3"}
    assert await client.hgetall(f"{base}:k2") == {b"v": b"2", b"other": b"kept"}


# -- positions --------------------------------------------------------------------------


async def test_a_second_session_resumes_exactly_after_the_last_entry_returned(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{base}:s"
    await add_entries(client, stream, 30)
    first = RedisStreamSource(stream, url=redis_url, count=7)
    await first.open(SourceContext("first"))
    try:
        seen = await first.read_batch(100, 0.05)
        position = first.position()
    finally:
        await first.close()
    assert seen is not None and len(seen) == 7
    assert position == {stream: seen[-1].id}
    rest = await read_all(RedisStreamSource(stream, url=redis_url, stop_at_end=True), position)
    assert [int(r.fields["i"]) for r in seen + rest] == list(range(30))


async def test_start_dollar_reads_only_entries_added_after_open_and_stop_at_end_stops_at_open(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{base}:s"
    await client.xadd(stream, {"i": "old"})
    source = RedisStreamSource(stream, url=redis_url, start="$")
    await source.open(SourceContext("new"))
    try:
        await client.xadd(stream, {"i": "new"})
        got: list[Any] = []

        async def arrived() -> bool:
            got.extend(await source.read_batch(10, 0.05) or [])
            return bool(got)

        await wait_for(arrived, what="the new entry")
    finally:
        await source.close()
    assert [r.fields["i"] for r in got] == ["new"]
    finite = RedisStreamSource(stream, url=redis_url, stop_at_end=True)
    await finite.open(SourceContext("finite"))
    try:
        await client.xadd(stream, {"i": "later"})
        out = []
        while (batch := await finite.read_batch(10, 0.05)) is not None:
            out.extend(batch)
    finally:
        await finite.close()
    assert [r.fields["i"] for r in out] == ["old", "new"]


# -- watermarks per stream ----------------------------------------------------------------


async def test_each_stream_has_its_own_watermark_and_a_lagging_stream_holds_it_back(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    fast, slow = f"{base}:fast", f"{base}:slow"
    await client.xadd(slow, {"ts": 1000})
    for ts in range(0, 20_000, 500):
        await client.xadd(fast, {"ts": ts})
    flow = sc.Dataflow(f"{base}-held")
    out = ListSink()
    (
        flow.source(RedisStreamSource([fast, slow], url=redis_url), name="redis",
                    timestamp=lambda r: int(r.fields["ts"]))
        .key_by(lambda r: r.stream)
        .window(sc.TumblingWindows(timedelta(seconds=1)))
        .aggregate(sc.agg.count())
        .sink(out)
    )
    run = await start(flow)
    try:
        async def held() -> bool:
            stats = flow.statistics().actor("redis")
            return bool(stats.records_in == 41 and stats.held_back_by == slow)

        await wait_for(held, what="the slow stream holding the watermark")
        assert flow.statistics().actor("redis").watermark_ms == 1000
        assert {(r.key, r.start) for r in out.items} <= {(fast, 0), (slow, 0)}
    finally:
        await stop(flow, run)


async def test_an_idle_caught_up_stream_stops_holding_the_watermark_back(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    busy, idle = f"{base}:busy", f"{base}:idle"
    await client.xadd(idle, {"ts": 1000})
    flow = sc.Dataflow(f"{base}-idle")
    out = ListSink()
    (
        flow.source(RedisStreamSource([busy, idle], url=redis_url), name="redis",
                    timestamp=lambda r: int(r.fields["ts"]), idle_timeout=timedelta(milliseconds=200))
        .key_by(lambda r: r.stream)
        .window(sc.TumblingWindows(timedelta(seconds=1)))
        .aggregate(sc.agg.count())
        .sink(out)
    )

    async def produce() -> None:
        # A live stream: an entry every few ms, 500 ms of event time apart.
        for ts in range(0, 1_000_000, 500):
            await client.xadd(busy, {"ts": ts})
            await asyncio.sleep(0.005)

    run = await start(flow)
    producer = asyncio.create_task(produce())
    try:
        # The idle stream's 1,000 would hold every window after [0, 1000) back; once it
        # is idle (caught up and quiet for 200 ms), the busy stream's windows fire.
        async def fired() -> bool:
            return (busy, 18_000) in {(r.key, r.start) for r in out.items}

        await wait_for(fired, timeout_s=60, what="the busy stream's windows to fire")
        assert flow.statistics().actor("redis").held_back_by == busy
    finally:
        producer.cancel()
        await stop(flow, run)
    assert [r.start for r in out.items if r.key == busy][:19] == list(range(0, 19_000, 1000))
    assert [r.value for r in out.items if r.key == busy][:19] == [2] * 19


# -- consumer groups ----------------------------------------------------------------------


async def test_a_group_acknowledges_entries_only_when_commit_offsets_is_called(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream, group = f"{base}:s", f"{base}-g"
    await add_entries(client, stream, 10)
    source = RedisStreamSource(stream, url=redis_url, group=group, consumer="c1", count=4)
    await source.open(SourceContext("group"))
    try:
        first = await source.read_batch(4, 0.05)
        second = await source.read_batch(4, 0.05)
        assert first and second
        at_first = {stream: first[-1].id}
        assert (await client.xpending(stream, group))["pending"] == 8
        await source.commit_offsets(at_first)
        assert (await client.xpending(stream, group))["pending"] == 4
        await source.commit_offsets(source.position())
        assert (await client.xpending(stream, group))["pending"] == 0
    finally:
        await source.close()


async def test_a_restarted_group_consumer_reads_its_pending_entries_after_the_position_again(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream, group = f"{base}:s", f"{base}-g"
    await add_entries(client, stream, 10)
    source = RedisStreamSource(stream, url=redis_url, group=group, consumer="c1", count=3)
    await source.open(SourceContext("crashing"))
    try:
        first = await source.read_batch(3, 0.05)
        checkpoint = source.position()
        assert await source.read_batch(3, 0.05)  # read, then "crash": never acknowledged
    finally:
        await source.close()
    assert first is not None
    again = RedisStreamSource(stream, url=redis_url, group=group, consumer="c1", stop_at_end=True)
    rest = await read_all(again, checkpoint)
    # From the checkpoint's id, not from the group's pending list (which starts at 0).
    assert [int(r.fields["i"]) for r in rest] == list(range(3, 10))
    # The entries at or before the checkpoint position were acknowledged on open.
    pending: Any = await client.xpending_range(stream, group, min="-", max="+", count=100)
    assert [p["message_id"].decode() for p in pending] == [r.id for r in rest]


async def test_entries_a_group_delivers_again_after_going_back_are_not_processed_twice(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream, group = f"{base}:s", f"{base}-g"
    await add_entries(client, stream, 6)
    source = RedisStreamSource(stream, url=redis_url, group=group, consumer="c1")
    await source.open(SourceContext("group"))
    try:
        first = await source.read_batch(100, 0.05)
        # As after Redis restarted from an older snapshot than the checkpoint.
        await client.xgroup_setid(stream, group, "0")
        await client.xadd(stream, {"i": 6})
        again = await source.read_batch(100, 0.05)
        await source.commit_offsets(source.position())
    finally:
        await source.close()
    assert first is not None and again is not None
    assert [int(r.fields["i"]) for r in first + again] == list(range(7))
    assert (await client.xpending(stream, group))["pending"] == 0


async def test_two_flows_in_one_group_share_the_streams_and_together_read_each_entry_once(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    streams, group = [f"{base}:a", f"{base}:b"], f"{base}-g"
    for i in range(400):
        await client.xadd(streams[i % 2], {"i": i})
    outs = [ListSink(), ListSink()]
    flows = []
    for n, out in enumerate(outs):
        flow = sc.Dataflow(f"{base}-member{n}")
        flow.source(
            RedisStreamSource(streams, url=redis_url, group=group, consumer=f"c{n}", count=10, stop_at_end=True),
            batch_size=10,
        ).map(lambda r: int(r.fields["i"])).sink(out)
        flows.append(flow)
    store = sc.MemoryStateStore()
    await asyncio.gather(*(f.run(checkpoint=sc.Checkpointing(store, interval=0.05)) for f in flows))
    got = outs[0].items + outs[1].items
    assert sorted(got) == list(range(400))
    assert outs[0].items and outs[1].items  # both members took a share
    # The final checkpoints acknowledged everything.
    for stream in streams:
        assert (await client.xpending(stream, group))["pending"] == 0


async def test_a_checkpointed_flow_acknowledges_entries_after_the_checkpoint_completes(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream, group = f"{base}:s", f"{base}-g"
    await add_entries(client, stream, 50)
    flow = sc.Dataflow(f"{base}-ack")
    out = ListSink()
    flow.source(RedisStreamSource(stream, url=redis_url, group=group, consumer="c"), name="redis").sink(out)
    run = await start(flow, checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=timedelta(hours=1)))
    try:
        async def all_written() -> bool:
            return len(out.items) == 50

        await wait_for(all_written, what="every entry to reach the sink")
        # Read and written, but no checkpoint yet: all still pending.
        assert (await client.xpending(stream, group))["pending"] == 50
    finally:
        await stop(flow, run)  # the final checkpoint completes, then its positions are acknowledged
    assert (await client.xpending(stream, group))["pending"] == 0


# -- bad input and errors ------------------------------------------------------------------


async def test_a_poison_entry_goes_to_the_dead_letters_naming_stream_and_id(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{base}:s"
    await client.xadd(stream, {"v": "ok"})
    bad_id = (await client.xadd(stream, {"v": b"\xff\xfe"})).decode()
    await client.xadd(stream, {"v": "fine"})
    flow = sc.Dataflow(f"{base}-poison")
    good, dead = ListSink(), ListSink()
    flow.source(RedisStreamSource(stream, url=redis_url, stop_at_end=True), name="events",
                on_error="dead_letter").map(lambda r: r.fields["v"]).sink(good)
    flow.dead_letters.sink(dead)
    await flow.run()
    assert good.items == ["ok", "fine"]
    [letter] = dead.items
    assert letter.stage == "events" and letter.record == {b"v": b"\xff\xfe"}
    assert isinstance(letter.error, SourceError)
    assert f"stream {stream} id {bad_id}" in str(letter.error)


async def test_a_poison_entry_fails_the_flow_by_default_naming_stream_and_id(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    stream = f"{base}:s"
    bad_id = (await client.xadd(stream, {"v": "not json"})).decode()
    flow = sc.Dataflow(f"{base}-poison-fail")
    flow.source(RedisStreamSource(stream, url=redis_url, value_format="json", stop_at_end=True)).sink(ListSink())
    with pytest.raises(SourceError, match=rf"cannot decode stream {stream} id {bad_id}"):
        await flow.run()


async def test_reading_a_key_that_is_not_a_stream_is_a_source_error_naming_stream_and_position(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    key = f"{base}:not-a-stream"
    await client.set(key, "x")
    source = RedisStreamSource(key, url=redis_url)
    await source.open(SourceContext("wrong"), {key: "5-1"})
    try:
        with pytest.raises(SourceError, match=rf"{key} after 5-1.*WRONGTYPE") as info:
            await source.read_batch(10, 0.05)
    finally:
        await source.close()
    assert isinstance(info.value.__cause__, redis.ResponseError)


async def test_writing_to_a_key_that_is_not_a_stream_is_a_sink_error_naming_the_stream(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    key = f"{base}:not-a-stream"
    await client.set(key, "x")
    sink = RedisStreamSink(key, url=redis_url)
    await sink.open(SinkContext("out", "f"))
    try:
        with pytest.raises(SinkError, match=rf"Redis stream sink '{key}'.*2 entries.*WRONGTYPE"):
            await sink.write_batch([{"a": 1}, {"a": 2}])
    finally:
        await sink.close()


async def test_a_record_that_cannot_be_encoded_fails_the_batch_naming_its_index_and_type(
    redis_url: str, base: str, client: redis.asyncio.Redis
) -> None:
    sink = RedisStreamSink(f"{base}:s", url=redis_url, fields=lambda r: {"v": r})
    await sink.open(SinkContext("out", "f"))
    try:
        with pytest.raises(SinkError, match=r"record 1 of the batch \(object\)"):
            await sink.write_batch([1, object()])
    finally:
        await sink.close()
    assert await client.exists(f"{base}:s") == 0  # nothing of the batch was sent


async def test_an_unreachable_redis_fails_open_with_errors_naming_the_connector_and_masked_url() -> None:
    url = "redis://user:s3cret@127.0.0.1:1/0"
    with pytest.raises(SourceError, match=r"Redis stream source 's'.*user:\*\*\*@127.0.0.1:1") as info:
        await RedisStreamSource("s", url=url, connect_retries=0, socket_timeout_s=1).open(SourceContext("x"))
    assert "s3cret" not in str(info.value)
    with pytest.raises(SinkError, match=r"Redis stream sink 's'.*cannot connect"):
        await RedisStreamSink("s", url=url, connect_retries=0, socket_timeout_s=1).open(SinkContext("x", "f"))
    with pytest.raises(SinkError, match=r"Redis hash sink.*cannot connect"):
        await RedisHashSink(url=url, key=str, connect_retries=0, socket_timeout_s=1).open(SinkContext("x", "f"))


def test_options_that_cannot_work_are_refused_when_the_connector_is_built() -> None:
    url = "redis://localhost:6379/0"
    with pytest.raises(ValueError, match="start"):
        RedisStreamSource("s", url=url, start="latest")
    with pytest.raises(ValueError, match="distinct"):
        RedisStreamSource(["s", "s"], url=url)
    with pytest.raises(ValueError, match="consumer"):
        RedisStreamSource("s", url=url, consumer="c")
    with pytest.raises(ValueError, match="value_format"):
        RedisStreamSource("s", url=url, value_format="avro")
    with pytest.raises(SourceError, match="scheme"):
        RedisStreamSource("s", url="http://localhost:6379")
    with pytest.raises(ValueError, match="maxlen"):
        RedisStreamSink("s", url=url, maxlen=0)
    with pytest.raises(ValueError, match="ttl"):
        RedisHashSink(url=url, key=str, ttl=timedelta(0))
