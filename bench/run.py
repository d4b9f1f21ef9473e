"""Run the streaming benchmark suite and print a markdown table.

Usage::

    .venv/bin/python bench/run.py [--events N] [--rounds 5] [--only w1,hop10,w2,slide,session]
                                  [--python .venv/bin/python --python .venv-3.13/bin/python]

Every (workload, implementation) pair is a job, run as a fresh process
(``bench/bare_jobs.py`` or ``bench/streamcore_jobs.py``). Each round runs every job
once, in an order shuffled with a fixed seed, so slow drift of a shared machine hits
all jobs alike; the table reports medians over the rounds. The input file is read once
before each job so that it is in the page cache (a cold first read would otherwise be
timed). A job slower than ``--slow-seconds`` in its first run only runs in the first
``--slow-rounds`` rounds; the ``runs`` column says how many runs a median is over.
With ``--python`` given more than once, every job runs on each interpreter, all of them
shuffled into the same rounds, and the table gains a ``python`` column; ratios and
targets compare jobs of the same interpreter.

Columns: median events/s is ``n / median in-process seconds`` (interpreter start-up and
imports excluded); peak RSS is the largest ``VmHWM`` a run reported; the ratio is
streamcore's events/s over the bare loop's on the same workload, measured in the same
run; "whole process" is the same ratio by the median wall time of the whole process
(start-up and imports included); the CPU columns are the ratios by median CPU time, in
the process's timed span and for the whole process (user + system), which a loaded
machine moves far less than wall times; the checksum is compared with the bare loop's.
Targets:

* W1 >= 0.7x bare and W1 peak RSS < 100 MiB
* HOP10 >= 2,000,000 records/s
* W2 >= 0.5x bare
* SLIDE cost (seconds per input event) <= 3x streamcore's W2 tumbling cost
* SESSION cost <= 2x streamcore's W2 tumbling cost

The engine is benchmarked from a snapshot: at start the ``streamcore`` and
``connectors`` packages are copied to a temporary directory that every job imports
from (``PYTHONPATH``), so edits made to the checkout while the suite runs cannot mix
two versions of the engine in one table; ``--engine live`` imports the checkout itself.
The header names the snapshot by a hash of its sources.

The table is also written to ``bench/results/latest.md`` (and the raw runs to
``latest.json``). The exit status is 1 if a job failed or a checksum disagrees with
the bare loop's; missed targets do not change it.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import WORKLOADS, run_job_process  # noqa: E402
from gen_events import DEFAULT_EVENTS, DEFAULT_SEED, cached_events  # noqa: E402

ROOT = HERE.parent
ENGINE_PACKAGES = ("streamcore", "connectors")
IMPLS = {"bare": HERE / "bare_jobs.py", "streamcore": HERE / "streamcore_jobs.py"}
LABELS = {"w1": "W1", "hop10": "HOP10", "w2": "W2", "slide": "SLIDE", "session": "SESSION"}
# Float sums of window totals may differ in the last bits if the engine combined
# accumulators in another order; anything within this is reported as "ok (~)".
SUM_ABS_TOL = 1e-3
SUM_REL_TOL = 1e-12


@dataclass
class Job:
    workload: str
    impl: str
    n: int
    python: str = sys.executable
    version: str = platform.python_version()
    runs: list[dict[str, Any]] = field(default_factory=list)
    slow: bool = False

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.impl}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.workload, self.impl, self.version)

    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if "checksum" in r]

    def median_seconds(self) -> float | None:
        return self.median_of("seconds")

    def median_of(self, field: str) -> float | None:
        """The median of ``field`` over the successful runs that have it."""
        values = [r[field] for r in self.ok_runs() if field in r]
        return statistics.median(values) if values else None

    def events_per_s(self) -> float | None:
        s = self.median_seconds()
        return None if s is None else self.n / s

    def peak_rss_mib(self) -> float | None:
        ok = self.ok_runs()
        return max(r["peak_rss_kib"] for r in ok) / 1024 if ok else None


def warm_page_cache(path: Path) -> None:
    """Read the whole file, untimed, so that the job does not time a cold disk read."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def compile_engine(dest: Path) -> None:
    """Write the bytecode of the engine's packages under ``dest``, as an installed engine
    has it: without it every job would compile the engine from source at start (which
    ``PYTHONDONTWRITEBYTECODE`` in the environment makes happen at every start)."""
    for package in ENGINE_PACKAGES:
        compileall.compile_dir(dest / package, quiet=1)


