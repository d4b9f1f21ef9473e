"""The builder API: ``Dataflow``, ``Stream``, ``KeyedStream``, ``WindowedStream``.

Building is pure: methods only add nodes to the flow's graph and return new stream
handles. Errors a user can fix at build time (a duplicate stage name, a bad argument)
are raised at once; whole-graph checks run in ``validate`` before anything starts.
Design: docs/runtime.md#graph
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from streamcore.duration import format_duration, to_duration_ms
from streamcore.errors import GraphError
from streamcore.graph.nodes import (
    LATE,
    MAIN,
    AsofJoinNode,
    AsyncOpNode,
    DeadLettersNode,
    IntervalJoinNode,
    JoinNode,
    KeyByNode,
    Node,
    OpNode,
    ProcessNode,
    SinkNode,
    SourceNode,
    UnionNode,
    WindowJoinNode,
    WindowNode,
)
from streamcore.stage_options import OnError, StageOp, check_on_error

if TYPE_CHECKING:
    from streamcore.dataflow.handle import FlowRun
    from streamcore.state.checkpointing import Checkpointing, RestartPolicy
    from streamcore.time.idle_advance import IdleAdvance, WallClock

__all__ = ["Dataflow", "JoinResultStream", "KeyedStream", "Stream", "WindowedStream"]

OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")
DEFAULT_CONCURRENCY = 100
"""Calls in flight of an async stage given ``timeout=``, ``retry=`` or ``ordered=False`` alone."""


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


class Dataflow:
    """A stream processing job: sources, stages and sinks joined into a graph.

    ``name`` identifies the flow (it also keys its checkpoints); ``mailbox_capacity`` bounds
    every mailbox, in records (default two source batches: the receiving stage then reads
    records decoded a batch or two ago, still in the CPU's cache). ``chaining=False`` runs every stage as its own actor
    (normally chains of stateless stages are fused into one).
    """

    def __init__(
        self,
        name: str,
        *,
        mailbox_capacity: int = 2_000,
        chaining: bool = True,
    ) -> None:
        if not name or not isinstance(name, str):
            raise GraphError(f"a Dataflow needs a non-empty name, got {name!r}")
        if mailbox_capacity < 1:
            raise GraphError(f"mailbox_capacity must be at least 1 record, got {mailbox_capacity}")
        self.name = name
        self.mailbox_capacity = mailbox_capacity
        self.chaining = chaining
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        self._dead_letters: DeadLettersNode | None = None
        # Only for ``statistics()``: the run's state lives in its handle, not here.
        self._latest_run: FlowRun | None = None

    def __repr__(self) -> str:
        return f"<Dataflow {self.name!r} stages={len(self.nodes)}>"

    @property
    def dead_letters_node(self) -> DeadLettersNode | None:
        """The node of ``flow.dead_letters`` if the flow uses it (graph rewriting reads it)."""
        return self._dead_letters

    def derive(self, name: str, nodes: list[Node], *, dead_letters: Node | None = None) -> Dataflow:
        """A new flow named ``name`` with this one's settings, made of ``nodes``.

        Graph rewriting (a scaled-out flow's per-partition copies, the two stages around
        a repartition topic) builds its flows this way. ``nodes`` are new node objects,
        numbered in order, whose inputs are among them; ``dead_letters`` is the copy of
        the dead-letters node, if the rewritten flow keeps one."""
        flow = Dataflow(name, mailbox_capacity=self.mailbox_capacity, chaining=self.chaining)
        flow.nodes.extend(nodes)
        flow._names = {n.name for n in nodes}
        if dead_letters is not None:
            assert isinstance(dead_letters, DeadLettersNode)
            flow._dead_letters = dead_letters
        return flow

    # -- building --------------------------------------------------------------

    def _stage_name(self, given: str | None, default: str) -> str:
        if given is not None:
            if given in self._names:
                raise GraphError(
                    f"stage {given!r} already exists in flow {self.name!r}; "
                    "give each stage a unique name="
                )
            return given
        name, n = default, 1
        while name in self._names:
            n += 1
            name = f"{default}_{n}"
        return name

    def _add(self, node_cls: type[Node], name: str | None, default: str, **fields: Any) -> Node:
        fields["on_error"] = check_on_error(fields.get("on_error", "fail"))
        stage = self._stage_name(name, default)
        node = node_cls(id=len(self.nodes), name=stage, **fields)
        self._names.add(stage)
        self.nodes.append(node)
        return node

    def source(
        self,
        source: Any,
        *,
        name: str | None = None,
        timestamp: Callable[[Any], Any] | None = None,
        max_out_of_orderness: timedelta | int | str = 0,
        batch_size: int = 1000,
        linger: timedelta | int | str = 5,
        overflow: str = "block",
        max_rate: float | None = None,
        idle_timeout: timedelta | int | str | None = None,
        on_error: OnError = "fail",
        advance_when_idle: timedelta | int | str | None = None,
        clock: WallClock | None = None,
    ) -> Stream:
        """Add a source connector; returns its stream.

        ``timestamp`` extracts each record's event time (int ms or ``datetime``);
        ``max_out_of_orderness`` bounds the watermark; batches hold up to ``batch_size``
        records or whatever arrived within ``linger``. ``overflow`` is what happens when the
        stage after the source is full: ``"block"`` (backpressure) or, for sources that
        cannot be held back, ``"drop_oldest"`` / ``"drop_newest"`` (counted). ``max_rate``
        caps records per second. ``idle_timeout``: after that long with no records the
        source stops holding the watermark back until it produces again.
        ``advance_when_idle=d``: after ``d`` of wall time without a record while waiting
        for input (never while held back by backpressure), the source's watermark moves
        to ``now - max_out_of_orderness - d``, so the windows of a quiet live stream fire;
        ``clock`` is the wall clock it reads (``streamcore.testing.ManualClock`` in tests).
        """
        from streamcore.io import Source

        if not isinstance(source, Source):
            raise GraphError(
                f"flow.source() takes a source connector (a streamcore.io.Source), got "
                f"{type(source).__name__}; wrap an iterable in connectors.memory.IterableSource"
            )
        if batch_size < 1:
            raise GraphError(f"batch_size must be at least 1, got {batch_size}")
        if overflow not in OVERFLOW_POLICIES:
            raise GraphError(
                f"overflow must be one of {', '.join(map(repr, OVERFLOW_POLICIES))}, got {overflow!r}"
            )
        if max_rate is not None and max_rate <= 0:
            raise GraphError(f"max_rate must be a positive number of records/s, got {max_rate}")
        bound = to_duration_ms(max_out_of_orderness, "max_out_of_orderness")
        if bound < 0:
            raise GraphError(f"max_out_of_orderness must not be negative, got {format_duration(bound)}")
        idle_advance = self._idle_advance(advance_when_idle, clock, idle_timeout)
        node = self._add(
            SourceNode,
            name,
            getattr(source, "default_name", "source"),
            source=source,
            timestamp=timestamp,
            max_out_of_orderness_ms=bound,
            batch_size=batch_size,
            linger_ms=to_duration_ms(linger, "linger"),
            overflow=overflow,
            max_rate=max_rate,
            idle_timeout_ms=None if idle_timeout is None else to_duration_ms(idle_timeout, "idle_timeout"),
            on_error=on_error,
            advance_when_idle=idle_advance,
        )
        return Stream(self, node)

    @staticmethod
    def _idle_advance(
        after: timedelta | int | str | None, clock: WallClock | None, idle_timeout: timedelta | int | str | None
    ) -> IdleAdvance | None:
        from streamcore.time.idle_advance import IdleAdvance, SystemWallClock

        if after is None:
            if clock is not None:
                raise GraphError("clock= is the clock of advance_when_idle=; give advance_when_idle= too")
            return None
        after_ms = to_duration_ms(after, "advance_when_idle")
        if after_ms < 0:
            raise GraphError(f"advance_when_idle must not be negative, got {after!r}")
        if idle_timeout is not None:
            # Idle leaves the source out of the minimum while advancing keeps it in and
            # moves it: together they would contradict each other.
            raise GraphError(
                "give a source idle_timeout= or advance_when_idle=, not both: idle_timeout "
                "leaves a quiet source out of the watermark, advance_when_idle moves its "
                "watermark with the clock"
            )
        return IdleAdvance(after_ms, clock if clock is not None else SystemWallClock())

    @property
    def dead_letters(self) -> Stream:
        """Records that failed in a stage with ``on_error="dead_letter"``, as ``sc.DeadLetter``."""
        if self._dead_letters is None:
            node = self._add(DeadLettersNode, "dead_letters", "dead_letters")
            assert isinstance(node, DeadLettersNode)
            self._dead_letters = node
        return Stream(self, self._dead_letters)

    # -- running ---------------------------------------------------------------

    async def run(
        self, *, checkpoint: Checkpointing | None = None, restart: RestartPolicy | None = None
    ) -> None:
        """Run the flow in the current event loop until every sink has finished.

        Raises ``GraphError`` before anything starts if the graph is invalid, and
        ``StreamcoreError`` naming the stage if a stage fails. With ``checkpoint``, state
        is checkpointed and a flow of the same name resumes from its last complete
        checkpoint; with ``restart``, a failed run starts again from there.
        """
        run = await self.start(checkpoint=checkpoint, restart=restart)
        await run.wait()

    async def start(
        self, *, checkpoint: Checkpointing | None = None, restart: RestartPolicy | None = None
    ) -> FlowRun:
        """Start a run of the flow in the current event loop and return its handle.

        Returns once the run has restored its checkpoint (if any) and its actors run, or
        once it ended already; an error before that (graph, store, restore) is raised
        here. The handle stops (``await run.stop()``), waits (``await run.wait()``) and
        reports (``run.ready``, ``run.restarts``, ``run.statistics()``); see
        docs/embedding.md.
        """
        from streamcore.dataflow.handle import FlowRun

        run = FlowRun(self, checkpoint, restart)
        self._latest_run = run
        await run.start()
        return run

    def run_sync(
        self, *, checkpoint: Checkpointing | None = None, restart: RestartPolicy | None = None
    ) -> None:
        """Run the flow to completion outside an event loop (on uvloop)."""
        from streamcore.runtime.loop import run_coroutine

        run_coroutine(self.run(checkpoint=checkpoint, restart=restart))

    def statistics(self) -> Any:
        """Per-stage counters of the latest run started from this flow; None before one.

        A shortcut for ``run.statistics()`` on the handle ``start()`` returned."""
        run = self._latest_run
        return None if run is None else run.statistics()


class Stream:
    """A stream of records produced by one stage's output port."""

    def __init__(self, flow: Dataflow, node: Node, port: str = MAIN) -> None:
        self.flow = flow
        self.node = node
        self.port = port

    def __repr__(self) -> str:
        return f"<Stream from {self.node.name!r}{'' if self.port == MAIN else '.' + self.port}>"

    def _edge(self) -> list[tuple[Node, str]]:
        return [(self.node, self.port)]

    def _op(self, op: StageOp, fn: Callable[..., Any], name: str | None, on_error: OnError, **async_options: Any) -> Stream:
        if not callable(fn):
            raise GraphError(f"{op}() takes a function, got {fn!r}")
        is_async = _is_async(fn)
        options = {k: v for k, v in async_options.items() if v is not None}
        if options.get("ordered") is True:
            del options["ordered"]
        if not options:
            node = self.flow._add(
                OpNode, name, op, inputs=self._edge(), op=op, fn=fn, is_async=is_async, on_error=on_error
            )
            return Stream(self.flow, node)
        if not is_async:
            raise GraphError(
                f"{op}() with {', '.join(f'{k}=' for k in options)} needs an async def function; "
                f"{getattr(fn, '__name__', fn)!r} is a plain function"
            )
        concurrency = options.get("concurrency", DEFAULT_CONCURRENCY)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise GraphError(f"concurrency must be a positive int (calls in flight), got {concurrency!r}")
        timeout = options.get("timeout")
        timeout_ms = None if timeout is None else to_duration_ms(timeout, "timeout")
        if timeout_ms is not None and timeout_ms <= 0:
            raise GraphError(f"timeout must be a positive duration, got {timeout!r}")
        retry = options.get("retry")
        if retry is not None:
            from streamcore.retry import Retry

            if not isinstance(retry, Retry):
                raise GraphError(f"retry takes sc.Retry(...), got {retry!r}")
        node = self.flow._add(
            AsyncOpNode, name, op, inputs=self._edge(), op=op, fn=fn, is_async=True, on_error=on_error,
            concurrency=concurrency, ordered=async_options.get("ordered") is not False,
            timeout_ms=timeout_ms, retry=retry,
        )
        return Stream(self.flow, node)

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None, on_error: OnError = "fail",
            concurrency: int | None = None, ordered: bool = True, timeout: timedelta | int | None = None,
            retry: Any = None) -> Stream:
        """Replace each record by ``fn(record)``.

        For an ``async def fn``: ``concurrency=N`` keeps at most N calls in flight across
        batches, ``ordered=False`` emits results as they finish (never across a
        watermark or checkpoint), ``timeout=`` bounds each try and ``retry=sc.Retry(...)``
        retries; see docs/joins.md#async-enrichment.
        """
        return self._op("map", fn, name, on_error, concurrency=concurrency, ordered=ordered, timeout=timeout,
                        retry=retry)

    def filter(
        self, predicate: Callable[[Any], Any], *, name: str | None = None, on_error: OnError = "fail",
        concurrency: int | None = None, ordered: bool = True, timeout: timedelta | int | None = None,
        retry: Any = None,
    ) -> Stream:
        """Keep the records for which ``predicate(record)`` is true (async options as for ``map``)."""
        return self._op("filter", predicate, name, on_error, concurrency=concurrency, ordered=ordered,
                        timeout=timeout, retry=retry)

    def flat_map(
        self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None, on_error: OnError = "fail",
        concurrency: int | None = None, ordered: bool = True, timeout: timedelta | int | None = None,
        retry: Any = None,
    ) -> Stream:
        """Replace each record by the records of the iterable ``fn(record)`` returns (async
        options as for ``map``)."""
        return self._op("flat_map", fn, name, on_error, concurrency=concurrency, ordered=ordered,
                        timeout=timeout, retry=retry)

    def key_by(
        self, key: Callable[[Any], Any], *, name: str | None = None, prepartitioned: bool = False
    ) -> KeyedStream:
        """Give each record a key; keyed stages downstream keep their state per key.

        In a flow that scales out over a partition group (docs/scale-out.md), records are
        moved through a repartition topic here so each key's state lives in one task;
        ``prepartitioned=True`` says the input partitions already hold every record of a
        key together (the Kafka message key is this key), and skips that topic."""
        if not callable(key):
            raise GraphError(f"key_by() takes a function, got {key!r}")
        if _is_async(key):
            raise GraphError("key_by() needs a plain function: a key must be computed without waiting")
        node = self.flow._add(
            KeyByNode, name, "key_by", inputs=self._edge(), key=key, prepartitioned=prepartitioned
        )
        return KeyedStream(self.flow, node)

    def union(self, *others: Stream, name: str | None = None) -> Stream:
        """Merge this stream with ``others``; order between the inputs is not defined."""
        streams = [self, *others]
        seen: set[tuple[int, str]] = set()
        for s in streams:
            if not isinstance(s, Stream):
                raise GraphError(f"union() takes streams, got {s!r}")
            if s.flow is not self.flow:
                raise GraphError(f"cannot union {s!r}: it belongs to flow {s.flow.name!r}, not {self.flow.name!r}")
            ident = (s.node.id, s.port)
            if ident in seen:
                raise GraphError(
                    f"{s!r} is given to union() twice; each of its records would arrive twice. "
                    "Pass each stream once"
                )
            seen.add(ident)
        node = self.flow._add(UnionNode, name, "union", inputs=[(s.node, s.port) for s in streams])
        return Stream(self.flow, node)

    def sink(self, sink: Any, *, name: str | None = None, on_error: OnError = "fail") -> None:
        """Write the stream to a sink connector, or call a plain (or async) function per record."""
        from streamcore.io import Sink

        if not isinstance(sink, Sink) and not callable(sink):
            raise GraphError(f"sink() takes a sink connector or a function, got {sink!r}")
        default = getattr(sink, "default_name", None) or "sink"
        self.flow._add(SinkNode, name, default, inputs=self._edge(), sink=sink, on_error=on_error)


