"""The flow the join crash tests kill: two JSON lines files -> a join -> JSON lines.

Run as ``python join_crash_job.py KIND LEFT RIGHT OUT REDIS_URL KEY_PREFIX``; KIND is
tumbling, sliding, session, interval or asof. Prints ``started`` once running.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import streamcore as sc
from connectors.files import JsonLinesSink, JsonLinesSource


def row(r: sc.JoinResult) -> dict[str, Any]:
    return {
        "key": r.key,
        "left": None if r.left is None else r.left["id"],
        "right": None if r.right is None else r.right["id"],
        "start": r.start,
        "end": r.end,
    }


def build(kind: str, left_path: str, right_path: str, out: str, *, rate: float | None) -> sc.Dataflow:
    """The crash-test flow; ``rate`` throttles both sources so kills land mid-run."""
    flow = sc.Dataflow(f"join-crash-{kind}")
    left, right = (
        flow.source(JsonLinesSource(path), timestamp=lambda e: e["ts"], batch_size=100, max_rate=rate, name=name)
        .key_by(lambda e: e["user"])
        for path, name in ((left_path, "left"), (right_path, "right"))
    )
    if kind == "tumbling":
        joined = left.join(right, window=sc.TumblingWindows(500), how="outer")
    elif kind == "sliding":
        joined = left.join(right, window=sc.SlidingWindows(500, 250), how="left")
    elif kind == "session":
        joined = left.join(right, window=sc.SessionWindows(200), how="inner")
    elif kind == "interval":
        joined = left.interval_join(right, lower=-100, upper=100)
    else:
        joined = left.join_asof(right, how="left")
    joined.map(row).sink(JsonLinesSink(out))
    return flow


async def main(argv: list[str]) -> None:
    kind, left, right, out, url, prefix = argv[:6]
    flow = build(kind, left, right, out, rate=2_000)
    print("started", flush=True)
    await flow.run(checkpoint=sc.Checkpointing(sc.RedisStateStore(url, key_prefix=prefix), interval=0.2))
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
