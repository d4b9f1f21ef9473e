"""Prometheus metrics of a running flow, read from its statistics at scrape time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import streamcore as sc
from connectors.files import JsonLinesSource
from connectors.memory import ListSink
from streamcore.dataflow.handle import FlowRun
from streamcore.metrics import METRIC_NAMES, metrics_registry
from tests.state.test_checkpoints import window_flow, write_events


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_counters_move_while_the_flow_runs_and_every_documented_name_is_exported(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 6_000)
    flow = window_flow("metrics", path, ListSink(), rate=10_000)
    handle = FlowRun(flow, sc.Checkpointing(sc.MemoryStateStore(), interval=0.05))
    registry = metrics_registry(handle)  # before the start: a scrape then shows no task
    await handle.start()
    run = asyncio.ensure_future(handle.wait())
    deadline = time.monotonic() + 20
    seen: list[float] = []
    try:
        while len(set(seen)) < 3:
            assert time.monotonic() < deadline, "the source counter did not move"
            found = samples(registry)
            read = value(found, "streamcore_stage_records_in_total", flow="metrics", stage="json_lines")
            if read:
                seen.append(read)
            await asyncio.sleep(0.05)
        found = samples(registry)
        await asyncio.wait_for(run, 20)
    finally:
        run.cancel()
    names = {name for name, _ in found} | {n[: -len("_bucket")] for n, _ in found if n.endswith("_bucket")}
    for name in METRIC_NAMES:
        if name != "streamcore_source_lag_records":  # Kafka sources only (test_kafka.py)
            assert name in names, name
    assert value(found, "streamcore_stage_state_windows", flow="metrics", stage="window") is not None
    batches = value(found, "streamcore_stage_batch_seconds_count", flow="metrics", stage="key_by+window+row+out")
    assert batches is not None and batches > 0
    assert seen == sorted(seen)
    assert value(found, "streamcore_mailbox_capacity", flow="metrics", mailbox="key_by+window+row+out") == 2_000
    assert (value(found, "streamcore_checkpoints_completed_total", flow="metrics") or 0) >= 1
    assert (value(found, "streamcore_process_resident_memory_bytes") or 0) > 10_000_000
    final = samples(registry)
    assert value(final, "streamcore_stage_records_in_total", flow="metrics", stage="json_lines") == 6_000


def test_a_flow_not_started_exports_its_restarts_and_no_task() -> None:
    flow = sc.Dataflow("idle")
    flow.source(JsonLinesSource("nothing.jsonl")).sink(ListSink())
    found = samples(metrics_registry(FlowRun(flow)))
    assert value(found, "streamcore_flow_tasks", flow="idle") == 0
    assert value(found, "streamcore_flow_restarts_total", flow="idle") == 0
