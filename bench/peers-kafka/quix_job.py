"""W2 from topic to topic on Quix Streams, the ``quix`` workload of ``bench/bench_kafka.py``.

Runs in ``bench/.venv-kafka-peers`` (``bench/peers-kafka/setup.sh``), spawned by the
benchmark with the same broker, input topic and consumer/producer options as the other
workloads, and prints one ``BENCH_RESULT {json}`` line with ``read, first, end, done``
(``time.monotonic()``), ``cpu_seconds`` and ``peak_rss_kib``.

The pipeline is Quix Streams' own: ``app.topic(..., value_deserializer="json")`` ->
``set_timestamp(ts)`` -> ``tumbling_window(10 s, grace 2 s)`` ->
``agg(n=Count(), total=Sum("amount"))`` -> ``final(closing_strategy="partition")`` ->
``apply`` to the benchmark's record shape -> ``to_topic``, at least once, with the
default RocksDB state and its changelog topic. With the ``partition`` strategy a window
closes once the largest ``ts`` seen in its partition passes its end plus the grace:
the benchmark's watermark taken per partition instead of over all partitions.

What differs: Quix Streams has no end of stream, so the windows still open when the
input runs out would stay open for ever. The job marks the end as the other engines
do: a first step, ``apply(..., expand=True)``, passes every record through and after the
last record of a partition (its end offset, read before the run) adds one marker record
with a ``ts`` just past the last window's end plus the grace (``--marker-ts``, from the
driver, which knows the input). The marker goes through the same window operator and
state partition and closes every window left in its partition; its own window never
closes and so is never written. (A control topic concatenated with the input, the other
way to inject it, makes Quix Streams align the two topics by timestamp, and that
alignment stalled the consumer: about 35% fewer events/s in a trial.)

Timing: ``first`` when the first input record enters the first step, ``end`` when the
last one does (the ``--events``-th: the input's total count), ``done`` when
``Application.run`` returned, after the last windows were written and the final
checkpoint flushed the producer and committed the offsets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT_OF_ORDER_MS, RESULT_PREFIX, TUMBLE_MS, peak_rss_kib


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's command line (given by ``bench_kafka.py``)."""
    ap = argparse.ArgumentParser(prog="quix_job.py")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-in", required=True)
    ap.add_argument("--topic-out", required=True)
    ap.add_argument("--fetch-bytes", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--events", type=int, required=True, help="records in the input topic")
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument(
        "--marker-ts", type=int, required=True,
        help="ts of the end-of-input markers: the input's largest ts + window + grace",
    )  # fmt: skip
    return ap.parse_args(argv)


def run(a: argparse.Namespace) -> dict[str, Any]:
    """Build and run the application; the timings of the run."""
    from confluent_kafka import TopicPartition
    from quixstreams import Application, message_context
    from quixstreams.dataframe.windows import Count, Sum

    clock = time.monotonic
    marks: dict[str, Any] = {"read": 0, "first": None, "end": None}
    events = a.events
    marker = {"user": "", "amount": 0.0, "ts": a.marker_ts}

    def on_processed(topic: str, partition: int, offset: int) -> None:
        # The first call after the end is for the last record, fully processed.
        if marks["end"] is not None:
            app.stop()

    app = Application(
        broker_address=a.bootstrap,
        consumer_group=a.group,
        auto_offset_reset="earliest",
        state_dir=a.state_dir,
        consumer_extra_config={"max.partition.fetch.bytes": a.fetch_bytes},
        producer_extra_config={"acks": "all", "linger.ms": 5},
        on_message_processed=on_processed,
        loglevel="WARNING",
    )
    with app.get_consumer() as consumer:
        last_offset = {}
        for p in range(a.partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(a.topic_in, p), timeout=30)
            if high > 0:
                last_offset[p] = high - 1

    def count_and_mark(value: dict[str, Any]) -> list[dict[str, Any]]:
        marks["read"] += 1
        if marks["first"] is None:
            marks["first"] = clock()
        if marks["read"] == events:
            marks["end"] = clock()
        ctx = message_context()
        if ctx.offset == last_offset.get(ctx.partition):
            return [value, marker]
        return [value]

    source = app.topic(a.topic_in, value_deserializer="json")
    sink = app.topic(a.topic_out, value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(count_and_mark, expand=True)
    sdf = sdf.set_timestamp(lambda value, key, ts, headers: value["ts"])
    sdf = (
        sdf.tumbling_window(duration_ms=TUMBLE_MS, grace_ms=OUT_OF_ORDER_MS)
        .agg(n=Count(), total=Sum("amount"))
        .final(closing_strategy="partition")
    )
    sdf = sdf.apply(
        lambda w, key, ts, headers: {
            "user": key.decode(),
            "start": w["start"],
            "n": w["n"],
            "total": w["total"],
        },
        metadata=True,
    )
    sdf.to_topic(sink)

    app.run()
    done = clock()
    return {"read": marks["read"], "first": marks["first"], "end": marks["end"], "done": done}


def main(argv: list[str] | None = None) -> None:
    """Run the job and print its result line."""
    a = parse_args(sys.argv[1:] if argv is None else argv)
    cpu0 = time.process_time()
    result = run(a)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 3)
    result["peak_rss_kib"] = peak_rss_kib()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
