"""Smoke test of ``bench/compare.py``: a revision and the working tree, side by side.

Runs it on a small input, one round, comparing ``HEAD`` with the working tree; checks
that each side ran from its own copy of the engine and agrees with the bare loop. The
timings of so small a run mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPARE = ROOT / "bench" / "compare.py"


def test_compare_runs_the_revision_and_the_working_tree_from_their_own_copies(
    tmp_path: Path,
) -> None:
    raw_path = tmp_path / "raw.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "HEAD",
            "--events",
            "2000",
            "--rounds",
            "1",
            "--only",
            "w2",
            "--results-dir",
            str(tmp_path),
            "--json",
            str(raw_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = json.loads(raw_path.read_text())
    runs = {j["side"]: j["runs"][0] for j in raw["jobs"]}
    assert sorted(runs) == ["bare", "rev", "work"]
    assert runs["rev"]["checksum"] == runs["work"]["checksum"] == runs["bare"]["checksum"]
    rev_dir = Path(runs["rev"]["engine_path"]).parent
    work_dir = Path(runs["work"]["engine_path"]).parent
    assert rev_dir.name == "rev" and work_dir.name == "work"
    assert not rev_dir.is_relative_to(ROOT)
    table = (tmp_path / "compare.md").read_text()
    assert "| W2 |" in table and "all agree with the bare loop" in table


def test_compare_names_a_revision_git_does_not_know(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(COMPARE), "no-such-rev-xyz", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "no-such-rev-xyz" in proc.stderr
