"""Smoke test of the benchmark suite: every streamcore workload agrees with the bare loop.

Runs ``bench/run.py`` on a small input, one round, and checks correctness only; the
timings of so small a run mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
WORKLOADS = ("w1", "hop10", "w2", "slide", "session")


def run_suite(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``bench/run.py`` with ``args`` for one round; its raw results (latest.json)."""
    proc = subprocess.run(
        [sys.executable, str(RUN), "--rounds", "1", *args, "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw: dict[str, Any] = json.loads((tmp_path / "latest.json").read_text())
    return raw


def test_every_checksum_matches_the_bare_loop(tmp_path: Path) -> None:
    raw = run_suite(tmp_path, "--events", "20000")
    assert raw["problems"] == []
    results = {(j["workload"], j["impl"]): j["runs"] for j in raw["jobs"]}
    assert sorted(results) == sorted((w, i) for w in WORKLOADS for i in ("bare", "streamcore"))
    for workload in WORKLOADS:
        (bare,) = results[(workload, "bare")]
        (engine,) = results[(workload, "streamcore")]
        assert "error" not in bare, bare
        assert "error" not in engine, engine
        assert engine["checksum"] == bare["checksum"], workload
        # The engine was imported from run.py's snapshot, not from the checkout.
        assert not Path(engine["engine_path"]).is_relative_to(ROOT), engine["engine_path"]
    # The table reports the same verdict.
    table = (tmp_path / "latest.md").read_text()
    assert "MISMATCH" not in table and "FAILED" not in table


def test_the_interpreter_to_run_the_jobs_with_can_be_chosen(tmp_path: Path) -> None:
    raw = run_suite(tmp_path, "--events", "2000", "--only", "hop10", "--python", sys.executable)
    assert [(j["impl"], j["python"]) for j in raw["jobs"]] == [
        ("bare", platform.python_version()),
        ("streamcore", platform.python_version()),
    ]
    assert f"Python {platform.python_version()}," in (tmp_path / "latest.md").read_text()
