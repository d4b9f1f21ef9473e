"""Shared by the workload scripts: parameters, command line, timing and the result line.

A workload script is run as ``python bench/<script>.py WORKLOAD INPUT N`` in a fresh
process and prints exactly one line ``BENCH_RESULT {json}`` with the fields
``impl, workload, n, seconds, cpu_seconds, events_per_s, peak_rss_kib, checksum``.
``seconds`` is measured inside the process, from just before the pipeline is built until
the checksum is known, so interpreter start-up and imports are not counted;
``cpu_seconds`` is the process's CPU time over the same span. The parent adds the whole
process's wall time (``wall``) and CPU time (``process_cpu``, user + system, start-up
included): on a loaded machine CPU times move far less than wall times.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Workload parameters, identical for every implementation.
THRESHOLD = 50.0
FACTOR = 1.1
HOPS = 10
OUT_OF_ORDER_MS = 2_000
TUMBLE_MS = 10_000
SLIDE_SIZE_MS = 60_000
SLIDE_STEP_MS = 1_000
SESSION_GAP_MS = 30_000

WORKLOADS = ("w1", "hop10", "w2", "slide", "session")
RESULT_PREFIX = "BENCH_RESULT "


def job_env(engine_dir: Path | None) -> dict[str, str]:
    """The environment of a job process: fixed hash seed, ``engine_dir`` (a snapshot of the
    engine) ahead of the editable install on the import path."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if engine_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(engine_dir), env.get("PYTHONPATH")]))
    return env


def parse_result(stdout: str, stderr: str, returncode: int | None) -> dict[str, Any]:
    """A job's ``RESULT_PREFIX`` line as a dict, or ``{"error": ...}`` with the output's tail."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX) and returncode == 0:
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    return {"error": f"exit status {returncode}: {(stderr or stdout).strip()[-2000:]}"}


def run_job_process(cmd: list[str], timeout: float, engine_dir: Path | None) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its parsed result (with ``wall`` seconds and the
    whole process's CPU seconds, ``process_cpu``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=job_env(engine_dir), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s", "wall": time.perf_counter() - started}
    result = parse_result(proc.stdout, proc.stderr, proc.returncode)
    result["wall"] = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["process_cpu"] = round(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 4
    )
    return result


def identity(x: Any) -> Any:
    """The stage function of HOP10 (the same function object for both implementations)."""
    return x


def peak_rss_kib(pid: int | None = None) -> int:
    """This process's peak resident set (``VmHWM``), read from inside the process, or
    process ``pid``'s so far; -1 when unknown.

    The parent's memory cannot leak into it, unlike ``wait4``'s ``ru_maxrss``, which on
    Linux starts from the parent's RSS at fork.
    """
    try:
        with open(f"/proc/{'self' if pid is None else pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def pid_from(path: Path) -> int | None:
    """The process id written in ``path`` (a service's pid file); None without one."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cpu_seconds_of(pid: int | None) -> float:
    """CPU time (user + system) process ``pid`` used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        # Fields after the command's closing parenthesis; utime and stime are 14 and 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def w1_checksum(count: int, total: float) -> dict[str, Any]:
    return {"count": count, "sum": round(total, 2)}


# Window totals are summed as integers in units of 2**-60 (truncated): the same totals
# give the same checksum whatever order the windows are emitted in, and in constant
# memory (a list of millions of floats for ``math.fsum`` would dominate the peak RSS
# of the sliding-window jobs).
SUM_SCALE = 2**60


def sum_units(x: float) -> int:
    """``x`` in units of ``2**-60`` (multiplying by a power of two is exact)."""
    return int(x * SUM_SCALE)


def window_checksum(windows: int, count: int, units: int) -> dict[str, Any]:
    """Windows emitted, records counted over all of them, and the sum of their sums."""
    return {"windows": windows, "count": count, "sum": round(units / SUM_SCALE, 2)}


def main(
    impl: str,
    jobs: dict[str, Callable[[str, int], dict[str, Any]]],
    info: dict[str, Any] | None = None,
) -> None:
    """Parse ``WORKLOAD INPUT N``, time the job and print its result line (plus ``info``)."""
    if len(sys.argv) != 4 or sys.argv[1] not in jobs:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(jobs)}}} INPUT N")
    workload, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started, cpu_started = time.perf_counter(), time.process_time()
    checksum = jobs[workload](path, n)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    result = {
        "impl": impl,
        "workload": workload,
        "n": n,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "events_per_s": round(n / seconds),
        "peak_rss_kib": peak_rss_kib(),
        "checksum": checksum,
        **(info or {}),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
