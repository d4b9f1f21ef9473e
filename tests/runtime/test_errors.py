"""Failures: error messages of failing stages, error policies, graph validation, task cleanup."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest
from runtime_helpers import GatedSink, flow_tasks, wait_until

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.io import Sink, SinkContext


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


async def async_fail_on_three(x: int) -> int:
    await asyncio.sleep(0)
    return fail_on_three(x)


# -- a failing user function fails the run ---------------------------------------------


@pytest.mark.parametrize("chaining", [True, False], ids=["chained", "unchained"])
async def test_a_failing_map_raises_a_stage_error_naming_the_stage_and_the_record(chaining: bool) -> None:
    flow = sc.Dataflow("failing", chaining=chaining)
    flow.source(IterableSource([1, 2, 3, 4])).map(fail_on_three, name="parse").sink(ListSink())
    with pytest.raises(
        sc.StageError, match=r"^stage 'parse' failed on record 3: ValueError: three is not allowed$"
    ) as info:
        await flow.run()
    assert isinstance(info.value, sc.StreamcoreError)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "three is not allowed"
    assert (info.value.stage, info.value.record) == ("parse", 3)


@pytest.mark.parametrize(
    ("failing", "op"),
    [("first", "map"), ("second", "filter"), ("third", "flat_map"), ("fourth", "map")],
)
async def test_a_failure_inside_a_fused_chain_names_the_stage_and_the_record_it_received(
    failing: str, op: str
) -> None:
    # Each stage fails on a record only it receives, so the message shows whether the
    # right stage and the right record were found.
    triggers = {"first": 7, "second": 70, "third": 70, "fourth": 71}

    def stage_fn(name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(x: Any) -> Any:
            if name == failing and x == triggers[name]:
                raise KeyError(f"{name} rejects {x}")
            return fn(x)

        return run

    flow = sc.Dataflow("chain-failure")
    (
        flow.source(IterableSource([5, 6, 7]))
        .map(stage_fn("first", lambda x: x * 10), name="first")
        .filter(stage_fn("second", lambda x: x != 0), name="second")
        .flat_map(stage_fn("third", lambda x: [x, x + 1]), name="third")
        .map(stage_fn("fourth", lambda x: x * 10), name="fourth")
        .sink(ListSink())
    )
    record = triggers[failing]
    with pytest.raises(sc.StageError, match=rf"^stage '{failing}' failed on record {record}: KeyError") as info:
        await flow.run()
    assert (info.value.stage, info.value.record) == (failing, record)
    assert isinstance(info.value.__cause__, KeyError)
    assert flow.statistics().actor(failing).stages == ("first", "second", "third", "fourth", "list_sink")


async def test_a_failing_builtin_in_a_fused_chain_names_the_record_it_received() -> None:
    # A builtin has no Python frame of its own: the record is found all the same.
    flow = sc.Dataflow("builtin-failure")
    flow.source(IterableSource(["1", "2", "x", "4"])).map(str.strip, name="strip").map(int, name="int").sink(
        ListSink()
    )
    with pytest.raises(sc.StageError, match=r"^stage 'int' failed on record 'x': ValueError") as info:
        await flow.run()
    assert (info.value.stage, info.value.record) == ("int", "x")


async def test_a_flat_map_whose_generator_raises_midway_names_the_record_it_was_given() -> None:
    def expand(x: int) -> Iterator[int]:
        yield x
        if x == 20:
            raise ValueError("cannot expand 20")
        yield x + 1

    flow = sc.Dataflow("generator-failure")
    flow.source(IterableSource([1, 2, 3])).map(lambda x: x * 10, name="scale").flat_map(
        expand, name="expand"
    ).sink(ListSink())
    with pytest.raises(sc.StageError, match=r"^stage 'expand' failed on record 20: ValueError") as info:
        await flow.run()
    assert (info.value.stage, info.value.record) == ("expand", 20)


async def test_a_chain_failure_that_does_not_happen_again_names_the_stage_and_no_record() -> None:
    # The record is found by running the batch again; a flaky failure is not repeated.
    calls = itertools.count()

    def flaky(x: int) -> int:
        if next(calls) == 2:
            raise ConnectionError("lookup timed out")
        return x

    flow = sc.Dataflow("flaky-failure")
    flow.source(IterableSource([1, 2, 3, 4])).map(flaky, name="lookup").map(str, name="format").sink(
        ListSink()
    )
    with pytest.raises(
        sc.StageError, match=r"^stage 'lookup' failed on record None: ConnectionError: lookup timed out$"
    ) as info:
        await flow.run()
    assert (info.value.stage, info.value.record) == ("lookup", None)


async def test_a_failing_async_map_raises_a_stage_error_with_the_users_exception_as_cause() -> None:
    flow = sc.Dataflow("async-failing")
    flow.source(IterableSource([1, 2, 3])).map(async_fail_on_three, name="lookup").sink(ListSink())
    with pytest.raises(
        sc.StageError, match=r"^stage 'lookup' failed on record 3: ValueError: three is not allowed$"
    ) as info:
        await flow.run()
    assert isinstance(info.value.__cause__, ValueError)


async def test_a_failing_sink_function_raises_a_stage_error_naming_the_sink() -> None:
    def store(x: int) -> None:
        if x == 2:
            raise ConnectionError("database went away")

    flow = sc.Dataflow("sink-failing")
    flow.source(IterableSource([1, 2, 3])).sink(store, name="db")
    with pytest.raises(
        sc.StageError, match=r"^stage 'db' failed on record 2: ConnectionError: database went away$"
    ) as info:
        await flow.run()
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_a_failing_async_sink_function_raises_a_stage_error_naming_the_sink() -> None:
    async def store(x: int) -> None:
        await asyncio.sleep(0)
        if x == 2:
            raise ConnectionError("database went away")

    flow = sc.Dataflow("async-sink-failing")
    flow.source(IterableSource([1, 2, 3])).sink(store, name="db")
    with pytest.raises(sc.StageError, match=r"^stage 'db' failed on record 2: ConnectionError"):
        await flow.run()


async def test_a_failing_sink_connector_raises_a_sink_error_naming_the_sink() -> None:
    class BrokenSink(Sink):
        def write_batch(self, records: list[Any]) -> None:
            raise OSError("disk full")

    flow = sc.Dataflow("connector-failing")
    flow.source(IterableSource([1, 2, 3])).sink(BrokenSink(), name="files")
    with pytest.raises(sc.SinkError, match=r"^sink 'files' failed writing a batch of 3: disk full$") as info:
        await flow.run()
    assert isinstance(info.value.__cause__, OSError)


async def test_a_sink_that_cannot_open_fails_the_run_naming_the_sink() -> None:
    class Unopenable(Sink):
        async def open(self, context: SinkContext) -> None:
            raise PermissionError("read-only file system")

        def write_batch(self, records: list[Any]) -> None:
            raise AssertionError("never written")

    flow = sc.Dataflow("unopenable")
    flow.source(IterableSource([1])).sink(Unopenable(), name="files")
    with pytest.raises(
        sc.StreamcoreError, match=r"^stage 'files' failed: PermissionError: read-only file system$"
    ) as info:
        await flow.run()
    assert isinstance(info.value.__cause__, PermissionError)


# -- error policies --------------------------------------------------------------------


@pytest.mark.parametrize("fn", [fail_on_three, async_fail_on_three], ids=["plain", "async"])
async def test_on_error_skip_drops_the_record_and_counts_it(fn: Callable[[int], Any]) -> None:
    out = ListSink()
    flow = sc.Dataflow("skipping")
    flow.source(IterableSource([1, 2, 3, 4, 3])).map(fn, name="parse", on_error="skip").sink(out)
    await flow.run()
    assert out.items == [1, 2, 4]
    stats = flow.statistics().actor("parse")
    assert stats.skipped == 2
    assert stats.dead_letters == 0


async def test_on_error_skip_on_a_sink_function_drops_the_record_and_counts_it() -> None:
    got: list[int] = []

    def store(x: int) -> None:
        got.append(fail_on_three(x))

    flow = sc.Dataflow("skipping-sink")
    flow.source(IterableSource([1, 2, 3, 4])).sink(store, name="db", on_error="skip")
    await flow.run()
    assert got == [1, 2, 4]
    assert flow.statistics().actor("db").skipped == 1


@pytest.mark.parametrize("fn", [fail_on_three, async_fail_on_three], ids=["plain", "async"])
async def test_on_error_dead_letter_sends_the_record_and_error_to_flow_dead_letters(
    fn: Callable[[int], Any],
) -> None:
    out, dead = ListSink(), ListSink()
    flow = sc.Dataflow("dead-lettering")
    flow.source(IterableSource([1, 2, 3, 4])).map(fn, name="parse", on_error="dead_letter").sink(out)
    flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert out.items == [1, 2, 4]
    assert len(dead.items) == 1
    letter = dead.items[0]
    assert isinstance(letter, sc.DeadLetter)
    assert (letter.stage, letter.record) == ("parse", 3)
    assert isinstance(letter.error, ValueError)
    assert str(letter.error) == "three is not allowed"
    assert dead.closed
    assert flow.statistics().actor("parse").dead_letters == 1


async def test_dead_letters_from_several_stages_all_arrive_and_the_run_ends() -> None:
    def fail_on_even(x: int) -> int:
        if x % 2 == 0:
            raise ValueError(f"{x} is even")
        return x

    out, dead = ListSink(), ListSink()
    flow = sc.Dataflow("many-dead", chaining=False)
    (
        flow.source(IterableSource(range(20)), batch_size=3)
        .map(fail_on_three, name="first", on_error="dead_letter")
        .map(fail_on_even, name="second", on_error="dead_letter")
        .sink(out)
    )
    flow.dead_letters.map(lambda d: (d.stage, d.record)).sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert out.items == [x for x in range(20) if x % 2 and x != 3]
    assert sorted(dead.items) == [("first", 3)] + [("second", x) for x in range(0, 20, 2)]


async def test_on_error_dead_letter_on_a_sink_function_sends_the_record_to_dead_letters() -> None:
    stored: list[int] = []

    def store(x: int) -> None:
        stored.append(fail_on_three(x))

    dead = ListSink()
    flow = sc.Dataflow("dead-sink")
    flow.source(IterableSource([1, 3, 5])).sink(store, name="db", on_error="dead_letter")
    flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert stored == [1, 5]
    assert [(d.stage, d.record, type(d.error)) for d in dead.items] == [("db", 3, ValueError)]


class NoNegatives(Sink):
    """A sink connector whose batch write is all or nothing and refuses negative numbers."""

    def __init__(self) -> None:
        self.items: list[int] = []

    def write_batch(self, records: list[int]) -> None:
        bad = [r for r in records if r < 0]
        if bad:
            raise sc.SinkError(f"cannot store {bad[0]}")
        self.items.extend(records)


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_a_sink_connector_applies_its_error_policy_to_the_failing_records_only(policy: str) -> None:
    sink, dead = NoNegatives(), ListSink()
    flow = sc.Dataflow(f"connector-{policy}")
    flow.source(IterableSource([1, -2, 3, 4, -5, 6]), batch_size=3).sink(sink, name="store", on_error=policy)
    if policy == "dead_letter":
        flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert sink.items == [1, 3, 4, 6]
    stats = flow.statistics().actor("store")
    if policy == "skip":
        assert stats.skipped == 2
    else:
        assert stats.dead_letters == 2
        assert [(d.stage, d.record) for d in dead.items] == [("store", -2), ("store", -5)]
        assert str(dead.items[0].error) == "cannot store -2"


async def test_a_sink_connector_error_fails_the_run_by_default() -> None:
    flow = sc.Dataflow("connector-fail")
    flow.source(IterableSource([1, -2])).sink(NoNegatives(), name="store")
    with pytest.raises(sc.SinkError, match=r"^cannot store -2$"):
        await flow.run()


async def test_a_consumed_dead_letter_stream_with_nothing_failing_ends_with_the_flow() -> None:
    out, dead = ListSink(), ListSink()
    flow = sc.Dataflow("no-failures")
    flow.source(IterableSource([1, 2])).sink(out)
    flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert (out.items, dead.items, dead.closed) == ([1, 2], [], True)


TIMED = [{"ts": 1}, {"no_ts": 2}, {"ts": 3}]


async def test_a_failing_timestamp_function_fails_the_run_naming_the_source_and_record() -> None:
    flow = sc.Dataflow("bad-time")
    (
        flow.source(IterableSource(TIMED), timestamp=lambda r: r["ts"], name="events")
        .key_by(lambda r: 0)
        .window(sc.TumblingWindows(10))
        .aggregate(sc.agg.count())
        .sink(ListSink())
    )
    with pytest.raises(
        sc.SourceError, match=r"^source 'events': cannot take the event time of \{'no_ts': 2\}: 'ts'$"
    ) as info:
        await flow.run()
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_a_record_without_event_time_is_skipped_or_dead_lettered_by_the_source_policy(
    policy: str,
) -> None:
    out, dead = ListSink(), ListSink()
    flow = sc.Dataflow(f"bad-time-{policy}")
    (
        flow.source(IterableSource(TIMED), timestamp=lambda r: r["ts"], name="events", on_error=policy)
        .key_by(lambda r: 0)
        .window(sc.TumblingWindows(10))
        .aggregate(sc.agg.count())
        .sink(out)
    )
    if policy == "dead_letter":
        flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert [r.value for r in out.items] == [2]
    stats = flow.statistics().actor("events")
    if policy == "skip":
        assert (stats.skipped, stats.dead_letters) == (1, 0)
    else:
        assert (stats.skipped, stats.dead_letters) == (0, 1)
        assert [(d.stage, d.record) for d in dead.items] == [("events", {"no_ts": 2})]
        assert isinstance(dead.items[0].error, sc.SourceError)


# -- graph validation, before anything runs --------------------------------------------


class Untouched:
    """An iterable that records whether anybody started reading it."""

    def __init__(self) -> None:
        self.read = False

    def __iter__(self) -> Iterator[int]:
        self.read = True
        return iter([1, 2, 3])


async def test_a_flow_without_a_source_is_rejected() -> None:
    flow = sc.Dataflow("empty")
    with pytest.raises(sc.GraphError, match=r"^flow 'empty' has no source: add one with flow.source\(...\)$"):
        await flow.run()


async def test_a_flow_without_a_sink_is_rejected_before_reading_the_source() -> None:
    data = Untouched()
    flow = sc.Dataflow("sinkless")
    flow.source(IterableSource(data)).map(lambda x: x)
    with pytest.raises(sc.GraphError, match=r"^flow 'sinkless' has no sink: end each stream with .sink\(...\)$"):
        await flow.run()
    assert not data.read


async def test_a_stream_that_goes_nowhere_is_rejected_before_reading_the_source() -> None:
    data = Untouched()
    out = ListSink()
    flow = sc.Dataflow("dangling")
    numbers = flow.source(IterableSource(data))
    numbers.map(lambda x: x, name="forgotten")
    numbers.sink(out)
    with pytest.raises(
        sc.GraphError,
        match=r"^the stream of stage 'forgotten' \(op\) goes nowhere: end it with .sink\(...\) or remove the stage$",
    ):
        await flow.run()
    assert not data.read
    assert out.items == [] and not out.closed


def test_a_duplicate_stage_name_is_rejected_when_it_is_added() -> None:
    flow = sc.Dataflow("dupes")
    numbers = flow.source(IterableSource([1]), name="numbers")
    numbers.map(lambda x: x, name="parse")
    with pytest.raises(
        sc.GraphError,
        match=r"^stage 'parse' already exists in flow 'dupes'; give each stage a unique name=$",
    ):
        numbers.filter(bool, name="parse")


def test_unnamed_stages_get_unique_default_names() -> None:
    flow = sc.Dataflow("defaults")
    numbers = flow.source(IterableSource([1]))
    numbers.map(lambda x: x).map(lambda x: x).sink(ListSink())
    assert [n.name for n in flow.nodes] == ["iterable", "map", "map_2", "list_sink"]


async def test_on_error_dead_letter_without_consuming_flow_dead_letters_is_rejected() -> None:
    flow = sc.Dataflow("no-dead-sink")
    flow.source(IterableSource([1])).map(fail_on_three, name="parse", on_error="dead_letter").sink(ListSink())
    with pytest.raises(
        sc.GraphError,
        match=r"^stage 'parse' sends failed records to flow.dead_letters, but nothing consumes it: "
        r"add flow.dead_letters.sink\(...\)$",
    ):
        await flow.run()


async def test_a_stage_reading_dead_letters_cannot_itself_dead_letter() -> None:
    flow = sc.Dataflow("loop")
    flow.source(IterableSource([1])).map(fail_on_three, on_error="dead_letter").sink(ListSink())
    flow.dead_letters.map(repr, name="show", on_error="dead_letter").sink(ListSink())
    with pytest.raises(sc.GraphError, match=r"^stage 'show' reads flow.dead_letters and cannot itself use"):
        await flow.run()


async def test_a_window_on_a_source_without_timestamps_is_rejected() -> None:
    flow = sc.Dataflow("timeless")
    (
        flow.source(IterableSource([{"k": 1}]), name="events")
        .key_by(lambda r: r["k"])
        .window(sc.TumblingWindows(1_000))
        .aggregate(sc.agg.count(), name="counts")
        .sink(ListSink())
    )
    with pytest.raises(
        sc.GraphError,
        match=r"^stage 'counts' needs event time, but source 'events' has no timestamp: "
        r"pass flow.source\(..., timestamp=lambda r: ...\)$",
    ):
        await flow.run()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"^batch_size must be at least 1, got 0$"),
        ({"overflow": "x"}, r"^overflow must be one of 'block', 'drop_oldest', 'drop_newest', got 'x'$"),
        ({"on_error": "x"}, r"^on_error must be one of 'fail', 'skip', 'dead_letter', got 'x'$"),
        ({"max_rate": 0}, r"^max_rate must be a positive number of records/s, got 0$"),
        ({"max_rate": -5.0}, r"^max_rate must be a positive number of records/s, got -5.0$"),
    ],
)
def test_bad_source_arguments_are_rejected_with_the_offending_value(kwargs: dict[str, Any], message: str) -> None:
    flow = sc.Dataflow("bad-args")
    with pytest.raises(sc.GraphError, match=message):
        flow.source(IterableSource([1]), **kwargs)


def test_a_bad_stage_policy_is_rejected_with_the_offending_value() -> None:
    flow = sc.Dataflow("bad-policy")
    numbers = flow.source(IterableSource([1]))
    with pytest.raises(sc.GraphError, match=r"^on_error must be one of 'fail', 'skip', 'dead_letter', got 'retry'$"):
        numbers.map(lambda x: x, on_error="retry")
    with pytest.raises(sc.GraphError, match=r"^on_error must be one of .*, got 'ignore'$"):
        numbers.sink(ListSink(), on_error="ignore")


def test_bad_flow_and_stage_arguments_are_rejected() -> None:
    with pytest.raises(sc.GraphError, match=r"^mailbox_capacity must be at least 1 record, got 0$"):
        sc.Dataflow("tiny", mailbox_capacity=0)
    with pytest.raises(sc.GraphError, match=r"^a Dataflow needs a non-empty name, got ''$"):
        sc.Dataflow("")
    flow = sc.Dataflow("bad-stage-args")
    numbers = flow.source(IterableSource([{"k": 1, "ts": 0}]), timestamp=lambda r: r["ts"])
    with pytest.raises(sc.GraphError, match=r"^map\(\) takes a function, got 42$"):
        numbers.map(42)  # type: ignore[arg-type]
    with pytest.raises(sc.GraphError, match=r"^flow.source\(\) takes a source connector"):
        flow.source([1, 2, 3])
    with pytest.raises(sc.GraphError, match=r"^parallelism must be a positive int, got 0$"):
        numbers.key_by(lambda r: r["k"]).window(sc.TumblingWindows(10)).aggregate(
            sc.agg.count(), parallelism=0
        )


# -- no task outlives run() -------------------------------------------------------------


def endless() -> Iterator[int]:
    yield from itertools.count()


async def endless_async() -> AsyncIterator[int]:
    for i in itertools.count():
        yield i
        if i % 100 == 0:
            await asyncio.sleep(0)


@pytest.mark.parametrize("make_numbers", [endless, endless_async], ids=["sync", "async"])
async def test_no_flow_task_is_left_running_after_run_raises(
    make_numbers: Callable[[], Iterable[int] | AsyncIterable[int]],
) -> None:
    before = asyncio.all_tasks()
    gated = GatedSink()

    def fail_late(x: int) -> int:
        if x == 5_000:
            raise ValueError("enough")
        return x

    flow = sc.Dataflow("cleanup-failure", mailbox_capacity=100)
    numbers = flow.source(IterableSource(make_numbers()), batch_size=50, name="numbers")
    numbers.map(fail_late, name="boom").sink(ListSink())
    numbers.sink(gated, name="stuck")  # blocks the source: every actor is mid-flight
    run = asyncio.create_task(flow.run())
    await wait_until(lambda: flow.statistics() is not None and len(flow_tasks()) == 3, what="3 actors")
    await wait_until(
        lambda: flow.statistics().mailboxes["stuck"].senders_waiting == 1, what="the source to block"
    )
    await gated.open_gate()
    with pytest.raises(sc.StageError, match=r"^stage 'boom' failed on record 5000: ValueError: enough$"):
        await asyncio.wait_for(run, 10)
    assert flow_tasks() == []
    assert asyncio.all_tasks() - before == set()  # the async iterable's pump is gone too
    assert gated.closed


async def test_no_flow_task_is_left_running_after_run_returns() -> None:
    async def numbers() -> Any:
        for i in range(100):
            yield i

    before = asyncio.all_tasks()
    out, dead = ListSink(), ListSink()
    flow = sc.Dataflow("cleanup-normal")
    flow.source(IterableSource(numbers())).map(fail_on_three, on_error="dead_letter").sink(out)
    flow.dead_letters.sink(dead)
    await asyncio.wait_for(flow.run(), 10)
    assert len(out.items) == 99 and len(dead.items) == 1
    assert flow_tasks() == []
    assert asyncio.all_tasks() - before == set()  # the async iterable's pump is gone too


async def test_no_task_is_left_behind_when_run_is_awaited_in_the_callers_own_task() -> None:
    # Without a wrapping task (3.11's wait_for made one) nothing runs between run()'s
    # return and this check, so a task run() cancelled but did not await is still there.
    before = asyncio.all_tasks()
    out = ListSink()
    flow = sc.Dataflow("cleanup-direct")
    flow.source(IterableSource([1, 2, 3])).sink(out)
    async with asyncio.timeout(10):
        await flow.run()
    assert out.items == [1, 2, 3]
    assert asyncio.all_tasks() - before == set()


async def test_cancelling_run_cancels_every_actor() -> None:
    gated = GatedSink()
    flow = sc.Dataflow("cancelled", mailbox_capacity=10)
    flow.source(IterableSource(endless()), batch_size=5).sink(gated)
    run = asyncio.create_task(flow.run())
    await wait_until(lambda: len(flow_tasks()) == 2, what="2 actors")
    await wait_until(
        lambda: flow.statistics().mailboxes["gated"].senders_waiting == 1, what="the source to block"
    )
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert flow_tasks() == []
    assert gated.closed


# -- keys ---------------------------------------------------------------------------------


class Echo(sc.KeyedProcessFunction):
    def process(self, record: Any, ctx: Any) -> list[Any]:
        return [record]


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("stage", ["window", "session", "process"])
@pytest.mark.parametrize("bad_key", [{"a": 1}, [1, 2]], ids=["dict", "list"])
async def test_an_unhashable_key_fails_naming_the_key_by_stage_with_the_record(
    parallelism: int, stage: str, bad_key: Any
) -> None:
    records = [{"k": "fine", "ts": 1}, {"k": bad_key, "ts": 2}]
    flow = sc.Dataflow(f"unhashable-{stage}-{parallelism}")
    keyed = flow.source(IterableSource(records), timestamp=lambda r: r["ts"]).key_by(
        lambda r: r["k"], name="by_k"
    )
    if stage == "process":
        out = keyed.process(Echo(), parallelism=parallelism)
    else:
        assigner = sc.TumblingWindows(10) if stage == "window" else sc.SessionWindows(10)
        out = keyed.window(assigner).aggregate(sc.agg.count(), parallelism=parallelism)
    out.sink(ListSink())
    with pytest.raises(sc.StageError, match=r"^stage 'by_k' \(key_by\) .* unhashable; keys must be hashable") as info:
        await flow.run()
    assert info.value.stage == "by_k"
    assert info.value.record == {"k": bad_key, "ts": 2}
    assert type(bad_key).__name__ in str(info.value)
