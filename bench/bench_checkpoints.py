"""What checkpoints cost: W2 with and without Redis checkpoints, and 100,000 keys of window state.

Usage::

    .venv/bin/python bench/bench_checkpoints.py [--events 1000000] [--rounds 3]

Workloads (each run is a fresh process, like ``bench/run.py``):

* ``W2`` and ``W2+CP``: the suite's W2 (JSON lines click events, key_by user, tumbling
  10 s event-time windows, count and sum, 2 s out-of-orderness, results counted in a
  sink) on the same generated file (``bench/gen_events.py``), without checkpoints and
  with ``Checkpointing(RedisStateStore(...), interval=1 s, compact_every=20)``. The two
  run interleaved over the rounds (order shuffled per round with a fixed seed); the
  table reports medians and the throughput loss of ``W2+CP`` against ``W2`` measured in
  the same invocation (target: loss <= 15%). Both runs must give the same checksum.
  Each run also reports its CPU time: the notes give the ratio by CPU time and list
  checkpointed runs whose wall clock exceeds their CPU time by more than 0.5 s (a run
  that sat idle, e.g. at the end of the stream, waiting for the checkpoint task).
* ``STATE``: a source emits one record for each of ``--keys`` distinct keys into a
  1-hour tumbling window (nothing fires), then trickles ``--updates`` records per
  second (1% of the keys by default) over random keys, checkpointing to Redis every
  ``--state-interval`` with ``compact_every=--state-compact-every`` (5, so that a run
  has several full checkpoints besides the first). Checkpoints whose barrier was
  requested after the last key was loaded are split into full and incremental ones;
  after ``--state-checkpoints`` such checkpoints the source raises, so the flow fails
  mid-way with its state in Redis.
* ``RECOVER``: a new process runs the same flow (same name, same store) and restores
  that state. Reported: the time ``CheckpointCoordinator.restore`` takes (read every
  blob, check its CRC, merge the chains) and the time from ``run()`` until the source
  is opened, i.e. until every step holds its restored state and the first record could
  be read. The restored run then ends its input at once; every key's window fires and
  the counts must add up to the source position of the restored checkpoint.

Per-checkpoint figures (full or not, bytes, duration from barrier request to commit)
come from ``CheckpointCoordinator.statistics()`` read after each ``checkpoint()``; the
last checkpoint of a flow that ends (taken after end of stream) is reported apart. Two
phases are timed as well (see ``CheckpointLog``): the snapshot in the actors (taken and
encoded synchronously at the barrier, so the actor processes nothing meanwhile) and
the write to Redis once every actor acknowledged. The rest of the duration is the
barrier's way through the flow and the event loop's scheduling of the coordinator.

Redis: a private ``redis-server`` is started with ``scripts/redis.sh`` (append-only file,
``appendfsync everysec``) in a temporary directory and stopped at the end; ``--redis-url``
uses a running server instead (each invocation writes under a key prefix of its own and
deletes its keys). The engine is imported from a snapshot of ``streamcore/`` and
``connectors/`` taken at start, as in ``bench/run.py`` (``--engine live`` for the checkout).

The table is also written to ``bench/results/checkpoints.md`` (the raw runs to ``--json
PATH`` when given). The exit status is 1 if a run failed or a checksum disagrees;
a missed target does not change it.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import OUT_OF_ORDER_MS, RESULT_PREFIX, TUMBLE_MS, peak_rss_kib, run_job_process  # noqa: E402
from gen_events import DEFAULT_EVENTS, DEFAULT_SEED, cached_events  # noqa: E402

ROOT = HERE.parent
REDIS_SCRIPT = ROOT / "scripts" / "redis.sh"
THIS = Path(__file__).resolve()

W2_INTERVAL_S = 1.0
W2_COMPACT_EVERY = 20
LOSS_TARGET = 0.15
# A run whose wall clock exceeds its CPU time by this much sat idle somewhere.
IDLE_S = 0.5
STATE_WINDOW_MS = 3_600_000
# Event times of the state workload: the start of an hour, so every record of a run
# falls in the same 1-hour window.
STATE_T0 = 1_750_000_000_000 - 1_750_000_000_000 % STATE_WINDOW_MS
STATE_CHUNKS_PER_S = 10
STATE_LOAD_BATCH = 5_000


class Stop(Exception):
    """Raised by the state source to stop its flow mid-way, as a crash would."""


# ---------------------------------------------------------------------------------------
# Inside a job process
# ---------------------------------------------------------------------------------------


class CheckpointLog:
    """Records, per checkpoint, what ``CheckpointCoordinator.statistics()`` says right
    after it, split into phases, and how long ``restore`` took.

    It wraps methods of the imported engine in this process only (the engine's code is
    unchanged): ``checkpoint`` (request to commit), ``_write`` (storing the blobs and
    committing the manifest, once every actor acknowledged), ``Actor._snapshots`` (the
    synchronous snapshot and encoding in an actor: the pause in its processing) and
    ``restore``. The phases are left out if those private methods are not there.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.restore_s: float | None = None
        self.restored_from: int | None = None
        self.on_request: list[Any] = []
        """Callables run when a checkpoint is requested: ``fn(checkpoint_id) -> dict``."""
        self._finishing = False
        self._write_s: dict[int, float] = {}
        self._snapshot_s: dict[int, float] = {}

    def install(self) -> None:
        from streamcore.runtime.actor import Actor
        from streamcore.state.coordinator import CheckpointCoordinator

        log = self
        original_checkpoint = CheckpointCoordinator.checkpoint
        original_restore = CheckpointCoordinator.restore
        original_finish = CheckpointCoordinator.finish
        original_write = getattr(CheckpointCoordinator, "_write", None)
        original_snapshots = getattr(Actor, "_snapshots", None)

        async def checkpoint(self: Any) -> bool:
            n = self.next_id
            extra: dict[str, Any] = {}
            for fn in log.on_request:
                extra.update(fn(n))
            ok = await original_checkpoint(self)
            if ok:
                st = self.statistics()
                record = {
                    "id": st.last_id,
                    "full": st.last_full,
                    "bytes": st.last_bytes,
                    "ms": st.last_duration_s * 1000,
                    "final": log._finishing,
                    **extra,
                }
                if st.last_id in log._write_s:
                    record["write_ms"] = log._write_s[st.last_id] * 1000
                if st.last_id in log._snapshot_s:
                    record["snapshot_ms"] = log._snapshot_s[st.last_id] * 1000
                log.records.append(record)
            return bool(ok)

        async def write(self: Any, pending: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original_write(self, pending, *args, **kwargs)  # type: ignore[misc]
            finally:
                log._write_s[pending.checkpoint_id] = time.perf_counter() - started

        def count_snapshot(checkpoint_id: int, started: float) -> None:
            spent = time.perf_counter() - started
            log._snapshot_s[checkpoint_id] = log._snapshot_s.get(checkpoint_id, 0.0) + spent

        def snapshots(self: Any, checkpoint_id: int, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_snapshots(self, checkpoint_id, *args, **kwargs)  # type: ignore[misc]
            finally:
                count_snapshot(checkpoint_id, started)

        async def snapshots_async(self: Any, checkpoint_id: int, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original_snapshots(self, checkpoint_id, *args, **kwargs)  # type: ignore[misc]
            finally:
                count_snapshot(checkpoint_id, started)

        async def restore(self: Any) -> Any:
            started = time.perf_counter()
            restored = await original_restore(self)
            log.restore_s = time.perf_counter() - started
            log.restored_from = self.restored_from
            return restored

        async def finish(self: Any) -> None:
            log._finishing = True
            await original_finish(self)

        CheckpointCoordinator.checkpoint = checkpoint  # type: ignore[method-assign]
        CheckpointCoordinator.restore = restore  # type: ignore[method-assign]
        CheckpointCoordinator.finish = finish  # type: ignore[method-assign]
        if original_write is not None:
            CheckpointCoordinator._write = write  # type: ignore[method-assign]
        if original_snapshots is not None:
            if inspect.iscoroutinefunction(original_snapshots):
                Actor._snapshots = snapshots_async  # type: ignore[method-assign]
            else:
                Actor._snapshots = snapshots  # type: ignore[method-assign]


def _delete_keys(url: str, prefix: str, flow: str) -> None:
    import streamcore as sc

    async def go() -> None:
        async with sc.RedisStateStore(url, key_prefix=prefix) as store:
            await store.delete_prefix(f"{flow}/")

    asyncio.run(go())


def job_w2(a: argparse.Namespace) -> dict[str, Any]:
    """W2 exactly as ``bench/streamcore_jobs.py`` builds it, with or without checkpoints."""
    from _common import window_checksum
    from streamcore_jobs import WindowSumSink

    import streamcore as sc
    from connectors.files import JsonLinesSource

    log = CheckpointLog()
    log.install()
    checkpoint = None
    flow_name = "bench-w2"
    if a.checkpoint:
        flow_name = f"bench-w2-cp-{uuid.uuid4().hex[:12]}"
        store = sc.RedisStateStore(a.redis_url, key_prefix=a.key_prefix)
        checkpoint = sc.Checkpointing(store, interval=a.interval, compact_every=a.compact_every)
    started = time.perf_counter()
    cpu_started = time.process_time()
    flow = sc.Dataflow(flow_name)
    sink = WindowSumSink()
    (
        flow.source(
            JsonLinesSource(a.input),
            timestamp=lambda e: e["ts"],
            max_out_of_orderness=timedelta(milliseconds=OUT_OF_ORDER_MS),
        )
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(timedelta(milliseconds=TUMBLE_MS)))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .sink(sink)
    )
    flow.run_sync(checkpoint=checkpoint)
    checksum = window_checksum(sink.windows, sink.count, sink.units)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    if sink.updates:
        checksum["updates"] = sink.updates
    result: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "events_per_s": round(a.n / seconds),
        "peak_rss_kib": peak_rss_kib(),
        "checksum": checksum,
        "checkpoints": log.records,
        "engine_path": str(Path(sc.__file__).parent),
    }
    if a.checkpoint:
        _delete_keys(a.redis_url, a.key_prefix, flow_name)
    return result


def _state_classes() -> tuple[type, type]:
    """The state workload's source and sink (built here: the engine is imported late)."""
    import streamcore as sc

    class KeyStateSource(sc.Source):
        """``keys`` records ``(key, 1.0, ts)``, one per key, then ``updates`` records per
        second over random keys, until ``stop_after()`` says so (then it raises).

        ``position()`` is the number of records returned; ``recover=True`` makes a
        source that ends at once wherever it is opened (the recovery run).
        """

        default_name = "keys"
        rewindable = True

        def __init__(
            self,
            keys: int,
            updates: int,
            seed: int,
            stop_after: Any = None,
            recover: bool = False,
        ) -> None:
            self.names = [f"user-{i:06d}" for i in range(keys)]
            self.keys = keys
            self.chunk = max(1, updates // STATE_CHUNKS_PER_S)
            self.every_s = 1.0 / STATE_CHUNKS_PER_S
            self.rng = random.Random(seed)
            self.stop_after = stop_after
            self.recover = recover
            self.emitted = 0
            self.loaded = False
            self.opened_at: float | None = None
            self.opened_position: Any = None
            self._next_at = 0.0

        async def open(self, context: Any, position: Any | None = None) -> None:
            await super().open(context, position)
            self.opened_at = time.perf_counter()
            self.opened_position = position
            self.emitted = int(position or 0)
            self.loaded = self.emitted >= self.keys
            self._next_at = time.perf_counter() + self.every_s

        def position(self) -> Any:
            return self.emitted

        def _ts(self) -> int:
            return STATE_T0 + self.emitted % (STATE_WINDOW_MS // 2)

        async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
            if self.recover:
                return None
            if not self.loaded:
                end = min(self.keys, self.emitted + min(max_records, STATE_LOAD_BATCH))
                ts = self._ts()
                batch = [(self.names[i], 1.0, ts) for i in range(self.emitted, end)]
                self.emitted = end
                if end >= self.keys:
                    self.loaded = True
                    self._next_at = time.perf_counter() + self.every_s
                return batch
            if self.stop_after is not None and self.stop_after():
                raise Stop("benchmark: the state source stops the flow here")
            wait = self._next_at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(min(wait, timeout_s))
                return []
            self._next_at += self.every_s
            names, ts = self.names, self._ts()
            picked = self.rng.sample(range(self.keys), min(self.chunk, self.keys))
            self.emitted += len(picked)
            return [(names[i], 1.0, ts) for i in picked]

    class CountSink(sc.Sink):
        """Counts window results and the records they counted."""

        default_name = "count"

        def __init__(self) -> None:
            self.windows = 0
            self.count = 0

        def write_batch(self, records: list[Any]) -> None:
            self.windows += len(records)
            self.count += sum(r.value["n"] for r in records)

    return KeyStateSource, CountSink


def _state_flow(a: argparse.Namespace, source: Any, sink: Any) -> Any:
    import streamcore as sc

    flow = sc.Dataflow(a.flow)
    (
        flow.source(
            source,
            timestamp=lambda r: r[2],
            max_out_of_orderness=timedelta(milliseconds=OUT_OF_ORDER_MS),
        )
        .key_by(lambda r: r[0])
        .window(sc.TumblingWindows(timedelta(milliseconds=STATE_WINDOW_MS)))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda r: r[1])})
        .sink(sink)
    )
    return flow


