"""Benchmark a git revision against the working tree in one run, so a regression shows.

Usage::

    .venv/bin/python bench/compare.py [REV] [--rounds 3] [--events N] [--only w1,w2,...]

``REV`` (default ``HEAD~1``, the previous commit) is exported with ``git archive`` into a
temporary directory; the working tree's ``streamcore`` and ``connectors`` are copied
beside it (as ``run.py`` does), so edits made while it runs do not count. Each round runs,
per workload, the bare loop, the engine at ``REV`` and the working tree's, every one a
fresh process, in an order shuffled with a fixed seed; the table gives medians over the
rounds. The jobs are ``run.py``'s (``bare_jobs.py``, ``streamcore_jobs.py``) and so are
the checks: both engines' checksums must agree with the bare loop's.

Columns: events/s of each side (in-process wall time), then the working tree over
``REV`` as speed ratios (above 1: faster) by in-process wall time, whole-process wall
time, in-process CPU time and whole-process CPU time, and each side's whole-process CPU
ratio to the bare loop. On a shared machine trust the CPU ratios first. The table is
printed and written to ``bench/results/compare.md`` (raw runs with ``--json PATH``).
The exit status is 1 if a job failed or a checksum disagrees with the bare loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import run_job_process  # noqa: E402
from gen_events import DEFAULT_EVENTS, DEFAULT_SEED, cached_events  # noqa: E402
from run import (  # noqa: E402
    ENGINE_PACKAGES,
    IMPLS,
    LABELS,
    ROOT,
    Job,
    compare_checksum,
    compile_engine,
    fmt_checksum,
    parse_workloads,
    snapshot_engine,
    warm_page_cache,
)

SIDES = ("bare", "rev", "work")


def export_rev(rev: str, dest: Path) -> str:
    """Write the engine's packages at ``rev`` under ``dest``; the commit's short id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *ENGINE_PACKAGES],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    compile_engine(dest)
    return commit


def speed(new: Job, old: Job, field: str) -> str:
    """``old``'s median ``field`` over ``new``'s: above 1 when ``new`` is faster."""
    a, b = new.median_of(field), old.median_of(field)
    return f"{b / a:.2f}x" if a and b else "-"


def checksum_cell(job: Job, bare: Job, problems: list[str], label: str) -> str:
    """ok/MISMATCH for ``job`` against the bare loop; mismatches go to ``problems``."""
    ref = bare.ok_runs()[0]["checksum"] if bare.ok_runs() else None
    if ref is None:
        return "no reference"
    verdicts = [compare_checksum(r["checksum"], ref) for r in job.ok_runs()]
    for r, v in zip(job.ok_runs(), verdicts, strict=True):
        if v == "MISMATCH":
            problems.append(f"{label} round {r['round']}: checksum {fmt_checksum(r['checksum'])}")
    return "MISMATCH" if "MISMATCH" in verdicts else "ok"


def build_table(jobs: dict[tuple[str, str], Job], rev: str) -> tuple[list[str], list[str]]:
    """The markdown rows and the problems (failed runs, checksum mismatches)."""
    lines = [
        f"| workload | {rev} events/s | work events/s | work / {rev}: in-process | "
        f"whole process | CPU in-process | CPU whole process | {rev} / bare (CPU whole) | "
        "work / bare (CPU whole) | checksums |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    problems: list[str] = []
    for workload in dict.fromkeys(w for w, _ in jobs):
        bare, old, new = (jobs[(workload, side)] for side in SIDES)
        for side, job in zip(SIDES, (bare, old, new), strict=True):
            for r in job.runs:
                if "error" in r:
                    problems.append(f"{workload}/{side} round {r['round']}: FAILED: {r['error']}")
        if not (old.ok_runs() and new.ok_runs()):
            lines.append(f"| {LABELS[workload]} | FAILED | | | | | | | | |")
            continue
        eps = [f"{j.events_per_s():,.0f}" for j in (old, new)]
        ratios = [speed(new, old, f) for f in ("seconds", "wall", "cpu_seconds", "process_cpu")]
        to_bare = [speed(j, bare, "process_cpu") for j in (old, new)]
        checks = [checksum_cell(j, bare, problems, f"{workload}/{s}") for j, s in ((old, rev), (new, "work"))]
        lines.append(
            f"| {LABELS[workload]} | {' | '.join(eps)} | {' | '.join(ratios)} | "
            f"{' | '.join(to_bare)} | {'/'.join(checks)} |"
        )
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", default="HEAD~1", help="git revision to compare with")
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="w1,w2,slide,session", help="comma list of workloads")
    ap.add_argument("--order-seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1200.0, help="per run, seconds")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--json", type=Path, default=None, help="write the raw runs here")
    a = ap.parse_args(argv)

    workloads = parse_workloads(ap, a.only)
    path = cached_events(a.events, a.seed)
    with tempfile.TemporaryDirectory(prefix="streamcore-compare-") as tmp:
        rev_dir, work_dir = Path(tmp, "rev"), Path(tmp, "work")
        try:
            commit = export_rev(a.rev, rev_dir)
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            ap.error(f"cannot export {a.rev!r}: {detail.strip()}")
        work_dir.mkdir()
        work_hash = snapshot_engine(work_dir)
        engines = {"bare": None, "rev": rev_dir, "work": work_dir}
        n_of = {w: 2 * a.events if w == "hop10" else a.events for w in workloads}
        jobs = {(w, side): Job(w, side, n_of[w]) for w in workloads for side in SIDES}
        load_start = Path("/proc/loadavg").read_text().strip()
        started = time.time()
        print(f"# {a.rev} = {commit} vs working tree (snapshot {work_hash}); input {path}", flush=True)
        for rnd in range(a.rounds):
            order = list(jobs.values())
            random.Random(a.order_seed * 1000 + rnd).shuffle(order)
            for job in order:
                impl = "bare" if job.impl == "bare" else "streamcore"
                if job.workload != "hop10":
                    warm_page_cache(path)
                cmd = [sys.executable, str(IMPLS[impl]), job.workload, str(path), str(job.n)]
                result = run_job_process(cmd, a.timeout, engines[job.impl])
                result["round"] = rnd
                job.runs.append(result)
                cpu = result.get("process_cpu", float("nan"))
                print(f"r{rnd} {job.workload:8s} {job.impl:5s} wall {result['wall']:7.2f}s cpu {cpu:6.2f}s", flush=True)
    load_end = Path("/proc/loadavg").read_text().strip()
    table, problems = build_table(jobs, commit)
    header = [
        f"streamcore compare, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {a.rev} ({commit}) vs the "
        f"working tree, {a.events:,} events, {a.rounds} interleaved rounds, "
        f"{(time.time() - started) / 60:.1f} min",
        f"Load average start: {load_start}; end: {load_end}. {os.cpu_count()} CPUs. "
        "Ratios above 1 mean the working tree is faster.",
    ]
    footer = ["", "Checksums: all agree with the bare loop." if not problems else "Problems:"]
    footer += [f"- {p}" for p in problems]
    md = "\n".join([*header, "", *table, *footer]) + "\n"
    print("\n" + md, flush=True)
    a.results_dir.mkdir(parents=True, exist_ok=True)
    (a.results_dir / "compare.md").write_text(md)
    if a.json is not None:
        raw = [{"workload": j.workload, "side": j.impl, "runs": j.runs} for j in jobs.values()]
        a.json.write_text(json.dumps({"rev": commit, "jobs": raw}, indent=1) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
