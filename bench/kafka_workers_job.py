"""The W2 job of ``bench_kafka.py``'s ``workers1``/``workers2`` rows, run by the real CLI.

``python -m streamcore run bench/kafka_workers_job.py:flow --workers N`` loads ``flow``:
the same W2 flow and timed consumer-group source as the ``alo`` and ``group2`` rows
(``bench_kafka.build_w2_flow``, ``bench_kafka._timed_source``), configured from the
environment:

* ``BENCH_KAFKA_JOB``: a JSON object of the job's settings (the ``job`` command's
  options: bootstrap, topics, group, share, peers_dir, peers, ...);
* ``BENCH_KAFKA_RESULT_DIR``: where each process that read records writes
  ``result-<pid>.json`` when it exits (first record, end of input, flow done, records
  read, its CPU time and peak RSS), which the bench sums over the workers.

The parent of ``--workers 2`` loads the target too (to check that every source has a
partition group) but runs no flow: it reads nothing, so it writes no result.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import peak_rss_kib  # noqa: E402
from bench_kafka import _timed_source, build_w2_flow  # noqa: E402


def _write_result(stats: dict[str, Any], out: Path) -> None:
    # At exit the flow is over: its last windows were written and the sink flushed.
    if not stats["read"]:
        return
    result = {
        **stats,
        "done": time.monotonic(),
        "cpu_seconds": round(time.process_time(), 3),
        "peak_rss_kib": peak_rss_kib(),
        "pid": os.getpid(),
        "worker": os.environ.get("STREAMCORE_WORKER"),
    }
    (out / f"result-{os.getpid()}.json").write_text(json.dumps(result))


def flow() -> Any:
    """The daemon's target: W2 with a timed consumer-group source, from ``BENCH_KAFKA_*``."""
    settings = json.loads(os.environ["BENCH_KAFKA_JOB"])
    a = argparse.Namespace(
        exactly_once=False, rekey=False, redis_url="", key_prefix="", **settings
    )
    source = _timed_source(a)
    atexit.register(_write_result, source.stats, Path(os.environ["BENCH_KAFKA_RESULT_DIR"]))
    return build_w2_flow(a, source)
