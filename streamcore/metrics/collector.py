"""``FlowCollector``: Prometheus metrics read from a flow's statistics at scrape time.

Labels: ``flow`` (the flow, or for a scaled-out flow each partition task,
``<flow>@<partition>``) and ``stage`` (the actor: a source, or a fused chain of stages
named after them) or ``mailbox``. Counters are the runtime's own totals, so a scrape
costs one snapshot and records pay nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamcore.runtime.actor import BATCH_BUCKETS_S, SourceActor

if TYPE_CHECKING:
    from streamcore.dataflow.handle import FlowRun

__all__ = ["METRIC_NAMES", "FlowCollector", "metrics_registry"]

_STAGE_COUNTERS = (
    ("stage_records_in", "Records into the actor (read, for a source)", "records_in"),
    ("stage_records_out", "Records out of the actor", "records_out"),
    ("stage_batches", "Batches into the actor", "batches_in"),
    ("stage_busy_seconds", "Time the actor spent processing", "busy_s"),
    ("stage_idle_seconds", "Time the actor spent waiting for input", "idle_s"),
    ("stage_backpressured_seconds", "Time the actor spent waiting for room downstream", "backpressured_s"),
    ("stage_dead_letters", "Records the actor sent to the dead letters", "dead_letters"),
    ("stage_skipped", "Records the actor skipped (on_error='skip')", "skipped"),
    ("stage_dropped", "Records a source dropped (overflow policy)", "dropped"),
)

METRIC_NAMES: tuple[str, ...] = (
    *(f"streamcore_{name}_total" for name, _, _ in _STAGE_COUNTERS),
    "streamcore_stage_batch_seconds",
    "streamcore_stage_watermark_milliseconds",
    "streamcore_stage_event_time_lag_seconds",
    "streamcore_stage_late_records_total",
    "streamcore_stage_windows_fired_total",
    "streamcore_stage_window_updates_total",
    "streamcore_stage_state_windows",
    "streamcore_stage_state_entries",
    "streamcore_source_lag_records",
    "streamcore_mailbox_size",
    "streamcore_mailbox_capacity",
    "streamcore_mailbox_blocked_seconds_total",
    "streamcore_checkpoints_completed_total",
    "streamcore_checkpoints_failed_total",
    "streamcore_checkpoint_last_duration_seconds",
    "streamcore_checkpoint_last_bytes",
    "streamcore_checkpoint_last_id",
    "streamcore_checkpoint_last_age_seconds",
    "streamcore_flow_restarts_total",
    "streamcore_flow_tasks",
    "streamcore_process_cpu_seconds_total",
    "streamcore_process_resident_memory_bytes",
    "streamcore_process_open_files",
    "streamcore_process_threads",
)
"""Every metric name this module exports (the samples of a counter end in ``_total``)."""


class FlowCollector(Collector):
    """Collects the metrics of a flow's run whenever the registry is scraped."""

    def __init__(self, run: FlowRun) -> None:
        self.run = run

    def collect(self) -> Iterable[Metric]:
        """One family per metric, a sample per flow (task) and stage or mailbox."""
        run = self.run
        flow = run.flow
        labels = ["flow", "stage"]
        counters = {
            attr: CounterMetricFamily(f"streamcore_{name}", doc, labels=labels)
            for name, doc, attr in _STAGE_COUNTERS
        }
        watermark = GaugeMetricFamily(
            "streamcore_stage_watermark_milliseconds", "The actor's event-time watermark", labels=labels
        )
        lag = GaugeMetricFamily(
            "streamcore_stage_event_time_lag_seconds", "Wall clock minus the actor's watermark", labels=labels
        )
        size = GaugeMetricFamily("streamcore_mailbox_size", "Records waiting in the mailbox", labels=["flow", "mailbox"])
        capacity = GaugeMetricFamily("streamcore_mailbox_capacity", "Mailbox capacity", labels=["flow", "mailbox"])
        blocked = CounterMetricFamily(
            "streamcore_mailbox_blocked_seconds", "Time senders waited for room", labels=["flow", "mailbox"]
        )
        cp_done = CounterMetricFamily("streamcore_checkpoints_completed", "Checkpoints completed", labels=["flow"])
        cp_failed = CounterMetricFamily("streamcore_checkpoints_failed", "Checkpoints failed", labels=["flow"])
        cp_duration = GaugeMetricFamily(
            "streamcore_checkpoint_last_duration_seconds", "Duration of the last checkpoint", labels=["flow"]
        )
        cp_bytes = GaugeMetricFamily("streamcore_checkpoint_last_bytes", "Bytes of the last checkpoint", labels=["flow"])
        cp_id = GaugeMetricFamily("streamcore_checkpoint_last_id", "Id of the last complete checkpoint", labels=["flow"])
        batch_time = HistogramMetricFamily(
            "streamcore_stage_batch_seconds",
            "Time an actor took to handle a batch (including any wait for room downstream)",
            labels=labels,
        )
        late = CounterMetricFamily(
            "streamcore_stage_late_records", "Records later than the allowed lateness (to .late)", labels=labels
        )
        fired = CounterMetricFamily("streamcore_stage_windows_fired", "Window results emitted", labels=labels)
        updates = CounterMetricFamily(
            "streamcore_stage_window_updates", "Updated results caused by late records", labels=labels
        )
        state_windows = GaugeMetricFamily(
            "streamcore_stage_state_windows", "Open windows (panes or sessions) held", labels=labels
        )
        state_entries = GaugeMetricFamily(
            "streamcore_stage_state_entries", "Key-and-window accumulators held", labels=labels
        )
        join_state = GaugeMetricFamily(
            "streamcore_stage_join_state_records", "Records held in a join's state", labels=labels
        )
        join_pairs = CounterMetricFamily("streamcore_stage_join_pairs", "Joined pairs emitted", labels=labels)
        join_unmatched = CounterMetricFamily(
            "streamcore_stage_join_unmatched", "Join results without a partner (or dropped for want of one)",
            labels=labels,
        )
        source_lag = GaugeMetricFamily(
            "streamcore_source_lag_records", "Records left to read per partition (Kafka consumer lag)",
            labels=["flow", "stage", "partition"],
        )
        cp_age = GaugeMetricFamily(
            "streamcore_checkpoint_last_age_seconds", "Time since the last checkpoint completed", labels=["flow"]
        )
        restarts = CounterMetricFamily(
            "streamcore_flow_restarts", "Restarts under the restart policy", labels=["flow"]
        )
        tasks = GaugeMetricFamily("streamcore_flow_tasks", "Runtimes running (partition tasks)", labels=["flow"])
        now_ms = time.time() * 1000
        runtimes = sorted(run.runtimes(), key=lambda r: r.flow.name)
        for runtime in runtimes:
            stats = runtime.statistics()
            name = stats.flow
            for actor in stats.actors:
                key = [name, actor.name]
                for attr, family in counters.items():
                    family.add_metric(key, float(getattr(actor, attr)))
                if actor.batch_seconds_counts:
                    running, buckets = 0, []
                    for bound, n in zip((*BATCH_BUCKETS_S, math.inf), actor.batch_seconds_counts, strict=True):
                        running += n
                        buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
                    batch_time.add_metric(key, buckets, actor.batch_seconds_sum)
                if math.isfinite(actor.watermark_ms):
                    watermark.add_metric(key, actor.watermark_ms)
                    lag.add_metric(key, max(0.0, (now_ms - actor.watermark_ms) / 1000))
            for stage, extra in stats.stages.items():
                key = [name, stage]
                pairs: tuple[tuple[Any, str], ...] = (
                    (late, "late"), (fired, "fired"), (updates, "updates"),
                    (state_windows, "windows"), (state_entries, "accumulators"),
                    (join_state, "state_records"), (join_pairs, "pairs"), (join_unmatched, "unmatched"),
                )
                for stage_family, attr in pairs:
                    if hasattr(extra, attr):
                        stage_family.add_metric(key, float(getattr(extra, attr)))
            for actor_obj in runtime.actors:
                if isinstance(actor_obj, SourceActor):
                    for partition, n in sorted(actor_obj.source.lag().items()):
                        source_lag.add_metric([name, actor_obj.name, str(partition)], n)
            for box, m in stats.mailboxes.items():
                size.add_metric([name, box], m.size)
                capacity.add_metric([name, box], m.capacity)
                blocked.add_metric([name, box], m.blocked_s)
            coordinator = runtime.coordinator
            if coordinator is not None:
                cp = coordinator.statistics()
                cp_done.add_metric([name], cp.completed)
                cp_failed.add_metric([name], cp.failed)
                if cp.last_id is not None:
                    cp_id.add_metric([name], cp.last_id)
                    cp_duration.add_metric([name], cp.last_duration_s or 0.0)
                    cp_bytes.add_metric([name], cp.last_bytes or 0)
                if cp.last_completed_unix_s is not None:
                    cp_age.add_metric([name], max(0.0, time.time() - cp.last_completed_unix_s))
        restarts.add_metric([flow.name], run.restarts)
        tasks.add_metric([flow.name], len(runtimes))
        yield from counters.values()
        yield from (batch_time, watermark, lag, late, fired, updates, state_windows, state_entries, source_lag)
        yield from (join_state, join_pairs, join_unmatched)
        yield from (size, capacity, blocked, cp_done, cp_failed, cp_duration, cp_bytes, cp_id, cp_age)
        yield from (restarts, tasks)


class _PsutilCollector(Collector):
    """The process as psutil sees it: CPU, RSS, open files, threads."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()

    def collect(self) -> Iterator[Metric]:
        p = self._process
        with p.oneshot():
            cpu = p.cpu_times()
            yield CounterMetricFamily(
                "streamcore_process_cpu_seconds", "CPU time of the process (user + system)",
                value=cpu.user + cpu.system,
            )
            yield GaugeMetricFamily(
                "streamcore_process_resident_memory_bytes", "Resident set size", value=p.memory_info().rss
            )
            yield GaugeMetricFamily("streamcore_process_open_files", "Open files", value=len(p.open_files()))
            yield GaugeMetricFamily("streamcore_process_threads", "Threads", value=p.num_threads())


def metrics_registry(run: FlowRun | None) -> CollectorRegistry:
    """A registry with the metrics of a flow's ``run`` (if any), the process (psutil) and
    Python's collectors."""
    registry = CollectorRegistry(auto_describe=False)
    if run is not None:
        registry.register(FlowCollector(run))
    registry.register(_PsutilCollector())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