def job_state(a: argparse.Namespace) -> dict[str, Any]:
    """Load ``keys`` keys, trickle updates, checkpoint to Redis, then fail mid-way."""
    import streamcore as sc

    log = CheckpointLog()
    log.install()

    def stop_after() -> bool:
        return sum(1 for r in log.records if r["loaded"]) >= a.state_checkpoints

    source_cls, sink_cls = _state_classes()
    source = source_cls(a.keys, a.updates, a.seed, stop_after=stop_after)
    # A checkpoint requested once the last key was handed over holds every key: the
    # source injects the barrier after the batch in hand.
    log.on_request.append(lambda n: {"loaded": source.loaded, "position": source.emitted})
    sink = sink_cls()
    flow = _state_flow(a, source, sink)
    store = sc.RedisStateStore(a.redis_url, key_prefix=a.key_prefix)
    checkpoint = sc.Checkpointing(
        store, interval=a.interval, compact_every=a.compact_every, keep=a.keep
    )
    started = time.perf_counter()
    stopped = False
    try:
        flow.run_sync(checkpoint=checkpoint)
    except sc.StreamcoreError as exc:
        if not isinstance(exc.__cause__, Stop) and "benchmark: the state source" not in str(exc):
            raise
        stopped = True
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 4),
        "peak_rss_kib": peak_rss_kib(),
        "stopped_midway": stopped,
        "checkpoints": log.records,
        "records_emitted": source.emitted,
        "engine_path": str(Path(sc.__file__).parent),
    }


