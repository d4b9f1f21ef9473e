"""Checkpoints in one process: barriers, restore, restarts, incremental state, failures.

Crash tests with SIGKILL and a real Redis restarted mid-run are in test_crash_recovery.py.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import IterableSource, ListSink
from streamcore.errors import StateError
from streamcore.state.coordinator import CheckpointCoordinator

# -- fixtures -------------------------------------------------------------------------------


class TxSink(sc.Sink):
    """An exactly-once sink in memory: sealed at barriers, published on commit."""

    supports_checkpoints = True

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.pending: list[Any] = []
        self.sealed: list[tuple[int, list[Any]]] = []
        self.restores: list[Any] = []
        self.closed_published = 0

    async def restore(self, state: Any | None) -> None:
        self.restores.append(state)
        total = 0 if state is None else state["total"]
        # Publish what the restored checkpoint sealed but a crash kept from committing.
        self.published.extend(r for _, records in self.sealed for r in records)
        del self.published[total:]
        self.sealed, self.pending = [], []

    def write_batch(self, records: list[Any]) -> None:
        self.pending.extend(records)

    def pre_commit(self, checkpoint_id: int) -> Any:
        self.sealed.append((checkpoint_id, self.pending))
        self.pending = []
        return {"total": len(self.published) + sum(len(r) for _, r in self.sealed)}

    def commit(self, checkpoint_id: int, state: Any) -> None:
        while self.sealed and len(self.published) < state["total"]:
            self.published.extend(self.sealed.pop(0)[1])

    async def close(self) -> None:
        self.closed_published = len(self.published)


class FlakyStore(sc.MemoryStateStore):
    """A memory store whose writes fail while ``down`` is set (a store outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed_writes = 0

    async def commit(self, puts: Any, deletes: Any) -> None:
        if self.down:
            self.failed_writes += 1
            raise StateError("store down (test outage)")
        await super().commit(puts, deletes)

    async def put_many(self, items: Any) -> None:
        if self.down:
            self.failed_writes += 1
            raise StateError("store down (test outage)")
        await super().put_many(items)


def write_events(path: Path, n: int, *, users: int = 40, seed: int = 7) -> None:
    rng = random.Random(seed)
    t = 0
    with path.open("wb") as f:
        for _ in range(n):
            t += rng.randint(0, 20)
            f.write(orjson.dumps({"user": f"u{rng.randint(0, users - 1)}", "amount": rng.randint(0, 100), "ts": t}))
            f.write(b"\n")


class FailOnce:
    """A map function that raises at its ``at``-th call, once over all runs.

    With ``once``, at its first call from the ``at``-th on for which ``once()`` is true.
    """

    def __init__(self, at: int | None, *, once: Callable[[], bool] | None = None) -> None:
        self.at = at
        self.once = once
        self.calls = 0
        self.failed = False

    def __call__(self, record: Any) -> Any:
        self.calls += 1
        if (
            self.at is not None
            and not self.failed
            and self.calls >= self.at
            and (self.once is None or self.once())
        ):
            self.failed = True
            raise RuntimeError("injected failure")
        return record


@pytest.fixture
def after_a_checkpoint(caplog: pytest.LogCaptureFixture) -> Callable[[], bool]:
    """For ``FailOnce(once=...)``: true once a checkpoint completed in this test.

    A failure meant to restart from a checkpoint waits for one instead of coming at a
    fixed record: under load fewer checkpoints fit in the same records."""
    caplog.set_level(logging.INFO, logger="streamcore.checkpoint")
    return lambda: any(r.getMessage().startswith("checkpoint complete") for r in caplog.records)


def window_flow(name: str, path: Path, sink: Any, fail: FailOnce | None = None, *, rate: float = 40_000) -> sc.Dataflow:
    flow = sc.Dataflow(name)
    stream = flow.source(JsonLinesSource(path), timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate)
    if fail is not None:
        stream = stream.map(fail, name="fail")
    (
        stream.key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "s": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: [r.key, r.start, r.value["n"], r.value["s"]], name="row")
        .sink(sink, name="out")
    )
    return flow


