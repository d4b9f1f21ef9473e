"""W2 from topic to topic on Faust (faust-streaming), the ``faust`` workload of
``bench/bench_kafka.py``.

Runs in ``bench/.venv-kafka-peers`` (``bench/peers-kafka/setup.sh``), spawned by the
benchmark with the same broker, input topic and consumer/producer options as the other
workloads, and prints one ``BENCH_RESULT {json}`` line with ``read, first, end, done``
(``time.monotonic()``), ``cpu_seconds`` and ``peak_rss_kib``.

The state is Faust's own: the input topic is read as a ``faust.Record`` (JSON), one
agent updates a table windowed with ``.tumbling(10 s)`` and ``.relative_to_field(ts)``,
whose value per user and window is ``[count, sum of amount]`` (one table, so one
changelog record per event), through ``table[user].apply(...)``. Window bounds are in
milliseconds, the unit of ``ts``.

What differs: Faust has no event-time trigger for final window results. Its
``on_window_close`` fires from a periodic cleanup that compares a window's end with the
wall clock (``time.time()`` minus ``expires``), so over replayed events, all in the
past, every window would close at the first cleanup tick, before its late records
arrive, and windows reopened after that are dropped unseen. The job therefore closes
windows itself, with the benchmark's rule applied per partition as Quix Streams does:
the watermark of a partition is the largest ``ts`` seen in it minus 2 s, and a window
whose end is at most the watermark is read from the table, deleted from it (a changelog
tombstone) and sent to the output topic. When the last input record has been processed
the windows still open are read and sent as well (the end of input closes every
window, as in the other engines); they are not deleted, since the process ends. The
table has no ``expires``, so Faust's wall-clock cleanup never runs.

Timing: ``first`` when the agent gets the first record, ``end`` when it gets the
``--events``-th one (the input's total count), ``done`` when the last window result has
been flushed by the producer. The worker is then stopped with SIGTERM, its ordinary
way out, which commits the offsets (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT_OF_ORDER_MS, RESULT_PREFIX, TUMBLE_MS, peak_rss_kib


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's command line (given by ``bench_kafka.py``)."""
    ap = argparse.ArgumentParser(prog="faust_job.py")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic-in", required=True)
    ap.add_argument("--topic-out", required=True)
    ap.add_argument("--fetch-bytes", type=int, required=True)
    ap.add_argument("--group", required=True, help="the app id, hence the consumer group")
    ap.add_argument("--events", type=int, required=True, help="records in the input topic")
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    return ap.parse_args(argv)


def new_acc() -> list[Any]:
    """A window's value before its first record: ``[count, sum of amount]``."""
    return [0, 0.0]


def add_click(acc: list[Any], amount: float) -> list[Any]:
    """The table operation per record."""
    return [acc[0] + 1, acc[1] + amount]


def run(a: argparse.Namespace) -> dict[str, Any]:
    """Build the app, run a worker until the input is done; the timings of the run."""
    import faust

    clock = time.monotonic
    marks: dict[str, Any] = {"read": 0, "first": None, "end": None, "done": None}

    app = faust.App(
        a.group,
        broker=f"kafka://{a.bootstrap}",
        store="memory://",
        datadir=a.state_dir,
        topic_partitions=a.partitions,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=a.fetch_bytes,
        producer_acks=-1,
        producer_linger=0.005,
        web_enabled=False,
    )

    class Click(faust.Record):
        user: str
        page: str
        amount: float
        ts: int

    source = app.topic(a.topic_in, key_type=bytes, value_type=Click)
    sink = app.topic(a.topic_out, key_serializer="raw", value_serializer="json")
    windows = (
        app.Table("w2", default=new_acc, partitions=a.partitions)
        .tumbling(float(TUMBLE_MS))
        .relative_to_field(Click.ts)
    )
    window_def = windows.table.window
    events = a.events

    async def send(user: str, rng: tuple[float, float], acc: list[Any]) -> None:
        value = {"user": user, "start": int(rng[0]), "n": acc[0], "total": acc[1]}
        await sink.send(key=user.encode(), value=value)

    @app.agent(source)
    async def w2(stream: Any) -> None:
        # Per partition: the largest ts seen, and the open windows by start, each with
        # its Faust range and the users that have a value in it.
        pmax: dict[int, int] = {}
        open_windows: dict[int, dict[int, tuple[tuple[float, float], set[str]]]] = defaultdict(dict)
        async for event in stream.events():
            marks["read"] += 1
            if marks["first"] is None:
                marks["first"] = clock()
            if marks["read"] == events:
                marks["end"] = clock()
            click = event.value
            p = event.message.partition
            ts = click.ts
            windows[click.user].apply(add_click, click.amount)
            start = ts - ts % TUMBLE_MS
            part = open_windows[p]
            w = part.get(start)
            if w is None:
                w = part[start] = (window_def.current(ts), set())
            w[1].add(click.user)
            if ts > pmax.get(p, -(1 << 62)):
                pmax[p] = ts
                closed_before = ts - OUT_OF_ORDER_MS - TUMBLE_MS
                for s in sorted(s for s in part if s <= closed_before):
                    rng, users = part.pop(s)
                    for user in users:
                        ws = windows[user]
                        await send(user, rng, ws[rng])
                        del ws[rng]
            if marks["end"] is not None:
                for part in open_windows.values():
                    for s in sorted(part):
                        rng, users = part[s]
                        for user in users:
                            await send(user, rng, windows[user][rng])
                    part.clear()
                await app.producer.flush()
                marks["done"] = clock()
                os.kill(os.getpid(), signal.SIGTERM)

    # Faust logs a warning at every pause for its producer buffer (its backpressure on
    # changelog writes): hundreds per run, to no purpose here. Without a spinner: at a
    # log level of WARN or above, the worker's terminal spinner sets the root logger to
    # DEBUG so as to spin on every record, and aiokafka's and Faust's debug records per
    # message then cost about 15% of its CPU time. Worker output goes to stderr, so
    # that stdout holds only the result line.
    worker = faust.Worker(
        app, loglevel="ERROR", quiet=True, stdout=sys.stderr, redirect_stdouts=False
    )
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return marks


def main(argv: list[str] | None = None) -> None:
    """Run the job and print its result line."""
    a = parse_args(sys.argv[1:] if argv is None else argv)
    cpu0 = time.process_time()
    result = run(a)
    if result["done"] is None:
        sys.exit(f"the worker stopped before the end of the input: {result}")
    result["cpu_seconds"] = round(time.process_time() - cpu0, 3)
    result["peak_rss_kib"] = peak_rss_kib()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
