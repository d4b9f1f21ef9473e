"""``PartitionedRuntime`` with a partition group driven by the test: one task per
assigned partition, revoked tasks stop at a checkpoint, reassigned ones resume from it.
(The same against a real Kafka consumer group: tests/connectors/test_kafka_scale_out.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import ListSink
from streamcore.errors import GraphError
from streamcore.io import AssignmentCallback, PartitionGroup, Source
from streamcore.scaleout import PartitionedRuntime, partition_group_of, task_flow
from tests.state.test_checkpoints import TxSink, write_events


class HandGroup(PartitionGroup):
    """A group whose assignment the test changes by hand; partitions are files."""

    finite = True

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.commands: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
        self.held: set[str] = set()
        self.handled = 0
        """Commands whose callback has returned."""

    async def run(self, on_assigned: AssignmentCallback, on_revoked: AssignmentCallback) -> None:
        while True:
            what, parts = await self.commands.get()
            if what == "leave":
                await on_revoked(sorted(self.held))
                self.held.clear()
                return
            if what == "assign":
                self.held.update(parts)
                await on_assigned(parts)
            else:
                self.held.difference_update(parts)
                await on_revoked(parts)
            self.handled += 1

    def leave(self) -> None:
        self.commands.put_nowait(("leave", []))

    def task_source(self, partition: str) -> Source:
        return JsonLinesSource(self.files[partition])


class GroupedSource(JsonLinesSource):
    """Stands for a Kafka source with a group: only its partition group matters."""

    def __init__(self, group: HandGroup) -> None:
        super().__init__(next(iter(group.files.values())))
        self.group = group

    def partition_group(self) -> PartitionGroup | None:
        return self.group


class TaskSinks(sc.Sink):
    """An exactly-once sink per task, remembered by task name."""

    def __init__(self) -> None:
        self.tasks: dict[str, TxSink] = {}

    def for_task(self, task: str) -> sc.Sink:
        return self.tasks.setdefault(task, TxSink())

    def write_batch(self, records: list[Any]) -> None:
        raise AssertionError("a scaled-out flow writes to the task sinks only")


def build(
    name: str, source: sc.Source, sink: Any, *, rate: float, prepartitioned: bool = True, fail: Any = None
) -> sc.Dataflow:
    flow = sc.Dataflow(name)
    stream = flow.source(source, timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate, name="src")
    if fail is not None:
        stream = stream.map(fail, name="fail")
    (
        stream.key_by(lambda e: e["user"], prepartitioned=prepartitioned)
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count()})
        .map(lambda r: [r.key, r.start, r.value["n"]])
        .sink(sink, name="out")
    )
    return flow


async def wait_until(condition: Any, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for i in range(3):
        out[f"t:{i}"] = tmp_path / f"p{i}.jsonl"
        write_events(out[f"t:{i}"], 4_000, seed=i)
    return out


async def reference(path: Path) -> list[Any]:
    out = ListSink()
    await build("reference", JsonLinesSource(path), out, rate=1e9).run()
    return out.items


async def test_revoked_tasks_stop_at_a_checkpoint_and_resume_where_they_stopped(files: dict[str, Path]) -> None:
    group = HandGroup(files)
    sinks = TaskSinks()
    # Slow enough (1 s a partition) that the revoke lands mid-stream even under load.
    flow = build("tasks", GroupedSource(group), sinks, rate=4_000)
    runtime = PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", ["t:0", "t:1", "t:2"]))
    await wait_until(lambda: all(len(s.published) > 10 for s in sinks.tasks.values()) and len(sinks.tasks) == 3)
    group.commands.put_nowait(("revoke", ["t:1"]))
    await wait_until(lambda: "t:1" not in runtime.tasks)
    stopped_at = len(sinks.tasks["t:1"].published)
    group.commands.put_nowait(("assign", ["t:1"]))
    await asyncio.wait_for(run, 60)
    for p, path in files.items():
        assert sinks.tasks[p].published == await reference(path), p
    assert 0 < stopped_at < len(await reference(files["t:1"]))
    assert sorted(runtime.finished) == ["t:0", "t:1", "t:2"]


async def test_a_partition_group_flow_reads_that_source_only(files: dict[str, Path]) -> None:
    flow = sc.Dataflow("two")
    a = flow.source(GroupedSource(HandGroup(files)))
    b = flow.source(JsonLinesSource(files["t:0"]))
    a.union(b).sink(ListSink())
    with pytest.raises(GraphError, match="reads that source only"):
        partition_group_of(flow)


def test_a_group_that_cannot_repartition_refuses_a_key_change(files: dict[str, Path]) -> None:
    flow = build("rekey", GroupedSource(HandGroup(files)), ListSink(), rate=1e9, prepartitioned=False)
    with pytest.raises(GraphError, match=r"prepartitioned=True"):
        PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore()))


def test_a_sink_with_checkpoint_state_must_say_how_to_split_it(files: dict[str, Path]) -> None:
    flow = build("split", GroupedSource(HandGroup(files)), TxSink(), rate=1e9)
    with pytest.raises(GraphError, match=r"Sink\.for_task"):
        task_flow(flow, "t:0", JsonLinesSource(files["t:0"]))


def test_a_task_flow_is_a_copy_named_after_its_partition(files: dict[str, Path]) -> None:
    shared = ListSink()
    flow = build("copy", GroupedSource(HandGroup(files)), shared, rate=1e9)
    source = JsonLinesSource(files["t:2"])
    copy = task_flow(flow, "t:2", source)
    assert copy.name == "copy@t:2"
    assert [n.name for n in copy.nodes] == [n.name for n in flow.nodes]
    assert copy.nodes[0].source is source  # type: ignore[attr-defined]
    assert copy.nodes[-1].sink.sink is shared  # type: ignore[attr-defined]
    assert all(n is not m for n, m in zip(copy.nodes, flow.nodes, strict=True))


class FailOnce:
    """Raises at its ``at``-th call, once: whichever task makes that call fails."""

    def __init__(self, at: int) -> None:
        self.at, self.calls, self.failed = at, 0, False

    def __call__(self, record: Any) -> Any:
        self.calls += 1
        if not self.failed and self.calls >= self.at:
            self.failed = True
            raise RuntimeError("injected failure")
        return record


def failing_flow(name: str, group: HandGroup, sinks: TaskSinks, fail: Any) -> sc.Dataflow:
    return build(name, GroupedSource(group), sinks, rate=20_000, fail=fail)


async def test_a_failed_task_restarts_alone_from_its_checkpoint(files: dict[str, Path]) -> None:
    group, sinks = HandGroup(files), TaskSinks()
    flow = failing_flow("restarts", group, sinks, FailOnce(3_000))
    runtime = PartitionedRuntime(
        flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05), sc.RestartPolicy(attempts=1, delay=0)
    )
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", sorted(files)))
    await asyncio.wait_for(run, 60)
    assert runtime.restarts == 1
    for p, path in files.items():
        assert sinks.tasks[p].published == await reference(path), p


async def test_without_a_restart_policy_a_failed_task_fails_the_process(files: dict[str, Path]) -> None:
    group, sinks = HandGroup(files), TaskSinks()
    flow = failing_flow("fails", group, sinks, FailOnce(3_000))
    runtime = PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", sorted(files)))
    with pytest.raises(sc.StreamcoreError, match="injected failure"):
        await asyncio.wait_for(run, 60)
    assert not group.held  # it left the group: the partitions can move


class FailOn:
    """Raises once, at the first record of user ``user``."""

    def __init__(self, user: str) -> None:
        self.user, self.failed = user, False

    def __call__(self, record: Any) -> Any:
        if not self.failed and record["user"] == self.user:
            self.failed = True
            raise RuntimeError("injected failure")
        return record


async def test_a_task_waiting_to_restart_does_not_restart_once_its_partition_is_revoked(
    files: dict[str, Path],
) -> None:
    with files["t:1"].open("a") as f:
        f.write('{"user": "boom", "amount": 1, "ts": 50000}\n')
    group, sinks = HandGroup(files), TaskSinks()
    flow = failing_flow("backoff", group, sinks, FailOn("boom"))
    runtime = PartitionedRuntime(
        flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05), sc.RestartPolicy(attempts=1, delay=0.5)
    )
    run = asyncio.ensure_future(runtime.run())
    # t:1 alone, so the process does not end (every partition it holds done) meanwhile.
    group.commands.put_nowait(("assign", ["t:1"]))
    await wait_until(lambda: bool(runtime._restarting))  # t:1 failed and waits out its backoff
    group.commands.put_nowait(("revoke", ["t:1"]))
    await wait_until(lambda: not runtime._restarting)  # the backoff is over
    assert "t:1" not in runtime.tasks
    group.commands.put_nowait(("assign", ["t:1"]))
    await asyncio.wait_for(run, 60)
    assert runtime.restarts == 0  # the revoked task did not restart; the reassigned one started anew
    assert sinks.tasks["t:1"].published == await reference(files["t:1"])


class CountingSink(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.opens = self.closes = 0

    async def open(self, context: sc.SinkContext) -> None:
        self.opens += 1
        await super().open(context)

    async def close(self) -> None:
        self.closes += 1
        await super().close()


async def test_a_sink_shared_by_the_tasks_is_opened_and_closed_once(files: dict[str, Path]) -> None:
    # The tasks run at once (throttled), so one task ending must not close the sink
    # under the others: it is opened by the first and closed by the last.
    group, shared = HandGroup(files), CountingSink()
    flow = build("shared", GroupedSource(group), shared, rate=20_000)
    runtime = PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", sorted(files)))
    await asyncio.wait_for(run, 60)
    assert (shared.opens, shared.closes) == (1, 1)
    want = [row for path in files.values() for row in await reference(path)]
    assert sorted(shared.items) == sorted(want)


async def test_a_finite_process_the_group_gives_no_partition_ends(files: dict[str, Path]) -> None:
    # More processes than partitions: this one is assigned nothing, and must not wait
    # for partitions that others hold.
    group = HandGroup(files)
    flow = build("idle", GroupedSource(group), TaskSinks(), rate=1e9)
    runtime = PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", []))
    await asyncio.wait_for(run, 30)
    assert runtime.tasks == {} and runtime.rebalances == 1


async def test_a_finite_process_does_not_end_between_a_revoke_and_the_next_assignment(
    files: dict[str, Path],
) -> None:
    group, sinks = HandGroup(files), TaskSinks()
    flow = build("between", GroupedSource(group), sinks, rate=20_000)
    runtime = PartitionedRuntime(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    run = asyncio.ensure_future(runtime.run())
    group.commands.put_nowait(("assign", ["t:0"]))
    await wait_until(lambda: "t:0" in sinks.tasks and len(sinks.tasks["t:0"].published) > 10)
    group.commands.put_nowait(("revoke", ["t:0"]))
    await wait_until(lambda: group.handled == 2)
    for _ in range(20):  # let the runtime look at its (now empty) tasks
        await asyncio.sleep(0)
    assert not run.done()  # the group is rebalancing: the next assignment is coming
    group.commands.put_nowait(("assign", ["t:0"]))
    await asyncio.wait_for(run, 60)
    assert sinks.tasks["t:0"].published == await reference(files["t:0"])


class SharedStore(sc.MemoryStateStore):
    """One store for two runtimes, as one Redis for two processes: closing is each
    process's own business (here, a no-op), never the other's."""

    async def close(self) -> None:
        pass


@pytest.fixture(params=["memory", "redis"])
def two_stores(request: pytest.FixtureRequest) -> tuple[sc.StateStore, sc.StateStore]:
    """Two processes' stores over the same data."""
    if request.param == "memory":
        shared = SharedStore()
        return shared, shared
    url = request.getfixturevalue("redis_url")
    prefix = f"zombie-{uuid.uuid4().hex[:8]}"
    return sc.RedisStateStore(url, key_prefix=prefix), sc.RedisStateStore(url, key_prefix=prefix)