async def reference(path: Path) -> list[Any]:
    out = ListSink()
    await window_flow("reference", path, out, rate=1e9).run()
    return out.items


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """12,000 click events (``write_events``), also used by test_suspend.py."""
    return events_file(tmp_path)


def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    write_events(path, 12_000)
    return path


# -- tests ----------------------------------------------------------------------------------


async def test_a_failed_run_restarts_from_its_checkpoint_and_publishes_exactly_once(
    events: Path, after_a_checkpoint: Callable[[], bool]
) -> None:
    expected = await reference(events)
    store = sc.MemoryStateStore()
    sink = TxSink()
    fail = FailOnce(at=7_000, once=after_a_checkpoint)
    flow = window_flow("exactly-once", events, sink, fail)
    await flow.run(
        checkpoint=sc.Checkpointing(store, interval=0.05),
        restart=sc.RestartPolicy(2, delay=0.01),
    )
    assert fail.failed and flow._latest_run.restarts == 1
    coordinator = flow._latest_run.attempt.coordinator
    assert coordinator.restored_from is not None
    # The restored sink started from a checkpoint's committed output, not from scratch.
    assert sink.restores[-1] is not None and sink.restores[-1]["total"] > 0
    assert sink.published == expected


async def test_records_after_the_checkpoint_are_replayed_into_a_plain_sink(
    events: Path, after_a_checkpoint: Callable[[], bool]
) -> None:
    expected = await reference(events)
    out = ListSink()
    fail = FailOnce(at=7_000, once=after_a_checkpoint)
    flow = window_flow("at-least-once", events, out, fail)
    await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                   restart=sc.RestartPolicy(1, delay=0.0))
    # A plain sink is at-least-once: nothing missing; what follows the checkpoint twice.
    assert set(map(tuple, out.items)) == set(map(tuple, expected))
    assert len(out.items) > len(expected)


async def test_a_second_run_of_a_completed_flow_resumes_at_the_end(events: Path) -> None:
    store = sc.MemoryStateStore()
    first, second = TxSink(), TxSink()
    await window_flow("twice", events, first, rate=1e9).run(checkpoint=sc.Checkpointing(store, interval=0.05))
    flow = window_flow("twice", events, second, rate=1e9)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.05))
    assert first.published == await reference(events)
    assert second.restores[0]["total"] == len(first.published)
    assert second.pending == [] and all(not records for _, records in second.sealed)
    assert flow._latest_run.attempt.statistics().actor("row").records_in == 0


async def test_without_a_restart_policy_a_new_run_resumes_where_the_failed_one_checkpointed(
    events: Path, after_a_checkpoint: Callable[[], bool]
) -> None:
    store = sc.MemoryStateStore()
    sink = TxSink()
    fail = FailOnce(at=6_000, once=after_a_checkpoint)
    with pytest.raises(sc.StageError, match="injected failure"):
        await window_flow("resume", events, sink, fail).run(checkpoint=sc.Checkpointing(store, interval=0.05))
    committed = len(sink.published)
    assert committed > 0
    flow = window_flow("resume", events, sink, fail)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.05))
    assert sink.published == await reference(events)
    # The second run read only what followed the checkpoint, not the whole file.
    assert flow._latest_run.attempt.statistics().actor("json_lines").records_out < 12_000


async def test_restart_policy_gives_up_after_its_attempts(events: Path) -> None:
    class AlwaysFail:
        def __call__(self, record: Any) -> Any:
            raise RuntimeError("always")

    flow = sc.Dataflow("gives-up")
    (flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"]).map(AlwaysFail()).sink(ListSink()))
    with pytest.raises(sc.StageError, match="always"):
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                       restart=sc.RestartPolicy(2, delay=0.0))
    assert flow._latest_run.restarts == 2


async def test_an_iterator_source_is_refused_under_checkpointing() -> None:
    flow = sc.Dataflow("iterable")
    flow.source(IterableSource(iter(range(10))), name="numbers").sink(ListSink())
    with pytest.raises(sc.CheckpointError, match="'numbers' \\(IterableSource\\) cannot rewind"):
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore()))


