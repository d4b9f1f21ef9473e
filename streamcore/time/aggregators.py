"""Incremental aggregations for windows: ``sc.Aggregator`` and the built-ins in ``sc.agg``.

An aggregator keeps one small accumulator per key and window (never a buffer of
records, unless the user asks for ``collect``). Built-ins carry a ``kind`` so the window
stage can inline their update into its per-batch loop; a user ``Aggregator`` is called.

Invariants:
1. ``add`` is called in arrival order; ``merge(a, b)`` combines ``a``, from the earlier
   pane or session in time, with ``b`` and returns the result. Sliding windows combine the
   same pane accumulator into several windows, so ``merge`` (and a ``reduce`` function)
   must return a new value and change neither argument.
2. ``first`` / ``last`` / ``collect`` follow arrival order at the window stage, exactly
   also across merged panes and sessions (they keep an arrival sequence number).
Design: docs/event-time.md#aggregations
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

from streamcore.errors import GraphError

__all__ = [
    "Aggregation",
    "Aggregator",
    "collect",
    "count",
    "first",
    "last",
    "max",
    "mean",
    "min",
    "reducer",
    "sum",
]

_builtin_min = min
_builtin_max = max


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""The accumulator of min/max/first/last/reduce before any record."""


def _identity(x: Any) -> Any:
    return x


class Aggregator:
    """An incremental aggregation: ``create() -> acc``, ``add(acc, record) -> acc``,
    ``merge(acc, acc) -> acc`` (needed by session and sliding windows), ``result(acc) -> value``.
    """

    kind = "custom"

    def __init__(
        self,
        create: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
        result: Callable[[Any], Any] | None = None,
        *,
        name: str = "aggregator",
    ) -> None:
        for what, fn in (("create", create), ("add", add)):
            if not callable(fn):
                raise GraphError(f"Aggregator {what} must be a function, got {fn!r}")
        self.create = create
        self.add = add
        self.merge = merge
        self.result = result if result is not None else _identity
        self.name = name
        self.fn: Callable[[Any], Any] = _identity

    def __repr__(self) -> str:
        return f"<Aggregator {self.name}>"


class _Builtin(Aggregator):
    """A built-in aggregator; ``fn`` extracts the value to aggregate from a record."""

    def __init__(self, kind: str, fn: Callable[[Any], Any] | None) -> None:
        if fn is not None and not callable(fn):
            raise GraphError(f"sc.agg.{kind}() takes a function of the record, got {fn!r}")
        self.kind = kind
        self.name = kind
        self.fn = fn if fn is not None else _identity
        self.create, self.add, self.merge, self.result = _BUILTIN_OPS[kind](self.fn)

    def __repr__(self) -> str:
        return f"sc.agg.{self.kind}()"


