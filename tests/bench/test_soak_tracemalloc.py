"""``bench_soak.py --tracemalloc-every``: the job's snapshot thread and the report.

A child process starts tracing the way the soak daemon does (``soak_job.trace_allocations``
from the ``SOAK_TRACEMALLOC_*`` environment), keeps appending to a list from one line and
fills a fixed-size dict from another; ``soak_tracemalloc.report`` must find the first
line as growing and the second as bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from soak_tracemalloc import load, report  # noqa: E402

CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import soak_job
soak_job.trace_allocations()
kept, table = [], {}
started = time.monotonic()
# Enough snapshots are written by the end: the thread dumps one every 0.2 s.
while time.monotonic() - started < 3.0:
    kept.append(bytearray(2000))  # GROWING
    if len(table) < 200:
        table[len(table)] = bytearray(2000)  # BOUNDED
    time.sleep(0.002)
"""


def test_report_tells_a_growing_site_from_a_bounded_one(tmp_path: Path) -> None:
    env = dict(os.environ, SOAK_TRACEMALLOC_EVERY="0.2", SOAK_TRACEMALLOC_DIR=str(tmp_path))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    subprocess.run(
        [sys.executable, str(script), str(ROOT / "bench")], env=env, check=True, timeout=120
    )
    snaps = sorted(tmp_path.glob("snap-*.tracemalloc"))
    assert len(snaps) >= 5, snaps
    t0 = float(snaps[0].name.removeprefix("snap-").removesuffix(".tracemalloc"))
    text = report(load(tmp_path, t0), warmup=1.0, every=0.2, frames=1, top=10)
    lines = script.read_text().splitlines()
    growing = lines.index(next(x for x in lines if x.endswith("# GROWING"))) + 1
    bounded = lines.index(next(x for x in lines if x.endswith("# BOUNDED"))) + 1
    after_warmup = text.split("Top 10 sites by growth after the warm-up")[1]
    row = next(x for x in after_warmup.splitlines() if f"child.py:{growing}`" in x)
    assert row.endswith("| growing |"), row
    first_minutes = text.split("Top 10 sites by growth in the first minutes")[1]
    assert f"child.py:{bounded}`" in first_minutes.split("after the warm-up")[0]
    assert f"child.py:{bounded}`" not in after_warmup
