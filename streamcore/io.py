"""Base classes for sources and sinks: the contract between the runtime and connectors.

A connector only implements these methods; the runtime owns batching into mailboxes,
timestamps, watermarks, backpressure, error policies and (later) checkpoints.

Source contract:
1. ``open(context, position)`` is awaited once before reading. ``position`` is what
   ``position()`` returned at the checkpoint being restored, or None for a fresh start.
2. ``read_batch(max_records, timeout_s)`` returns a list of at most ``max_records``
   records, an empty list if nothing arrived within ``timeout_s``, or None at the end of
   a finite input. It must not block the event loop for long.
3. ``position()`` describes the place just after the last record returned, as a
   JSON-serialisable value, so a restarted source can resume exactly there.
4. ``release()`` is awaited once at the end of a run, also after a failure or a cancel;
   by default it is ``close()``. A source whose ``close()`` means something to the program
   feeding it (``QueueSource``: no more input) overrides ``release`` instead.
A record the source cannot decode is reported with ``context.bad_record(...)``, which
applies the stage's ``on_error`` policy (raise, skip and count, or dead-letter).

Sink contract:
1. ``open(context)`` once; 2. ``write_batch(records)`` (sync or ``async``) per batch, in
order; 3. ``close()`` at the end of the stream (flush), or ``abort()`` after a failure
(by default ``close()``). Under checkpointing, an exactly-once sink is closed after the
final checkpoint's ``commit``.
Exactly-once sinks also implement the checkpoint hooks below (docs/checkpoints.md#sinks).
Design: docs/runtime.md#connectors
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, ClassVar

from streamcore.drop_log import DropLog
from streamcore.errors import GraphError, SourceError

__all__ = ["PartitionGroup", "Repartition", "Sink", "SinkContext", "Source", "SourceContext"]

log = logging.getLogger("streamcore.io")


class SourceContext:
    """What the runtime tells a source, and how the source reports bad input."""

    def __init__(
        self,
        stage: str,
        *,
        on_error: str = "fail",
        linger_s: float = 0.005,
        dead_letter: Callable[[object, BaseException], None] | None = None,
        skipped: Callable[[], None] | None = None,
    ) -> None:
        self.stage = stage
        self.on_error = on_error
        self.linger_s = linger_s
        self._dead_letter = dead_letter
        self._skipped = skipped
        self._drops = DropLog(log)
        self.bad_records = 0
        """Records the source could not decode (skipped or dead-lettered)."""

    def bad_record(self, raw: object, error: BaseException, where: str) -> None:
        """Apply the stage's error policy to a record that could not be decoded.

        ``where`` says where it was found (``"file events.jsonl line 17"``). With
        ``on_error="fail"`` this raises ``SourceError``; otherwise the record is counted
        and skipped or handed to the flow's dead letters.
        """
        err = SourceError(f"source {self.stage!r}: cannot decode {where}: {error}")
        err.__cause__ = error
        if self.on_error == "fail":
            raise err
        self.bad_records += 1
        detail = f"where={where!r} error={str(error)!r}"
        if self.on_error == "dead_letter" and self._dead_letter is not None:
            self._dead_letter(raw, err)
            self._drops.record("dead-lettered", self.stage, detail)
        else:
            # The actor's ``skipped`` count (statistics, metrics) comes from this call.
            if self._skipped is not None:
                self._skipped()
            self._drops.record("skipped", self.stage, detail)


class Source:
    """A connector that produces records. Subclass and implement ``read_batch``."""

    default_name: ClassVar[str] = "source"
    rewindable: ClassVar[bool] = False
    """True when ``open(position=...)`` can resume from a checkpointed position."""
    rewind_hint: ClassVar[str] = (
        "use a rewindable source (the file sources, Kafka, IterableSource of a list or a "
        "generator function) or run without checkpoint="
    )
    """What to do when checkpoints need this source to rewind and it cannot (in the error)."""

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Prepare to read, starting at ``position`` when one is given."""
        self.context = context

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` records; ``[]`` if none came within ``timeout_s``; None at the end."""
        raise NotImplementedError

    def position(self) -> Any:
        """Where reading would resume after the last batch returned (JSON-serialisable)."""
        return None

    # -- partitioned sources (e.g. Kafka): watermarks per partition ----------------------

    def record_partitions(self) -> list[Any] | None:
        """The partition of each record of the batch last returned, in order; None when
        the source has no partitions. A partitioned source's watermark is the minimum
        over its partitions that are not idle (see ``caught_up``)."""
        return None

    def assigned(self) -> Collection[Any]:
        """The partitions this source reads now."""
        return ()

    def caught_up(self) -> Collection[Any]:
        """Assigned partitions whose position has reached their end (high-water mark).
        Only those can go idle: a partition with a backlog always holds the watermark."""
        return ()

    def record_timestamps(self) -> list[int] | None:
        """The event time of each record of the batch last returned, when the source
        knows it itself (e.g. read back from a repartition topic); None to use the
        flow's ``timestamp=`` function."""
        return None

    def watermark(self) -> float | None:
        """The source's own watermark (e.g. the minimum over the writers of a repartition
        topic), or None to derive it from event times and ``max_out_of_orderness``."""
        return None

    def lag(self) -> dict[Any, int]:
        """Records not read yet, per partition, where the source can tell (metrics)."""
        return {}

    async def close(self) -> None:
        """Release whatever ``open`` took."""

    async def release(self) -> None:
        """What the runtime awaits when a run stops reading the source; ``close()`` by default."""
        await self.close()

    # -- scale-out over processes (e.g. a Kafka consumer group) -------------------------

    def partition_group(self) -> PartitionGroup | None:
        """The group whose members share this source's partitions, or None.

        A source that returns a group is run under checkpointing as one *task* per
        partition assigned to this process: a copy of the flow reading only that
        partition, with state and checkpoints of its own that move with the partition
        (docs/scale-out.md)."""
        return None


AssignmentCallback = Callable[[list[str]], Awaitable[None]]


class PartitionGroup:
    """Membership of a group that splits a source's partitions between processes.

    The runtime calls ``run(on_assigned, on_revoked)`` once; it joins the group and
    awaits ``on_revoked(partitions)`` before giving partitions up (the tasks of those
    partitions stop at a checkpoint there) and ``on_assigned(partitions)`` after each
    assignment, with the partitions new to it (an empty list when it was given none: a
    finite run then ends). ``run`` returns after ``leave()``.
    """

    finite: bool = False
    """True when the source ends (e.g. ``stop_at_end``): the process then leaves the
    group once the task of every partition it holds has reached the end."""

    generation: int | None = None
    """The group's generation (it only grows) when ``on_assigned`` is called, or None
    when the group has none; the tasks of an assignment fence their checkpoints with it,
    so a process that lost its partitions cannot overwrite a newer owner's."""

    async def run(self, on_assigned: AssignmentCallback, on_revoked: AssignmentCallback) -> None:
        """Stay in the group, reporting assignment changes, until ``leave()``."""
        raise NotImplementedError

    def leave(self) -> None:
        """Ask ``run`` to revoke everything it holds, leave the group and return."""
        raise NotImplementedError

    def task_source(self, partition: str) -> Source:
        """A fresh source that reads only ``partition``."""
        raise NotImplementedError

    def repartition(
        self,
        flow: str,
        stage: str,
        key: Callable[[Any], Any],
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
    ) -> Repartition:
        """An internal topic keyed by ``key`` for the ``key_by`` stage ``stage``, whose
        partitions the group shares beside the source's (registered before ``run``)."""
        raise GraphError(
            f"{type(self).__name__} cannot repartition: key stage {stage!r} by what the input "
            "is partitioned by and say so with key_by(..., prepartitioned=True)"
        )


class Repartition:
    """What a partition group gives for a repartitioning ``key_by`` (docs/scale-out.md)."""

    def owns(self, partition: str) -> bool:
        """Whether ``partition`` is one of the internal topic's (a task after the cut)."""
        raise NotImplementedError

    def sink_for(self, writer: str) -> Sink:
        """The sink writing to the internal topic for the task of input partition ``writer``."""
        raise NotImplementedError

    def source_for(self, partition: str) -> Source:
        """A fresh source reading ``partition`` of the internal topic."""
        raise NotImplementedError


class SinkContext:
    """What the runtime tells a sink.

    ``checkpointing`` is True when the flow runs with checkpoints: a sink with
    ``supports_checkpoints`` then publishes output only in ``commit``, never in ``close``.
    """

    def __init__(self, stage: str, flow: str, *, checkpointing: bool = False) -> None:
        self.stage = stage
        self.flow = flow
        self.checkpointing = checkpointing


class Sink:
    """A connector that consumes records. Subclass and implement ``write_batch``."""

    default_name: ClassVar[str] = "sink"

    async def open(self, context: SinkContext) -> None:
        """Prepare to write."""
        self.context = context

    def write_batch(self, records: list[Any]) -> Awaitable[None] | None:
        """Write one batch, in order. May be a plain method or ``async def``."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush and release at the end of the stream."""

    async def abort(self) -> None:
        """Release after the flow failed; by default the same as ``close``. Override it
        to discard output instead of publishing it (e.g. abort a transaction)."""
        await self.close()

    # -- event time (sinks that pass it on, e.g. a repartition topic) -----------------

    wants_time: ClassVar[bool] = False
    """True when the sink takes event time: the runtime then calls ``write_timed``
    instead of ``write_batch``, and ``on_watermark`` / ``on_idle`` in stream order."""

    async def write_timed(self, records: list[Any], timestamps: list[int]) -> None:
        """Write one batch with the event time of each record (``wants_time`` sinks)."""
        raise NotImplementedError

    async def on_watermark(self, timestamp_ms: float) -> None:
        """The watermark reached ``timestamp_ms`` (``inf`` at the end of the stream)."""

    async def on_idle(self, idle: bool) -> None:
        """Every input of the sink went idle (``True``) or one is active again."""

    def for_task(self, task: str) -> Sink:
        """The sink for one partition task of a scaled-out flow (``task`` names it).

        A sink without checkpoint state may be shared by every task, so by default it is
        ``self``; a sink with checkpoint state (``supports_checkpoints``) needs an
        instance per task and must override this."""
        if self.supports_checkpoints:
            raise GraphError(
                f"sink {type(self).__name__} keeps checkpoint state and does not say how to "
                "split it between partition tasks (Sink.for_task); it cannot be used in a flow "
                "that scales out over a partition group"
            )
        return self

    # -- checkpoint hooks (exactly-once sinks set supports_checkpoints = True) --------

    supports_checkpoints: ClassVar[bool] = False
    """True when the sink implements ``restore``, ``pre_commit`` and ``commit``."""

    async def restore(self, state: Any | None) -> None:
        """Before ``open`` under checkpointing: make the published output what the
        checkpoint being restored committed (``state`` is what ``pre_commit`` returned
        for it), finishing a publish a crash interrupted and discarding anything later.
        ``None`` means a fresh start: discard leftovers of earlier runs."""

    def pre_commit(self, checkpoint_id: int) -> Any:
        """At a barrier (and at the end of the stream): seal the output written so far,
        durably but not visibly; return a JSON-serialisable state naming it (or an
        awaitable of it)."""
        return None

    def commit(self, checkpoint_id: int, state: Any) -> Awaitable[None] | None:
        """Checkpoint ``checkpoint_id`` is complete: publish what ``pre_commit`` sealed
        for it and for any earlier checkpoint not yet published. Idempotent; may run
        after ``close``; may be ``async def``."""
        return None
