"""Smoke test of ``bench/bench_redis.py``: every workload runs and its output is right.

Runs the benchmark on a tiny input, one round, against the session's Redis, and checks
that no run failed, that every output stream holds exactly the expected windows, and
that it deleted its keys (streams, checkpoints, the sink's marker) afterwards. Timings of so small a run mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_redis.py"


@pytest.mark.redis
def test_redis_benchmark_runs_every_workload_with_the_expected_output(tmp_path: Path, redis_url: str) -> None:
    raw_path = tmp_path / "raw.json"
    client = redis.Redis.from_url(redis_url)
    before = set(client.scan_iter(match="bench-redis-*", count=1000))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--events", "3000", "--rounds", "1", "--redis-url", redis_url,
         "--engine", "live", "--results-dir", str(tmp_path), "--json", str(raw_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = json.loads(raw_path.read_text())
    assert sorted(raw["runs"]) == ["alo", "base", "eo", "eog"]
    for kind, runs in raw["runs"].items():
        (run,) = runs
        assert "error" not in run, (kind, run)
        assert run["checksum"] == raw["expected"], kind
    table = (tmp_path / "redis.md").read_text()
    assert "redis-py XREAD/XADD loop (baseline)" in table and "MISMATCH" not in table
    try:
        assert set(client.scan_iter(match="bench-redis-*", count=1000)) == before
    finally:
        client.close()