async def test_an_accumulator_the_serde_cannot_write_fails_the_first_checkpoint_naming_stage_and_type(
    events: Path,
) -> None:
    class Opaque:
        pass

    bag = sc.Aggregator(create=Opaque, add=lambda acc, e: acc, merge=lambda a, b: a, result=lambda acc: 0)
    flow = sc.Dataflow("opaque")
    (
        flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], max_rate=20_000)
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate(bag, name="bags")
        .sink(ListSink())
    )
    with pytest.raises(sc.StreamcoreError) as caught:
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                       restart=sc.RestartPolicy(3, delay=0.0))
    assert "stage 'bags'" in str(caught.value) and "Opaque" in str(caught.value)
    assert flow._latest_run.restarts == 0  # not something a restart can fix


async def test_incremental_checkpoints_write_only_changed_keys(tmp_path: Path) -> None:
    # 5,000 keys in a window that never fires during the run, then a trickle on few keys.
    path = tmp_path / "wide.jsonl"
    with path.open("wb") as f:
        for i in range(5_000):
            f.write(orjson.dumps({"user": f"k{i}", "amount": 1, "ts": i}) + b"\n")
        for i in range(9_000):  # long enough for several checkpoints even under load
            f.write(orjson.dumps({"user": f"k{i % 10}", "amount": 1, "ts": 5_000 + i}) + b"\n")
    sizes: list[tuple[bool, int]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("checkpoint complete"):
                args = record.args
                assert isinstance(args, tuple)
                sizes.append((args[2], args[3]))

    handler = Recorder()
    logging.getLogger("streamcore.checkpoint").addHandler(handler)
    logging.getLogger("streamcore.checkpoint").setLevel(logging.INFO)
    try:
        flow = sc.Dataflow("incremental")
        (
            flow.source(JsonLinesSource(path), timestamp=lambda e: e["ts"], batch_size=50, max_rate=15_000)
            .key_by(lambda e: e["user"])
            .window(sc.TumblingWindows(10_000_000))
            .aggregate(sc.agg.count())
            .sink(ListSink())
        )
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05, compact_every=4))
    finally:
        logging.getLogger("streamcore.checkpoint").removeHandler(handler)
    fulls = [size for full, size in sizes if full]
    deltas = [size for full, size in sizes if not full]
    assert fulls and deltas
    # Once the 5,000 keys are in, a delta of a few changed keys is far smaller than a full one.
    assert min(deltas) * 20 < max(fulls)


async def test_checkpoint_failures_are_counted_and_the_flow_goes_on(events: Path) -> None:
    store = FlakyStore()
    sink = TxSink()
    ticks = {"n": 0}

    def outage(record: Any) -> Any:
        ticks["n"] += 1
        store.down = 3_000 <= ticks["n"] < 6_000
        return record

    flow = window_flow("flaky", events, sink, rate=20_000)
    # Insert the outage switch through a map after the source.
    flow = sc.Dataflow("flaky")
    (
        flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], batch_size=100, max_rate=20_000)
        .map(outage)
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "s": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: [r.key, r.start, r.value["n"], r.value["s"]])
        .sink(sink)
    )
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.02, tolerable_failures=1000))
    stats = flow._latest_run.attempt.coordinator.statistics()
    assert store.failed_writes > 0 and stats.failed > 0 and stats.completed > 0
    assert stats.consecutive_failures == 0
    assert sink.published == await reference(events)


async def test_too_many_consecutive_checkpoint_failures_fail_the_flow(events: Path) -> None:
    store = FlakyStore()
    flow = window_flow("down", events, TxSink(), rate=5_000)

    class GoDown(sc.MemoryStateStore):
        pass

    await store.open()
    store.down = True
    with pytest.raises(sc.CheckpointError, match="checkpoints in a row failed"):
        await flow.run(checkpoint=sc.Checkpointing(store, interval=0.02, tolerable_failures=2))


