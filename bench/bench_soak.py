"""Soak: the daemon under a steady Kafka load for minutes; RSS, CPU and end-to-end latency.

Usage::

    .venv/bin/python bench/bench_soak.py [--duration 600] [--warmup 60] [--rate EVENTS_PER_S]

Setup (untimed): a private single-node Kafka broker (``scripts/kafka.sh``) and Redis
(``scripts/redis.sh``) are started in a temporary directory and stopped at the end, also
on failure (``--bootstrap`` / ``--redis-url`` use running ones instead).

The job under test is a real daemon process,
``python -m streamcore run bench/soak_job.py:flow --state REDIS --checkpoint-interval 1s
--metrics-port PORT``: ``KafkaSource`` (a consumer group) on an input topic of 4
partitions keyed by user -> event time ``ts`` with 200 ms of out-of-orderness ->
``key_by`` user (``prepartitioned``) -> tumbling 1 s windows, count and sum of
``amount`` -> ``KafkaSink(exactly_once=False)``. With ``--state`` and a group id it runs
one task per partition, each checkpointed in Redis every second (docs/scale-out.md).
The sink is at least once on purpose: an exactly-once sink makes its output readable
only when a checkpoint commits, so latency would be bounded below by the 1 s interval.

1. Probe (skipped with ``--rate``): ``--probe-events`` events are written to a topic of
   their own first, then read as a backlog by the same flow (``stop_at_end=True``, Redis
   checkpoints every 1 s, so per-partition tasks as in the daemon) in a fresh process.
   Max events/s = events over the time from the first batch holding a record to the
   last task reaching the end of its partition, timed in the source's ``read_batch`` as
   in ``bench_kafka.py``.
2. Soak at half of that rate (or ``--rate``) for ``--duration`` seconds: a producer
   process (plain aiokafka, ``linger_ms=2``) sends every ~10 ms the records due by then
   as one closed batch per partition (sent at once, no lingering), each record keyed by
   one of ``--users`` users, with a random ``amount`` and ``ts`` = the wall clock in ms
   when it is produced. This process reads the output topic and measures,
   per window result, latency = receive wall clock - (window start + 1000 + 200): from
   the moment the window could first be complete (its end plus the out-of-orderness) to
   its result being readable. It samples the daemon's RSS and CPU (psutil, by pid) every
   second, the CPU of the producer, the broker, Redis and itself as well, and scrapes
   the daemon's ``/metrics`` every interval (records read, source lag, checkpoints).

Reported per ``--interval`` (30 s): events/s produced, windows received, RSS, CPU,
latency p50/p99; and over the run after the warm-up: RSS growth = (max RSS after the
warm-up - RSS at its end) / RSS at its end, latency p50/p99. Targets: RSS growth < 5%,
p99 latency < 100 ms; beside the growth, the least-squares slope of RSS after the
warm-up in MiB per 10 minutes. The table and summary go to ``bench/results/NAME.md``,
the plot to ``bench/results/NAME.png`` (``--results-name NAME``, default ``soak``, so
that repeated runs keep their own files; the plot needs matplotlib:
``pip install -e '.[bench]'``).

What grows: ``--tracemalloc-every S`` makes the daemon trace its allocations and dump a
snapshot every ``S`` s (``soak_job.trace_allocations``, through ``SOAK_TRACEMALLOC_*``
environment variables, so the engine knows nothing of it); after the run the snapshots
are compared (``soak_tracemalloc.py``: the first against the end of the warm-up, the
end of the warm-up and the ones after it against the last) and the top allocation sites
by growth, file:line with bytes and blocks, are appended to the results file, each
marked bounded or growing. Tracing slows the daemon: make it a run of its own, at a
lower ``--rate`` if it cannot keep up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import RESULT_PREFIX, parse_result, peak_rss_kib, pid_from  # noqa: E402
from bench_kafka import ROOT, Service, create_topic, engine_for_jobs, stop_services  # noqa: E402
from soak_job import OUT_OF_ORDER_MS, WINDOW_MS  # noqa: E402

THIS = Path(__file__).resolve()
JOB_TARGET = f"{HERE / 'soak_job.py'}:flow"
# A window can first be complete when the watermark passes its end: event time
# end + out-of-orderness. Latency is measured from there.
COMPLETE_AFTER_MS = WINDOW_MS + OUT_OF_ORDER_MS
# Event-time density of the probe's backlog, near the soak's rate, so that the probe
# fires about as many windows per event as the soak does.
PROBE_EVENTS_PER_EVENT_S = 50_000
PROBE_TS_BASE = 1_700_000_000_000
TICK_S = 0.01
# The processes whose CPU is sampled, in the order they are reported.
PROCESSES = ("daemon", "producer", "broker", "redis", "consumer (this process)")
RSS_GROWTH_TARGET = 0.05
P99_TARGET_MS = 100.0


def clock() -> float:
    """CLOCK_MONOTONIC: system-wide, so times taken in two processes compare."""
    return time.monotonic()


def wall_ms() -> int:
    """The wall clock in integer ms, the unit of the events' ``ts``."""
    return time.time_ns() // 1_000_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def user_names(users: int) -> list[str]:
    """The users the events are keyed by."""
    return [f"u{i:04d}" for i in range(users)]


# ---------------------------------------------------------------------------------------
# The producer process
# ---------------------------------------------------------------------------------------


