"""The daemon's HTTP server, against ``streamcore run --metrics-port`` as a subprocess."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_cli import start, stop, wait_until, write

FLOW = """
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import ListSink

HERE = Path(__file__).parent

flow = sc.Dataflow("served")
(
    flow.source(JsonLinesSource(str(HERE / "in.jsonl")), name="events", timestamp=lambda r: r["ts"],
                batch_size=50, max_rate=2_000)
    .key_by(lambda r: r["i"] % 5)
    .window(sc.TumblingWindows(1000))
    .aggregate(sc.agg.count(), name="counts")
    .sink(ListSink(), name="out")
)
"""

FAILS_ONCE = """
from pathlib import Path

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import ListSink

HERE = Path(__file__).parent
MARK = HERE / "failed-once"


def fail_once(r):
    if r["i"] == 500 and not MARK.exists():
        MARK.write_text("x")
        raise RuntimeError("injected failure")
    return r


flow = sc.Dataflow("flaky")
(
    flow.source(JsonLinesSource(str(HERE / "in.jsonl")), batch_size=50)
    .map(fail_once, name="fail")
    .sink(ListSink())
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str, *, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float | None:
    """The first sample of ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if not labels and line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def inputs(folder: Path, n: int) -> None:
    (folder / "in.jsonl").write_text("".join(json.dumps({"i": i, "ts": i * 10}) + "\n" for i in range(n)))


def test_metrics_health_readiness_and_graph_are_served_and_counters_move(tmp_path: Path) -> None:
    inputs(tmp_path, 20_000)
    write(tmp_path, "served.py", FLOW)
    port = free_port()
    process = start(tmp_path, "run", "served:flow", "--metrics-port", str(port))
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, "/healthz")
        wait_until(lambda: get(port, "/readyz")[0] == 200, "/readyz to say ready")
        reads: list[float] = []

        def moved() -> bool:
            value = metric(get(port, "/metrics")[1], "streamcore_stage_records_in_total", stage="events")
            if value is not None and (not reads or value > reads[-1]):
                reads.append(value)
            return len(reads) >= 3

        wait_until(moved, "the source's counter to move")
        status, body = get(port, "/api/graph")
        assert status == 200
        graph: dict[str, Any] = json.loads(body)
        assert [s["name"] for s in graph["stages"]] == ["events", "key_by", "counts", "out"]
        assert {"from": "events", "to": "key_by", "port": "main"} in graph["edges"]
        assert graph["ready"] is True and {a["name"] for a in graph["actors"]} >= {"events"}
        text = get(port, "/metrics")[1]
        assert metric(text, "streamcore_mailbox_capacity", flow="served") == 2_000
        assert metric(text, "streamcore_process_resident_memory_bytes") is not None
        assert "python_gc_objects_collected_total" in text
        # Changing anything needs the token; this daemon has none, so it is disabled.
        assert get(port, "/api/stop", method="POST")[0] == 401
        assert get(port, "/api/stop", method="POST", token="guess")[0] == 403
    finally:
        process.terminate()
        stop(process, tmp_path)
        process.kill()


def test_the_stop_endpoint_needs_the_right_token_and_stops_like_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs(tmp_path, 50_000)
    write(tmp_path, "served.py", FLOW)
    port = free_port()
    monkeypatch.setenv("STREAMCORE_API_TOKEN", "s3cret")
    process = start(tmp_path, "run", "served:flow", "--metrics-port", str(port))
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, "/readyz to say ready")
        assert get(port, "/api/stop", method="POST")[0] == 401
        assert get(port, "/api/stop", method="POST", token="wrong")[0] == 403
        assert process.poll() is None
        assert get(port, "/api/stop", method="POST", token="s3cret")[0] == 202
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "stop requested over HTTP" in stderr


def test_a_failing_flow_restarts_under_the_policy_and_is_counted(tmp_path: Path) -> None:
    inputs(tmp_path, 2_000)
    write(tmp_path, "flaky.py", FAILS_ONCE)
    process = start(tmp_path, "run", "flaky:flow", "--restart", "fixed:2:100ms")
    _, stderr = stop(process, tmp_path)
    assert process.returncode == 0, stderr
    assert "flow failed, restarting flow=flaky restart=1 of=2" in stderr


def test_without_a_restart_policy_the_same_flow_fails_with_exit_1(tmp_path: Path) -> None:
    inputs(tmp_path, 2_000)
    write(tmp_path, "flaky.py", FAILS_ONCE)
    process = start(tmp_path, "run", "flaky:flow", "--restart", "never")
    _, stderr = stop(process, tmp_path)
    assert process.returncode == 1
    assert "injected failure" in stderr


def test_sighup_reloads_the_log_settings_from_the_config_file(tmp_path: Path) -> None:
    inputs(tmp_path, 50_000)
    write(tmp_path, "served.py", FLOW)
    config = tmp_path / "streamcore.toml"
    config.write_text('[run]\nlog-format = "text"\n')
    process = start(tmp_path, "run", "served:flow", "--config", str(config))
    log = tmp_path / "stderr.txt"
    try:
        wait_until(lambda: "running dataflow" in log.read_text(), "the flow to start")
        config.write_text('[run]\nlog-format = "json"\n')
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: '"message": "SIGHUP: logging reconfigured' in log.read_text(), "a JSON log line")
        process.terminate()
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    last = json.loads(stderr.strip().splitlines()[-1])
    assert last["logger"] == "streamcore.daemon" and last["level"] == "INFO"
    reloaded = next(json.loads(line) for line in stderr.splitlines() if "logging reconfigured" in line)
    assert reloaded["format"] == "json"  # the message's key=value pairs are fields


PIPELINE = """
from pathlib import Path

import streamcore as sc

HERE = Path(__file__).parent
pipe = sc.Pipeline("etl")


@pipe.task()
def extract():
    return [1, 2, 3]


@pipe.task(depends_on=[extract])
def load(rows):
    with (HERE / "loaded.txt").open("a") as f:
        f.write(f"{sum(rows)}\\n")
    return len(rows)
"""


def test_a_scheduled_pipeline_runs_now_on_request_and_lists_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "etl.py", PIPELINE)
    port = free_port()
    monkeypatch.setenv("STREAMCORE_API_TOKEN", "t0ken")
    process = start(tmp_path, "run", "etl:pipe", "--every", "1h", "--metrics-port", str(port))
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, "the daemon to serve")
        assert json.loads(get(port, "/api/runs")[1]) == {"runs": []}
        assert get(port, "/api/pipelines/etl/runs", method="POST")[0] == 401
        assert get(port, "/api/pipelines/etl/runs", method="POST", token="nope")[0] == 403
        assert get(port, "/api/pipelines/other/runs", method="POST", token="t0ken")[0] == 404
        status, body = get(port, "/api/pipelines/etl/runs", method="POST", token="t0ken")
        assert status == 202, body
        run_id = json.loads(body)["run_id"]

        def finished() -> list[Any]:
            return [r for r in json.loads(get(port, "/api/runs")[1])["runs"] if r["run_id"] == run_id]

        wait_until(lambda: bool(finished()), "the run to be listed")
        run = finished()[0]
        assert run["outcome"] == "succeeded" and run["tasks"] == {"extract": "succeeded", "load": "succeeded"}
        assert (tmp_path / "loaded.txt").read_text() == "6\n"
        assert get(port, "/api/graph")[0] == 404  # a pipeline daemon has no flow graph
        process.terminate()
        _, stderr = stop(process, tmp_path)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