def snapshot_engine(dest: Path) -> str:
    """Copy the engine's packages under ``dest``; a short hash of their sources."""
    digest = hashlib.sha256()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ENGINE_PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
        for file in sorted((dest / package).rglob("*.py")):
            digest.update(str(file.relative_to(dest)).encode())
            digest.update(file.read_bytes())
    compile_engine(dest)
    return digest.hexdigest()[:12]


def git_state() -> str:
    """The checkout's commit and how many files differ from it (informational)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *ENGINE_PACKAGES],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    except OSError:
        return "git unavailable"
    return f"git {head or '?'} + {len(changed)} changed engine files"


def run_job(job: Job, path: Path, timeout: float, engine_dir: Path | None) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its parsed result line, or an ``error``."""
    if job.workload != "hop10":
        warm_page_cache(path)
    cmd = [job.python, str(IMPLS[job.impl]), job.workload, str(path), str(job.n)]
    return run_job_process(cmd, timeout, engine_dir)


def compare_checksum(got: dict[str, Any], ref: dict[str, Any]) -> str:
    """``ok`` if equal, ``ok (~)`` if only the float sum differs within tolerance, else ``MISMATCH``."""
    if got == ref:
        return "ok"
    if got.keys() != ref.keys() or any(got[k] != ref[k] for k in got if k != "sum"):
        return "MISMATCH"
    tol = max(SUM_ABS_TOL, SUM_REL_TOL * abs(ref["sum"]))
    return "ok (~)" if abs(got["sum"] - ref["sum"]) <= tol else "MISMATCH"


def fmt_checksum(c: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in c.items())


def target_cell(job: Job, jobs: dict[tuple[str, str, str], Job]) -> str:
    """The workload's targets for the streamcore row, with PASS or FAIL."""
    if job.impl != "streamcore":
        return ""
    eps = job.events_per_s()
    if eps is None:
        return "FAIL (no result)"
    bare = jobs.get((job.workload, "bare", job.version))
    bare_eps = bare.events_per_s() if bare else None

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    if job.workload in ("w1", "w2"):
        want = 0.7 if job.workload == "w1" else 0.5
        cells = []
        if bare_eps:
            ratio = eps / bare_eps
            cells.append(f">= {want}x bare: {verdict(ratio >= want)}")
        else:
            cells.append(f">= {want}x bare: n/a (bare failed)")
        if job.workload == "w1":
            rss = job.peak_rss_mib() or 0.0
            cells.append(f"RSS < 100 MiB: {verdict(rss < 100)}")
        return "; ".join(cells)
    if job.workload == "hop10":
        return f">= 2,000,000 rec/s: {verdict(eps >= 2_000_000)}"
    limit = 3.0 if job.workload == "slide" else 2.0
    tumbling = jobs.get(("w2", "streamcore", job.version))
    t_secs = tumbling.median_seconds() if tumbling else None
    secs = job.median_seconds()
    if t_secs is None or secs is None:
        return f"<= {limit:g}x W2 cost: n/a (W2 not run)"
    # Cost per input event; both read the same file, so it is the ratio of times.
    cost = (secs / job.n) / (t_secs / tumbling.n)  # type: ignore[union-attr]
    return f"cost {cost:.2f}x W2 (<= {limit:g}x): {verdict(cost <= limit)}"