async def test_a_corrupted_checkpoint_falls_back_to_the_previous_one(
    events: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = sc.MemoryStateStore()
    sink = TxSink()
    caplog.set_level(logging.INFO, logger="streamcore.checkpoint")

    def two_checkpoints_complete() -> bool:
        # Not a fixed record count: under load fewer checkpoints fit in the same records.
        return sum(r.getMessage().startswith("checkpoint complete") for r in caplog.records) >= 2

    fail = FailOnce(at=3_000, once=two_checkpoints_complete)
    with pytest.raises(sc.StageError):
        await window_flow("corrupt", events, sink, fail, rate=30_000).run(
            checkpoint=sc.Checkpointing(store, interval=0.03)
        )
    await store.open()
    index = sc.state.decode((await store.get("corrupt/index")) or b"")["complete"]
    assert len(index) >= 2
    newest = index[-1]
    keys = [k for k in await store.keys(f"corrupt/cp/{newest}/") if k.count("/") == 5]
    victim = keys[0] if keys else f"corrupt/cp/{newest}/manifest"
    data = bytearray((await store.get(victim)) or b"")
    data[len(data) // 2] ^= 0xFF
    await store.put_many({victim: bytes(data)})
    caplog.set_level(logging.WARNING, logger="streamcore.checkpoint")
    flow = window_flow("corrupt", events, sink, fail)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.03))
    assert flow._latest_run.attempt.coordinator.restored_from == index[-2]
    assert any(f"checkpoint={newest}" in r.getMessage() and "unusable" in r.getMessage() for r in caplog.records)
    assert sink.published == await reference(events)


async def test_only_the_last_checkpoints_are_kept_with_what_their_chains_need(events: Path) -> None:
    store = sc.MemoryStateStore()
    await window_flow("keep", events, TxSink(), rate=30_000).run(
        checkpoint=sc.Checkpointing(store, interval=0.02, keep=2, compact_every=3)
    )
    await store.open()
    index = sc.state.decode((await store.get("keep/index")) or b"")["complete"]
    assert len(index) == 2
    manifests = [k for k in await store.keys("keep/cp/") if k.endswith("/manifest")]
    assert sorted(manifests) == sorted(f"keep/cp/{n}/manifest" for n in index)
    from streamcore.state.coordinator import _unwrap_manifest

    chain_ids: set[int] = set()
    for n in index:
        manifest = _unwrap_manifest((await store.get(f"keep/cp/{n}/manifest")) or b"", "m")
        for chain in manifest["chains"].values():
            chain_ids.update(chain["ids"])
    stored_ids = {int(k.split("/")[2]) for k in await store.keys("keep/cp/")}
    # Nothing is stored but the kept checkpoints and the older ones their chains start from.
    assert stored_ids == chain_ids | set(index)


async def test_two_sources_align_their_barriers_at_a_union(tmp_path: Path) -> None:
    left, right = tmp_path / "left.jsonl", tmp_path / "right.jsonl"
    write_events(left, 6_000, seed=1)
    write_events(right, 6_000, seed=2)

    def build(sink: Any, fail: FailOnce | None, rate: float) -> sc.Dataflow:
        flow = sc.Dataflow("union")
        a = flow.source(JsonLinesSource(left), timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate, name="left")
        b = flow.source(JsonLinesSource(right), timestamp=lambda e: e["ts"], batch_size=100,
                        max_rate=rate / 3, name="right")
        stream = a.union(b)
        if fail is not None:
            stream = stream.map(fail)
        (
            stream.key_by(lambda e: e["user"])
            .window(sc.TumblingWindows(1000))
            .aggregate(sc.agg.sum(lambda e: e["amount"]))
            .map(lambda r: [r.key, r.start, r.value])
            .sink(sink)
        )
        return flow

    ref = ListSink()
    await build(ref, None, 1e9).run()
    sink = TxSink()
    flow = build(sink, FailOnce(at=8_000), 30_000)
    await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                   restart=sc.RestartPolicy(1, delay=0.0))
    assert flow._latest_run.restarts == 1
    assert sorted(map(tuple, sink.published)) == sorted(map(tuple, ref.items))


