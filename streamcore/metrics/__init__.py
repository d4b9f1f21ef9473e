"""Metrics: a running flow's statistics as Prometheus metrics.

``FlowCollector`` reads ``statistics()`` snapshots when Prometheus scrapes (nothing is
counted twice and the hot path pays nothing); ``metrics_registry`` puts it in a
registry with the process collectors. The names are in docs/operations.md.
"""

from streamcore.metrics.collector import METRIC_NAMES, FlowCollector, metrics_registry

__all__ = ["METRIC_NAMES", "FlowCollector", "metrics_registry"]