def time_ratio(job: Job, bare: Job | None, field: str) -> str:
    """Bare's median ``field`` (seconds) over the job's: a speed ratio, > 1 when faster."""
    mine = job.median_of(field)
    base = bare.median_of(field) if bare else None
    return f"{base / mine:.2f}x" if mine and base else "-"


def build_table(jobs: dict[tuple[str, str, str], Job]) -> tuple[list[str], list[str]]:
    """The markdown table rows and the list of problems (failed runs, checksum mismatches)."""
    versions = len({j.version for j in jobs.values()}) > 1
    lines = [
        "| workload | impl |" + (" python |" if versions else "")
        + " runs | median events/s | peak RSS MiB | ratio to bare | "
        "whole process | CPU in-process | CPU whole process | checksum ok | target |",
        "|---|---|" + ("---|" if versions else "") + "---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    problems: list[str] = []
    for (workload, impl, version), job in jobs.items():
        name = f"{job.label} on {version}" if versions else job.label
        first = f"| {LABELS[workload]} | {impl} |" + (f" {version} |" if versions else "")
        for r in job.runs:
            if "error" in r:
                problems.append(f"{name} round {r['round']}: FAILED: {r['error']}")
        eps = job.events_per_s()
        if eps is None:
            lines.append(f"{first} 0/{len(job.runs)} | FAILED | | | | | | | |")
            continue
        bare = jobs.get((workload, "bare", version))
        bare_eps = bare.events_per_s() if bare else None
        ratio = f"{eps / bare_eps:.2f}x" if bare_eps else "-"
        ref = bare.ok_runs()[0]["checksum"] if bare and bare.ok_runs() else None
        if ref is None:
            check = "no reference"
        else:
            verdicts = [compare_checksum(r["checksum"], ref) for r in job.ok_runs()]
            check = (
                "MISMATCH"
                if "MISMATCH" in verdicts
                else ("ok (~)" if "ok (~)" in verdicts else "ok")
            )
            for r, v in zip(job.ok_runs(), verdicts, strict=True):
                if v != "ok":
                    problems.append(
                        f"{name} round {r['round']}: checksum {fmt_checksum(r['checksum'])} "
                        f"vs bare {fmt_checksum(ref)} ({v})"
                    )
        ratios = " | ".join(time_ratio(job, bare, f) for f in ("wall", "cpu_seconds", "process_cpu"))
        ratios = " | ".join(time_ratio(job, bare, f) for f in ("wall", "cpu_seconds", "process_cpu"))
        lines.append(
            f"{first} {len(job.ok_runs())} | {eps:,.0f} | "
            f"{job.peak_rss_mib():.0f} | {ratio} | {ratios} | {check} | {target_cell(job, jobs)} |"
        )
    return lines, problems


def parse_workloads(ap: argparse.ArgumentParser, only: str) -> list[str]:
    """The workloads of an ``--only`` list; an unknown one is a usage error."""
    workloads = [w.strip().lower() for w in only.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    return workloads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="click events in the input")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the input generator")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma list of workloads")
    ap.add_argument(
        "--hop-records", type=int, default=None, help="HOP10 records (default 2x --events)"
    )
    ap.add_argument("--slow-seconds", type=float, default=60.0)
    ap.add_argument("--slow-rounds", type=int, default=3)
    ap.add_argument("--order-seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1200.0, help="per run, seconds")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument(
        "--python",
        action="append",
        default=None,
        help="interpreter to run the jobs with (repeat to compare; default: this one)",
    )
    ap.add_argument(
        "--engine",
        choices=("snapshot", "live"),
        default="snapshot",
        help="import the engine from a copy taken at start (default) or from the checkout",
    )
    a = ap.parse_args(argv)

    workloads = parse_workloads(ap, a.only)
    path = cached_events(a.events, a.seed)
    hop_n = a.hop_records if a.hop_records is not None else 2 * a.events
    # By version: the same interpreter named twice runs once.
    pythons = {python_version(exe): exe for exe in a.python or [sys.executable]}
    jobs = {
        job.key: job
        for version, exe in pythons.items()
        for w in WORKLOADS
        if w in workloads
        for impl in IMPLS
        for job in [Job(w, impl, hop_n if w == "hop10" else a.events, exe, version)]
    }

    engine_tmp = None
    if a.engine == "snapshot":
        engine_tmp = tempfile.TemporaryDirectory(prefix="streamcore-bench-engine-")
        engine_dir: Path | None = Path(engine_tmp.name)
        engine = f"snapshot {snapshot_engine(Path(engine_tmp.name))} of {ROOT} ({git_state()})"
    else:
        engine_dir = None
        engine = f"live checkout {ROOT} ({git_state()})"
    try:
        return _run(a, jobs, path, hop_n, engine, engine_dir)
    finally:
        if engine_tmp is not None:
            engine_tmp.cleanup()