class RunningTotal(sc.KeyedProcessFunction):
    def process(self, record: Any, ctx: sc.ProcessContext) -> Any:
        total = ctx.state.get("total", 0) + record["amount"]
        ctx.state["total"] = total
        if "timer" not in ctx.state:
            ctx.state["timer"] = True
            ctx.register_timer(ctx.timestamp_ms + 2_000)
        return None

    def on_timer(self, timestamp_ms: int, ctx: sc.ProcessContext) -> Any:
        del ctx.state["timer"]
        return [[ctx.key, timestamp_ms, ctx.state["total"]]]


@pytest.mark.parametrize("kind", ["process", "session", "session_lateness", "sliding"])
async def test_process_session_and_sliding_state_survive_a_restart(events: Path, kind: str) -> None:
    def build(sink: Any, fail: FailOnce | None, rate: float) -> sc.Dataflow:
        flow = sc.Dataflow(f"state-{kind}")
        stream = flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate)
        if fail is not None:
            stream = stream.map(fail)
        keyed = stream.key_by(lambda e: e["user"])
        if kind == "process":
            keyed.process(RunningTotal()).sink(sink)
        elif kind.startswith("session"):
            # With lateness, sessions are freed by their own heap, after they fire.
            lateness = 400 if kind == "session_lateness" else 0
            (keyed.window(sc.SessionWindows(300), allowed_lateness=lateness)
             .aggregate(sc.agg.collect(lambda e: e["amount"]))
             .map(lambda r: [r.key, r.start, r.end, r.value, r.is_update]).sink(sink))
        else:
            (keyed.window(sc.SlidingWindows(2000, 500)).aggregate(sc.agg.max(lambda e: e["amount"]))
             .map(lambda r: [r.key, r.start, r.value]).sink(sink))
        return flow

    ref = ListSink()
    await build(ref, None, 1e9).run()
    sink = TxSink()
    flow = build(sink, FailOnce(at=7_000), 30_000)
    await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                   restart=sc.RestartPolicy(1, delay=0.0))
    assert flow._latest_run.restarts == 1
    assert sorted(map(str, sink.published)) == sorted(map(str, ref.items))


async def test_dead_letters_are_checkpointed_with_the_flow(events: Path) -> None:
    def build(sink: Any, dead: Any, fail: FailOnce | None, rate: float) -> sc.Dataflow:
        flow = sc.Dataflow("dead")
        stream = flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate)
        if fail is not None:
            stream = stream.map(fail, name="fail")

        def picky(e: Any) -> Any:
            if e["amount"] == 13:
                raise ValueError("unlucky")
            return e

        stream.map(picky, on_error="dead_letter").map(lambda e: [e["user"], e["ts"]]).sink(sink)
        flow.dead_letters.map(lambda d: [d.stage, d.record["ts"]]).sink(dead)
        return flow

    ref, ref_dead = ListSink(), ListSink()
    await build(ref, ref_dead, None, 1e9).run()
    sink, dead = TxSink(), TxSink()
    flow = build(sink, dead, FailOnce(at=7_000), 30_000)
    await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05),
                   restart=sc.RestartPolicy(1, delay=0.0))
    assert flow._latest_run.restarts == 1
    assert sink.published == ref.items
    assert ref_dead.items and dead.published == ref_dead.items


@pytest.mark.redis
async def test_checkpoints_in_redis_resume_a_new_run(
    events: Path, redis_url: str, after_a_checkpoint: Callable[[], bool]
) -> None:
    prefix = f"test-cp-{random.getrandbits(32):08x}"
    sink = TxSink()
    fail = FailOnce(at=6_000, once=after_a_checkpoint)
    with pytest.raises(sc.StageError):
        await window_flow("redis-resume", events, sink, fail).run(
            checkpoint=sc.Checkpointing(sc.RedisStateStore(redis_url, key_prefix=prefix), interval=0.05)
        )
    store = sc.RedisStateStore(redis_url, key_prefix=prefix)
    flow = window_flow("redis-resume", events, sink, fail)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=0.05))
    assert flow._latest_run.attempt.coordinator.restored_from is not None
    assert sink.published == await reference(events)
    async with sc.RedisStateStore(redis_url, key_prefix=prefix) as cleanup:
        await cleanup.delete_prefix("")


