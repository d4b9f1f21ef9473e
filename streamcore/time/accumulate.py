"""Generated code that adds records into accumulators, specialised to the aggregators.

Built-in aggregators become inline statements (``a[0] += 1``); user aggregators are
called. Values are extracted from the record before any slot changes, so a failing
extractor leaves the accumulator as it was.
Design: docs/windows.md#aggregations
"""

from __future__ import annotations

from typing import Any

from streamcore.time.aggregators import UNSET, Aggregation, _identity

__all__ = ["add_statements"]


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
            extract.append(f"v{i} = {g}(x)")
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