class KeyedStream(Stream):
    """A stream whose records have a key (see ``Stream.key_by``)."""

    node: KeyByNode

    @property
    def key(self) -> Callable[[Any], Any]:
        """The key function."""
        assert self.node.key is not None
        return self.node.key

    def window(
        self,
        assigner: Any,
        *,
        allowed_lateness: timedelta | int | str = 0,
    ) -> WindowedStream:
        """Group each key's records into event-time windows from ``assigner``."""
        from streamcore.time.windows import WindowAssigner

        if not isinstance(assigner, WindowAssigner):
            raise GraphError(
                "window() takes sc.TumblingWindows(...), sc.SlidingWindows(...) or "
                f"sc.SessionWindows(...), got {assigner!r}"
            )
        lateness = to_duration_ms(allowed_lateness, "allowed_lateness")
        if lateness < 0:
            raise GraphError(f"allowed_lateness must not be negative, got {format_duration(lateness)}")
        return WindowedStream(self, assigner, lateness)

    def process(
        self,
        fn: Any,
        *,
        name: str | None = None,
        on_error: OnError = "fail",
        parallelism: int = 1,
    ) -> Stream:
        """Run a keyed stateful function (see ``sc.KeyedProcessFunction``) over each key's records."""
        from streamcore.operators.process import KeyedProcessFunction

        if not isinstance(fn, KeyedProcessFunction):
            raise GraphError(
                f"process() takes an sc.KeyedProcessFunction instance, got {type(fn).__name__}"
            )
        node = self.flow._add(
            ProcessNode,
            name,
            "process",
            inputs=self._edge(),
            key=self.key,
            key_stage=self.node.name,
            fn=fn,
            on_error=on_error,
            parallelism=_check_parallelism(parallelism),
        )
        return Stream(self.flow, node)

    # -- joins -------------------------------------------------------------------

    def _join(self, other: KeyedStream, what: str, node_cls: type[JoinNode], name: str | None,
              on_error: OnError, **fields: Any) -> JoinResultStream:
        if not isinstance(other, KeyedStream):
            raise GraphError(f"{what}() joins with a keyed stream: call .key_by(...) on {other!r} first")
        if other.flow is not self.flow:
            raise GraphError(f"cannot join {other!r}: it belongs to flow {other.flow.name!r}, not {self.flow.name!r}")
        if other.node is self.node:
            raise GraphError(
                f"{what}() of a keyed stream with itself: key the stream twice "
                "(s.key_by(k).join(s.key_by(k), ...)) so each side is its own input"
            )
        node = self.flow._add(
            node_cls, name, what, inputs=[*self._edge(), *other._edge()],
            left_key=self.key, right_key=other.key, on_error=on_error, **fields,
        )
        return JoinResultStream(self.flow, node)

    def join(
        self,
        other: KeyedStream,
        *,
        window: Any,
        how: str = "inner",
        allowed_lateness: timedelta | int = 0,
        name: str | None = None,
        on_error: OnError = "fail",
    ) -> JoinResultStream:
        """Window join: each (left, right) pair of one key and window, when the window fires.

        ``how`` is "inner", "left", "right" or "outer" (outer kinds also emit the records
        of a window with no partner, with None on the other side). Results are
        ``sc.JoinResult``; records too late for all their windows are on ``.late``.
        Semantics: docs/joins.md#window-join.
        """
        from streamcore.time.windows import WindowAssigner

        if not isinstance(window, WindowAssigner):
            raise GraphError(
                "join() takes window=sc.TumblingWindows(...), sc.SlidingWindows(...) or "
                f"sc.SessionWindows(...), got {window!r}"
            )
        if how not in JOIN_HOW:
            raise GraphError(f"join() how must be one of {', '.join(map(repr, JOIN_HOW))}, got {how!r}")
        lateness = to_duration_ms(allowed_lateness, "allowed_lateness")
        if lateness < 0:
            raise GraphError(f"allowed_lateness must not be negative, got {allowed_lateness!r}")
        return self._join(other, "join", WindowJoinNode, name, on_error,
                          how=how, assigner=window, allowed_lateness_ms=lateness)

    def interval_join(
        self,
        other: KeyedStream,
        *,
        lower: timedelta | int,
        upper: timedelta | int,
        name: str | None = None,
        on_error: OnError = "fail",
    ) -> JoinResultStream:
        """Interval join: every pair of one key with ``ts(l) + lower <= ts(r) <= ts(l) + upper``,
        emitted as soon as both are seen (inner). Semantics: docs/joins.md#interval-join."""
        lower_ms = to_duration_ms(lower, "lower")
        upper_ms = to_duration_ms(upper, "upper")
        if lower_ms > upper_ms:
            raise GraphError(f"interval_join() lower ({lower_ms} ms) is above upper ({upper_ms} ms); no pair could join")
        return self._join(other, "interval_join", IntervalJoinNode, name, on_error,
                          lower_ms=lower_ms, upper_ms=upper_ms)

    def join_asof(
        self,
        other: KeyedStream,
        *,
        how: str = "inner",
        name: str | None = None,
        on_error: OnError = "fail",
    ) -> JoinResultStream:
        """As-of join: each left record with the right record of its key whose timestamp is
        the greatest at or before its own, once the watermark has passed it.
        ``how="left"`` keeps left records with no match (right None); "inner" drops and
        counts them. Semantics: docs/joins.md#as-of-join."""
        if how not in ("inner", "left"):
            raise GraphError(f"join_asof() how must be 'inner' or 'left', got {how!r}")
        return self._join(other, "join_asof", AsofJoinNode, name, on_error, how=how)


