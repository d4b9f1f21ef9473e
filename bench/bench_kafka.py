"""Kafka end to end: topic -> parse JSON -> W2 windows -> topic, against a plain aiokafka loop.

Usage::

    .venv/bin/python bench/bench_kafka.py [--events 300000] [--rounds 1] [--only base,alo,eo,group2,eo2]
    .venv/bin/python bench/bench_kafka.py --only base,alo,eo,quix,faust   # with the peers

Setup (untimed): a private Kafka broker (``scripts/kafka.sh``) and Redis
(``scripts/redis.sh``) are started in a temporary directory and stopped at the end
(``--bootstrap`` / ``--redis-url`` use running ones instead). The suite's click events
(``bench/gen_events.py``) are written once to an input topic of ``--partitions``
partitions, keyed by user, one JSON object per record. Every run writes to an output
topic of its own.

Workloads (each run a fresh process; the order is shuffled per round with a fixed seed):

* ``base``: a plain aiokafka loop, the practical limit: ``getmany`` -> ``orjson.loads``
  -> W2 with dicts (key by user, tumbling 10 s, count and sum of ``amount``, watermark
  = minimum over partitions of the largest ``ts`` minus 2 s) -> ``producer.send`` of each
  window result, ``flush`` at the end. Partitions are assigned manually (no group).
* ``alo``: streamcore, ``KafkaSource(stop_at_end=True)`` -> key_by (``prepartitioned``:
  the input is keyed by user) -> tumbling window -> aggregate ->
  ``KafkaSink(exactly_once=False)``, no checkpoints.
* ``eo``: the same with ``KafkaSink(exactly_once=True)`` and
  ``Checkpointing(RedisStateStore(...), interval=1 s)``; so checkpointed in a consumer
  group, the flow runs one task per partition, timed from the earliest first record to
  the last task reaching its end.
* ``group2``: two ``alo`` processes in one consumer group sharing the partitions;
  aggregate events/s (all events over the span from the first record either read to
  the last end either reached). Windows per key are right only because the input is
  keyed by user, so each key lives in one partition, hence in one process. Each process
  waits until the group gave it its share before reading, and keeps its consumer in the
  group until every process reached the end (so no partition is handed over mid-run,
  which would re-read it from the start: nothing commits offsets without checkpoints).
* ``eo2``: two ``eo`` processes in one consumer group: the flow scales out (one task per
  partition, each process holding two), checkpoints in Redis, transactions per task.
  As for ``group2``, each process waits until it holds its share before reading and
  stays in the group until every process reached the end, so no rebalance falls inside
  the timed span (the rebalance when the second process joins comes before it).
* ``workers1`` / ``workers2``: the ``alo`` flow run by the real CLI,
  ``python -m streamcore run bench/kafka_workers_job.py:flow --workers N``, until it
  exits by itself at the end of the input; each worker waits for its share of the
  partitions and stays in the group until all reached the end, as in ``group2``. Peak
  RSS is the sum over the workers (the parent of ``--workers 2`` is reported apart).
  With ``base`` in the same run: 1 against 2 workers, each as a ratio to the aiokafka
  loop. Not in the default set.
* ``rekey``: ``eo`` with a ``key_by`` that is not ``prepartitioned``, so the records go
  through a repartition topic (stage 1 writes it in transactions, stage 2 reads it
  ``read_committed``): what the repartition costs. Not in the default set.
* ``quix``: the same W2 on Quix Streams (``bench/peers-kafka/quix_job.py``):
  ``tumbling_window(10 s, grace 2 s).agg(Count, Sum).final(closing_strategy="partition")``,
  at least once with its default RocksDB state and changelog topic. It has no end of
  stream, so a first step (``apply(..., expand=True)``) adds an end-of-input marker
  after the last record of each partition, whose ``ts`` closes the windows still open.
* ``faust``: the same W2 on Faust (faust-streaming, ``bench/peers-kafka/faust_job.py``):
  one agent, a table windowed with ``.tumbling(10 s).relative_to_field(ts)`` holding
  ``[count, sum]`` (in-memory store, changelog topic). Faust closes windows by the wall
  clock only, so the job closes them itself by the per-partition watermark (largest
  ``ts`` minus 2 s), reading each final window from the table and deleting it.

The two peers run in their own virtualenv (``bench/.venv-kafka-peers``, made by
``bench/peers-kafka/setup.sh``, which this script runs when a peer is selected), so
that their pins do not touch the project's. Both count the input records they have
processed and take the end of input as reaching the known total; their module
docstrings say exactly what is timed and what differs.

Measured: events/s is the input count over the time from the first batch holding a
record to the source reaching the end of the input (timed in the source's
``read_batch``); "done" is the time from that first record to the end of the process's
flow (last windows fired, written and flushed or committed). Peak RSS is ``VmHWM`` of
the job process. Every run's output topic is read back (``read_committed``) and its
windows, counts and sum are checked against those computed from the input file.

``--rev REV`` also runs every streamcore workload with the engine of revision ``REV``
(exported with ``git archive``, as ``bench/compare.py`` does) as ``<workload>@rev``, in
the same shuffled rounds: a change shows as the ratio of the two rows of one run, e.g.
``--only base,rekey --rev main``.

Both sides read with the same consumer options (``--fetch-bytes`` is
``max_partition_fetch_bytes``) and write with ``acks="all"`` and ``linger_ms=5``.
The table is written to ``bench/results/kafka.md`` (``--results-name`` another file
there), followed by a CPU table: each job process's CPU time and peak RSS and the
broker's CPU time over the run (from ``/proc``), to show what bounds a row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    OUT_OF_ORDER_MS,
    TUMBLE_MS,
    cpu_seconds_of,
    job_env,
    parse_result,
    peak_rss_kib,
    pid_from,
    sum_units,
    window_checksum,
)
from _connector_bench import add_run_options, run_flow_timed, run_job, run_rounds, write_report  # noqa: E402
from _connector_bench import build_table as connector_table  # noqa: E402
from gen_events import DEFAULT_SEED, cached_events  # noqa: E402

ROOT = HERE.parent
THIS = Path(__file__).resolve()
LABELS = {
    "base": "aiokafka loop (baseline)",
    "alo": "streamcore, at least once",
    "eo": "streamcore, exactly once + Redis checkpoints 1 s",
    "group2": "streamcore, at least once, 2 processes in one group",
    "eo2": "streamcore, exactly once + Redis checkpoints 1 s, 2 processes in one group",
    "rekey": "streamcore, exactly once, key_by through a repartition topic",
    "workers1": "streamcore, at least once, `streamcore run --workers 1`",
    "workers2": "streamcore, at least once, `streamcore run --workers 2`",
    "quix": "Quix Streams, at least once (RocksDB state + changelog)",
    "faust": "Faust (faust-streaming), at least once (memory table + changelog)",
}
PEERS = {"quix": "quix_job.py", "faust": "faust_job.py"}
REV_SUFFIX = "@rev"
# The rows run through the CLI, and how many workers each asks for.
WORKERS = {"workers1": 1, "workers2": 2}
WORKERS_TARGET = f"{HERE / 'kafka_workers_job.py'}:flow"
PEERS_DIR = HERE / "peers-kafka"
PEERS_PYTHON = HERE / ".venv-kafka-peers" / "bin" / "python"
CHECKPOINT_INTERVAL_S = 1.0
BATCH_SIZE = 500


def clock() -> float:
    """CLOCK_MONOTONIC: system-wide, so times from two job processes compare."""
    return time.monotonic()


# ---------------------------------------------------------------------------------------
# Inside a job process
# ---------------------------------------------------------------------------------------


def out_record(user: str, start: int, n: int, total: float) -> dict[str, Any]:
    return {"user": user, "start": start, "n": n, "total": total}


async def job_base(a: argparse.Namespace) -> dict[str, Any]:
    """The plain aiokafka loop."""
    import orjson
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=a.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=a.fetch_bytes,
    )
    producer = AIOKafkaProducer(bootstrap_servers=a.bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    await consumer._client._wait_on_metadata(a.topic_in)
    tps = [TopicPartition(a.topic_in, p) for p in sorted(consumer.partitions_for_topic(a.topic_in))]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    remaining = {tp for tp in tps if ends[tp] > 0}
    pmax = {tp: None for tp in tps}  # largest ts per partition
    windows: dict[int, dict[str, list[Any]]] = {}  # start -> user -> [n, total]
    watermark = -(1 << 62)
    loads, dumps, send = orjson.loads, orjson.dumps, producer.send
    topic_out = a.topic_out
    read = 0
    first = None

    async def fire(upto: int) -> None:
        for start in sorted(s for s in windows if s + TUMBLE_MS <= upto):
            for user, (n, total) in windows.pop(start).items():
                await send(topic_out, dumps(out_record(user, start, n, total)), key=user.encode())

    while remaining:
        batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH_SIZE)
        for tp, messages in batch.items():
            if not messages:
                continue
            if first is None:
                first = clock()
            read += len(messages)
            hi = pmax[tp]
            for m in messages:
                e = loads(m.value)
                ts = e["ts"]
                if hi is None or ts > hi:
                    hi = ts
                start = ts - ts % TUMBLE_MS
                w = windows.get(start)
                if w is None:
                    w = windows[start] = {}
                acc = w.get(e["user"])
                if acc is None:
                    w[e["user"]] = [1, e["amount"]]
                else:
                    acc[0] += 1
                    acc[1] += e["amount"]
            pmax[tp] = hi
            if messages[-1].offset + 1 >= ends[tp]:
                remaining.discard(tp)
        if all(v is not None for v in pmax.values()):
            wm = min(pmax.values()) - OUT_OF_ORDER_MS  # type: ignore[type-var]
            if wm > watermark:
                watermark = wm
                await fire(watermark + 1)
    end = clock()
    await fire(1 << 62)
    await producer.flush()
    done = clock()
    await producer.stop()
    await consumer.stop()
    return {"read": read, "first": first, "end": end, "done": done}


def _timed_source(a: argparse.Namespace) -> Any:
    from connectors.kafka import KafkaSource

    class TimedKafkaSource(KafkaSource):
        """Notes when the first record is read and when the end is reached; for
        ``group2``, also waits for its share of the partitions and for its peers.

        Under checkpoints in a consumer group (``eo``) the flow runs one task per
        partition, each with a shallow copy of this source (docs/scale-out.md): the
        copies share ``stats``, so ``first`` is the earliest first record, ``end`` the
        last copy reaching its end and ``read`` the sum."""

        stats: dict[str, Any]
        ended = False

        async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
            stats = self.stats
            if a.share and stats["first"] is None:
                consumer = self._consumer
                # A task's source reads one partition: its group says what this process holds.
                held = len(self._group.held) if self._group is not None else None
                if held is None and consumer is not None:
                    held = len(consumer.assignment())
                if held != a.share:
                    await asyncio.sleep(0.02)
                    return []
            out = await super().read_batch(max_records, timeout_s)
            if out is None:
                if not self.ended:
                    self.ended = True
                    stats["end"] = clock()
                    stats["ended"] += 1
                    # Under tasks, this process is done once all its partitions ended.
                    if a.peers_dir and (self._group is None or stats["ended"] >= a.share):
                        await self._wait_for_peers()
                    elif a.peers_dir:
                        while not Path(a.peers_dir, f"done-{os.getpid()}").exists():
                            await asyncio.sleep(0.05)
                        await self._wait_for_peers()
                return None
            if out:
                if stats["first"] is None:
                    stats["first"] = clock()
                stats["read"] += len(out)
            return out

        async def _wait_for_peers(self) -> None:
            peers = Path(a.peers_dir)
            (peers / f"done-{os.getpid()}").touch()
            deadline = clock() + 120
            while len(list(peers.glob("done-*"))) < a.peers and clock() < deadline:
                await asyncio.sleep(0.05)

    source = TimedKafkaSource(
        a.topic_in,
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        stop_at_end=True,
        max_batch=BATCH_SIZE,
        max_partition_fetch_bytes=a.fetch_bytes,
    )
    source.stats = {"first": None, "end": None, "read": 0, "ended": 0}
    return source


def build_w2_flow(a: argparse.Namespace, source: Any) -> Any:
    """The streamcore W2 flow from ``source`` to ``a.topic_out`` (a ``Dataflow``)."""
    import streamcore as sc
    from connectors.kafka import KafkaSink

    flow = sc.Dataflow(a.flow)
    (
        flow.source(
            source,
            name="kafka",
            timestamp=lambda r: r.value["ts"],
            max_out_of_orderness=OUT_OF_ORDER_MS,
            batch_size=BATCH_SIZE,
        )
        # The input topic is keyed by user: no repartition topic (docs/scale-out.md),
        # unless --rekey measures what one costs.
        .map(lambda r: r.value)
        .key_by(lambda v: v["user"], prepartitioned=not a.rekey)
        .window(sc.TumblingWindows(TUMBLE_MS))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda v: v["amount"])})
        .map(lambda w: out_record(w.key, w.start, w.value["n"], w.value["total"]))
        .sink(
            KafkaSink(
                a.topic_out,
                bootstrap_servers=a.bootstrap,
                key=lambda v: v["user"],
                exactly_once=a.exactly_once,
                acks="all",
                linger_ms=5,
            )
        )
    )
    return flow


async def job_streamcore(a: argparse.Namespace) -> dict[str, Any]:
    source = _timed_source(a)
    flow = build_w2_flow(a, source)
    done = await run_flow_timed(flow, a.exactly_once, a.redis_url, a.key_prefix, CHECKPOINT_INTERVAL_S)
    return {**source.stats, "done": done}


def job_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench_kafka.py job")
    ap.add_argument("kind", choices=("base", "streamcore"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-in", required=True)
    ap.add_argument("--topic-out", required=True)
    ap.add_argument("--fetch-bytes", type=int, required=True)
    ap.add_argument("--flow", default="bench-kafka")
    ap.add_argument("--group", default=None)
    ap.add_argument("--exactly-once", action="store_true")
    ap.add_argument("--rekey", action="store_true", help="key_by through a repartition topic")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--key-prefix", default="")
    ap.add_argument("--share", type=int, default=0, help="partitions to wait for before reading")
    ap.add_argument("--peers-dir", default="")
    ap.add_argument("--peers", type=int, default=1)
    a = ap.parse_args(argv)
    run_job(job_base if a.kind == "base" else job_streamcore, a)


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------


class Service:
    """A private broker or Redis, started and stopped with its script under ``scripts/``."""

    def __init__(self, script: str, var: str, parent: Path) -> None:
        self.script = ROOT / "scripts" / script
        self.var = var
        self.dir = parent / script.split(".")[0]

    def _run(self, command: str, timeout: float) -> str:
        proc = subprocess.run(
            ["bash", str(self.script), command, str(self.dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{self.script.name} {command} failed: {(proc.stdout + proc.stderr)[-2000:]}"
            )
        return proc.stdout

    def start(self) -> str:
        out = self._run("start", 300)
        m = re.search(rf"{self.var}=(\S+)", out)
        if not m:
            raise RuntimeError(f"{self.script.name} start printed no {self.var}: {out!r}")
        return m.group(1)

    def stop(self) -> None:
        self._run("stop", 120)


def engine_for_jobs(mode: str, engine_dir: Path) -> tuple[dict[str, str], str]:
    """The job processes' environment and what engine they run: a snapshot of the engine
    copied into ``engine_dir`` (``mode="snapshot"``), or the live checkout."""
    from run import git_state, snapshot_engine

    if mode == "snapshot":
        engine_dir.mkdir(parents=True)
        return job_env(engine_dir), f"snapshot {snapshot_engine(engine_dir)} of {ROOT} ({git_state()})"
    return job_env(None), f"live checkout {ROOT} ({git_state()})"


def stop_services(services: list[Service], tmp: Path) -> None:
    """Stop what was started, newest first, reporting (not raising) a failed stop."""
    for s in reversed(services):
        try:
            s.stop()
        except Exception as exc:
            print(f"# stopping {s.script.name}: {exc}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    # Wait until the topic's metadata is visible to clients.
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        for _ in range(100):
            parts = c.partitions_for_topic(name)
            if parts and len(parts) == partitions:
                return
            await c._client.force_metadata_update()
            await asyncio.sleep(0.1)
    finally:
        await c.stop()


async def fill_topic(bootstrap: str, topic: str, path: Path) -> int:
    """Every line of ``path`` as one record keyed by its user (default partitioner)."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    n = 0
    try:
        pending = []
        with open(path, "rb") as f:
            for line in f:
                value = line.rstrip(b"\n")
                key = orjson.loads(value)["user"].encode()
                pending.append(await producer.send(topic, value, key=key))
                n += 1
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


