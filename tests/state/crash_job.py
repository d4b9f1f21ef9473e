"""The flow the crash tests kill: JSON lines -> keyed tumbling windows -> JSON lines.

Run as ``python crash_job.py EVENTS OUT REDIS_URL KEY_PREFIX [--slow-commit]``. It prints
``started`` once running, and with ``--slow-commit`` ``committing <n>`` just before each
checkpoint's atomic commit, which then waits a moment so a kill can land inside it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import streamcore as sc
from connectors.files import JsonLinesSink, JsonLinesSource
from streamcore.state.store import BytesLike


class SlowCommitStore(sc.RedisStateStore):
    """A real Redis store whose checkpoint commits announce themselves and take longer."""

    async def commit(self, puts: Mapping[str, BytesLike], deletes: Iterable[str]) -> None:
        manifest = [k for k in puts if k.endswith("/manifest")]
        if manifest:
            print(f"committing {manifest[0]}", flush=True)
            # Widens the window in which the kill lands mid-checkpoint.
            await asyncio.sleep(0.05)
        await super().commit(puts, deletes)


def build(events: str, out: str, *, rate: float | None) -> sc.Dataflow:
    """The crash-test flow; ``rate`` throttles the source so kills land mid-run."""
    flow = sc.Dataflow("crash")
    (
        flow.source(JsonLinesSource(events), timestamp=lambda e: e["ts"], batch_size=200, max_rate=rate)
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: {"user": r.key, "start": r.start, "n": r.value["n"], "total": r.value["total"]})
        .sink(JsonLinesSink(out))
    )
    return flow


async def main(argv: list[str]) -> None:
    events, out, url, prefix = argv[:4]
    store_cls: Any = SlowCommitStore if "--slow-commit" in argv else sc.RedisStateStore
    flow = build(events, out, rate=20_000)
    print("started", flush=True)
    await flow.run(checkpoint=sc.Checkpointing(store_cls(url, key_prefix=prefix), interval=0.2))
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
