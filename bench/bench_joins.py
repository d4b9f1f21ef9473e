"""Join and enrichment benchmarks, each beside a bare-Python loop doing the same work.

    .venv/bin/python bench/bench_joins.py [--scale 1.0] [--rounds 1] [--bytewax PYTHON]

Workloads (every job runs in a fresh process; input files are generated once under
/tmp/streamcore-bench/joins/, seeded):
- window: two streams of 500k events (1,000 keys, ~1,000 events per side per minute, in
  time order), 1-minute tumbling windows, inner join; streamcore, a bare loop, Bytewax's
  ``join_window`` (``insert_mode="product"``, run by the Python given with --bytewax,
  a venv with bytewax installed).
- asof: 1M events against a 10k-key table (10k versions at t=0, 10k updates spread over
  the run); streamcore's ``join_asof(how="left")`` and a bare loop.
- async: 20k records through ``map(lookup, concurrency=100)`` with a 10 ms lookup
  (``asyncio.sleep(0.01)``); the baseline is 100 bare asyncio workers taking records one
  after another, on the same event loop (uvloop). The ideal is 10,000 records/s.
Every implementation reads the same JSON lines and parses them with one ``orjson.loads``
per chunk, as the engine's JSON lines source does; the number of results must agree.
Prints a markdown table (workload, implementation, events/s, peak RSS, ratio to the bare
loop, results) and writes it to bench/results/joins.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
DATA = Path("/tmp/streamcore-bench/joins")
MINUTE_MS = 60_000
KEYS = 1_000
TABLE_KEYS = 10_000


def peak_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


# -- data -------------------------------------------------------------------------------


def generate(scale: float) -> dict[str, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    n_side, n_asof = int(500_000 * scale), int(1_000_000 * scale)
    paths = {
        "left": DATA / f"left-{n_side}.jsonl",
        "right": DATA / f"right-{n_side}.jsonl",
        "events": DATA / f"events-{n_asof}.jsonl",
        "table": DATA / f"table-{n_asof}.jsonl",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    for side, seed in (("left", 1), ("right", 2)):
        rng = random.Random(seed)
        with paths[side].open("wb") as f:
            for i in range(n_side):
                # ~1,000 events per side per minute: 60 ms apart.
                f.write(orjson.dumps({"user": f"u{rng.randrange(KEYS)}", "ts": i * 60, "v": i}) + b"\n")
    rng = random.Random(3)
    with paths["events"].open("wb") as f:
        for i in range(n_asof):
            f.write(orjson.dumps({"user": f"k{rng.randrange(TABLE_KEYS)}", "ts": i, "v": i}) + b"\n")
    with paths["table"].open("wb") as f:
        rows = [(0, k) for k in range(TABLE_KEYS)]
        rows += sorted((rng.randrange(n_asof), rng.randrange(TABLE_KEYS)) for _ in range(TABLE_KEYS))
        for i, (ts, k) in enumerate(rows):
            f.write(orjson.dumps({"user": f"k{k}", "ts": ts, "version": i}) + b"\n")
    return paths


def read_chunks(path: str, chunk: int = 1 << 20) -> Any:
    """Yield lists of parsed records, one ``orjson.loads`` per chunk of whole lines."""
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(chunk)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                yield orjson.loads(b"[" + block[: cut - 1].replace(b"\n", b",") + b"]")
        if rest.strip():
            yield [orjson.loads(rest)]


# -- jobs -------------------------------------------------------------------------------


def window_bare(paths: dict[str, str]) -> int:
    """Bucket both sides by (window, key); emit every pair of each window in order."""
    windows: dict[int, dict[str, list[list[Any]]]] = {}
    for side, path in enumerate((paths["left"], paths["right"])):
        for chunk in read_chunks(path):
            for e in chunk:
                t = e["ts"]
                ws = t - t % MINUTE_MS
                d = windows.get(ws)
                if d is None:
                    d = windows[ws] = {}
                cell = d.get(e["user"])
                if cell is None:
                    cell = d[e["user"]] = [[], []]
                cell[side].append(e)
    pairs = 0
    for ws in sorted(windows):
        out = []
        end = ws + MINUTE_MS
        for k, (lefts, rights) in windows[ws].items():
            for left in lefts:
                out.extend([(k, left, r, ws, end) for r in rights])
        pairs += len(out)
    return pairs


class CountSink:
    """A sink that counts records (the engine's Sink interface)."""

    def __init__(self) -> None:
        import streamcore as sc

        class _Count(sc.Sink):
            def __init__(self) -> None:
                self.n = 0

            def write_batch(self, records: list[Any]) -> None:
                self.n += len(records)

        self.sink = _Count()


def window_streamcore(paths: dict[str, str]) -> int:
    import streamcore as sc
    from connectors.files import JsonLinesSource

    flow = sc.Dataflow("bench-window-join", mailbox_capacity=20_000)
    left, right = (
        flow.source(JsonLinesSource(paths[side]), timestamp=lambda e: e["ts"], batch_size=2_000, name=side)
        .key_by(lambda e: e["user"])
        for side in ("left", "right")
    )
    sink = CountSink().sink
    left.join(right, window=sc.TumblingWindows(MINUTE_MS)).sink(sink)
    flow.run_sync()
    return sink.n


def asof_bare(paths: dict[str, str]) -> int:
    """Merge events and table versions in time order; look each event's key up."""
    from bisect import bisect_right

    versions: dict[str, list[tuple[int, int, Any]]] = {}
    for chunk in read_chunks(paths["table"]):
        for i, r in enumerate(chunk):
            versions.setdefault(r["user"], []).append((r["ts"], i, r))
    for held in versions.values():
        held.sort(key=lambda v: v[:2])
    out_n = 0
    inf = float("inf")
    for chunk in read_chunks(paths["events"]):
        out = []
        for e in chunk:
            t = e["ts"]
            held = versions.get(e["user"])
            match = None
            if held is not None:
                i = bisect_right(held, (t, inf)) - 1
                if i >= 0:
                    match = held[i][2]
            out.append((e["user"], e, match, None, None))
        out_n += len(out)
    return out_n


def asof_streamcore(paths: dict[str, str]) -> int:
    import streamcore as sc
    from connectors.files import JsonLinesSource

    flow = sc.Dataflow("bench-asof-join", mailbox_capacity=20_000)
    events = flow.source(JsonLinesSource(paths["events"]), timestamp=lambda e: e["ts"], batch_size=2_000,
                         name="events").key_by(lambda e: e["user"])
    table = flow.source(JsonLinesSource(paths["table"]), timestamp=lambda e: e["ts"], batch_size=2_000,
                        name="table").key_by(lambda e: e["user"])
    sink = CountSink().sink
    events.join_asof(table, how="left").sink(sink)
    flow.run_sync()
    return sink.n


ASYNC_RECORDS = 20_000


async def lookup(x: int) -> int:
    await asyncio.sleep(0.01)  # the lookup: 10 ms
    return x


def async_bare(paths: dict[str, str]) -> int:
    """100 workers looking records up one after another, on the engine's event loop (uvloop)."""
    import uvloop

    async def run() -> int:
        records = iter(range(ASYNC_RECORDS))
        done = 0

        async def worker() -> None:
            nonlocal done
            for x in records:
                await lookup(x)
                done += 1

        await asyncio.gather(*[worker() for _ in range(100)])
        return done

    return uvloop.run(run())


def async_streamcore(paths: dict[str, str]) -> int:
    import streamcore as sc
    from connectors.memory import IterableSource

    flow = sc.Dataflow("bench-async")
    sink = CountSink().sink
    flow.source(IterableSource(range(ASYNC_RECORDS))).map(lookup, concurrency=100, ordered=False).sink(sink)
    flow.run_sync()
    return sink.n


BYTEWAX_JOB = r'''
import sys, time, orjson
from datetime import datetime, timedelta, timezone
import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FROZEN = datetime(2000, 1, 1, tzinfo=timezone.utc)
count = [0]

class Part(StatelessSinkPartition):
    def write_batch(self, items):
        for _key, (_wid, (left, right)) in items:
            # "product" also emits a side with no partner, with None: count the inner pairs.
            if left is not None and right is not None:
                count[0] += 1

class Sink(DynamicSink):
    def build(self, step_id, worker_index, worker_count):
        return Part()

def clock():
    # Bytewax's watermark is per key and per operator, over both sides: with a small wait,
    # records of the side read behind the other would be late and dropped. Twelve hours
    # (longer than the input) keeps every record, so the result is the full inner join.
    return win.EventClock(lambda e: EPOCH + timedelta(milliseconds=e["ts"]), wait_for_system_duration=timedelta(hours=12),
                          now_getter=lambda: FROZEN, to_system_utc=lambda dt: None)

flow = Dataflow("bytewax-window-join")
sides = []
for name, path in (("left", sys.argv[1]), ("right", sys.argv[2])):
    s = op.input(name, flow, FileSource(path, batch_size=2000))
    s = op.map(name + "_parse", s, orjson.loads)
    sides.append(op.key_on(name + "_key", s, lambda e: e["user"]))
joined = win.join_window("join", clock(), win.TumblingWindower(timedelta(minutes=1), align_to=EPOCH),
                         sides[0], sides[1], insert_mode="product")
op.output("out", joined.down, Sink())
started = time.perf_counter()
run_main(flow)
print("RESULT", count[0], time.perf_counter() - started)
'''

JOBS = {
    "window_bare": window_bare,
    "window_streamcore": window_streamcore,
    "asof_bare": asof_bare,
    "asof_streamcore": asof_streamcore,
    "async_bare": async_bare,
    "async_streamcore": async_streamcore,
}


def run_job(name: str, paths: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    n = JOBS[name](paths)
    return {"results": n, "seconds": time.perf_counter() - started, "rss_kib": peak_rss_kib()}


def in_process(name: str, paths: dict[str, Path]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--job", name, "--paths", json.dumps({k: str(v) for k, v in paths.items()})]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"job {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bytewax(python: str, paths: dict[str, Path]) -> dict[str, Any]:
    script = DATA / "bytewax_window_join.py"
    script.write_text(BYTEWAX_JOB)
    cmd = [python, "-c", "import resource,runpy,sys; sys.argv=sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__');"
           "print('RSS', open('/proc/self/status').read().split('VmHWM:')[1].split()[0])",
           str(script), str(paths["left"]), str(paths["right"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"bytewax failed:\n{proc.stderr[-3000:]}")
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    n, seconds = lines["RESULT"].split()
    return {"results": int(n), "seconds": float(seconds), "rss_kib": int(lines["RSS"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor (1.0: 500k per side, 1M as-of)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--bytewax", default=None, help="a Python with bytewax installed")
    parser.add_argument("--only", default="window,asof,async")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, json.loads(args.paths))))
        return
    paths = generate(args.scale)
    events = {
        "window": 2 * int(500_000 * args.scale),
        "asof": int(1_000_000 * args.scale) + 2 * TABLE_KEYS,
        "async": ASYNC_RECORDS,
    }
    rows = []
    for workload in args.only.split(","):
        runs: dict[str, list[dict[str, Any]]] = {}
        impls = [f"{workload}_bare", f"{workload}_streamcore"]
        for _ in range(args.rounds):
            for impl in impls:
                runs.setdefault(impl, []).append(in_process(impl, paths))
            if workload == "window" and args.bytewax:
                runs.setdefault("window_bytewax", []).append(bytewax(args.bytewax, paths))
        best = {impl: min(r, key=lambda x: x["seconds"]) for impl, r in runs.items()}
        bare = best[f"{workload}_bare"]
        for impl, result in best.items():
            rate = events[workload] / result["seconds"]
            rows.append((workload, impl.split("_", 1)[1], rate, result["rss_kib"] / 1024,
                         bare["seconds"] / result["seconds"], result["results"], result["results"] == bare["results"]))
    lines = ["| workload | implementation | events/s | peak RSS MiB | ratio to bare | results | agree |",
             "|---|---|---:|---:|---:|---:|---|"]
    lines += [f"| {w} | {i} | {r:,.0f} | {m:.0f} | {x:.2f} | {n:,} | {'yes' if a else 'NO'} |"
              for w, i, r, m, x, n, a in rows]
    table = "\n".join(lines)
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "joins.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
