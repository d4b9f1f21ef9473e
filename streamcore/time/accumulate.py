"""Generated code that adds records into accumulators, specialised to the aggregators.

Built-in aggregators become inline statements (``a[0] += 1``); user aggregators are
called. Values are extracted from the record before any slot changes, so a failing
extractor leaves the accumulator as it was.
Design: docs/event-time.md#aggregations
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamcore.item_lookup import item_lookup
from streamcore.time.aggregators import UNSET, Aggregation, _identity

__all__ = ["Combiners", "add_statements", "create_expression"]

# What ``create()`` returns for each built-in kind, as source: a fresh accumulator is then
# a list display instead of a call running one lambda per slot.
_CREATE = {
    "count": "0",
    "sum": "0",
    "min": "UNSET",
    "max": "UNSET",
    "mean": "[0, 0]",
    "first": "UNSET",
    "last": "UNSET",
    "collect": "[]",
}


def create_expression(agg: Aggregation, namespace: dict[str, Any]) -> str:
    """Source of an expression equal to ``agg.create()``, a fresh accumulator.

    Fills ``namespace`` with what it refers to; a user aggregator's slot calls its create.
    """
    namespace["UNSET"] = UNSET
    slots = []
    for i, (_, a) in enumerate(agg.parts):
        literal = _CREATE.get(a.kind)
        if literal is None:
            namespace[f"create{i}"] = a.create
            literal = f"create{i}()"
        slots.append(literal)
    return "[" + ", ".join(slots) + "]"


def add_statements(agg: Aggregation, namespace: dict[str, Any], indent: str) -> list[str]:
    """Source lines adding record ``x`` (arrival number ``seq``) into accumulator ``a``.

    Fills ``namespace`` with the functions the lines call.
    """
    namespace["UNSET"] = UNSET
    extract: list[str] = []
    update: list[str] = []
    for i, (_, a) in enumerate(agg.parts):
        g = f"g{i}"
        namespace[g] = a.fn
        value = "x" if a.fn is _identity else f"v{i}"
        if a.kind != "count" and a.kind != "custom" and a.fn is not _identity:
            lookup = item_lookup(a.fn)
            if lookup is None:
                extract.append(f"v{i} = {g}(x)")
            else:  # lambda e: e["amount"], written in place (streamcore/item_lookup.py)
                namespace[f"{g}_key"] = lookup[0]
                extract.append(f"v{i} = x[{g}_key]")
        kind = a.kind
        if kind == "count":
            update.append(f"a[{i}] += 1")
        elif kind == "sum":
            update.append(f"a[{i}] += {value}")
        elif kind == "min":
            update.append(f"if a[{i}] is UNSET or {value} < a[{i}]: a[{i}] = {value}")
        elif kind == "max":
            update.append(f"if a[{i}] is UNSET or {value} > a[{i}]: a[{i}] = {value}")
        elif kind == "mean":
            update.append(f"m = a[{i}]; m[0] += 1; m[1] += {value}")
        elif kind == "first":
            update.append(f"if a[{i}] is UNSET: a[{i}] = (seq, {value})")
        elif kind == "last":
            update.append(f"a[{i}] = (seq, {value})")
        elif kind == "collect":
            update.append(f"a[{i}].append((seq, {value}))")
        else:
            namespace[f"add{i}"] = a.add
            extract.append(f"v{i} = add{i}(a[{i}], x)")
            update.append(f"a[{i}] = v{i}")
    return [indent + line for line in extract + update]


# Per kind: how slot i of accumulator ``a`` is copied into a fresh combined accumulator,
# merged into combined accumulator ``c`` (which the combiner owns), and turned into a value.
_COPY = {
    "mean": "[a[{i}][0], a[{i}][1]]",
    "custom": "merge{i}(create{i}(), a[{i}])",
}
_MERGE = {
    "count": ["c[{i}] += a[{i}]"],
    "sum": ["c[{i}] += a[{i}]"],
    "min": ["v = a[{i}]", "if v is not UNSET and (c[{i}] is UNSET or v < c[{i}]): c[{i}] = v"],
    "max": ["v = a[{i}]", "if v is not UNSET and (c[{i}] is UNSET or v > c[{i}]): c[{i}] = v"],
    "mean": ["m = c[{i}]", "v = a[{i}]", "m[0] += v[0]", "m[1] += v[1]"],
    "first": ["v = a[{i}]", "if v is not UNSET and (c[{i}] is UNSET or v[0] < c[{i}][0]): c[{i}] = v"],
    "last": ["v = a[{i}]", "if v is not UNSET and (c[{i}] is UNSET or v[0] > c[{i}][0]): c[{i}] = v"],
    "collect": ["c[{i}] = merge{i}(c[{i}], a[{i}])"],
    "custom": ["c[{i}] = merge{i}(c[{i}], a[{i}])"],
}
_RESULT = {
    "count": "a[{i}]",
    "sum": "a[{i}]",
    "min": "(None if a[{i}] is UNSET else a[{i}])",
    "max": "(None if a[{i}] is UNSET else a[{i}])",
    "mean": "(a[{i}][1] / a[{i}][0] if a[{i}][0] else None)",
    "first": "(None if a[{i}] is UNSET else a[{i}][1])",
    "last": "(None if a[{i}] is UNSET else a[{i}][1])",
    "collect": "[v for _, v in a[{i}]]",
    "custom": "result{i}(a[{i}])",
}

_COMBINERS = """
def combine(dicts):
    combined = {}
    get = combined.get
    for d in dicts:
        for k, a in d.items():
            c = get(k)
            if c is None:
                combined[k] = [COPY]
            else:
MERGE
    return combined

def rows(d, start, end, is_update):
    return [new(WindowResult, (k, start, end, RESULT, is_update)) for k, a in d.items()]

def pair(x, y):
    a = x
    c = [COPY]
    a = y
MERGE_PAIR
    return c

def rows_of_two(head, tail, start, end):
    out = []
    append = out.append
    get = tail.get
    for k, a in head.items():
        b = get(k)
        if b is not None:
            a = pair(a, b)
        append(new(WindowResult, (k, start, end, RESULT, False)))
    for k, a in tail.items():
        if k not in head:
            append(new(WindowResult, (k, start, end, RESULT, False)))
    return out

def result(a):
    return RESULT
"""


class Combiners:
    """Generated functions over accumulators of one aggregation (no per-slot calls for built-ins).

    ``combine(pane_dicts)`` merges per-key accumulators of several panes, in order, into new
    accumulators (the panes are not changed); ``rows(d, start, end, is_update)`` makes the
    ``WindowResult`` of every key of ``d``; ``rows_of_two(head, tail, start, end)`` those of
    the per-key merge of ``head`` then ``tail`` (without building that merge for keys in
    only one of them); ``result(acc)`` is one accumulator's value.
    """

    def __init__(self, agg: Aggregation, result_type: Any) -> None:
        namespace: dict[str, Any] = {"UNSET": UNSET, "WindowResult": result_type, "new": tuple.__new__}
        copies: list[str] = []
        merges: list[str] = []
        results: list[str] = []
        for i, (_, a) in enumerate(agg.parts):
            kind = a.kind if a.kind in _MERGE else "custom"
            namespace[f"merge{i}"] = a.merge
            namespace[f"create{i}"] = a.create
            namespace[f"result{i}"] = a.result
            copies.append(_COPY.get(kind, "a[{i}]").format(i=i))
            merges.extend(line.format(i=i) for line in _MERGE[kind])
            results.append(_RESULT[kind].format(i=i))
        if agg.single:
            value = results[0]
        else:
            value = "{" + ", ".join(f"{n!r}: {r}" for n, r in zip(agg.names, results, strict=True)) + "}"
        source = (
            _COMBINERS.replace("COPY", ", ".join(copies))
            .replace("MERGE_PAIR", "\n".join(" " * 4 + line for line in merges))
            .replace("MERGE", "\n".join(" " * 16 + line for line in merges))
            .replace("RESULT", value)
        )
        exec(compile(source, "<streamcore combiners>", "exec"), namespace)
        self.combine: Callable[[list[dict[Any, list[Any]]]], dict[Any, list[Any]]] = namespace["combine"]
        self.rows: Callable[[dict[Any, list[Any]], int, int, bool], list[Any]] = namespace["rows"]
        self.result: Callable[[list[Any]], Any] = namespace["result"]
        self.rows_of_two: Callable[[dict[Any, list[Any]], dict[Any, list[Any]], int, int], list[Any]] = namespace[
            "rows_of_two"
        ]