async def produce(a: argparse.Namespace) -> None:
    """Send ``a.rate`` events/s for ``a.duration`` s; one JSON progress line per second.

    Every tick the records due by then are appended to one batch per partition, which is
    closed (so it is sent at once, without lingering) and submitted: ``send()`` per
    record would cost this process most of a core at the soak's rates, on a machine whose
    two cores the daemon and the broker need too. Keys are partitioned as the default
    partitioner does (murmur2), so each user lives in one partition.
    """
    import orjson
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(
        bootstrap_servers=a.bootstrap, acks="all", linger_ms=a.linger_ms, max_batch_size=1 << 20
    )
    await producer.start()
    topic = a.topic
    partitions = sorted(await producer.partitions_for(topic))
    rng = random.Random(a.seed)
    users = user_names(a.users)
    keys = [u.encode() for u in users]
    part_of = [DefaultPartitioner()(k, partitions, partitions) for k in keys]
    # A pool of random amounts, so that each record costs one random index, not two draws.
    amounts = [round(rng.uniform(1.0, 100.0), 2) for _ in range(4096)]
    dumps, create, send_batch = orjson.dumps, producer.create_batch, producer.send_batch
    n_users, n_amounts = len(users), len(amounts)
    # A producer that fell behind catches up, but at most 10 ticks' worth at a time, so
    # that a stall turns into a short burst rather than one huge batch.
    burst = max(1, int(a.rate * TICK_S * 10))
    sent = 0
    started = clock()
    print(json.dumps({"started": time.time()}), flush=True)
    end = started + a.duration
    next_report = started + 1.0
    tick = started
    try:
        while True:
            now = clock()
            if now >= end:
                break
            due = min(int((now - started) * a.rate) - sent, burst)
            if due > 0:
                batches = {p: create() for p in partitions}
                for _ in range(due):
                    i = rng.randrange(n_users)
                    value = {"user": users[i], "ts": wall_ms(), "amount": amounts[sent % n_amounts]}
                    batch = batches[part_of[i]]
                    if batch.append(key=keys[i], value=dumps(value), timestamp=None) is None:
                        # Full: send it and start another for this partition.
                        batch.close()
                        await send_batch(batch, topic, partition=part_of[i])
                        batch = batches[part_of[i]] = create()
                        batch.append(key=keys[i], value=dumps(value), timestamp=None)
                    sent += 1
                for p, batch in batches.items():
                    if batch.record_count():
                        batch.close()
                        await send_batch(batch, topic, partition=p)
            if now >= next_report:
                print(json.dumps({"t": time.time(), "sent": sent}), flush=True)
                next_report += 1.0
            tick += TICK_S
            await asyncio.sleep(max(0.0, tick - clock()))
        await asyncio.wait_for(producer.flush(), 60)
    finally:
        await asyncio.wait_for(producer.stop(), 60)
    print(json.dumps({"t": time.time(), "sent": sent, "done": True}), flush=True)


def produce_main(argv: list[str]) -> None:
    """``bench_soak.py produce``: the steady-rate producer process."""
    ap = argparse.ArgumentParser(prog="bench_soak.py produce")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--linger-ms", type=int, default=2)
    asyncio.run(produce(ap.parse_args(argv)))


# ---------------------------------------------------------------------------------------
# The probe process: the soak flow over a backlog
# ---------------------------------------------------------------------------------------