def job_recover(a: argparse.Namespace) -> dict[str, Any]:
    """Run the state flow again with the same name and store; time the restore."""
    import streamcore as sc

    log = CheckpointLog()
    log.install()
    source_cls, sink_cls = _state_classes()
    source = source_cls(a.keys, a.updates, a.seed, recover=True)
    sink = sink_cls()
    flow = _state_flow(a, source, sink)
    store = sc.RedisStateStore(a.redis_url, key_prefix=a.key_prefix)
    checkpoint = sc.Checkpointing(
        store, interval=a.interval, compact_every=a.compact_every, keep=a.keep
    )
    started = time.perf_counter()
    flow.run_sync(checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    ready_s = None if source.opened_at is None else source.opened_at - started
    read = store.statistics()
    result = {
        "seconds": round(seconds, 4),
        "peak_rss_kib": peak_rss_kib(),
        "restore_s": log.restore_s,
        "ready_s": ready_s,
        "restored_from": log.restored_from,
        "restored_position": source.opened_position,
        "windows": sink.windows,
        "count": sink.count,
        "bytes_read": read.bytes_read,
        "keys_read": read.keys_read,
        "checkpoints": log.records,
        "engine_path": str(Path(sc.__file__).parent),
    }
    _delete_keys(a.redis_url, a.key_prefix, a.flow)
    return result


def job_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench_checkpoints.py job")
    ap.add_argument("kind", choices=("w2", "state", "recover"))
    ap.add_argument("--input", default="")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--key-prefix", default="")
    ap.add_argument("--flow", default="")
    ap.add_argument("--interval", type=float, default=W2_INTERVAL_S)
    ap.add_argument("--compact-every", type=int, default=W2_COMPACT_EVERY)
    ap.add_argument("--keep", type=int, default=3)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--updates", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--state-checkpoints", type=int, default=11)
    a = ap.parse_args(argv)
    job = {"w2": job_w2, "state": job_state, "recover": job_recover}[a.kind]
    result = job(a)
    print(RESULT_PREFIX + json.dumps({"kind": a.kind, **result}), flush=True)


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own, started and stopped with ``scripts/redis.sh``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="streamcore-bench-redis-"))
        self.url = ""

    def _script(self, command: str, timeout: float) -> str:
        proc = subprocess.run(
            ["bash", str(REDIS_SCRIPT), command, str(self.dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"redis.sh {command} failed: {(proc.stdout + proc.stderr)[-2000:]}")
        return proc.stdout

    def start(self) -> str:
        out = self._script("start", 120)
        m = re.search(r"REDIS_URL=(\S+)", out)
        if not m:
            raise RuntimeError(f"redis.sh start printed no REDIS_URL: {out!r}")
        self.url = m.group(1)
        return self.url

    def stop(self) -> None:
        try:
            self._script("stop", 60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_job(
    args: list[str], timeout: float, engine_dir: Path | None, warm: Path | None = None
) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its parsed result, or an ``error``."""
    if warm is not None:
        from run import warm_page_cache

        warm_page_cache(warm)
    return run_job_process([sys.executable, str(THIS), "job", *args], timeout, engine_dir)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    if b >= 1 << 20:
        return f"{b / (1 << 20):.2f} MiB"
    if b >= 1 << 10:
        return f"{b / (1 << 10):.1f} KiB"
    return f"{b:.0f} B"


def _fmt_ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f} ms"


def _rss(runs: list[dict[str, Any]]) -> str:
    ok = [r["peak_rss_kib"] for r in runs if "error" not in r]
    return f"{max(ok) / 1024:.0f}" if ok else "-"


def _phases(cps: list[dict[str, Any]]) -> str:
    """Median actor snapshot pause and Redis write time of these checkpoints."""
    snap = _median([c["snapshot_ms"] for c in cps if "snapshot_ms" in c])
    write = _median([c["write_ms"] for c in cps if "write_ms" in c])
    return f"{_fmt_ms(snap)} / {_fmt_ms(write)}"


COLUMNS = (
    "| workload | runs | median events/s | peak RSS MiB | checkpoints | duration (median) "
    "| bytes (median) | snapshot in actor / Redis write (median) | vs baseline | target |"
)


def _failed(label: str, runs: list[dict[str, Any]]) -> str:
    return f"| {label} | 0/{len(runs)} | FAILED | | | | | | | |"


def build_table(
    runs: dict[str, list[dict[str, Any]]], a: argparse.Namespace
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The markdown rows, the problems found, and the summary figures."""
    lines = [COLUMNS, "|---|---:|---:|---:|---|---:|---:|---:|---|---|"]
    problems: list[str] = []
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        for i, r in enumerate(rs):
            if "error" in r:
                problems.append(f"{name} run {i}: FAILED: {r['error']}")

    # -- W2 with and without checkpoints
    plain = [r for r in runs["w2"] if "error" not in r]
    cp = [r for r in runs["w2cp"] if "error" not in r]
    plain_s = _median([r["seconds"] for r in plain])
    cp_s = _median([r["seconds"] for r in cp])
    reference = plain[0]["checksum"] if plain else None
    for r in cp + plain:
        if reference is not None and r["checksum"] != reference:
            problems.append(f"W2 checksum {r['checksum']} differs from {reference}")
    label = "W2, no checkpoints"
    if plain_s is None:
        lines.append(_failed(label, runs["w2"]))
    else:
        lines.append(
            f"| {label} | {len(plain)} | {a.events / plain_s:,.0f} | {_rss(plain)} "
            f"| - | - | - | - | 1.00x | |"
        )
    label = f"W2, Redis checkpoints every {a.interval:g} s"
    if cp_s is None:
        lines.append(_failed(label, runs["w2cp"]))
    else:
        periodic = [c for r in cp for c in r["checkpoints"] if not c["final"]]
        per_run = [sum(1 for c in r["checkpoints"] if not c["final"]) for r in cp]
        finals = [c for r in cp for c in r["checkpoints"] if c["final"]]
        dur = _median([c["ms"] for c in periodic])
        size = _median([c["bytes"] for c in periodic])
        n_full = sum(1 for c in periodic if c["full"])
        count = f"{statistics.median(per_run):g} per run + final ({len(periodic)} in all, {n_full} full)"
        if plain_s is None:
            ratio_cell, target = "-", "n/a (baseline failed)"
        else:
            ratio = plain_s / cp_s
            loss = 1 - ratio
            met = loss <= LOSS_TARGET
            summary.update(w2_ratio=ratio, w2_loss=loss, w2_target_met=met)
            ratio_cell = f"{ratio:.2f}x (loss {loss * 100:.1f}%)"
            target = f"loss <= {LOSS_TARGET * 100:.0f}%: " + ("PASS" if met else "MISSED")
            plain_cpu = _median([r["cpu_seconds"] for r in plain if "cpu_seconds" in r])
            cp_cpu = _median([r["cpu_seconds"] for r in cp if "cpu_seconds" in r])
            if plain_cpu and cp_cpu:
                summary.update(w2_cpu_ratio=plain_cpu / cp_cpu)
        # The same comparison within each round (the two runs closest in time), against
        # a machine whose speed drifts between rounds.
        paired = [
            p["seconds"] / c["seconds"]
            for p, c in zip(runs["w2"], runs["w2cp"], strict=False)
            if "error" not in p and "error" not in c
        ]
        if paired:
            summary["w2_paired"] = [round(x, 3) for x in paired]
        # Runs that sat idle (wall clock well above CPU time), e.g. waiting at the end.
        summary["w2_idle_runs"] = [
            round(r["seconds"] - r["cpu_seconds"], 2)
            for r in cp
            if "cpu_seconds" in r and r["seconds"] - r["cpu_seconds"] > IDLE_S
        ]
        summary["w2_runs"] = len(cp)
        summary.update(
            w2_final_ms=_median([c["ms"] for c in finals]), w2_cp_ms=dur, w2_cp_bytes=size
        )
        lines.append(
            f"| {label} | {len(cp)} | {a.events / cp_s:,.0f} | {_rss(cp)} | {count} "
            f"| {_fmt_ms(dur)} | {_fmt_bytes(size)} | {_phases(periodic)} | {ratio_cell} | {target} |"
        )

    # -- 100k keys: full and incremental checkpoints
    state = [r for r in runs["state"] if "error" not in r]
    loaded = [c for r in state for c in r["checkpoints"] if c.get("loaded") and not c["final"]]
    full = [c for c in loaded if c["full"]]
    delta = [c for c in loaded if not c["full"]]
    for r in state:
        if not r["stopped_midway"]:
            problems.append("STATE: the flow was not stopped mid-way by its source")
    full_ms, full_b = _median([c["ms"] for c in full]), _median([c["bytes"] for c in full])
    delta_ms, delta_b = _median([c["ms"] for c in delta]), _median([c["bytes"] for c in delta])
    summary.update(full_ms=full_ms, full_bytes=full_b, delta_ms=delta_ms, delta_bytes=delta_b)
    keys = f"{a.keys:,} keys"
    full_label = f"{keys}: full checkpoint"
    delta_label = f"{keys}: incremental checkpoint (~{a.updates:,} updates/s)"
    if not state:
        lines.append(_failed(full_label, runs["state"]))
        lines.append(_failed(delta_label, runs["state"]))
    else:
        lines.append(
            f"| {full_label} | {len(state)} | - | {_rss(state)} | {len(full)} in all "
            f"| {_fmt_ms(full_ms)} | {_fmt_bytes(full_b)} | {_phases(full)} | 1.00x | |"
        )
        vs = (
            f"{delta_ms / full_ms:.2f}x time, {delta_b / full_b:.3f}x bytes"
            if full_ms and delta_ms is not None and full_b and delta_b is not None
            else "-"
        )
        lines.append(
            f"| {delta_label} | {len(state)} | - | {_rss(state)} | {len(delta)} in all "
            f"| {_fmt_ms(delta_ms)} | {_fmt_bytes(delta_b)} | {_phases(delta)} | {vs} | |"
        )

    # -- recovery of that state
    rec = [r for r in runs["recover"] if "error" not in r]
    for r in rec:
        if r["restored_from"] is None:
            problems.append("RECOVER: nothing was restored")
            continue
        if r["windows"] != a.keys or r["count"] != r["restored_position"]:
            problems.append(
                f"RECOVER: {r['windows']} windows counting {r['count']} records after restoring "
                f"checkpoint {r['restored_from']} at source position {r['restored_position']} "
                f"(expected {a.keys} windows counting {r['restored_position']})"
            )
    label = f"{keys}: recovery from Redis"
    if not rec:
        lines.append(_failed(label, runs["recover"]))
    else:
        restore_ms = _median([r["restore_s"] * 1000 for r in rec])
        ready_ms = _median([r["ready_s"] * 1000 for r in rec])
        read_b = _median([r["bytes_read"] for r in rec])
        summary.update(restore_ms=restore_ms, ready_ms=ready_ms, restore_bytes=read_b)
        lines.append(
            f"| {label} | {len(rec)} | - | {_rss(rec)} | restore: read, check, merge "
            f"| {_fmt_ms(restore_ms)} | {_fmt_bytes(read_b)} read | - "
            f"| run() to restored: {_fmt_ms(ready_ms)} | |"
        )
    return lines, problems, summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["job"]:
        job_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="click events for W2")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the input generator")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--interval", type=float, default=W2_INTERVAL_S, help="W2 checkpoint interval, s"
    )
    ap.add_argument("--keys", type=int, default=100_000, help="keys of window state (STATE)")
    ap.add_argument(
        "--updates",
        type=int,
        default=None,
        help="STATE records per second after the load (default 1%% of keys)",
    )
    ap.add_argument(
        "--state-interval", type=float, default=1.0, help="STATE checkpoint interval, s"
    )
    ap.add_argument(
        "--state-compact-every", type=int, default=5, help="STATE: every n-th checkpoint is full"
    )
    ap.add_argument(
        "--state-checkpoints",
        type=int,
        default=11,
        help="STATE: checkpoints with every key loaded before the source stops the flow",
    )
    ap.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    ap.add_argument("--order-seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw runs here")
    ap.add_argument("--engine", choices=("snapshot", "live"), default="snapshot")
    a = ap.parse_args(argv)
    if a.updates is None:
        a.updates = max(1, a.keys // 100)

    from run import git_state, snapshot_engine

    path = cached_events(a.events, a.seed)
    engine_tmp = None
    engine_dir: Path | None = None
    if a.engine == "snapshot":
        engine_tmp = tempfile.TemporaryDirectory(prefix="streamcore-bench-engine-")
        engine_dir = Path(engine_tmp.name)
        engine = f"snapshot {snapshot_engine(engine_dir)} of {ROOT} ({git_state()})"
    else:
        engine = f"live checkout {ROOT} ({git_state()})"
    redis = None
    try:
        if a.redis_url is None:
            redis = PrivateRedis()
            url = redis.start()
            where = f"private redis-server at {url} (AOF, appendfsync everysec), stopped at the end"
        else:
            url = a.redis_url
            where = f"Redis at {url} (given)"
        return _run(a, path, url, where, engine, engine_dir)
    finally:
        if redis is not None:
            redis.stop()
        if engine_tmp is not None:
            engine_tmp.cleanup()


def _run(
    a: argparse.Namespace, path: Path, url: str, where: str, engine: str, engine_dir: Path | None
) -> int:
    prefix = f"bench-cp-{uuid.uuid4().hex[:12]}"
    load_start = Path("/proc/loadavg").read_text().strip()
    started = time.time()
    print(f"# input {path} ({a.events:,} events), {a.rounds} rounds, load {load_start}", flush=True)
    print(f"# engine: {engine}", flush=True)
    print(f"# redis: {where}, key prefix {prefix}", flush=True)
    common = ["--redis-url", url, "--key-prefix", prefix]
    w2_args = ["--input", str(path), "--n", str(a.events)]
    runs: dict[str, list[dict[str, Any]]] = {"w2": [], "w2cp": [], "state": [], "recover": []}
    for rnd in range(a.rounds):
        order = ["w2", "w2cp", "state"]
        random.Random(a.order_seed * 1000 + rnd).shuffle(order)
        for kind in order:
            if kind == "w2":
                r = run_job(["w2", *w2_args], a.timeout, engine_dir, warm=path)
                runs["w2"].append(r)
                _progress(rnd, "W2", r, f"{r.get('events_per_s', 0):>10,} ev/s")
            elif kind == "w2cp":
                r = run_job(
                    [
                        "w2",
                        *w2_args,
                        "--checkpoint",
                        *common,
                        "--interval",
                        str(a.interval),
                        "--compact-every",
                        str(W2_COMPACT_EVERY),
                    ],
                    a.timeout,
                    engine_dir,
                    warm=path,
                )
                runs["w2cp"].append(r)
                cps = r.get("checkpoints", [])
                _progress(
                    rnd,
                    "W2+CP",
                    r,
                    f"{r.get('events_per_s', 0):>10,} ev/s, checkpoints "
                    + ", ".join(_describe(c) for c in cps),
                )
            else:
                flow = f"bench-state-{uuid.uuid4().hex[:12]}"
                state_args = [
                    *common,
                    "--flow",
                    flow,
                    "--keys",
                    str(a.keys),
                    "--updates",
                    str(a.updates),
                    "--interval",
                    str(a.state_interval),
                    "--compact-every",
                    str(a.state_compact_every),
                    "--state-checkpoints",
                    str(a.state_checkpoints),
                    "--seed",
                    str(a.seed + rnd),
                ]
                r = run_job(["state", *state_args], a.timeout, engine_dir)
                runs["state"].append(r)
                cps = [c for c in r.get("checkpoints", []) if c.get("loaded")]
                _progress(
                    rnd,
                    "STATE",
                    r,
                    ", ".join(_describe(c) for c in cps),
                )
                r = run_job(["recover", *state_args], a.timeout, engine_dir)
                runs["recover"].append(r)
                detail = ""
                if "error" not in r:
                    detail = (
                        f"restore {r['restore_s'] * 1000:.0f} ms, ready {r['ready_s'] * 1000:.0f} ms, "
                        f"from checkpoint {r['restored_from']} at position {r['restored_position']}, "
                        f"{r['windows']} windows counting {r['count']}"
                    )
                _progress(rnd, "RECOVER", r, detail)
    load_end = Path("/proc/loadavg").read_text().strip()
    minutes = (time.time() - started) / 60

    table, problems, summary = build_table(runs, a)
    header = [
        f"streamcore checkpoint benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: W2 on "
        f"{a.events:,} events ({path.name}), {a.rounds} interleaved rounds, total {minutes:.1f} min",
        f"Load average start: {load_start}; end: {load_end}. Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs.",
        f"Engine: {engine}.",
        f"Store: {where}.",
        f"W2 checkpoints: interval {a.interval:g} s, compact_every {W2_COMPACT_EVERY}. "
        f"State workload: {a.keys:,} keys in a 1-hour tumbling window, then ~{a.updates:,} updates/s "
        f"over random keys, checkpoints every {a.state_interval:g} s, compact_every "
        f"{a.state_compact_every}, stopped "
        f"after {a.state_checkpoints} checkpoints holding every key.",
    ]
    notes = [
        "",
        "Events/s are medians of in-process time (build to checksum, start-up excluded; the",
        "checkpointed runs include opening the store and the last checkpoint after end of",
        "stream). Checkpoint duration is from barrier request to commit in Redis; bytes are",
        "the blobs and manifest written. The W2 checkpoint medians are over the periodic",
        "checkpoints; the one after end of stream had a median of "
        f"{_fmt_ms(summary.get('w2_final_ms'))}.",
    ]
    if summary.get("w2_paired"):
        paired = summary["w2_paired"]
        notes.append(
            f"W2 per round (baseline time / checkpointed time): "
            f"{', '.join(f'{x:.2f}x' for x in paired)}; median {statistics.median(paired):.2f}x."
        )
    if "w2_cpu_ratio" in summary:
        notes.append(
            f"W2 by CPU time instead (medians): {summary['w2_cpu_ratio']:.2f}x the baseline "
            f"(loss {(1 - summary['w2_cpu_ratio']) * 100:.1f}%)."
        )
    if summary.get("w2_idle_runs"):
        idle = summary["w2_idle_runs"]
        notes.append(
            f"{len(idle)} of {summary['w2_runs']} checkpointed W2 runs sat idle for "
            f"{', '.join(f'{x:g}' for x in idle)} s (wall clock minus CPU time), which counts "
            "in their events/s."
        )
    if summary.get("w2_target_met") is False:
        notes.append(
            f"W2 target MISSED: throughput loss {summary['w2_loss'] * 100:.1f}% > "
            f"{LOSS_TARGET * 100:.0f}%."
        )
    footer = [
        "",
        "Checks: all runs completed, checksums agree, recovery counts match."
        if not problems
        else "Problems:",
    ]
    footer += [f"- {p}" for p in problems]
    md = "\n".join([*header, "", *table, *notes, *footer]) + "\n"
    print("\n" + md, flush=True)

    a.results_dir.mkdir(parents=True, exist_ok=True)
    (a.results_dir / "checkpoints.md").write_text(md)
    raw = {
        "events": a.events,
        "rounds": a.rounds,
        "engine": engine,
        "load_start": load_start,
        "load_end": load_end,
        "summary": summary,
        "runs": runs,
        "problems": problems,
    }
    if a.json is not None:
        a.json.write_text(json.dumps(raw, indent=1) + "\n")
    return 1 if problems else 0


def _describe(c: dict[str, Any]) -> str:
    """One checkpoint: ``#id full|delta bytes ms (snapshot/write ms)``."""
    kind = "final" if c["final"] else ("full" if c["full"] else "delta")
    phases = f" (snap {c.get('snapshot_ms', -1):.0f}/write {c.get('write_ms', -1):.0f})"
    return f"#{c['id']} {kind} {c['bytes']}B {c['ms']:.0f}ms{phases}"


def _progress(rnd: int, label: str, r: dict[str, Any], detail: str) -> None:
    status = "ERROR " + r["error"][-300:] if "error" in r else detail
    print(f"r{rnd} {label:8s} wall {r['wall']:7.2f}s {status}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