async def test_a_zombies_checkpoints_are_refused_once_the_new_owner_restored(
    files: dict[str, Path], two_stores: tuple[sc.StateStore, sc.StateStore]
) -> None:
    # The zombie: a process that still runs t:0 at generation 1 after the group moved the
    # partition (generation 2) to another process, which restored the zombie's last
    # checkpoint. Both write to one store, as two processes would to one Redis.
    zombie_store, owner_store = two_stores
    zombie_group, owner_group = HandGroup(files), HandGroup(files)
    zombie_group.generation, owner_group.generation = 1, 2
    zombie_sinks, owner_sinks = TaskSinks(), TaskSinks()
    zombie = PartitionedRuntime(
        build("moved", GroupedSource(zombie_group), zombie_sinks, rate=200),
        sc.Checkpointing(zombie_store, interval=0.05),
    )
    owner = PartitionedRuntime(
        build("moved", GroupedSource(owner_group), owner_sinks, rate=1e9),
        sc.Checkpointing(owner_store, interval=0.05),
    )
    zombie_run = asyncio.ensure_future(zombie.run())
    zombie_group.commands.put_nowait(("assign", ["t:0"]))
    await wait_until(lambda: "t:0" in zombie_sinks.tasks and len(zombie_sinks.tasks["t:0"].published) > 10)
    owner_run = asyncio.ensure_future(owner.run())
    owner_group.commands.put_nowait(("assign", ["t:0"]))
    # The zombie's next checkpoint is refused: its task stops, and the process goes on.
    await wait_until(lambda: "t:0" not in zombie.tasks)
    assert not zombie_run.done()
    await asyncio.wait_for(owner_run, 60)
    zombie_group.leave()
    await asyncio.wait_for(zombie_run, 60)
    # Exactly once across the move: the zombie published nothing past what the owner
    # restored, so the two outputs together are one run's.
    restored_total = owner_sinks.tasks["t:0"].restores[0]["total"]
    assert len(zombie_sinks.tasks["t:0"].published) == restored_total
    assert zombie_sinks.tasks["t:0"].published + owner_sinks.tasks["t:0"].published == await reference(files["t:0"])
    if isinstance(owner_store, sc.RedisStateStore):
        async with owner_store:
            await owner_store.delete_prefix("")