async def fill_probe_topic(bootstrap: str, topic: str, n: int, users: int, seed: int) -> None:
    """``n`` events keyed by user, ``ts`` advancing at ``PROBE_EVENTS_PER_EVENT_S``."""
    import orjson
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    rng = random.Random(seed)
    names = user_names(users)
    try:
        pending = []
        for i in range(n):
            user = names[rng.randrange(users)]
            ts = PROBE_TS_BASE + i * 1000 // PROBE_EVENTS_PER_EVENT_S
            value = orjson.dumps({"user": user, "ts": ts, "amount": round(rng.uniform(1, 100), 2)})
            pending.append(await producer.send(topic, value, key=user.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def probe(a: argparse.Namespace) -> dict[str, Any]:
    """Run the soak flow over the probe topic to its end; when reading started and ended."""
    from soak_job import build_flow

    import streamcore as sc
    from connectors.kafka import KafkaSource

    class TimedKafkaSource(KafkaSource):
        """Notes the first record read and the end reached. Each partition task runs a
        shallow copy of this source, so the copies share ``stats``: ``first`` is the
        earliest first record, ``end`` the last copy reaching its end, ``read`` the sum."""

        # A class of this call's own, so a class attribute is this run's and nothing else's.
        stats: ClassVar[dict[str, Any]] = {"first": None, "end": None, "read": 0}
        ended = False

        async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
            out = await super().read_batch(max_records, timeout_s)
            stats = self.stats
            if out is None:
                if not self.ended:
                    self.ended = True
                    stats["end"] = clock()
                return None
            if out:
                if stats["first"] is None:
                    stats["first"] = clock()
                stats["read"] += len(out)
            return out

    flow, _ = build_flow(
        a.flow, a.bootstrap, a.topic_in, a.topic_out, a.group,
        source_cls=TimedKafkaSource, stop_at_end=True,
    )  # fmt: skip
    store = sc.RedisStateStore(a.redis_url)
    await flow.run(checkpoint=sc.Checkpointing(store, interval=1.0))
    return {**TimedKafkaSource.stats, "done": clock()}


def probe_main(argv: list[str]) -> None:
    """``bench_soak.py probe``: the throughput probe job, printing one result line."""
    ap = argparse.ArgumentParser(prog="bench_soak.py probe")
    for name in ("--bootstrap", "--topic-in", "--topic-out", "--group", "--flow", "--redis-url"):
        ap.add_argument(name, required=True)
    a = ap.parse_args(argv)
    cpu0 = time.process_time()
    result = asyncio.run(probe(a))
    result["cpu_seconds"] = round(time.process_time() - cpu0, 3)
    result["peak_rss_kib"] = peak_rss_kib()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_probe(
    a: argparse.Namespace, bootstrap: str, redis_url: str, env: dict[str, str]
) -> dict[str, Any]:
    """Fill a probe topic and time the flow over it in a fresh process."""
    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"soak-probe-in-{tag}", f"soak-probe-out-{tag}"
    asyncio.run(create_topic(bootstrap, topic_in, a.partitions))
    asyncio.run(create_topic(bootstrap, topic_out, a.partitions))
    asyncio.run(fill_probe_topic(bootstrap, topic_in, a.probe_events, a.users, a.seed))
    cmd = [
        sys.executable, str(THIS), "probe", "--bootstrap", bootstrap, "--topic-in", topic_in,
        "--topic-out", topic_out, "--group", f"soak-probe-{tag}", "--flow", f"soak-probe-{tag}",
        "--redis-url", redis_url,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.probe_timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the probe timed out after {a.probe_timeout:g} s") from None
    r = parse_result(proc.stdout, proc.stderr, proc.returncode)
    if "error" in r:
        raise RuntimeError(f"the probe failed: {r['error']}")
    if r["first"] is None or r["end"] is None or r["read"] != a.probe_events:
        raise RuntimeError(f"the probe read {r['read']} of {a.probe_events} events: {r}")
    r["seconds"] = r["end"] - r["first"]
    r["events_per_s"] = a.probe_events / r["seconds"]
    # Up to the last window written: records still in the mailboxes when the sources
    # reached their ends (up to a few batches per task) are counted in this one.
    r["done_s"] = r["done"] - r["first"]
    r["done_events_per_s"] = a.probe_events / r["done_s"]
    return r


# ---------------------------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One second's sample: time since the producer started, RSS, CPU % per process."""

    t: float
    rss_mib: float
    cpu: dict[str, float]


@dataclass
class Scrape:
    """What ``/metrics`` said at time ``t``: records read, source lag, checkpoints, tasks."""

    t: float
    records_in: float
    lag: float
    checkpoints: float
    tasks: float


@dataclass
class SoakData:
    """Everything measured during the soak."""

    t0: float | None = None
    """Wall clock (s) when the producer started sending; every ``t`` is relative to it."""
    sent: list[tuple[float, int]] = field(default_factory=list)
    recv_t: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    sink_latency_ms: list[float] = field(default_factory=list)
    """Window results' Kafka timestamps (set when the sink sent them) minus completion."""
    counted: int = 0
    """Events counted in the windows received."""
    duplicates: int = 0
    samples: list[Sample] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    scrape_errors: list[str] = field(default_factory=list)
    produced: int = 0
    daemon_exit: int | None = None


class CpuMeter:
    """CPU % of one core of a process between calls, by pid (psutil)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.last = (clock(), self._cpu())

    def _cpu(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def percent(self) -> float:
        """Since the previous call; NaN once the process is gone."""
        try:
            now, cpu = clock(), self._cpu()
        except Exception:
            return math.nan
        t, c = self.last
        self.last = (now, cpu)
        return 100.0 * (cpu - c) / max(now - t, 1e-9)


def _http_get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def parse_metrics(text: str, t: float) -> Scrape:
    """The few figures of the daemon's Prometheus text this benchmark looks at."""
    from prometheus_client.parser import text_string_to_metric_families

    records_in = lag = checkpoints = tasks = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "streamcore_stage_records_in_total" and s.labels.get("stage") == "kafka":
                records_in += s.value
            elif s.name == "streamcore_source_lag_records":
                lag += s.value
            elif s.name == "streamcore_checkpoints_completed_total":
                checkpoints += s.value
            elif s.name == "streamcore_flow_tasks":
                tasks += s.value
    return Scrape(t, records_in, lag, checkpoints, tasks)


async def wait_ready(port: int, daemon: asyncio.subprocess.Process, timeout: float) -> None:
    """Until ``/readyz`` answers 200; fails if the daemon exits or the time is up."""
    deadline = clock() + timeout
    while clock() < deadline:
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with status {daemon.returncode} before ready")
        try:
            status, _ = await asyncio.to_thread(_http_get, f"http://127.0.0.1:{port}/readyz", 2.0)
            if status == 200:
                return
        except OSError:
            pass  # not listening yet
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the daemon was not ready within {timeout:g} s")


async def consume_output(
    bootstrap: str, topic: str, data: SoakData, stop: asyncio.Event, deadline: float
) -> None:
    """Read the window results as they come; latency of each from its receive time."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # The measuring side should add little: a short long-poll when nothing is there.
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    seen: set[tuple[str, int]] = set()
    loads = orjson.loads
    try:
        await consumer._client._wait_on_metadata(topic)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set() and clock() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            recv = time.time()
            recv_ms = recv * 1000.0
            t = recv - data.t0 if data.t0 is not None else 0.0
            for messages in batch.values():
                for m in messages:
                    v = loads(m.value)
                    complete = v["start"] + COMPLETE_AFTER_MS
                    data.recv_t.append(t)
                    data.latency_ms.append(recv_ms - complete)
                    data.sink_latency_ms.append(float(m.timestamp - complete))
                    data.counted += v["n"]
                    k = (v["user"], v["start"])
                    if k in seen:
                        data.duplicates += 1
                    seen.add(k)
    finally:
        await consumer.stop()


async def sample_processes(
    meters: dict[str, CpuMeter], data: SoakData, stop: asyncio.Event, deadline: float
) -> None:
    """Every second: the daemon's RSS and every process's CPU %."""
    daemon = meters["daemon"].proc
    next_at = clock() + 1.0
    while not stop.is_set() and clock() < deadline:
        await asyncio.sleep(max(0.0, next_at - clock()))
        next_at += 1.0
        if data.t0 is None:
            continue
        try:
            rss = daemon.memory_info().rss / (1 << 20)
        except Exception:
            break  # the daemon is gone; the caller reports its exit status
        cpu = {name: m.percent() for name, m in meters.items()}
        data.samples.append(Sample(time.time() - data.t0, rss, cpu))


async def scrape_metrics(
    port: int, every_s: float, data: SoakData, stop: asyncio.Event, deadline: float
) -> None:
    """``/metrics`` every ``every_s``: proof that it serves, and the source lag."""
    url = f"http://127.0.0.1:{port}/metrics"
    next_at = clock() + min(5.0, every_s)
    while not stop.is_set() and clock() < deadline:
        await asyncio.sleep(max(0.0, min(next_at - clock(), 0.5)))
        if clock() < next_at:
            continue
        next_at += every_s
        try:
            status, text = await asyncio.to_thread(_http_get, url, 5.0)
            if status != 200:
                raise RuntimeError(f"status {status}")
            t = time.time() - (data.t0 or time.time())
            data.scrapes.append(parse_metrics(text, t))
        except Exception as exc:
            data.scrape_errors.append(f"{time.time() - (data.t0 or 0):.0f}s: {exc!r}")


async def read_producer(
    proc: asyncio.subprocess.Process, data: SoakData, started: asyncio.Event
) -> None:
    """The producer's progress lines: its start time, then cumulative counts."""
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "started" in msg:
            data.t0 = msg["started"]
            started.set()
        elif data.t0 is not None:
            data.sent.append((msg["t"] - data.t0, msg["sent"]))
            data.produced = msg["sent"]


async def stop_process(proc: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; its exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


async def soak(
    a: argparse.Namespace, bootstrap: str, redis_url: str, env: dict[str, str],
    rate: float, pids: dict[str, int | None], log_path: Path,
) -> SoakData:  # fmt: skip
    """Start the daemon, then the producer; measure until the producer is done."""
    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"soak-in-{tag}", f"soak-out-{tag}"
    await create_topic(bootstrap, topic_in, a.partitions)
    await create_topic(bootstrap, topic_out, a.partitions)
    port = free_port()
    job_env_ = dict(
        env, SOAK_BOOTSTRAP=bootstrap, SOAK_TOPIC_IN=topic_in, SOAK_TOPIC_OUT=topic_out,
        SOAK_GROUP=f"soak-{tag}", SOAK_FLOW=f"soak-{tag}",
    )  # fmt: skip
    if a.tracemalloc_every is not None:
        job_env_.update(
            SOAK_TRACEMALLOC_EVERY=str(a.tracemalloc_every),
            SOAK_TRACEMALLOC_DIR=str(a.tracemalloc_dir),
            SOAK_TRACEMALLOC_FRAMES=str(a.tracemalloc_frames),
        )
    data = SoakData()
    stop = asyncio.Event()
    # Every loop below also stops by itself at this deadline.
    hard_deadline = clock() + a.duration + a.startup_timeout + 300
    with open(log_path, "wb") as log:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamcore", "run", JOB_TARGET, "--state", redis_url,
            "--checkpoint-interval", "1s", "--metrics-port", str(port),
            env=job_env_, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        producer: asyncio.subprocess.Process | None = None
        tasks: list[asyncio.Task[Any]] = []
        try:
            await wait_ready(port, daemon, a.startup_timeout)
            meters = {
                "daemon": CpuMeter(daemon.pid),
                "consumer (this process)": CpuMeter(os.getpid()),
            }
            for name, pid in pids.items():
                if pid is not None:
                    meters[name] = CpuMeter(pid)
            tasks.append(
                asyncio.create_task(consume_output(bootstrap, topic_out, data, stop, hard_deadline))
            )
            await asyncio.sleep(1.0)  # the consumer's assignment and first fetch
            producer = await asyncio.create_subprocess_exec(
                sys.executable, str(THIS), "produce", "--bootstrap", bootstrap, "--topic", topic_in,
                "--rate", str(rate), "--duration", str(a.duration), "--users", str(a.users),
                "--seed", str(a.seed),
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            )  # fmt: skip
            meters["producer"] = CpuMeter(producer.pid)
            started = asyncio.Event()
            reader = asyncio.create_task(read_producer(producer, data, started))
            await asyncio.wait_for(started.wait(), a.startup_timeout)
            for m in meters.values():
                m.percent()  # start every CPU meter at t0
            tasks.append(asyncio.create_task(sample_processes(meters, data, stop, hard_deadline)))
            tasks.append(
                asyncio.create_task(scrape_metrics(port, a.interval, data, stop, hard_deadline))
            )
            progress_at = clock() + a.interval
            end = clock() + a.duration + 120
            while producer.returncode is None and clock() < end:
                if daemon.returncode is not None:
                    raise RuntimeError(
                        f"the daemon exited with status {daemon.returncode} during the soak"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(producer.wait(), 1.0)
                if clock() >= progress_at:
                    progress_at += a.interval
                    _print_progress(data)
            if producer.returncode is None:
                raise RuntimeError("the producer did not finish in time")
            if producer.returncode != 0:
                raise RuntimeError(f"the producer exited with status {producer.returncode}")
            await asyncio.wait_for(reader, 10)
            # The last complete windows fire within ~1.2 s of the input ending; the last
            # open window never fires (no input moves the watermark past it).
            await asyncio.sleep(a.drain)
            scrape = await asyncio.to_thread(_http_get, f"http://127.0.0.1:{port}/metrics", 5.0)
            if scrape[0] == 200:
                data.scrapes.append(parse_metrics(scrape[1], time.time() - (data.t0 or 0)))
        finally:
            stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, 15)
                except Exception as exc:
                    print(f"# {task.get_coro().__name__}: {exc!r}", file=sys.stderr)  # type: ignore[union-attr]
            if producer is not None:
                await stop_process(producer, 10)
            # With --state, SIGTERM stops the flow at a final checkpoint.
            data.daemon_exit = await stop_process(daemon, 60)
    return data


def _print_progress(data: SoakData) -> None:
    if data.samples and data.t0 is not None:
        s = data.samples[-1]
        lat = data.latency_ms[-2000:]
        p99 = percentile(sorted(lat), 0.99) if lat else math.nan
        print(
            f"#   t={s.t:5.0f}s sent {data.produced:,} windows {len(data.latency_ms):,} "
            f"RSS {s.rss_mib:.1f} MiB CPU {s.cpu['daemon']:.0f}% recent p99 {p99:.0f} ms",
            flush=True,
        )


# ---------------------------------------------------------------------------------------
# Aggregation and reports
# ---------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile of already sorted values, linearly interpolated; NaN if empty."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _sent_at(sent: list[tuple[float, int]], t: float) -> int:
    """Events sent by time ``t`` (from the producer's per-second progress lines)."""
    best = 0
    for ts, n in sent:
        if ts <= t + 0.5:
            best = n
        else:
            break
    return best


def intervals(data: SoakData, duration: float, every: float) -> list[dict[str, Any]]:
    """Per interval of ``every`` seconds: rates, windows, RSS, CPU, latency."""
    n = max(1, math.ceil(duration / every))
    rows = []
    for k in range(n):
        lo, hi = k * every, min((k + 1) * every, duration)
        last = k == n - 1
        # Results received after the producer stopped (the drain) belong to the last row.
        picked = [
            i for i, t in enumerate(data.recv_t) if lo <= t < hi or (last and t >= hi)
        ]  # fmt: skip
        lat = sorted(data.latency_ms[i] for i in picked)
        sink = sorted(data.sink_latency_ms[i] for i in picked)
        samples = [s for s in data.samples if lo < s.t <= hi]
        sent = _sent_at(data.sent, hi) - _sent_at(data.sent, lo) if k else _sent_at(data.sent, hi)
        scrapes = [s for s in data.scrapes if lo < s.t <= hi]
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "events_per_s": sent / (hi - lo),
                "windows": len(lat),
                "rss_end": samples[-1].rss_mib if samples else math.nan,
                "rss_max": max(s.rss_mib for s in samples) if samples else math.nan,
                "cpu": _cpu_means(samples),
                "p50": percentile(lat, 0.50),
                "p99": percentile(lat, 0.99),
                "max": lat[-1] if lat else math.nan,
                "sink_p99": percentile(sink, 0.99),
                "lag": scrapes[-1].lag if scrapes else math.nan,
            }
        )
    return rows


def _cpu_means(samples: list[Sample]) -> dict[str, float]:
    names = [n for n in PROCESSES if samples and n in samples[0].cpu]
    return {n: _mean([s.cpu.get(n, math.nan) for s in samples]) for n in names}


def _rss_slope(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over ``samples``, MiB per minute; NaN if too few."""
    if len(samples) < 2:
        return math.nan
    mt, mr = _mean([s.t for s in samples]), _mean([s.rss_mib for s in samples])
    var = sum((s.t - mt) ** 2 for s in samples)
    if var <= 0:
        return math.nan
    return 60 * sum((s.t - mt) * (s.rss_mib - mr) for s in samples) / var


def summarize(data: SoakData, a: argparse.Namespace) -> dict[str, Any]:
    """The run's figures after the warm-up, and the targets' verdicts."""
    warm = [s for s in data.samples if s.t <= a.warmup]
    after = [s for s in data.samples if s.t > a.warmup]
    rss_warm = warm[-1].rss_mib if warm else math.nan
    rss_max = max((s.rss_mib for s in after), default=math.nan)
    growth = (rss_max - rss_warm) / rss_warm if warm and after else math.nan
    # Least-squares slope of RSS after the warm-up, in MiB per minute: a leak shows as a
    # steady slope, a one-off step (a larger batch, a GC arena) does not.
    slope = _rss_slope(after)
    # The same over the second half only: a slope that fades there is memory settling
    # (allocator arenas, client buffers reaching their working size), not a leak.
    late_slope = _rss_slope(after[len(after) // 2 :])
    lat = sorted(x for t, x in zip(data.recv_t, data.latency_ms, strict=True) if t > a.warmup)
    sink = sorted(x for t, x in zip(data.recv_t, data.sink_latency_ms, strict=True) if t > a.warmup)
    # CPU while the producer ran: the drain after it would only dilute the means.
    cpu = _cpu_means([s for s in after if s.t <= a.duration])
    p99 = percentile(lat, 0.99)
    return {
        "rss_warm": rss_warm,
        "rss_max": rss_max,
        "rss_end": data.samples[-1].rss_mib if data.samples else math.nan,
        "growth": growth,
        "rss_warm_max": max((s.rss_mib for s in warm), default=math.nan),
        "slope_mib_per_min": slope,
        "slope_mib_per_10min": 10 * slope,
        "late_slope_mib_per_min": late_slope,
        "p50": percentile(lat, 0.50),
        "p90": percentile(lat, 0.90),
        "p99": p99,
        "p999": percentile(lat, 0.999),
        "max": lat[-1] if lat else math.nan,
        "windows_after_warmup": len(lat),
        "sink_p50": percentile(sink, 0.50),
        "sink_p99": percentile(sink, 0.99),
        "cpu": cpu,
        "rss_pass": not math.isnan(growth) and growth < RSS_GROWTH_TARGET,
        "p99_pass": not math.isnan(p99) and p99 < P99_TARGET_MS,
    }


def _f(x: float, spec: str = ".0f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def build_markdown(
    a: argparse.Namespace, header: list[str], rows: list[dict[str, Any]], s: dict[str, Any],
    data: SoakData, probe_line: str, rate: float,
) -> str:  # fmt: skip
    """The report: header, the per-interval table, the summary and notes."""
    others = [n for n in (rows[0]["cpu"] if rows else {}) if n != "daemon"]
    lines = [
        *header,
        "",
        f"| interval (s) | events/s produced | windows received | RSS MiB (end) | RSS MiB (max) | "
        f"daemon CPU % | latency p50 ms | latency p99 ms | latency max ms | p99 to sink send ms | "
        f"source lag | CPU % {' / '.join(others)} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mark = (
            " (warm-up)" if r["hi"] <= a.warmup else " (part warm-up)" if r["lo"] < a.warmup else ""
        )
        cpu_others = " / ".join(_f(r["cpu"].get(n, math.nan)) for n in others)
        lines.append(
            f"| {r['lo']:.0f}-{r['hi']:.0f}{mark} | {_f(r['events_per_s'], ',.0f')} | {r['windows']:,} | "
            f"{_f(r['rss_end'], '.1f')} | {_f(r['rss_max'], '.1f')} | {_f(r['cpu'].get('daemon', math.nan))} | "
            f"{_f(r['p50'])} | {_f(r['p99'])} | {_f(r['max'])} | {_f(r['sink_p99'])} | "
            f"{_f(r['lag'], ',.0f')} | {cpu_others} |"
        )
    verdict = {True: "PASS", False: "FAIL"}
    cpu_all = ", ".join(f"{n} {_f(v)}%" for n, v in s["cpu"].items())
    lines += [
        "",
        "Summary (after the warm-up):",
        "",
        f"- Max events/s (probe): {probe_line}",
        f"- Soak rate: {rate:,.0f} events/s requested; {data.produced / a.duration:,.0f} events/s "
        f"produced on average ({data.produced:,} events in {a.duration:g} s).",
        f"- RSS: {_f(s['rss_warm'], '.1f')} MiB at the end of the warm-up, max "
        f"{_f(s['rss_max'], '.1f')} MiB after it, {_f(s['rss_end'], '.1f')} MiB at the end; growth "
        f"{_f(100 * s['growth'], '.2f')}% (target < {100 * RSS_GROWTH_TARGET:.0f}%: "
        f"**{verdict[s['rss_pass']]}**); slope after the warm-up "
        f"{_f(s['slope_mib_per_10min'], '+.2f')} MiB per 10 min. For reading it: max during "
        f"the warm-up "
        f"{_f(s['rss_warm_max'], '.1f')} MiB; least-squares slope after the warm-up "
        f"{_f(s['slope_mib_per_min'], '+.3f')} MiB/min, over its second half "
        f"{_f(s['late_slope_mib_per_min'], '+.3f')} MiB/min.",
        f"- Latency over {s['windows_after_warmup']:,} window results: p50 {_f(s['p50'])} ms, "
        f"p90 {_f(s['p90'])} ms, p99 {_f(s['p99'])} ms (target < {P99_TARGET_MS:.0f} ms: "
        f"**{verdict[s['p99_pass']]}**), p99.9 {_f(s['p999'])} ms, max {_f(s['max'])} ms.",
        f"- Of which up to the sink's send (the result's Kafka timestamp, set when the daemon's "
        f"producer took it): p50 {_f(s['sink_p50'])} ms, p99 {_f(s['sink_p99'])} ms.",
        f"- CPU, % of one core (mean): {cpu_all}.",
        f"- Output check: {data.counted:,} events counted in the windows received of "
        f"{data.produced:,} produced (the last open window never fires: the flow stops at a "
        f"checkpoint), {data.duplicates} duplicate windows; /metrics scraped "
        f"{len(data.scrapes)} times"
        + (
            f", {len(data.scrape_errors)} failed ({'; '.join(data.scrape_errors[:3])})"
            if data.scrape_errors
            else ""
        )
        + (
            f", last: {data.scrapes[-1].records_in:,.0f} records read, {data.scrapes[-1].checkpoints:,.0f} "
            f"checkpoints, {data.scrapes[-1].tasks:.0f} tasks"
            if data.scrapes
            else ""
        )
        + f"; daemon exit status {data.daemon_exit} after SIGTERM.",
        "",
        "Latency: receive wall clock in this process - (window start + 1000 ms + 200 ms), i.e.",
        "from when the window could first be complete (its end plus the out-of-orderness) to",
        "its result being readable from the output topic. It includes the producer's batching",
        "(a closed batch per partition every ~10 ms), the broker, the daemon (fetch, windows,",
        "checkpoints every 1 s), its sink (linger 5 ms, acks=all) and this consumer's fetch.",
        "The sink is at least once: with exactly_once=True results become readable only when",
        "a checkpoint commits, so latency would be bounded below by the 1 s checkpoint",
        "interval. RSS growth: (max RSS after the warm-up - RSS at its end) / RSS at its end.",
        "CPU: psutil by pid, % of one core, mean of 1 s samples; all processes share the",
        "machine's 2 cores. Source lag: the daemon's streamcore_source_lag_records summed",
        "over partitions at the interval's last scrape of /metrics. p99 to sink send: the",
        "same percentile to the result's Kafka timestamp (when the daemon's sink handed it to",
        "its producer) instead of its receipt here.",
    ]
    return "\n".join(lines) + "\n"


def raw_series(data: SoakData, rows: list[dict[str, Any]], s: dict[str, Any]) -> dict[str, Any]:
    """The samples, scrapes and per-second latency percentiles, for a closer look."""
    per_second: dict[int, tuple[list[float], list[float]]] = {}
    for t, x, y in zip(data.recv_t, data.latency_ms, data.sink_latency_ms, strict=True):
        lat, sink = per_second.setdefault(int(t), ([], []))
        lat.append(x)
        sink.append(y)
    latency = []
    for sec, (lat, sink) in sorted(per_second.items()):
        lat.sort()
        sink.sort()
        latency.append(
            {
                "t": sec, "n": len(lat), "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99),
                "max": lat[-1], "sink_p99": percentile(sink, 0.99),
            }
        )  # fmt: skip
    return {
        "summary": s,
        "intervals": rows,
        "samples": [{"t": x.t, "rss_mib": x.rss_mib, "cpu": x.cpu} for x in data.samples],
        "scrapes": [vars(x) for x in data.scrapes],
        "sent": data.sent,
        "latency_per_second": latency,
    }


def plot(path: Path, data: SoakData, a: argparse.Namespace) -> str | None:
    """RSS and CPU over time, latency p50/p99 over time; None, or why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "matplotlib is not installed, so no plot was drawn; install it with "
            "`.venv/bin/pip install -e '.[bench]'` (or `.venv/bin/pip install matplotlib`)"
        )
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    t = [s.t for s in data.samples]
    top.plot(t, [s.rss_mib for s in data.samples], color="tab:blue", label="daemon RSS (MiB)")
    top.set_ylabel("RSS (MiB)", color="tab:blue")
    # Zoomed on the RSS range: growth of a few percent is invisible on an axis from 0.
    rss = [s.rss_mib for s in data.samples] or [0.0]
    warm = [s.rss_mib for s in data.samples if s.t <= a.warmup]
    if warm:
        limit = warm[-1] * (1 + RSS_GROWTH_TARGET)
        top.axhline(limit, color="tab:blue", linestyle="--", linewidth=0.8, label="RSS target")
        rss.append(limit)
    span = max(max(rss) - min(rss), 1.0)
    top.set_ylim(min(rss) - 0.5 * span, max(rss) + 0.5 * span)
    cpu_ax = top.twinx()
    names = [n for n in PROCESSES if data.samples and n in data.samples[0].cpu]
    colours = {
        "daemon": "tab:red", "producer": "tab:orange", "broker": "tab:green",
        "redis": "tab:purple", "consumer (this process)": "tab:grey",
    }  # fmt: skip
    for name in names:
        # A 5 s running mean: the 1 s samples are too jumpy to read.
        raw = [s.cpu.get(name, math.nan) for s in data.samples]
        smooth = [_mean(raw[max(0, i - 4) : i + 1]) for i in range(len(raw))]
        cpu_ax.plot(
            t, smooth, label=f"{name} CPU %", color=colours.get(name),
            linewidth=1.5 if name == "daemon" else 0.8, alpha=1.0 if name == "daemon" else 0.7,
        )  # fmt: skip
    cpu_ax.set_ylabel("CPU (% of one core, 5 s mean)")
    cpu_ax.set_ylim(0, 200)
    handles = top.get_legend_handles_labels()
    more = cpu_ax.get_legend_handles_labels()
    top.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8, ncol=3)
    top.set_title("streamcore soak: daemon RSS and CPU")
    # Latency percentiles per 5 s of receive time.
    bucket = 5.0
    groups: dict[int, list[float]] = {}
    for tr, x in zip(data.recv_t, data.latency_ms, strict=True):
        groups.setdefault(int(tr // bucket), []).append(x)
    keys = sorted(groups)
    xs = [(k + 0.5) * bucket for k in keys]
    p50 = [percentile(sorted(groups[k]), 0.5) for k in keys]
    p99 = [percentile(sorted(groups[k]), 0.99) for k in keys]
    bottom.plot(xs, p50, label="p50", color="tab:blue")
    bottom.plot(xs, p99, label="p99", color="tab:red")
    bottom.axhline(P99_TARGET_MS, color="grey", linestyle="--", linewidth=1, label="p99 target")
    bottom.set_ylabel("latency (ms, per 5 s)")
    bottom.set_xlabel("seconds since the producer started")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize=8)
    bottom.set_title("window complete -> result readable")
    for ax in (top, bottom):
        ax.axvline(a.warmup, color="black", linestyle=":", linewidth=1)
        ax.annotate(
            " end of warm-up", (a.warmup, 0), xycoords=("data", "axes fraction"),
            fontsize=7, va="bottom",
        )  # fmt: skip
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    """The driver: services, probe, soak, report."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["produce"]:
        produce_main(argv[1:])
        return 0
    if argv[:1] == ["probe"]:
        probe_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="soak seconds (default 600)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds excluded from the summary")
    ap.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s (default: half the probe's max; skips the probe)",
    )
    ap.add_argument("--interval", type=float, default=30.0, help="seconds per table row")
    ap.add_argument("--probe-events", type=int, default=500_000)
    ap.add_argument("--probe-timeout", type=float, default=300.0)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drain", type=float, default=3.0, help="seconds to wait for the last windows")
    ap.add_argument("--startup-timeout", type=float, default=120.0)
    ap.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    ap.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument(
        "--results-name",
        default="soak",
        help="results file stem: NAME.md and NAME.png in --results-dir (default soak)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the raw series here")
    ap.add_argument("--engine", choices=("snapshot", "live"), default="snapshot")
    ap.add_argument(
        "--tracemalloc-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the daemon traces allocations and dumps a snapshot this often; the results "
        "gain what grew where (slows the daemon: a run of its own, at a lower --rate)",
    )
    ap.add_argument(
        "--tracemalloc-dir",
        type=Path,
        default=None,
        help="keep the snapshots here (default: a temporary folder, removed at the end)",
    )
    ap.add_argument("--tracemalloc-frames", type=int, default=1, help="frames per trace")
    ap.add_argument("--tracemalloc-top", type=int, default=15, help="sites per table")
    a = ap.parse_args(argv)
    if a.warmup >= a.duration:
        ap.error("--warmup must be shorter than --duration")

    tmp = Path(tempfile.mkdtemp(prefix="streamcore-bench-soak-"))
    env, engine = engine_for_jobs(a.engine, tmp / "engine")
    services: list[Service] = []
    pids: dict[str, int | None] = {}
    log_path = tmp / "daemon.log"
    if a.tracemalloc_every is not None and a.tracemalloc_dir is None:
        a.tracemalloc_dir = tmp / "tracemalloc"
    try:
        if a.bootstrap is None:
            kafka = Service("kafka.sh", "KAFKA_BOOTSTRAP", tmp)
            services.append(kafka)
            bootstrap = kafka.start()
            pids["broker"] = pid_from(kafka.dir / "kafka.pid")
            broker = f"private broker at {bootstrap} (scripts/kafka.sh, KRaft, 1 node)"
        else:
            bootstrap, broker = a.bootstrap, f"broker at {a.bootstrap} (given)"
        if a.redis_url is None:
            redis = Service("redis.sh", "REDIS_URL", tmp)
            services.append(redis)
            redis_url = redis.start()
            pids["redis"] = pid_from(redis.dir / "redis.pid")
            redis_where = f"private redis-server at {redis_url} (scripts/redis.sh)"
        else:
            redis_url, redis_where = a.redis_url, f"Redis at {a.redis_url} (given)"
        print(f"# engine: {engine}", flush=True)
        print(f"# kafka: {broker}; redis: {redis_where}", flush=True)
        if a.rate is None:
            print(f"# probe: {a.probe_events:,} events as a backlog ...", flush=True)
            pr = run_probe(a, bootstrap, redis_url, env)
            rate = pr["events_per_s"] / 2
            probe_line = (
                f"{pr['events_per_s']:,.0f} events/s ({a.probe_events:,} events read as a backlog "
                f"in {pr['seconds']:.2f} s by the same flow with Redis checkpoints every 1 s, first "
                f"record to end of input; to the flow done {pr['done_events_per_s']:,.0f} events/s; "
                f"peak RSS {pr['peak_rss_kib'] / 1024:.0f} MiB, CPU {pr['cpu_seconds']:.1f} s)"
            )
            print(f"# probe: {probe_line}", flush=True)
        else:
            rate = a.rate
            probe_line = "not run (--rate given)"
        print(
            f"# soak: {rate:,.0f} events/s for {a.duration:g} s (warm-up {a.warmup:g} s)",
            flush=True,
        )
        load_start = Path("/proc/loadavg").read_text().strip()
        started = time.time()
        data = asyncio.run(soak(a, bootstrap, redis_url, env, rate, pids, log_path))
        load_end = Path("/proc/loadavg").read_text().strip()
        if not data.samples:
            raise RuntimeError("no samples were taken")
        rows = intervals(data, a.duration, a.interval)
        s = summarize(data, a)
        header = [
            f"streamcore soak benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(started))}: "
            f"the daemon (`streamcore run bench/soak_job.py:flow --state ... --checkpoint-interval 1s`) "
            f"on {a.partitions} partitions keyed by {a.users:,} users, tumbling 1 s windows "
            f"(count, sum), 200 ms out-of-orderness, at-least-once KafkaSink; {a.duration:g} s at "
            f"{rate:,.0f} events/s, warm-up {a.warmup:g} s.",
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs shared by the producer, the "
            f"broker, Redis, the daemon and the consumer. Load average start: {load_start}; end: "
            f"{load_end}.",
            f"Engine: {engine}. Kafka: {broker}. Redis: {redis_where}.",
        ]
        if a.tracemalloc_every is not None:
            header.append(
                f"The daemon traced its allocations with tracemalloc (snapshot every "
                f"{a.tracemalloc_every:g} s), which slows it: figures below are for this "
                f"run only, and its section at the end says what grew."
            )
        md = build_markdown(a, header, rows, s, data, probe_line, rate)
        if a.tracemalloc_every is not None:
            from soak_tracemalloc import load, report

            points = load(a.tracemalloc_dir, data.t0 or 0.0)
            md += "\n" + report(
                points, a.warmup, a.tracemalloc_every, a.tracemalloc_frames, a.tracemalloc_top
            )
        a.results_dir.mkdir(parents=True, exist_ok=True)
        md_path = a.results_dir / f"{a.results_name}.md"
        png_path = a.results_dir / f"{a.results_name}.png"
        md_path.write_text(md)
        why = plot(png_path, data, a)
        if a.json is not None:
            a.json.write_text(json.dumps(raw_series(data, rows, s)) + "\n")
        print("\n" + md, flush=True)
        print(f"# wrote {md_path}", flush=True)
        print(f"# {why}" if why else f"# wrote {png_path}", flush=True)
        if data.daemon_exit != 0:
            print(f"# the daemon exited with status {data.daemon_exit}; its log:", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
        return 0
    except BaseException:
        if log_path.exists():
            print(
                f"# daemon log tail:\n{log_path.read_text(errors='replace')[-3000:]}",
                file=sys.stderr,
            )
        raise
    finally:
        stop_services(services, tmp)


if __name__ == "__main__":
    sys.exit(main())
