"""The flow the Redis crash tests kill: a stream -> tumbling windows per user -> a stream and hashes.

``streamcore run tests/connectors/redis_crash_job.py:flow --state REDIS_URL`` with, in the
environment, ``RCRASH_URL`` (the Redis of the streams), ``RCRASH_IN``, ``RCRASH_OUT``
(stream names), ``RCRASH_HASHES`` (the prefix of the result hashes) and
``RCRASH_EXACTLY_ONCE`` (``1`` or ``0``). The source reads in a consumer group and stops
at the end of what the stream held when it started, so an uninterrupted run ends by
itself; it is throttled so that a kill lands mid-stream.
"""

from __future__ import annotations

import os
from typing import Any

import streamcore as sc
from connectors.redis import RedisHashSink, RedisStreamSink, RedisStreamSource


def parse(r: Any) -> dict[str, Any]:
    f = r.fields
    return {"user": f["user"], "amount": int(f["amount"]), "ts": int(f["ts"])}


def build(url: str, stream_in: str, stream_out: str, hashes: str, *, exactly_once: bool, rate: float | None) -> sc.Dataflow:
    """Windows per user over ``stream_in``, to ``stream_out`` and to one hash per window."""
    flow = sc.Dataflow(f"redis-crash-{stream_in}")
    results = (
        flow.source(
            RedisStreamSource(stream_in, url=url, group=f"{stream_in}-g", consumer="worker", count=100,
                              stop_at_end=True),
            name="redis",
            timestamp=lambda r: int(r.fields["ts"]),
            batch_size=100,
            max_rate=rate,
        )
        .map(parse)
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(1000))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .map(lambda r: {"user": r.key, "start": r.start, "n": r.value["n"], "total": r.value["total"]})
    )
    results.sink(RedisStreamSink(stream_out, url=url, exactly_once=exactly_once), name="stream")
    results.sink(RedisHashSink(url=url, key=lambda v: f"{hashes}:{v['user']}:{v['start']}",
                               fields=lambda v: {"n": v["n"], "total": v["total"]}), name="hashes")
    return flow


def flow() -> sc.Dataflow:
    """The job, configured from the environment."""
    env = os.environ
    return build(env["RCRASH_URL"], env["RCRASH_IN"], env["RCRASH_OUT"], env["RCRASH_HASHES"],
                 exactly_once=env.get("RCRASH_EXACTLY_ONCE", "1") == "1", rate=3000)
