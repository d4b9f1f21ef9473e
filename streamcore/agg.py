"""The built-in window aggregators: ``sc.agg.count()``, ``sc.agg.sum(f)``, ..."""

from streamcore.time.aggregators import collect, count, first, last, max, mean, min, sum

__all__ = ["collect", "count", "first", "last", "max", "mean", "min", "sum"]
