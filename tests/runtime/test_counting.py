"""Every record that leaves the main path is counted (statistics, metrics) and logged at a bounded rate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import streamcore as sc
from connectors.files import CsvSource, JsonLinesSource
from connectors.memory import IterableSource, ListSink
from streamcore.drop_log import DropLog
from streamcore.metrics import metrics_registry


def metric(flow: sc.Dataflow, name: str, stage: str) -> float | None:
    """The metric of the flow's latest run."""
    run = flow._latest_run
    assert run is not None
    for family in text_string_to_metric_families(generate_latest(metrics_registry(run)).decode()):
        for s in family.samples:
            if s.name == name and s.labels.get("stage") == stage:
                return float(s.value)
    return None


def lines_logged(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(what)]


def test_undecodable_json_lines_under_skip_are_counted_in_statistics_and_metrics_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n{oops\n{"a": 2}\nnot json\n{"a": 3}\n')
    flow = sc.Dataflow("skips")
    out = ListSink()
    flow.source(JsonLinesSource(path), name="lines", on_error="skip").sink(out)
    with caplog.at_level(logging.WARNING):
        flow.run_sync()
    assert [r["a"] for r in out.items] == [1, 2, 3]
    assert flow.statistics().actor("lines").skipped == 2
    assert metric(flow, "streamcore_stage_skipped_total", "lines") == 2
    logged = lines_logged(caplog, "skipped record stage=lines")
    assert len(logged) == 2
    assert f"where='file {path} line 2'" in logged[0] and f"where='file {path} line 4'" in logged[1]


def test_bad_csv_rows_under_skip_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3\n4,5\n")
    flow = sc.Dataflow("csv-skips")
    flow.source(CsvSource(path), name="rows", on_error="skip").sink(ListSink())
    flow.run_sync()
    assert flow.statistics().actor("rows").skipped == 1


def test_timestamp_failures_under_skip_are_counted_and_logged_with_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = sc.Dataflow("bad-times")
    records = [{"ts": 1}, {"id": 7}, {"ts": 2}]
    flow.source(IterableSource(records), name="events", timestamp=lambda r: r["ts"], on_error="skip").sink(
        ListSink()
    )
    with caplog.at_level(logging.WARNING):
        flow.run_sync()
    assert flow.statistics().actor("events").skipped == 1
    assert metric(flow, "streamcore_stage_skipped_total", "events") == 1
    [line] = lines_logged(caplog, "skipped record stage=events")
    assert "record={'id': 7}" in line and "cannot take the event time" not in line and "'ts'" in line


def test_dead_lettered_and_late_records_are_logged_with_where_they_came_from(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def check(r: dict[str, Any]) -> dict[str, Any]:
        if r["v"] < 0:
            raise ValueError("negative")
        return r

    flow = sc.Dataflow("dead-and-late")
    records = [{"v": 1, "ts": 100_000}, {"v": -1, "ts": 100_001}, {"v": 2, "ts": 5}]
    (
        flow.source(IterableSource(records), timestamp=lambda r: r["ts"], batch_size=1)
        .map(check, name="check", on_error="dead_letter")
        .key_by(lambda r: "k")
        .window(sc.TumblingWindows(1_000))
        .aggregate(sc.agg.count(), name="counts")
        .sink(ListSink())
    )
    flow.dead_letters.sink(ListSink())
    with caplog.at_level(logging.INFO):
        flow.run_sync()
    [dead] = lines_logged(caplog, "dead-lettered record stage=check")
    assert "record={'v': -1, 'ts': 100001}" in dead and "negative" in dead
    [late] = lines_logged(caplog, "late record stage=counts")
    assert "timestamp_ms=5 watermark_ms=100001" in late
    assert flow.statistics().actor("check").dead_letters == 1
    assert metric(flow, "streamcore_stage_dead_letters_total", "check+key_by+counts+list_sink") == 1
    assert metric(flow, "streamcore_stage_late_records_total", "counts") == 1


def test_many_bad_records_are_logged_one_by_one_then_summarised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("oops\n" * 500 + '{"a": 1}\n')
    flow = sc.Dataflow("many-skips")
    flow.source(JsonLinesSource(path), name="lines", on_error="skip").sink(ListSink())
    with caplog.at_level(logging.WARNING):
        flow.run_sync()
    assert flow.statistics().actor("lines").skipped == 500
    logged = lines_logged(caplog, "skipped record")
    assert len(logged) == 10
    assert "summarised every 60 s" in logged[-1]


def test_the_drop_log_summarises_once_per_interval() -> None:
    now = [0.0]
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("tests.drop_log")
    logger.addHandler(handler := Collect())
    logger.propagate = False
    try:
        drops = DropLog(logger, first=2, every_s=10, clock=lambda: now[0])
        for i in range(5):
            drops.record("skipped", "s", f"n={i}")
        assert len(messages) == 2  # the first two; three more wait for the interval
        now[0] = 10.0
        drops.record("skipped", "s", "n=5")
        assert messages[-1] == "skipped records stage=s count=4 total=6 latest: n=5"
        drops.record("skipped", "s", "n=6")
        drops.record("dropped", "s", "records=3")  # another kind has its own budget
        assert len(messages) == 4 and messages[-1].startswith("dropped record stage=s records=3")
    finally:
        logger.removeHandler(handler)
