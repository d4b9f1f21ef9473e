"""The job of the soak benchmark (``bench/bench_soak.py``): per user, tumbling 1 s windows.

Run by the daemon as ``streamcore run bench/soak_job.py:flow --state REDIS_URL ...``;
``flow`` reads its settings from the environment:

* ``SOAK_BOOTSTRAP``: the broker, e.g. ``127.0.0.1:9092``;
* ``SOAK_TOPIC_IN`` / ``SOAK_TOPIC_OUT``: the input topic (keyed by user) and the output;
* ``SOAK_GROUP``: the consumer group id;
* ``SOAK_FLOW``: the flow's name (checkpoints are stored under it, so a fresh name
  starts from nothing).

Input records are JSON objects ``{"user", "ts", "amount"}`` with ``ts`` in ms. The flow
counts and sums ``amount`` per user and 1 s window, with 200 ms of out-of-orderness, and
writes ``{"user", "start", "n", "total"}`` keyed by user.

The sink is at least once (``exactly_once=False``): an exactly-once sink publishes its
output only when a checkpoint commits its transaction, so with checkpoints every second
a window result would wait up to a checkpoint interval before it could be read, and the
latency would be bounded below by the interval rather than measure the engine.

With a ``group_id`` and the daemon's ``--state`` the flow runs as one task per input
partition (docs/scale-out.md), each checkpointed in Redis.

Allocation tracing (``bench_soak.py --tracemalloc-every``), kept here rather than in the
engine: with ``SOAK_TRACEMALLOC_EVERY`` (seconds) and ``SOAK_TRACEMALLOC_DIR`` set,
``flow()`` starts ``tracemalloc`` (``SOAK_TRACEMALLOC_FRAMES`` frames per trace, default
1) and a thread that dumps a snapshot at once and then every so many seconds, as
``DIR/snap-<wall clock s>.tracemalloc``.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import streamcore as sc
from connectors.kafka import KafkaSink, KafkaSource

WINDOW_MS = 1_000
OUT_OF_ORDER_MS = 200
BATCH_SIZE = 500


def build_flow(
    name: str,
    bootstrap: str,
    topic_in: str,
    topic_out: str,
    group: str,
    *,
    source_cls: type[KafkaSource] = KafkaSource,
    stop_at_end: bool = False,
) -> tuple[sc.Dataflow, KafkaSource]:
    """The soak flow and its source; ``source_cls`` and ``stop_at_end`` let the throughput
    probe time the same flow over a backlog."""
    flow = sc.Dataflow(name)
    source = source_cls(
        topic_in,
        bootstrap_servers=bootstrap,
        group_id=group,
        stop_at_end=stop_at_end,
        max_batch=BATCH_SIZE,
    )
    (
        flow.source(
            source,
            name="kafka",
            timestamp=lambda r: r.value["ts"],
            max_out_of_orderness=OUT_OF_ORDER_MS,
            batch_size=BATCH_SIZE,
        )
        .map(lambda r: r.value)
        # The producer keys the input by user, so each user lives in one partition (and
        # one task): no repartition topic is needed.
        .key_by(lambda e: e["user"], prepartitioned=True)
        .window(sc.TumblingWindows(WINDOW_MS))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(_result)
        .sink(
            KafkaSink(
                topic_out,
                bootstrap_servers=bootstrap,
                key=lambda v: v["user"],
                exactly_once=False,
                acks="all",
                linger_ms=5,
            )
        )
    )
    return flow, source


def _result(w: sc.WindowResult) -> dict[str, Any]:
    return {"user": w.key, "start": w.start, "n": w.value["n"], "total": w.value["total"]}


def trace_allocations() -> None:
    """Start tracemalloc and the snapshot thread if ``SOAK_TRACEMALLOC_EVERY`` asks for it."""
    every = os.environ.get("SOAK_TRACEMALLOC_EVERY")
    if not every or tracemalloc.is_tracing():
        return
    out = Path(os.environ["SOAK_TRACEMALLOC_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "1")))

    def dump() -> None:
        path = out / f"snap-{time.time():.3f}.tracemalloc"
        # Written under another name first, so that a reader never loads half a file.
        part = path.with_suffix(".part")
        tracemalloc.take_snapshot().dump(str(part))
        part.rename(path)

    # Never set: the thread is a daemon thread, which the process's exit ends.
    never = threading.Event()

    def every_so_often() -> None:
        dump()
        while not never.wait(float(every)):
            dump()

    threading.Thread(target=every_so_often, name="soak-tracemalloc", daemon=True).start()


def flow() -> sc.Dataflow:
    """The daemon's target: the soak flow configured from ``SOAK_*`` environment variables."""
    trace_allocations()
    env = os.environ
    built, _ = build_flow(
        env.get("SOAK_FLOW", "bench-soak"),
        env["SOAK_BOOTSTRAP"],
        env["SOAK_TOPIC_IN"],
        env["SOAK_TOPIC_OUT"],
        env.get("SOAK_GROUP", "bench-soak"),
    )
    return built