def python_version(exe: str) -> str:
    """``3.13.0`` for the interpreter ``exe``."""
    out = subprocess.run(
        [exe, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _run(
    a: argparse.Namespace,
    jobs: dict[tuple[str, str, str], Job],
    path: Path,
    hop_n: int,
    engine: str,
    engine_dir: Path | None,
) -> int:
    load_start = Path("/proc/loadavg").read_text().strip()
    started = time.time()
    print(f"# input {path} ({a.events:,} events), {a.rounds} rounds, load {load_start}", flush=True)
    print(f"# engine: {engine}", flush=True)
    for rnd in range(a.rounds):
        order = [j for j in jobs.values() if not (j.slow and rnd >= a.slow_rounds)]
        random.Random(a.order_seed * 1000 + rnd).shuffle(order)
        for job in order:
            result = run_job(job, path, a.timeout, engine_dir)
            result["round"] = rnd
            job.runs.append(result)
            if rnd == 0 and result["wall"] > a.slow_seconds:
                job.slow = True
            status = fmt_checksum(result["checksum"]) if "checksum" in result else "ERROR"
            speed = f"{result['events_per_s']:>12,} ev/s" if "events_per_s" in result else ""
            print(
                f"r{rnd} {job.label:18s} {job.version:7s} wall {result['wall']:7.2f}s {speed} {status}", flush=True
            )
    load_end = Path("/proc/loadavg").read_text().strip()
    minutes = (time.time() - started) / 60

    table, problems = build_table(jobs)
    slow = [j.label for j in jobs.values() if j.slow and a.rounds > a.slow_rounds]
    header = [
        f"streamcore benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {a.events:,} events "
        f"({path.name}), HOP10 {hop_n:,} records, {a.rounds} interleaved rounds, "
        f"total {minutes:.1f} min",
        f"Load average start: {load_start}; end: {load_end}. "
        f"Python {', '.join(sorted({j.version for j in jobs.values()}))}, "
        f"{os.cpu_count()} CPUs.",
        f"Engine: {engine}.",
    ]
    if slow:
        header.append(f"Slow jobs limited to {a.slow_rounds} rounds: {', '.join(slow)}.")
    footer = ["", "Checksums: all agree with the bare loop." if not problems else "Problems:"]
    footer += [f"- {p}" for p in problems]
    md = "\n".join([*header, "", *table, *footer]) + "\n"
    print("\n" + md, flush=True)

    a.results_dir.mkdir(parents=True, exist_ok=True)
    (a.results_dir / "latest.md").write_text(md)
    raw = {
        "events": a.events,
        "hop_records": hop_n,
        "rounds": a.rounds,
        "engine": engine,
        "load_start": load_start,
        "load_end": load_end,
        "jobs": [
            {"workload": j.workload, "impl": j.impl, "python": j.version, "n": j.n, "runs": j.runs}
            for j in jobs.values()
        ],
        "problems": problems,
    }
    (a.results_dir / "latest.json").write_text(json.dumps(raw, indent=1) + "\n")
    return 1 if problems and any("ok (~)" not in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
