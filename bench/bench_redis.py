"""Redis Streams end to end: streams -> W2 windows -> a stream, against a plain redis-py loop.

Usage::

    .venv/bin/python bench/bench_redis.py [--events 300000] [--rounds 3] [--only base,alo,eo,eog]

Setup (untimed): a private Redis (``scripts/redis.sh``) is started in a temporary
directory and stopped at the end (``--redis-url`` uses a running one instead). The
suite's click events (``bench/gen_events.py``) are added once to ``--streams`` input
streams (4 by default), each user's events to one stream (``crc32(user) % streams``), in
file order, one entry per event with the fields ``user``, ``page``, ``amount``, ``ts``.
Every run writes to an output stream of its own.

Workloads (each run a fresh process; the order is shuffled per round with a fixed seed):

* ``base``: a plain redis-py loop, the practical limit: ``XREAD COUNT 125`` over the four
  streams (500 entries per read at most, as the source) -> W2 with dicts (key by user,
  tumbling 10 s, count and sum of ``amount``, watermark = minimum over streams of the
  largest ``ts`` minus 2 s) -> the window results fired by each read added with ``XADD``
  in one pipeline. It stops at each stream's last id at start.
* ``alo``: streamcore, ``RedisStreamSource(stop_at_end=True)`` -> parse -> key_by ->
  tumbling window -> aggregate -> ``RedisStreamSink`` at least once, no checkpoints.
* ``eo``: the same with ``RedisStreamSink(exactly_once=True)`` and
  ``Checkpointing(RedisStateStore(...), interval=1 s)`` in the same Redis.
* ``eog``: ``eo`` reading in a consumer group (XREADGROUP; entries XACKed after each
  checkpoint).

Measured: events/s is the input count over the time from the first batch holding an
entry to the source reaching the end of the input (timed in ``read_batch``); "done" is
the time from that first entry to the end of the process's flow (last windows fired
and written, or for exactly once published by the final checkpoint's commit). Peak RSS
is ``VmHWM`` of the job process. Every run's output stream is read back and its windows,
counts and sum are checked against those computed from the input file. With
``BENCH_PROFILE_DIR`` set, every job runs under pyinstrument and writes a text profile
there. The table is written to ``bench/results/redis.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    OUT_OF_ORDER_MS,
    TUMBLE_MS,
    sum_units,
    window_checksum,
)
from _connector_bench import (  # noqa: E402
    add_run_options,
    build_table,
    run_flow_timed,
    run_job,
    run_rounds,
    write_report,
)
from bench_kafka import (  # noqa: E402
    Service,
    clock,
    collect,
    engine_for_jobs,
    expected_checksum,
    out_record,
    stop_services,
)
from gen_events import DEFAULT_SEED, cached_events  # noqa: E402

THIS = Path(__file__).resolve()
LABELS = {
    "base": "redis-py XREAD/XADD loop (baseline)",
    "alo": "streamcore, at least once",
    "eo": "streamcore, exactly once + Redis checkpoints 1 s",
    "eog": "streamcore, exactly once + checkpoints 1 s, consumer group (XACK)",
}
TARGETS = {"alo": 0.5, "eo": 0.4, "eog": 0.4}
CHECKPOINT_INTERVAL_S = 1.0
BATCH_SIZE = 500


# ---------------------------------------------------------------------------------------
# Inside a job process
# ---------------------------------------------------------------------------------------


async def job_base(a: argparse.Namespace) -> dict[str, Any]:
    """The plain redis-py loop."""
    import redis.asyncio

    client = redis.asyncio.from_url(a.url)
    streams = a.streams.split(",")
    per_stream = BATCH_SIZE // len(streams)
    ends = {}
    for s in streams:
        newest = await client.xrevrange(s, count=1)
        ends[s] = tuple(map(int, newest[0][0].split(b"-"))) if newest else (0, 0)
    last = dict.fromkeys(streams, b"0-0")
    remaining = {s for s in streams if ends[s] > (0, 0)}
    smax: dict[str, int | None] = dict.fromkeys(streams)
    windows: dict[int, dict[str, list[Any]]] = {}
    watermark = -(1 << 62)
    out = a.out
    read = 0
    first = None

    async def fire(upto: int) -> None:
        ready = sorted(s for s in windows if s + TUMBLE_MS <= upto)
        if not ready:
            return
        async with client.pipeline(transaction=False) as pipe:
            for start in ready:
                for user, (n, total) in windows.pop(start).items():
                    pipe.xadd(out, out_record(user, start, n, total))
            await pipe.execute()

    while remaining:
        reply = await client.xread({s: last[s] for s in remaining}, count=per_stream, block=1000)
        for name, entries in reply:
            if not entries:
                continue
            if first is None:
                first = clock()
            stream = name.decode()
            hi = smax[stream]
            for _, f in entries:
                user, amount, ts = f[b"user"].decode(), float(f[b"amount"]), int(f[b"ts"])
                if hi is None or ts > hi:
                    hi = ts
                start = ts - ts % TUMBLE_MS
                w = windows.get(start)
                if w is None:
                    w = windows[start] = {}
                acc = w.get(user)
                if acc is None:
                    w[user] = [1, amount]
                else:
                    acc[0] += 1
                    acc[1] += amount
            read += len(entries)
            smax[stream] = hi
            last[stream] = entries[-1][0]
            if tuple(map(int, last[stream].split(b"-"))) >= ends[stream]:
                remaining.discard(stream)
        if all(v is not None for v in smax.values()):
            wm = min(smax.values()) - OUT_OF_ORDER_MS  # type: ignore[type-var]
            if wm > watermark:
                watermark = wm
                await fire(watermark + 1)
    end = clock()
    await fire(1 << 62)
    done = clock()
    await client.aclose()
    return {"read": read, "first": first, "end": end, "done": done}


def _timed_source(a: argparse.Namespace) -> Any:
    from connectors.redis import RedisStreamSource

    class TimedRedisStreamSource(RedisStreamSource):
        """Notes when the first entry is read and when the end is reached."""

        stats: dict[str, Any]

        async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
            out = await super().read_batch(max_records, timeout_s)
            stats = self.stats
            if out is None:
                if stats["end"] is None:
                    stats["end"] = clock()
                return None
            if out:
                if stats["first"] is None:
                    stats["first"] = clock()
                stats["read"] += len(out)
            return out

    source = TimedRedisStreamSource(
        a.streams.split(","),
        url=a.url,
        group=a.group or None,
        consumer="bench" if a.group else None,
        count=BATCH_SIZE,
        stop_at_end=True,
    )
    source.stats = {"first": None, "end": None, "read": 0}
    return source


def parse(r: Any) -> dict[str, Any]:
    f = r.fields
    return {"user": f["user"], "amount": float(f["amount"]), "ts": int(f["ts"])}


async def job_streamcore(a: argparse.Namespace) -> dict[str, Any]:
    import streamcore as sc
    from connectors.redis import RedisStreamSink

    flow = sc.Dataflow(a.flow)
    source = _timed_source(a)
    (
        flow.source(
            source,
            name="redis",
            timestamp=lambda r: int(r.fields["ts"]),
            max_out_of_orderness=OUT_OF_ORDER_MS,
            batch_size=BATCH_SIZE,
        )
        .map(parse)
        .key_by(lambda v: v["user"])
        .window(sc.TumblingWindows(TUMBLE_MS))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda v: v["amount"])})
        .map(lambda w: out_record(w.key, w.start, w.value["n"], w.value["total"]))
        .sink(RedisStreamSink(a.out, url=a.url, exactly_once=a.exactly_once, key_prefix=a.key_prefix))
    )
    done = await run_flow_timed(flow, a.exactly_once, a.url, a.key_prefix, CHECKPOINT_INTERVAL_S)
    return {**source.stats, "done": done}


def job_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench_redis.py job")
    ap.add_argument("kind", choices=("base", "streamcore"))
    ap.add_argument("--url", required=True)
    ap.add_argument("--streams", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--flow", default="bench-redis")
    ap.add_argument("--group", default="")
    ap.add_argument("--exactly-once", action="store_true")
    ap.add_argument("--key-prefix", default="bench-redis")
    a = ap.parse_args(argv)
    run_job(job_base if a.kind == "base" else job_streamcore, a)


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A job process (under pyinstrument when ``BENCH_PROFILE_DIR`` is set)."""
    base = [sys.executable, str(THIS), "job"]
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        out = Path(profile_dir) / f"redis-{args[0]}-{'eo' if '--exactly-once' in args else 'alo'}-{uuid.uuid4().hex[:6]}.txt"
        base = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out), str(THIS), "job"]
    return subprocess.Popen([*base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


async def fill_streams(url: str, streams: list[str], path: Path) -> int:
    """Every line of ``path`` as one entry of the stream its user maps to, in file order."""
    import orjson
    import redis.asyncio

    client = redis.asyncio.from_url(url)
    n = 0
    try:
        pipe = client.pipeline(transaction=False)
        with open(path, "rb") as f:
            for line in f:
                e = orjson.loads(line)
                stream = streams[zlib.crc32(e["user"].encode()) % len(streams)]
                pipe.xadd(stream, {"user": e["user"], "page": e["page"], "amount": repr(e["amount"]), "ts": e["ts"]})
                n += 1
                if n % 10_000 == 0:
                    await pipe.execute()
        await pipe.execute()
    finally:
        await client.aclose()
    return n


async def output_checksum(url: str, stream: str) -> dict[str, Any]:
    """Read the output stream and checksum it (windows, counts, sum; duplicates if any)."""
    import redis.asyncio

    client = redis.asyncio.from_url(url)
    windows = count = units = dups = 0
    seen: set[tuple[bytes, bytes]] = set()
    try:
        after = "-"
        while True:
            entries = await client.xrange(stream, min=after, count=10_000)
            if not entries:
                break
            for _, f in entries:
                k = (f[b"user"], f[b"start"])
                dups += k in seen
                seen.add(k)
                windows += 1
                count += int(f[b"n"])
                units += sum_units(float(f[b"total"]))
            after = "(" + entries[-1][0].decode()
        await client.delete(stream)
    finally:
        await client.aclose()
    out = window_checksum(windows, count, units)
    if dups:
        out["duplicates"] = dups
    return out


def run_workload(kind: str, a: argparse.Namespace, ctx: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One run of a workload: fresh output stream, one job process, output check."""
    tag = uuid.uuid4().hex[:8]
    out = f"bench-redis-out-{kind}-{tag}"
    args = ["--url", ctx["url"], "--streams", ",".join(ctx["streams"]), "--out", out]
    if kind == "base":
        proc = spawn(["base", *args], env)
    else:
        args += ["--flow", f"bench-redis-{kind}-{tag}", "--key-prefix", f"bench-redis-{tag}"]
        if kind in ("eo", "eog"):
            args.append("--exactly-once")
        if kind == "eog":
            args += ["--group", f"g-{tag}"]
        proc = spawn(["streamcore", *args], env)
    started = time.perf_counter()
    r = collect(proc, a.timeout)
    wall = time.perf_counter() - started
    if "error" in r:
        return {"error": r["error"], "wall": wall}
    if r["first"] is None or r["end"] is None:
        return {"error": f"the job read nothing or never reached the end: {r}", "wall": wall}
    run = {
        "read": r["read"],
        "seconds": r["end"] - r["first"],
        "events_per_s": ctx["n"] / (r["end"] - r["first"]),
        "done_s": r["done"] - r["first"],
        "peak_rss_kib": r["peak_rss_kib"],
        "cpu_seconds": r["cpu_seconds"],
        "wall": wall,
        "out": out,
    }
    try:
        run["checksum"] = asyncio.run(output_checksum(ctx["url"], out))
        # Checkpoints and the exactly-once sink's marker.
        asyncio.run(delete_keys(ctx["url"], f"bench-redis-{tag}*"))
    except Exception as exc:
        return {"error": f"reading the output back failed: {exc!r}", "wall": wall}
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["job"]:
        job_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="base,alo,eo,eog")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    add_run_options(ap, HERE / "results")
    a = ap.parse_args(argv)
    kinds = [k for k in a.only.split(",") if k]
    for k in kinds:
        if k not in LABELS:
            ap.error(f"unknown workload {k!r}; choose from {','.join(LABELS)}")

    path = cached_events(a.events, a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="streamcore-bench-redis-"))
    env, engine = engine_for_jobs(a.engine, tmp / "engine")
    services: list[Service] = []
    try:
        if a.redis_url is None:
            redis = Service("redis.sh", "REDIS_URL", tmp)
            services.append(redis)
            url = redis.start()
            where = f"private redis-server at {url} (scripts/redis.sh: appendonly, appendfsync everysec), stopped at the end"
        else:
            url, where = a.redis_url, f"Redis at {a.redis_url} (given)"
        tag = uuid.uuid4().hex[:8]
        streams = [f"bench-redis-in-{tag}-{i}" for i in range(a.streams)]
        t0 = time.perf_counter()
        n = asyncio.run(fill_streams(url, streams, path))
        fill_s = time.perf_counter() - t0
        expected = expected_checksum(path)
        ctx = {"url": url, "streams": streams, "n": n}
        load_start = Path("/proc/loadavg").read_text().strip()
        print(f"# input {path} ({n:,} events) -> {a.streams} streams, filled in {fill_s:.1f} s", flush=True)
        print(f"# engine: {engine}", flush=True)
        print(f"# redis: {where}", flush=True)
        print(f"# expected {expected}", flush=True)
        started = time.time()
        runs = run_rounds(kinds, a.rounds, a.order_seed, lambda kind: run_workload(kind, a, ctx, env))
        minutes = (time.time() - started) / 60
        load_end = Path("/proc/loadavg").read_text().strip()
        table, problems = build_table(
            runs, expected, n, LABELS, "redis-py loop", unit="entry", where=lambda r: f" (stream {r['out']})",
            targets=TARGETS,
        )
        header = [
            f"streamcore Redis Streams benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: W2 from "
            f"streams to a stream on {n:,} events ({path.name}), {a.streams} input streams by user, "
            f"{a.rounds} round(s), total {minutes:.1f} min",
            f"Load average start: {load_start}; end: {load_end}. Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; Redis runs on the same machine.",
            f"Engine: {engine}.",
            f"Redis: {where}. Reads of up to {BATCH_SIZE} entries ({BATCH_SIZE // a.streams} per "
            f"stream); expected output: {expected}.",
        ]
        notes = [
            "",
            "events/s: input entries over the time from the first read holding an entry to the",
            "source reaching the end of the input (medians over the runs). 'flow done': from the",
            "first entry until the last window result was in the output stream (exactly once:",
            "published by the final checkpoint's commit). Output check: the output stream read",
            "back against the windows computed from the input file.",
        ]
        write_report([*header, "", *table, *notes], problems, a.results_dir, "redis.md", a.json,
                     {"expected": expected, "runs": runs})
        if a.redis_url is not None:
            asyncio.run(delete_keys(url, *streams))
        return 1 if problems else 0
    finally:
        stop_services(services, tmp)


async def delete_keys(url: str, *patterns: str) -> None:
    """Delete every key matching one of the glob ``patterns``."""
    import redis.asyncio

    client = redis.asyncio.from_url(url)
    try:
        for pattern in patterns:
            names = [name async for name in client.scan_iter(match=pattern, count=1000)]
            if names:
                await client.delete(*names)
    finally:
        await client.aclose()


if __name__ == "__main__":
    sys.exit(main())