async def test_an_unreachable_redis_at_start_is_a_clear_error_naming_the_url(events: Path) -> None:
    url = "redis://:secret@127.0.0.1:1/0"
    flow = window_flow("unreachable", events, TxSink())
    with pytest.raises(sc.StateError) as caught:
        await flow.run(checkpoint=sc.Checkpointing(sc.RedisStateStore(url)), restart=sc.RestartPolicy(3, delay=0.0))
    assert "127.0.0.1:1" in str(caught.value) and "secret" not in str(caught.value)
    assert flow._latest_run.restarts == 0




async def test_a_flow_failing_while_a_checkpoint_waits_raises_at_once(tmp_path: Path) -> None:
    holder: dict[str, sc.Dataflow] = {}

    class FailsMidCheckpoint(sc.Source):
        rewindable = True

        def __init__(self) -> None:
            self.n = 0

        def position(self) -> Any:
            return self.n

        async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
            runtime = holder["flow"]._latest_run.attempt
            if runtime is not None and runtime.coordinator is not None and runtime.coordinator._pending is not None:
                raise RuntimeError("source fails while a checkpoint waits for it")
            self.n += 1
            return [(f"k{self.n % 50}", self.n)]

    flow = holder["flow"] = sc.Dataflow("fails-mid-checkpoint")
    (
        flow.source(FailsMidCheckpoint(), timestamp=lambda r: r[1])
        .key_by(lambda r: r[0])
        .window(sc.TumblingWindows(3_600_000))
        .aggregate(sc.agg.count())
        .sink(ListSink())
    )
    started = time.monotonic()
    with pytest.raises(sc.StreamcoreError, match="fails while a checkpoint waits"):
        await flow.run(checkpoint=sc.Checkpointing(sc.MemoryStateStore(), interval=0.05, timeout=30))
    # Not the checkpoint timeout (30 s): the flow's end abandons the checkpoint.
    assert time.monotonic() - started < 5


async def test_a_checkpoint_that_never_completed_leaves_nothing_behind_after_a_restore(events: Path) -> None:
    class LosesCommits(sc.MemoryStateStore):
        """Blobs are stored, but checkpoint commits and clean-ups fail while ``down``."""

        down = False

        async def commit(self, puts: Any, deletes: Any) -> None:
            if self.down and (any(k.endswith("/manifest") for k in puts) or list(deletes)):
                raise StateError("lost (test outage)")
            await super().commit(puts, deletes)

    store = LosesCommits()
    seen = {"n": 0}

    def go_down(e: Any) -> Any:
        seen["n"] += 1
        store.down = seen["n"] >= 4_000
        return e

    flow = sc.Dataflow("never-completed")
    (
        flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], batch_size=100, max_rate=30_000)
        .map(go_down)
        .map(FailOnce(at=8_000))
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate(sc.agg.count())
        .sink(TxSink())
    )
    with pytest.raises(sc.StageError):
        await flow.run(checkpoint=sc.Checkpointing(store, interval=0.03, tolerable_failures=1000))
    await store.open()
    index = sc.state.decode((await store.get("never-completed/index")) or b"")["complete"]
    leftovers = {int(k.split("/")[2]) for k in await store.keys("never-completed/cp/")} - set(index)
    assert leftovers  # blobs of checkpoints whose commit was lost
    store.down = False
    coordinator = CheckpointCoordinator("never-completed", sc.Checkpointing(store))
    assert await coordinator.restore() is not None
    stored = {int(k.split("/")[2]) for k in await store.keys("never-completed/cp/")}
    assert not stored - set(index)
