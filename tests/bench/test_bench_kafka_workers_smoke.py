"""Smoke test of ``bench/bench_kafka.py``'s ``workers1``/``workers2`` rows: W2 through
``python -m streamcore run ... --workers N`` against the session's broker.

A tiny input, one round: both rows must complete with the expected windows, the two
workers must each have read a share, and the report must hold their rows and the CPU
table. Timings of so small a run mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_kafka.py"


def test_workers_rows_run_through_the_cli_with_the_expected_output(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    raw_path = tmp_path / "raw.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--events", "3000", "--rounds", "1",
         "--only", "base,workers1,workers2", "--bootstrap", kafka_bootstrap, "--engine", "live",
         "--results-dir", str(tmp_path), "--results-name", "workers.md", "--json", str(raw_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = json.loads(raw_path.read_text())
    for kind in ("base", "workers1", "workers2"):
        (run,) = raw["runs"][kind]
        assert "error" not in run, (kind, run)
        assert run["checksum"] == raw["expected"], kind
    reads = raw["runs"]["workers2"][0]["per_process_read"]
    assert len(reads) == 2 and all(r > 0 for r in reads) and sum(reads) == 3000, reads
    workers2 = raw["runs"]["workers2"][0]
    assert workers2["peak_rss_kib"] == sum(workers2["per_process_rss_kib"])
    assert workers2["parent_peak_rss_kib"] > 0
    report = (tmp_path / "workers.md").read_text()
    assert "`streamcore run --workers 2`" in report and "CPU per process" in report