JOIN_HOW = ("inner", "left", "right", "outer")


def _check_parallelism(parallelism: int) -> int:
    if not isinstance(parallelism, int) or parallelism < 1:
        raise GraphError(f"parallelism must be a positive int, got {parallelism!r}")
    return parallelism


class WindowedStream:
    """A keyed stream cut into windows; finish it with ``aggregate`` or ``reduce``."""

    def __init__(self, keyed: KeyedStream, assigner: Any, allowed_lateness_ms: int) -> None:
        self.keyed = keyed
        self.assigner = assigner
        self.allowed_lateness_ms = allowed_lateness_ms

    def aggregate(
        self,
        aggregation: Any,
        *,
        name: str | None = None,
        on_error: OnError = "fail",
        parallelism: int = 1,
    ) -> WindowResultStream:
        """Aggregate each window incrementally with an ``sc.Aggregator`` or a dict of them.

        The result is a stream of ``sc.WindowResult``; records too late for every window
        they belong to are on ``.late``.
        """
        from streamcore.time.aggregators import Aggregation

        agg = Aggregation.of(aggregation)
        if self.assigner.merges_accumulators and not agg.can_merge:
            raise GraphError(
                f"{self.assigner!r} merges accumulators, but {agg.describe()} has no merge; "
                "give the sc.Aggregator a merge function"
            )
        flow = self.keyed.flow
        node = flow._add(
            WindowNode,
            name,
            "window",
            inputs=self.keyed._edge(),
            key=self.keyed.key,
            key_stage=self.keyed.node.name,
            assigner=self.assigner,
            allowed_lateness_ms=self.allowed_lateness_ms,
            aggregation=agg,
            on_error=on_error,
            parallelism=_check_parallelism(parallelism),
        )
        return WindowResultStream(flow, node)

    def reduce(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        on_error: OnError = "fail",
        parallelism: int = 1,
    ) -> WindowResultStream:
        """Combine each window's records pairwise with ``fn(a, b)``; the value is the last result."""
        from streamcore.time.aggregators import reducer

        return self.aggregate(reducer(fn), name=name, on_error=on_error, parallelism=parallelism)


class WindowResultStream(Stream):
    """The results of a window stage, with the late records beside them on ``.late``."""

    @property
    def late(self) -> Stream:
        """Records later than the allowed lateness for all their windows, unchanged."""
        return Stream(self.flow, self.node, LATE)


class JoinResultStream(Stream):
    """The results of a join (``sc.JoinResult``), with its late records on ``.late``."""

    @property
    def late(self) -> Stream:
        """Records of either side too late to join, unchanged."""
        return Stream(self.flow, self.node, LATE)