def _ops_count(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    return (lambda: 0), (lambda a, r: a + 1), (lambda a, b: a + b), _identity


def _ops_sum(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    return (lambda: 0), (lambda a, r: a + fn(r)), (lambda a, b: a + b), _identity


def _ops_min(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    def add(a: Any, r: Any) -> Any:
        v = fn(r)
        return v if a is UNSET or v < a else a

    def merge(a: Any, b: Any) -> Any:
        return b if a is UNSET or (b is not UNSET and b < a) else a

    return (lambda: UNSET), add, merge, (lambda a: None if a is UNSET else a)


def _ops_max(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    def add(a: Any, r: Any) -> Any:
        v = fn(r)
        return v if a is UNSET or v > a else a

    def merge(a: Any, b: Any) -> Any:
        return b if a is UNSET or (b is not UNSET and b > a) else a

    return (lambda: UNSET), add, merge, (lambda a: None if a is UNSET else a)


def _ops_mean(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    def add(a: list[Any], r: Any) -> list[Any]:
        a[0] += 1
        a[1] += fn(r)
        return a

    return (
        (lambda: [0, 0]),
        add,
        (lambda a, b: [a[0] + b[0], a[1] + b[1]]),
        (lambda a: a[1] / a[0] if a[0] else None),
    )


# first / last / collect keep (arrival sequence, value) so merges stay exact; the window
# stage passes records to ``add`` as (sequence, record) pairs for these kinds.
def _ops_first(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    return (
        (lambda: UNSET),
        (lambda a, sr: (sr[0], fn(sr[1])) if a is UNSET else a),
        (lambda a, b: b if a is UNSET or (b is not UNSET and b[0] < a[0]) else a),
        (lambda a: None if a is UNSET else a[1]),
    )


def _ops_last(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    return (
        (lambda: UNSET),
        (lambda a, sr: (sr[0], fn(sr[1]))),
        (lambda a, b: b if a is UNSET or (b is not UNSET and b[0] > a[0]) else a),
        (lambda a: None if a is UNSET else a[1]),
    )


def _ops_collect(fn: Callable[[Any], Any]) -> tuple[Any, ...]:
    def add(a: list[Any], sr: Any) -> list[Any]:
        a.append((sr[0], fn(sr[1])))
        return a

    return (
        list,
        add,
        (lambda a, b: list(heapq.merge(a, b, key=lambda p: p[0]))),
        (lambda a: [v for _, v in a]),
    )


_BUILTIN_OPS: dict[str, Callable[[Callable[[Any], Any]], tuple[Any, ...]]] = {
    "count": _ops_count,
    "sum": _ops_sum,
    "min": _ops_min,
    "max": _ops_max,
    "mean": _ops_mean,
    "first": _ops_first,
    "last": _ops_last,
    "collect": _ops_collect,
}
SEQUENCED_KINDS = frozenset({"first", "last", "collect"})


def count() -> Aggregator:
    """The number of records."""
    return _Builtin("count", None)


def sum(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """The sum of ``fn(record)``."""
    return _Builtin("sum", fn)


def min(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """The smallest ``fn(record)`` (None for an empty window)."""
    return _Builtin("min", fn)


def max(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """The largest ``fn(record)``."""
    return _Builtin("max", fn)


def mean(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """The arithmetic mean of ``fn(record)``."""
    return _Builtin("mean", fn)


def first(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """``fn`` of the first record to arrive in the window."""
    return _Builtin("first", fn)


def last(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """``fn`` of the last record to arrive in the window."""
    return _Builtin("last", fn)


def collect(fn: Callable[[Any], Any] | None = None) -> Aggregator:
    """The list of ``fn(record)`` in arrival order."""
    return _Builtin("collect", fn)


def reducer(fn: Callable[[Any, Any], Any]) -> Aggregator:
    """An aggregator folding records pairwise with ``fn`` (``WindowedStream.reduce``)."""
    if not callable(fn):
        raise GraphError(f"reduce() takes a function of two records, got {fn!r}")

    def add(a: Any, r: Any) -> Any:
        return r if a is UNSET else fn(a, r)

    def merge(a: Any, b: Any) -> Any:
        if a is UNSET:
            return b
        return a if b is UNSET else fn(a, b)

    return Aggregator(lambda: UNSET, add, merge, lambda a: None if a is UNSET else a, name="reduce")


class Aggregation:
    """One aggregator, or a dict of named ones, as the window stage uses them.

    The accumulator of a key and window is a list with one slot per aggregator.
    """

    def __init__(self, parts: list[tuple[str | None, Aggregator]]) -> None:
        self.parts = parts
        self.single = len(parts) == 1 and parts[0][0] is None
        self.names = [n for n, _ in parts]
        self.sequenced = any(a.kind in SEQUENCED_KINDS for _, a in parts)
        self.can_merge = all(a.merge is not None for _, a in parts)
        creates = [a.create for _, a in parts]
        self._creates = creates
        merges = [a.merge for _, a in parts]
        self._merges = merges
        results = [a.result for _, a in parts]
        self._results = results

    @staticmethod
    def of(spec: Any) -> Aggregation:
        """Build from ``sc.agg.count()`` or ``{"n": sc.agg.count(), ...}``."""
        if isinstance(spec, Aggregator):
            return Aggregation([(None, spec)])
        if isinstance(spec, Mapping) and spec:
            parts: list[tuple[str | None, Aggregator]] = []
            for name, agg in spec.items():
                if not isinstance(name, str) or not isinstance(agg, Aggregator):
                    raise GraphError(
                        f"aggregate() takes a dict of name -> sc.agg aggregator; got {name!r}: {agg!r}"
                    )
                parts.append((name, agg))
            return Aggregation(parts)
        raise GraphError(
            "aggregate() takes an sc.Aggregator (e.g. sc.agg.count()) or a non-empty dict of them, "
            f"got {spec!r}"
        )

    def describe(self) -> str:
        """A short text for messages."""
        return ", ".join(repr(a) for _, a in self.parts)

    def create(self) -> list[Any]:
        """A fresh accumulator."""
        return [c() for c in self._creates]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        """Combine two accumulators (see invariant 1 of the module)."""
        return [m(x, y) for m, x, y in zip(self._merges, a, b, strict=True)]  # type: ignore[misc]

    def copy(self, a: list[Any]) -> list[Any]:
        """An independent copy of ``a`` (merged into a fresh accumulator)."""
        return self.merge(self.create(), a)

    def result(self, acc: list[Any]) -> Any:
        """The window's value: the single result, or a dict by name."""
        if self.single:
            return self._results[0](acc[0])
        return {n: r(x) for n, r, x in zip(self.names, self._results, acc, strict=True)}


_ = (_builtin_min, _builtin_max)