def expected_checksum(path: Path) -> dict[str, Any]:
    """W2 over the file: windows per (user, 10 s), their counts and the sum of their sums,
    each window summed in file order (the order within its partition)."""
    import orjson

    acc: dict[tuple[str, int], list[Any]] = {}
    with open(path, "rb") as f:
        for line in f:
            e = orjson.loads(line)
            ts = e["ts"]
            k = (e["user"], ts - ts % TUMBLE_MS)
            a = acc.get(k)
            if a is None:
                acc[k] = [1, e["amount"]]
            else:
                a[0] += 1
                a[1] += e["amount"]
    return window_checksum(
        len(acc), sum(v[0] for v in acc.values()), sum(sum_units(v[1]) for v in acc.values())
    )


async def output_checksum(bootstrap: str, topic: str) -> dict[str, Any]:
    """Read the output topic to its end (committed records only) and checksum it."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await c.start()
    windows = count = units = 0
    seen: set[tuple[str, int]] = set()
    dups = 0
    try:
        await c._client._wait_on_metadata(topic)
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    v = orjson.loads(m.value)
                    k = (v["user"], v["start"])
                    dups += k in seen
                    seen.add(k)
                    windows += 1
                    count += v["n"]
                    units += sum_units(v["total"])
            for tp in list(remaining):
                if await c.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await c.stop()
    out = window_checksum(windows, count, units)
    if dups:
        out["duplicates"] = dups
    return out


def max_event_ts(path: Path) -> int:
    """The largest ``ts`` of the input file."""
    import orjson

    with open(path, "rb") as f:
        return max(orjson.loads(line)["ts"] for line in f)


def spawn(
    args: list[str], env: dict[str, str], cmd: list[str] | None = None
) -> subprocess.Popen[str]:
    """A job process: this script's ``job`` command unless ``cmd`` (a peer) is given.

    With ``BENCH_PROFILE_DIR`` set, streamcore and baseline jobs run under pyinstrument
    and write a text profile there (one file per job process)."""
    base = [sys.executable, str(THIS), "job"]
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if cmd is None and profile_dir:
        out = Path(profile_dir) / f"{args[0]}-{uuid.uuid4().hex[:6]}.txt"
        base = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out), str(THIS), "job"]
    return subprocess.Popen(
        [*(cmd or base), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def setup_peers(python: Path) -> dict[str, str]:
    """Make the peers' venv if it is the default one, and report the versions in it."""
    if python == PEERS_PYTHON:
        proc = subprocess.run(
            ["bash", str(PEERS_DIR / "setup.sh")],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"peers-kafka/setup.sh failed: {tail}")
    probe = (
        "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
        "('quixstreams', 'confluent-kafka', 'faust-streaming', 'aiokafka', 'orjson')}))"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


def collect(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {timeout:g} s"}
    return parse_result(out, err, proc.returncode)


def run_cli_workers(
    kind: str, a: argparse.Namespace, ctx: dict[str, Any], env: dict[str, str],
    topic_out: str, flow: str, tag: str,
) -> dict[str, Any]:  # fmt: skip
    """One run of W2 through the CLI: ``python -m streamcore run
    kafka_workers_job.py:flow --workers N``, until it exits by itself (every worker's
    source reached the end). Each worker waits for its share of the partitions before
    reading and stays in the group until all reached the end, as in ``group2``, so no
    rebalance falls inside the timed span. Peak RSS is the workers' sum; the parent
    (``--workers 2``; with ``--workers 1`` the one process is the worker) is noted apart."""
    n = WORKERS[kind]
    work = Path(tempfile.mkdtemp(prefix=f"bench-kafka-{kind}-"))
    peers = work / "peers"
    peers.mkdir()
    settings = {
        "bootstrap": ctx["bootstrap"], "topic_in": ctx["topic_in"], "topic_out": topic_out,
        "fetch_bytes": a.fetch_bytes, "flow": flow, "group": f"g-{tag}",
        "share": a.partitions // n, "peers_dir": str(peers), "peers": n,
    }  # fmt: skip
    job_env_ = dict(
        env, BENCH_KAFKA_JOB=json.dumps(settings), BENCH_KAFKA_RESULT_DIR=str(work)
    )
    cmd = [
        sys.executable, "-m", "streamcore", "run", WORKERS_TARGET, "--workers", str(n),
        "--log-level", "WARNING",
    ]  # fmt: skip
    log_path = work / "cli.log"
    parent_rss = 0
    code: int | None = None
    started = time.perf_counter()
    broker_cpu0 = cpu_seconds_of(ctx.get("broker_pid"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=job_env_, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        deadline = time.monotonic() + a.timeout
        while code is None and time.monotonic() < deadline:
            try:
                code = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                # The parent's VmHWM while it lives: gone from /proc once it exits.
                parent_rss = max(parent_rss, peak_rss_kib(proc.pid))
        if code is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - started
    broker_cpu = cpu_seconds_of(ctx.get("broker_pid")) - broker_cpu0
    tail = log_path.read_text(errors="replace")[-2000:]
    results = [json.loads(p.read_text()) for p in sorted(work.glob("result-*.json"))]
    shutil.rmtree(work, ignore_errors=True)
    if code is None:
        return {"error": f"timed out after {a.timeout:g} s: {tail}", "wall": wall}
    if code != 0:
        return {"error": f"the CLI exited with status {code}: {tail}", "wall": wall}
    if len(results) != n:
        return {"error": f"{len(results)} of {n} workers wrote a result: {tail}", "wall": wall}
    run = summarize_run(results, ctx, topic_out, wall, broker_cpu, rss_sum=True)
    if n > 1:
        run["parent_peak_rss_kib"] = parent_rss
    return run


def run_workload(
    kind: str, a: argparse.Namespace, ctx: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    """One run of a workload: fresh output topic, job process(es), output check;
    ``<workload>@rev`` runs it with the engine of ``--rev``."""
    if kind.endswith(REV_SUFFIX):
        kind, env = kind[: -len(REV_SUFFIX)], ctx["rev_env"]
    tag = uuid.uuid4().hex[:8]
    topic_out = f"out-{kind}-{tag}"
    asyncio.run(create_topic(ctx["bootstrap"], topic_out, a.partitions))
    common = [
        "--bootstrap", ctx["bootstrap"], "--topic-in", ctx["topic_in"],
        "--topic-out", topic_out, "--fetch-bytes", str(a.fetch_bytes),
    ]  # fmt: skip
    flow = f"bench-kafka-{kind}-{tag}"
    state_dir: Path | None = None
    if kind in PEERS:
        state_dir = Path(tempfile.mkdtemp(prefix=f"bench-kafka-{kind}-"))
        peer = [
            *common, "--group", f"g-{kind}-{tag}", "--events", str(ctx["n"]),
            "--partitions", str(a.partitions), "--state-dir", str(state_dir),
        ]  # fmt: skip
        if kind == "quix":
            # Its end-of-input markers' ts: just past the last window's end plus the grace.
            last_start = ctx["max_ts"] - ctx["max_ts"] % TUMBLE_MS
            peer += ["--marker-ts", str(last_start + TUMBLE_MS + OUT_OF_ORDER_MS)]
        procs = [spawn(peer, env, [str(a.peers_python), str(PEERS_DIR / PEERS[kind])])]
    elif kind in WORKERS:
        return run_cli_workers(kind, a, ctx, env, topic_out, flow, tag)
    elif kind == "base":
        procs = [spawn(["base", *common], env)]
    elif kind == "alo":
        procs = [spawn(["streamcore", *common, "--flow", flow, "--group", f"g-{tag}"], env)]
    elif kind in ("eo", "rekey"):
        procs = [
            spawn(
                [
                    "streamcore", *common, "--flow", flow, "--group", f"g-{tag}",
                    "--exactly-once", "--redis-url", ctx["redis_url"],
                    "--key-prefix", f"bench-kafka-{tag}", *(["--rekey"] if kind == "rekey" else []),
                ],
                env,
            )
        ]  # fmt: skip
    else:
        peers = Path(tempfile.mkdtemp(prefix="bench-kafka-peers-"))
        n_procs = 2
        extra = []
        if kind == "eo2":
            extra = ["--exactly-once", "--redis-url", ctx["redis_url"], "--key-prefix", f"bench-kafka-{tag}"]
        procs = [
            spawn(
                [
                    "streamcore", *common, "--flow", flow, "--group", f"g-{tag}",
                    "--share", str(a.partitions // n_procs), "--peers-dir", str(peers),
                    "--peers", str(n_procs), *extra,
                ],
                env,
            )
            for _ in range(n_procs)
        ]  # fmt: skip
    started = time.perf_counter()
    broker_cpu0 = cpu_seconds_of(ctx.get("broker_pid"))
    results = [collect(p, a.timeout) for p in procs]
    wall = time.perf_counter() - started
    broker_cpu = cpu_seconds_of(ctx.get("broker_pid")) - broker_cpu0
    if kind in ("group2", "eo2"):
        shutil.rmtree(peers, ignore_errors=True)
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)
    return summarize_run(results, ctx, topic_out, wall, broker_cpu)


def summarize_run(
    results: list[dict[str, Any]],
    ctx: dict[str, Any],
    topic_out: str,
    wall: float,
    broker_cpu: float,
    *,
    rss_sum: bool = False,
) -> dict[str, Any]:
    """One run from its processes' results: events/s over the span from the earliest
    first record to the latest end, peak RSS (the largest process's, or with ``rss_sum``
    the processes' sum), CPU, and the output read back and checksummed."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": " | ".join(errors), "wall": wall}
    if any(r["first"] is None or r["end"] is None for r in results):
        return {"error": f"a job read nothing or never reached the end: {results}", "wall": wall}
    read = sum(r["read"] for r in results)
    first = min(r["first"] for r in results)
    end = max(r["end"] for r in results)
    done = max(r["done"] for r in results)
    run = {
        "read": read,
        "seconds": end - first,
        "events_per_s": ctx["n"] / (end - first),
        "done_s": done - first,
        "peak_rss_kib": (sum if rss_sum else max)(r["peak_rss_kib"] for r in results),
        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "per_process_read": [r["read"] for r in results],
        "per_process_cpu_seconds": [r["cpu_seconds"] for r in results],
        "per_process_rss_kib": [r["peak_rss_kib"] for r in results],
        "broker_cpu_seconds": round(broker_cpu, 3),
        "wall": wall,
        "topic_out": topic_out,
    }
    try:
        run["checksum"] = asyncio.run(output_checksum(ctx["bootstrap"], topic_out))
    except Exception as exc:
        return {"error": f"reading the output back failed: {exc!r}", "wall": wall}
    return run


def cpu_table(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Where the CPU went, per workload (medians over its runs): each job process's CPU
    time and peak RSS, and the broker's CPU time, over the run's wall time (process start
    to exit), so that what bounds a row shows (a process at 100% of a core, or the broker)."""
    lines = [
        "| workload | wall s | CPU s per job process (% of a core over the wall) | "
        "broker CPU s (% of a core) | peak RSS MiB per job process | parent RSS MiB |",
        "|---|---:|---|---:|---|---:|",
    ]
    for kind, kind_runs in runs.items():
        ok = [r for r in kind_runs if "error" not in r]
        if not ok:
            continue
        wall = statistics.median(r["wall"] for r in ok)
        procs = len(ok[0]["per_process_cpu_seconds"])
        cpu = [statistics.median(sorted(r["per_process_cpu_seconds"])[i] for r in ok) for i in range(procs)]
        rss = [statistics.median(sorted(r["per_process_rss_kib"])[i] for r in ok) / 1024 for i in range(procs)]
        broker = statistics.median(r["broker_cpu_seconds"] for r in ok)
        parent = [r["parent_peak_rss_kib"] / 1024 for r in ok if "parent_peak_rss_kib" in r]
        parent_cell = f"{statistics.median(parent):.0f}" if parent else "-"
        lines.append(
            f"| {LABELS[kind]} | {wall:.2f} | "
            + ", ".join(f"{c:.2f} ({100 * c / wall:.0f}%)" for c in cpu)
            + f" | {broker:.2f} ({100 * broker / wall:.0f}%) | "
            + ", ".join(f"{m:.0f}" for m in rss)
            + f" | {parent_cell} |"
        )
    return lines


def build_table(
    runs: dict[str, list[dict[str, Any]]], expected: dict[str, Any], n: int, labels: dict[str, str] = LABELS
) -> tuple[list[str], list[str]]:
    return connector_table(
        runs, expected, n, labels, "aiokafka loop", where=lambda r: f" (topic {r['topic_out']})"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["job"]:
        job_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", default="base,alo,eo,group2,eo2")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument(
        "--fetch-bytes", type=int, default=64 * 1024, help="max_partition_fetch_bytes, both sides"
    )
    ap.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    ap.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    ap.add_argument("--rev", default=None, help="also run the streamcore workloads on this revision's engine")
    add_run_options(ap, HERE / "results")
    ap.add_argument(
        "--results-name", default="kafka.md", help="the results file in --results-dir"
    )
    ap.add_argument(
        "--peers-python", type=Path, default=PEERS_PYTHON,
        help="interpreter of the quix and faust jobs (default: the venv of peers-kafka/setup.sh)",
    )  # fmt: skip
    a = ap.parse_args(argv)
    kinds = [k for k in a.only.split(",") if k]
    for k in kinds:
        if k not in LABELS:
            ap.error(f"unknown workload {k!r}; choose from {','.join(LABELS)}")

    path = cached_events(a.events, a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="streamcore-bench-kafka-"))
    env, engine = engine_for_jobs(a.engine, tmp / "engine")
    labels = dict(LABELS)
    rev_env: dict[str, str] = {}
    if a.rev:
        from compare import export_rev

        commit = export_rev(a.rev, tmp / "rev-engine")
        rev_env = job_env(tmp / "rev-engine")
        engine += f"; '{REV_SUFFIX}' rows: revision {commit} ({a.rev})"
        for k in [k for k in kinds if k != "base" and k not in PEERS]:
            kinds.append(k + REV_SUFFIX)
            labels[k + REV_SUFFIX] = f"{LABELS[k]}, at {commit}"
    services: list[Service] = []
    peers_info = ""
    if any(k in PEERS for k in kinds):
        versions = setup_peers(a.peers_python)
        peers_info = (
            f" Peers (in {a.peers_python}): "
            + ", ".join(f"{name} {v}" for name, v in versions.items())
            + "."
        )
    try:
        if a.bootstrap is None:
            kafka = Service("kafka.sh", "KAFKA_BOOTSTRAP", tmp)
            services.append(kafka)
            bootstrap = kafka.start()
            broker_pid = pid_from(kafka.dir / "kafka.pid")
            broker = f"private broker at {bootstrap} (scripts/kafka.sh, KRaft, 1 node), stopped at the end"
        else:
            bootstrap, broker = a.bootstrap, f"broker at {a.bootstrap} (given)"
            broker_pid = None
        redis_url, redis_where = a.redis_url, f"Redis at {a.redis_url} (given)"
        if redis_url is None and {"eo", "eo2", "rekey"} & set(kinds):
            redis = Service("redis.sh", "REDIS_URL", tmp)
            services.append(redis)
            redis_url = redis.start()
            redis_where = f"private redis-server at {redis_url} (scripts/redis.sh), stopped at the end"
        topic_in = f"in-{uuid.uuid4().hex[:8]}"
        asyncio.run(create_topic(bootstrap, topic_in, a.partitions))
        t0 = time.perf_counter()
        n = asyncio.run(fill_topic(bootstrap, topic_in, path))
        fill_s = time.perf_counter() - t0
        expected = expected_checksum(path)
        ctx = {
            "bootstrap": bootstrap, "topic_in": topic_in, "n": n, "redis_url": redis_url or "",
            "max_ts": max_event_ts(path), "rev_env": rev_env, "broker_pid": broker_pid,
        }  # fmt: skip
        load_start = Path("/proc/loadavg").read_text().strip()
        print(f"# input {path} ({n:,} events) -> topic {topic_in}, {a.partitions} partitions, "
              f"filled in {fill_s:.1f} s", flush=True)  # fmt: skip
        print(f"# engine: {engine}", flush=True)
        print(f"# kafka: {broker}; redis: {redis_where}", flush=True)
        if peers_info:
            print(f"#{peers_info}", flush=True)
        print(f"# expected {expected}", flush=True)
        started = time.time()
        runs = run_rounds(
            kinds, a.rounds, a.order_seed, lambda kind: run_workload(kind, a, ctx, env),
            lambda r: f"read {r['per_process_read']}, ",
        )  # fmt: skip
        minutes = (time.time() - started) / 60
        load_end = Path("/proc/loadavg").read_text().strip()
        table, problems = build_table(runs, expected, n, labels)
        header = [
            f"streamcore Kafka benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: W2 from topic "
            f"to topic on {n:,} events ({path.name}), {a.partitions} partitions keyed by user, "
            f"{a.rounds} round(s), total {minutes:.1f} min",
            f"Load average start: {load_start}; end: {load_end}. Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs; the broker (and Redis) run on "
            "the same machine.",
            f"Engine: {engine}.{peers_info}",
            f"Kafka: {broker}. Redis: {redis_where}.",
            f"Consumers: max_partition_fetch_bytes={a.fetch_bytes}, batches of up to "
            f"{BATCH_SIZE} records; producers: acks=all, linger_ms=5. Expected output: "
            f"{expected}.",
        ]
        notes = [
            "",
            "events/s: input records over the time from the first batch holding a record to the",
            "source reaching the end of the input (medians over the runs). 'flow done': from the",
            "first record until the last window result was written and flushed (or, exactly",
            "once, its transaction committed after the final checkpoint). Two processes: all",
            "events over the span from the earliest first record to the latest end; peak RSS is",
            "the larger of the two processes, CPU the sum. Output check: the output topic",
            "read back with read_committed against the windows computed from the input file.",
        ]
        if peers_info:
            notes += [
                "Quix Streams and Faust: events/s over the time from the first input record",
                "reaching the job's pipeline to the last one (the known total count, counted in",
                "the job's first step or agent); 'flow done' adds the last",
                "windows (Quix Streams: closed by an end-of-input marker added after the last",
                "record of each partition; Faust: closed by the job, since its table windows",
                "expire by wall clock only) and the producer flush. Both close a window",
                "by the largest ts of its own partition minus 2 s (the aiokafka loop: the minimum",
                "over partitions); same output on this input, which has no late record.",
            ]
        if any(k in WORKERS for k in kinds):
            notes += [
                "`streamcore run --workers N`: the same W2 flow and timed source as the at least",
                "once rows, run by `python -m streamcore run bench/kafka_workers_job.py:flow",
                "--workers N` until it exits by itself; each worker waits for its share of the",
                "partitions before reading and stays in the group until all reached the end (as",
                "group2). Peak RSS: the sum over the workers (the parent of --workers 2, which runs",
                "no flow, is in the CPU table below; with --workers 1 the one process is the",
                "worker); CPU: the sum over the workers.",
            ]
        notes += [
            "",
            "CPU per process (medians over the runs; the broker's measured from /proc over each",
            "run; one job process per column entry, sorted):",
            "",
            *cpu_table(runs),
        ]
        write_report([*header, "", *table, *notes], problems, a.results_dir, a.results_name,
                     a.json, {"expected": expected, "runs": runs})
        return 1 if problems else 0
    finally:
        stop_services(services, tmp)


if __name__ == "__main__":
    sys.exit(main())
