"""``streamcore run --workers N`` without a broker: the arguments a worker gets, the exit
status of the whole, the merged metrics, and the refusal of a flow that cannot scale out.
The supervision itself runs against Kafka in tests/connectors/test_kafka_workers.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamcore.daemon.workers import merge_metrics, worker_argv, worst_status

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "job.py:flow", "--workers", "3", "--metrics-port", "9000", "--state", "redis://x"],
        ["run", "job.py:flow", "--workers=3", "--metrics-port=9000", "--state", "redis://x"],
        ["run", "job.py:flow", "--work", "3", "--metrics-p", "9000", "--metrics-host", "0.0.0.0", "--state", "redis://x"],
    ],
)
def test_a_worker_gets_the_arguments_without_the_parents_options_and_a_port_of_its_own(
    argv: list[str],
) -> None:
    got = worker_argv(argv, 4242)
    assert got == [
        "run", "job.py:flow", "--state", "redis://x",
        "--workers", "1", "--metrics-port", "4242", "--metrics-host", "127.0.0.1",
    ]


def test_the_exit_status_is_the_worst_of_the_workers() -> None:
    assert worst_status([0, 0]) == 0
    assert worst_status([0, 1]) == 1
    assert worst_status([1, 2, 0]) == 2
    # A worker killed by a signal counts as the shell would report it.
    assert worst_status([0, -signal.SIGKILL]) == 128 + signal.SIGKILL
    assert worst_status([]) == 0


def test_merged_metrics_label_every_sample_and_keep_one_help_and_type_per_family() -> None:
    one = (
        "# HELP streamcore_records_total Records.\n"
        "# TYPE streamcore_records_total counter\n"
        'streamcore_records_total{stage="src"} 10.0\n'
        "# HELP streamcore_lag Lag.\n"
        "# TYPE streamcore_lag gauge\n"
        "streamcore_lag 3.0\n"
    )
    two = one.replace("10.0", "20.0").replace("3.0", "4.0")
    merged = merge_metrics({"0": one, "1": two}).splitlines()
    assert merged == [
        "# HELP streamcore_records_total Records.",
        "# TYPE streamcore_records_total counter",
        'streamcore_records_total{worker="0",stage="src"} 10.0',
        'streamcore_records_total{worker="1",stage="src"} 20.0',
        "# HELP streamcore_lag Lag.",
        "# TYPE streamcore_lag gauge",
        'streamcore_lag{worker="0"} 3.0',
        'streamcore_lag{worker="1"} 4.0',
    ]


def test_histogram_samples_stay_with_their_family() -> None:
    text = (
        "# TYPE streamcore_latency_seconds histogram\n"
        'streamcore_latency_seconds_bucket{le="1.0"} 2.0\n'
        "streamcore_latency_seconds_count 2.0\n"
    )
    merged = merge_metrics({"0": text, "1": text}).splitlines()
    assert merged[0] == "# TYPE streamcore_latency_seconds histogram"
    assert sum(line.startswith("# TYPE") for line in merged) == 1
    assert len(merged) == 5


def test_workers_refuse_a_flow_whose_source_has_no_group(tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(
        "import streamcore as sc\n"
        "from connectors.memory import IterableSource\n"
        "flow = sc.Dataflow('alone')\n"
        "flow.source(IterableSource(range(3))).sink(lambda x: None)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamcore", "run", f"{job}:flow", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "do not split their partitions over a group" in proc.stderr
    assert "worker started" not in proc.stderr
