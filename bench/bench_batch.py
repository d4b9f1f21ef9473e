"""Scheduling overhead of batch pipelines against Dask's local schedulers.

Run: ``python bench/bench_batch.py`` (``--repeat N`` for best of N, default 3).

Graphs, 10,000 no-op tasks each:
  wide    one root, 9,998 tasks depending on it, one task depending on all of those
  chains  10 independent chains, each 1,000 tasks deep

Engines: streamcore on the async executor with plain functions (run inline) and with
``async def`` functions (one asyncio task each), under uvloop; Dask ``dask.delayed``
with ``scheduler="synchronous"`` and ``scheduler="threads"``. The figures time the run
(streamcore: ``run_sync``, validation included; Dask: ``dask.compute``), best of N;
building the graph is reported apart. Each engine and graph runs in a fresh
interpreter so that its peak RSS is its own. ``ratio`` is the run time divided by
Dask's threaded scheduler on the same graph (below 1: faster).
Design: docs/batch.md#performance
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS = 10_000
CHAINS = 10
DEPTH = 1_000
GRAPHS = ("wide", "chains")
ENGINES = ("streamcore-inline", "streamcore-async", "dask-synchronous", "dask-threads")


def noop(*_: Any) -> None:
    return None


async def async_noop(*_: Any) -> None:
    return None


def streamcore_once(graph: str, fn: Callable[..., Any]) -> tuple[float, float]:
    from streamcore.batch import Pipeline

    started = time.perf_counter()
    pipe = Pipeline(f"bench-{graph}")
    if graph == "wide":
        root = pipe.add_task(fn, name="root")
        middle = [pipe.add_task(fn, name=f"t{i}", depends_on=[root]) for i in range(TASKS - 2)]
        pipe.add_task(fn, name="sink", depends_on=middle)
    else:
        for chain in range(CHAINS):
            previous = None
            for step in range(DEPTH):
                previous = pipe.add_task(
                    fn, name=f"c{chain}-{step}", depends_on=[] if previous is None else [previous]
                )
    built = time.perf_counter()
    result = pipe.run_sync()
    finished = time.perf_counter()
    assert result.ok and len(result.tasks) == TASKS
    return built - started, finished - built


def dask_once(graph: str, scheduler: str) -> tuple[float, float]:
    import dask

    started = time.perf_counter()
    task = dask.delayed(noop, pure=False)
    if graph == "wide":
        root = task()
        outputs = [task(*[task(root) for _ in range(TASKS - 2)])]
    else:
        outputs = []
        for _ in range(CHAINS):
            previous = task()
            for _ in range(DEPTH - 1):
                previous = task(previous)
            outputs.append(previous)
    built = time.perf_counter()
    dask.compute(*outputs, scheduler=scheduler)
    return built - started, time.perf_counter() - built


def measure(graph: str, engine: str, repeat: int) -> dict[str, float]:
    """Best time of ``repeat`` runs of one engine on one graph, in this process."""
    runs: list[tuple[float, float]] = []
    for _ in range(repeat):
        if engine == "streamcore-inline":
            runs.append(streamcore_once(graph, noop))
        elif engine == "streamcore-async":
            runs.append(streamcore_once(graph, async_noop))
        else:
            runs.append(dask_once(graph, engine.removeprefix("dask-")))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    build_s, run_s = min(runs, key=lambda r: r[1])
    return {"build_s": build_s, "seconds": run_s, "peak_rss_mb": peak_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("GRAPH", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.repeat)))
        return

    rows: list[tuple[str, str, dict[str, float]]] = []
    for graph in GRAPHS:
        for engine in ENGINES:
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--repeat", str(args.repeat), "--one", graph, engine],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append((graph, engine, json.loads(out.stdout.strip().splitlines()[-1])))

    header = (
        f"{'workload':<28} {'tasks/s':>10} {'per-task µs':>12} {'peak RSS MB':>12} {'ratio':>7}"
        f" {'build µs/task':>14}"
    )
    print(header)
    print("-" * len(header))
    for graph, engine, figures in rows:
        per_task_us = figures["seconds"] / TASKS * 1e6
        baseline = next(f for g, e, f in rows if g == graph and e == "dask-threads")
        ratio = figures["seconds"] / baseline["seconds"]
        print(
            f"{graph + ' / ' + engine:<28} {TASKS / figures['seconds']:>10,.0f} "
            f"{per_task_us:>12.1f} {figures['peak_rss_mb']:>12.0f} {ratio:>7.2f}"
            f" {figures['build_s'] / TASKS * 1e6:>14.1f}"
        )
    print(
        f"\n{TASKS:,} no-op tasks per workload (wide: 1 -> {TASKS - 2:,} -> 1; chains: "
        f"{CHAINS} x {DEPTH:,} deep). tasks/s, per-task and ratio (time / dask-threads) time\n"
        "the run alone (streamcore: validate + run; Dask: compute); building the graph is\n"
        "shown apart (streamcore: add_task; Dask: dask.delayed calls)."
    )


if __name__ == "__main__":
    main()
