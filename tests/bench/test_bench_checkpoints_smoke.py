"""Smoke test of ``bench/bench_checkpoints.py``: every workload runs and its checks pass.

Runs the benchmark on tiny sizes, one round, against the session's Redis, and checks
that the table has its rows, that no run failed, that the checkpointed W2 agrees with
the plain one, that the recovered state adds up, and that the benchmark deleted its
keys. The timings of so small a run mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_checkpoints.py"
ROWS = (
    "W2, no checkpoints",
    "W2, Redis checkpoints every 0.05 s",
    "2,000 keys: full checkpoint",
    "2,000 keys: incremental checkpoint",
    "2,000 keys: recovery from Redis",
)


@pytest.mark.redis
def test_checkpoint_benchmark_runs_every_workload(tmp_path: Path, redis_url: str) -> None:
    raw_path = tmp_path / "raw.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--events",
            "20000",
            "--rounds",
            "1",
            "--interval",
            "0.05",
            "--keys",
            "2000",
            "--state-interval",
            "0.1",
            "--state-compact-every",
            "2",
            "--state-checkpoints",
            "4",
            "--redis-url",
            redis_url,
            "--results-dir",
            str(tmp_path),
            "--json",
            str(raw_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    table = (tmp_path / "checkpoints.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    labels = [row.split("|")[1].strip() for row in rows[1:]]
    assert len(labels) == len(ROWS), table
    for want, got in zip(ROWS, labels, strict=True):
        assert got.startswith(want), (want, got)
    assert "FAILED" not in table and "Problems:" not in table, table
    assert "Checks: all runs completed" in table

    raw = json.loads(raw_path.read_text())
    assert raw["problems"] == []
    runs = raw["runs"]
    (plain,) = runs["w2"]
    (checkpointed,) = runs["w2cp"]
    assert checkpointed["checksum"] == plain["checksum"]
    assert plain["checksum"]["count"] == 20000
    assert checkpointed["checkpoints"], "the checkpointed W2 completed no checkpoint"
    (state,) = runs["state"]
    assert state["stopped_midway"]
    loaded = [c for c in state["checkpoints"] if c["loaded"]]
    assert any(c["full"] for c in loaded) and any(not c["full"] for c in loaded), loaded
    (recovered,) = runs["recover"]
    assert recovered["restored_from"] is not None
    assert recovered["windows"] == 2000
    assert recovered["count"] == recovered["restored_position"]
    # The engine was imported from the benchmark's snapshot, not from the checkout.
    assert not Path(plain["engine_path"]).is_relative_to(ROOT), plain["engine_path"]

    # Every key the benchmark wrote under its prefix was deleted.
    prefix = re.search(r"key prefix (\S+)", proc.stdout)
    assert prefix, proc.stdout[:2000]
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        left = list(client.scan_iter(match=f"{prefix.group(1)}:*", count=1000))
    finally:
        client.close()
    assert left == []
