"""The main example job: per-user spend in 10-second event-time windows.

Runs on the embedded defaults (no Redis, no Kafka):

    .venv/bin/streamcore run examples/clicks.py:flow

The source is given the generator function, not a generator, so it can produce the
stream again: with ``--state redis://...`` the job checkpoints and, restarted, resumes
after the records already read.

It generates a deterministic, slightly out-of-order stream of click events, keeps the
purchases of 50 or more, sums them per user in tumbling 10 s windows (allowing 5 s of
lateness), writes every window to ``out/clicks_totals.jsonl`` and prints the big ones.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import streamcore as sc
from connectors.files import JsonLinesSink
from connectors.memory import IterableSource

EVENTS = 200_000
START_MS = 1_700_000_000_000


def clicks(n: int = EVENTS, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` click events, about one per millisecond, up to 2 s out of order."""
    rng = random.Random(seed)
    clock = START_MS
    for _ in range(n):
        clock += rng.randint(0, 2)
        yield {
            "user": f"u{int(rng.paretovariate(1.2)) % 500}",
            "amount": round(rng.uniform(0, 100), 2),
            "ts": clock - rng.randint(0, 2000),
        }


def as_row(w: sc.WindowResult) -> dict[str, Any]:
    """A window result as a JSON object."""
    return {"user": w.key, "start": w.start, "end": w.end, **w.value, "update": w.is_update}


def show(row: dict[str, Any]) -> None:
    """Print one window result on a line."""
    print(f"{row['user']:>5} [{row['start']}, {row['end']}) n={row['n']:>5} total={row['total']:>12,.2f}")


def build() -> sc.Dataflow:
    """The flow: filter, map, key, window, aggregate, two sinks."""
    flow = sc.Dataflow("clicks")
    events = flow.source(
        IterableSource(clicks),  # a factory: rewindable, so the flow runs under --state
        timestamp=lambda e: e["ts"],
        max_out_of_orderness=timedelta(seconds=2),
    )
    totals = (
        events.filter(lambda e: e["amount"] >= 50, name="purchases")
        .map(lambda e: {**e, "amount": e["amount"] * 1.1}, name="with_tax")
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(timedelta(seconds=10)), allowed_lateness=timedelta(seconds=5))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(as_row, name="as_row")
    )
    totals.sink(JsonLinesSink("out/clicks_totals.jsonl"), name="all_windows")
    totals.filter(lambda r: r["total"] > 60_000, name="big").sink(show, name="print_big")
    return flow


flow = build()
