"""What the connector benchmarks (bench_kafka.py, bench_redis.py) share: their common
options, the shuffled rounds of runs, and the table of medians with the output check.

A run is a dict with ``events_per_s``, ``done_s``, ``peak_rss_kib``, ``cpu_seconds``,
``read``, ``checksum`` and ``wall``, or ``error`` (and ``wall``) when it failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = [
    "add_run_options", "build_table", "median", "run_flow_timed", "run_job", "run_rounds", "write_report",
]  # fmt: skip

from _common import RESULT_PREFIX, peak_rss_kib

Run = dict[str, Any]


def run_job(job: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]], a: argparse.Namespace) -> None:
    """Inside a job process: run ``job``, add its CPU time and peak RSS, print the result line."""
    cpu0 = time.process_time()
    result = asyncio.run(job(a))
    result["cpu_seconds"] = round(time.process_time() - cpu0, 3)
    result["peak_rss_kib"] = peak_rss_kib()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


async def run_flow_timed(flow: Any, exactly_once: bool, redis_url: str, key_prefix: str, interval_s: float) -> float:
    """Run ``flow`` (exactly once: with Redis checkpoints every ``interval_s``); the
    monotonic time it ended."""
    import streamcore as sc

    checkpoint = None
    if exactly_once:
        store = sc.RedisStateStore(redis_url, key_prefix=key_prefix)
        checkpoint = sc.Checkpointing(store, interval=interval_s)
    await flow.run(checkpoint=checkpoint)
    return time.monotonic()


def add_run_options(ap: argparse.ArgumentParser, results_dir: Path) -> None:
    """``--order-seed``, ``--timeout``, ``--results-dir``, ``--json``, ``--engine``."""
    ap.add_argument("--order-seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--results-dir", type=Path, default=results_dir)
    ap.add_argument("--json", type=Path, default=None, help="also write the raw runs here")
    ap.add_argument("--engine", choices=("snapshot", "live"), default="snapshot")


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def run_rounds(
    kinds: list[str],
    rounds: int,
    order_seed: int,
    run_one: Callable[[str], Run],
    describe: Callable[[Run], str] = lambda r: "",
) -> dict[str, list[Run]]:
    """Every workload once per round, in an order shuffled per round with a fixed seed,
    printing a line per run (``describe`` adds to it)."""
    runs: dict[str, list[Run]] = {k: [] for k in kinds}
    width = max(len(k) for k in kinds)
    for rnd in range(rounds):
        order = list(kinds)
        random.Random(order_seed * 1000 + rnd).shuffle(order)
        for kind in order:
            r = run_one(kind)
            runs[kind].append(r)
            if "error" in r:
                status = "ERROR " + r["error"][-400:]
            else:
                status = (
                    f"{r['events_per_s']:>10,.0f} ev/s, done {r['done_s']:.2f} s, "
                    f"RSS {r['peak_rss_kib'] / 1024:.0f} MiB, {describe(r)}out {r['checksum']}"
                )
            print(f"r{rnd} {kind:{width}s} wall {r['wall']:6.2f}s {status}", flush=True)
    return runs


def build_table(
    runs: dict[str, list[Run]],
    expected: dict[str, Any],
    n: int,
    labels: dict[str, str],
    baseline: str,
    *,
    unit: str = "record",
    where: Callable[[Run], str] = lambda r: "",
    targets: dict[str, float] | None = None,
) -> tuple[list[str], list[str]]:
    """The markdown table (medians over the runs, ratio to the ``base`` runs) and the
    problems found; ``unit`` is what the input holds (``"record"``), ``where`` names a
    run's output in a problem, ``targets`` adds a column with the minimum ratio per
    workload."""
    from run import compare_checksum

    target_head, target_rule = (" target |", "---|") if targets is not None else ("", "")
    lines = [
        f"| workload | runs | events/s (first {unit} to end of input) | first {unit} to flow done | "
        f"peak RSS MiB | CPU s | vs {baseline} |{target_head} output check |",
        f"|---|---|---|---|---|---|---|{target_rule}---|",
    ]
    problems = []
    base_eps = median([r["events_per_s"] for r in runs.get("base", []) if "error" not in r])
    for kind, kind_runs in runs.items():
        ok = [r for r in kind_runs if "error" not in r]
        problems += [f"{labels[kind]}: {r['error'][-600:]}" for r in kind_runs if "error" in r]
        if not ok:
            dashes = " - |" * (5 + (targets is not None))
            lines.append(f"| {labels[kind]} | 0/{len(kind_runs)} | FAILED |{dashes}")
            continue
        eps, done, cpu = (median([r[f] for r in ok]) for f in ("events_per_s", "done_s", "cpu_seconds"))
        assert eps is not None and done is not None and cpu is not None
        rss = max(r["peak_rss_kib"] for r in ok) / 1024
        checks = []
        for r in ok:
            verdict = compare_checksum(r["checksum"], expected)
            if r["read"] != n:
                verdict = f"MISMATCH (read {r['read']:,} of {n:,})"
            if verdict.startswith("MISMATCH"):
                problems.append(
                    f"{labels[kind]}: output {r['checksum']} (read {r['read']}) != expected {expected}{where(r)}"
                )
            checks.append(verdict)
        ratio = eps / base_eps if base_eps else None
        target = ""
        if targets is not None:
            goal = targets.get(kind)
            verdict = "" if goal is None or ratio is None else f">= {goal}x: " + ("met" if ratio >= goal else "**missed**")
            target = f" {verdict} |"
        lines.append(
            f"| {labels[kind]} | {len(ok)}/{len(kind_runs)} | {eps:,.0f} | {done:.2f} s | {rss:.0f} | "
            f"{cpu:.1f} | {'n/a' if ratio is None else f'{ratio:.2f}x'} |{target} "
            f"{', '.join(sorted(set(checks)))} |"
        )
    return lines, problems


def write_report(
    lines: list[str], problems: list[str], results_dir: Path, name: str, raw_path: Path | None, raw: Any
) -> None:
    """Print the report (``lines`` then the checks), write it to ``results_dir/name`` and
    the raw runs to ``raw_path`` (when given)."""
    footer = ["", "Checks: all runs completed and the outputs agree." if not problems else "Problems:"]
    footer += [f"- {p}" for p in problems]
    md = "\n".join([*lines, *footer]) + "\n"
    print("\n" + md, flush=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / name).write_text(md)
    if raw_path is not None:
        raw_path.write_text(json.dumps(raw, indent=1) + "\n")
