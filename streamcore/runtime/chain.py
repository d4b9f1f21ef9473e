"""Compiles a run of stateless stages (map / filter / flat_map) into one batch function.

This is the engine's hot path. A fused chain becomes a single generated list
comprehension over the batch, so a record costs one call per user function and no
per-record await, list or object of ours. Each stage's code sits on its own source line,
so when a user function raises, the traceback's line number says which stage it was.

The record that stage received is found by replaying the batch record by record through
the stages, outside the comprehension, until that stage raises the same exception type
again. The comprehension's own variables cannot tell: since Python 3.12 comprehensions
are inlined (PEP 709) and their variables are restored on the way out, so the frame no
longer holds them, and binding the record to a name in the loop would cost every record.
The replay costs nothing until a batch fails; it calls the user functions a second time
for the records before the failing one. A failure that does not happen again (a flaky
lookup) is reported with the record unknown (``None``).

With an ``on_error`` other than ``"fail"`` on any stage of the run, the chain is run stage
by stage with a try block per record instead (slower, but it never calls a user function
twice for the same record).
Design: docs/runtime.md#operator-chaining
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from streamcore.stage_options import OnError, StageKind

__all__ = ["ChainFailure", "CompiledChain", "StatelessStage"]

_counter = itertools.count()


@dataclass(frozen=True)
class StatelessStage:
    """One stateless stage of a chain."""

    name: str
    op: StageKind
    fn: Callable[[Any], Any]
    on_error: OnError = "fail"


class ChainFailure(Exception):
    """A user function raised; says which stage and on which record."""

    def __init__(self, stage: StatelessStage, record: object, error: BaseException) -> None:
        super().__init__(stage.name)
        self.stage = stage
        self.record = record
        self.error = error


# (records, timestamps) -> (records, timestamps); timestamps may be None throughout.
BatchFunction = Callable[[list[Any], list[int] | None], tuple[list[Any], list[int] | None]]
DeadLetterFn = Callable[[StatelessStage, Any, BaseException], None]


class CompiledChain:
    """The batch function of a chain and what it needs to explain failures."""

    def __init__(self, stages: list[StatelessStage], dead_letter: DeadLetterFn) -> None:
        self.stages = stages
        self._dead_letter = dead_letter
        self.careful = any(s.on_error != "fail" for s in stages)
        self.keeps_length = all(s.op == "map" for s in stages)
        if self.careful:
            self._fn = self._run_careful
        else:
            self._filename = f"<streamcore chain {next(_counter)}>"
            self._fast_plain, self._fast_ts = _generate(stages, self._filename)

    def __call__(
        self, records: list[Any], timestamps: list[int] | None
    ) -> tuple[list[Any], list[int] | None]:
        """Apply the chain to a batch; raises ``ChainFailure`` for a failing record."""
        if self.careful:
            return self._run_careful(records, timestamps)
        try:
            if timestamps is None:
                return self._fast_plain(records), None
            if self.keeps_length:
                return self._fast_plain(records), timestamps
            pairs = self._fast_ts(records, timestamps)
            return [p[0] for p in pairs], [p[1] for p in pairs]
        except Exception as exc:
            raise self._explain(exc, records) from exc

    def _explain(self, exc: Exception, records: list[Any]) -> ChainFailure:
        """Find the failing stage (by generated line) and the record it was given."""
        tb: TracebackType | None = exc.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self._filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        last = len(self.stages) - 1
        if line is None:
            index = 0
        elif line == _RESULT_LINE:
            index = last
        else:
            index = max(0, min(last, line - _FIRST_STAGE_LINE))
        stage = self.stages[index]
        record = None
        replayed = self._replay(records)
        if replayed is not None and replayed.stage is stage and type(replayed.error) is type(exc):
            record = replayed.record
        return ChainFailure(stage, record, exc)

    def _replay(self, records: list[Any]) -> ChainFailure | None:
        """Run ``records`` through the stages one by one, in the comprehension's order.

        Returns the first failure, or None when every record passes this time.
        """
        for record in records:
            failure = self._replay_from(0, record)
            if failure is not None:
                return failure
        return None

    def _replay_from(self, index: int, x: Any) -> ChainFailure | None:
        if index == len(self.stages):
            return None
        stage = self.stages[index]
        try:
            if stage.op == "map":
                produced: Iterator[Any] = iter((stage.fn(x),))
            elif stage.op == "filter":
                produced = iter((x,) if stage.fn(x) else ())
            else:
                produced = iter(stage.fn(x))
        except Exception as exc:
            return ChainFailure(stage, x, exc)
        while True:
            # A flat_map's iterable may raise while it is iterated: still this stage.
            try:
                y = next(produced)
            except StopIteration:
                return None
            except Exception as exc:
                return ChainFailure(stage, x, exc)
            failure = self._replay_from(index + 1, y)
            if failure is not None:
                return failure

    def _run_careful(
        self, records: list[Any], timestamps: list[int] | None
    ) -> tuple[list[Any], list[int] | None]:
        ts = timestamps
        for stage in self.stages:
            fn, op = stage.fn, stage.op
            out: list[Any] = []
            out_ts: list[int] | None = None if ts is None else []
            for i, x in enumerate(records):
                try:
                    if op == "map":
                        produced: Any = (fn(x),)
                    elif op == "filter":
                        produced = (x,) if fn(x) else ()
                    else:
                        produced = list(fn(x))
                except Exception as exc:
                    if stage.on_error == "fail":
                        raise ChainFailure(stage, x, exc) from exc
                    if stage.on_error == "dead_letter":
                        self._dead_letter(stage, x, exc)
                    else:
                        self._dead_letter(stage, None, exc)  # counted as skipped
                    continue
                out.extend(produced)
                if out_ts is not None and ts is not None:
                    out_ts.extend([ts[i]] * len(produced))
            records, ts = out, out_ts
        return records, ts


# Line of the generated source holding stage 0 (see _generate's template).
_FIRST_STAGE_LINE = 4
_RESULT_LINE = 2


def _generate(
    stages: list[StatelessStage], filename: str
) -> tuple[Callable[[list[Any]], list[Any]], Callable[[list[Any], list[int]], list[Any]]]:
    """Build the two comprehension functions (without / with timestamps)."""
    # A final map becomes the comprehension's result expression (one clause fewer); it
    # sits on line _RESULT_LINE, every other stage i on line _FIRST_STAGE_LINE + i.
    n = len(stages)
    tail_map = stages[-1].op == "map"
    clauses: list[str] = []
    for i, stage in enumerate(stages[: n - 1] if tail_map else stages):
        src, dst, f = f"x{i}", f"x{i + 1}", f"f{i}"
        if stage.op == "map":
            clauses.append(f"        for {dst} in [{f}({src})]")
        elif stage.op == "filter":
            clauses.append(f"        if {f}({src}) for {dst} in [{src}]")
        else:
            clauses.append(f"        for {dst} in {f}({src})")
    result = f"f{n - 1}(x{n - 1})" if tail_map else f"x{n}"
    body = "\n".join(clauses)
    plain = f"def plain(records):\n    return [{result}\n        for x0 in records\n{body}\n    ]\n"
    with_ts = (
        f"def with_ts(records, timestamps):\n    return [({result}, t)\n"
        f"        for x0, t in zip(records, timestamps)\n{body}\n    ]\n"
    )
    namespace: dict[str, Any] = {f"f{i}": s.fn for i, s in enumerate(stages)}
    namespace["zip"] = zip
    # The filename lets _explain recognise our frames; linecache is not needed.
    exec(compile(plain, filename, "exec"), namespace)
    exec(compile(with_ts, filename, "exec"), namespace)
    return namespace["plain"], namespace["with_ts"]
