"""Start-up time: wall clock of short commands, and which imports it goes to.

Usage::

    .venv/bin/python bench/bench_startup.py [--runs 15] [--top 25]

Each command is run ``--runs`` times as a fresh process, the commands interleaved round
by round (so drift on a shared machine hits them alike), and the table gives the median,
minimum and maximum wall time in milliseconds and the median CPU time (user + system,
which a loaded machine inflates less than wall time); the bare ``python -c pass`` of the
same interpreter is a row of its own and the "- bare" columns subtract its medians. Then
``python -X importtime`` of ``import streamcore, connectors.files`` is run ``--runs``
times and the modules with the largest median cumulative import time are listed (median
per module over the runs, which a loaded machine needs: a single run can put 100 ms on
any module that happened to be preempted). ``--instructions`` adds the instructions each
command executes, counted once under valgrind's callgrind: the one figure here that the
machine's load does not move.

The engine measured is a copy of the working tree's ``streamcore`` and ``connectors``
(or of ``--rev REV``'s, exported with ``git archive``) with its bytecode compiled, as an
installed engine has it, imported through ``PYTHONPATH``; ``streamcore --help`` is run
as ``python -m streamcore --help``, the same program.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# Commands run in an empty directory: with ``-c`` the current directory comes first on the
# import path, and the checkout's would shadow a ``PYTHONPATH`` copy of another revision.
CWD = tempfile.mkdtemp(prefix="streamcore-startup-")

from compare import export_rev  # noqa: E402
from run import snapshot_engine  # noqa: E402


def commands() -> dict[str, list[str]]:
    """Label -> argv of every timed command."""
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import streamcore, connectors.files'": [
            py,
            "-c",
            "import streamcore, connectors.files",
        ],
        "streamcore --help": [py, "-m", "streamcore", "--help"],
    }


def time_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one run (output discarded); raises if
    the command fails. CPU time is what a loaded machine inflates least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=CWD)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def instructions(argv: list[str]) -> int:
    """Instructions executed by one run under ``valgrind --tool=callgrind``: a figure that
    does not depend on the machine's load (the run itself is about 50 times slower)."""
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=CWD,
    )
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no instruction count in valgrind's output: {proc.stderr[-500:]}")


def import_times(runs: int) -> dict[str, list[tuple[int, int]]]:
    """Module -> (self, cumulative) import microseconds per run of
    ``import streamcore, connectors.files``."""
    per_module: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import streamcore, connectors.files"],
            capture_output=True,
            text=True,
            check=True,
            cwd=CWD,
        )
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            own, cumulative, name = line[len("import time:") :].split("|")
            per_module[name.strip()].append((int(own), int(cumulative)))
    return per_module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per command (median reported)")
    ap.add_argument("--top", type=int, default=25, help="modules listed from -X importtime")
    ap.add_argument("--rev", default=None, help="measure this git revision's engine instead")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="also count each command's instructions once with valgrind (load-independent)",
    )
    a = ap.parse_args(argv)

    engine = Path(CWD, "engine")
    if a.rev is None:
        what = f"working tree (snapshot {snapshot_engine(engine)})"
    else:
        what = f"{a.rev} = {export_rev(a.rev, engine)}"
    os.environ["PYTHONPATH"] = str(engine)
    cmds = commands()
    walls: dict[str, list[float]] = {label: [] for label in cmds}
    cpus: dict[str, list[float]] = {label: [] for label in cmds}
    for cmd in cmds.values():  # one warm-up run each: page cache, .pyc files
        time_once(cmd)
    for _ in range(a.runs):
        for label, cmd in cmds.items():
            wall, cpu = time_once(cmd)
            walls[label].append(wall)
            cpus[label].append(cpu)
    bare = statistics.median(walls["python -c pass"])
    bare_cpu = statistics.median(cpus["python -c pass"])
    print(
        f"engine: {what}; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, "
        f"{a.runs} runs each\n"
    )
    print(
        "| command | wall median ms | wall min ms | wall max ms | wall median - bare | "
        "CPU median ms | CPU median - bare |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, ms in walls.items():
        med, cpu = statistics.median(ms), statistics.median(cpus[label])
        print(
            f"| `{label}` | {med:.0f} | {min(ms):.0f} | {max(ms):.0f} | {med - bare:.0f} | "
            f"{cpu:.0f} | {cpu - bare_cpu:.0f} |"
        )

    if a.instructions:
        counts = {label: instructions(cmd) for label, cmd in cmds.items()}
        print("\n| command | instructions (millions) | ratio to bare |")
        print("|---|---:|---:|")
        for label, n in counts.items():
            print(f"| `{label}` | {n / 1e6:,.0f} | {n / counts['python -c pass']:.2f}x |")

    per_module = import_times(a.runs)
    medians = {
        name: (statistics.median(t[0] for t in us), statistics.median(t[1] for t in us))
        for name, us in per_module.items()
    }
    ranked = sorted(medians.items(), key=lambda kv: kv[1][1], reverse=True)
    print(f"\n`python -X importtime -c 'import streamcore, connectors.files'`, median of {a.runs}:\n")
    print("| module | self ms | cumulative ms |")
    print("|---|---:|---:|")
    for name, (own, cumulative) in ranked[: a.top]:
        print(f"| `{name}` | {own / 1000:.1f} | {cumulative / 1000:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
