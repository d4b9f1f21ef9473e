"""Actors: one asyncio task each, owning one inbox and a chain of steps.

An ``Actor`` reads its inbox and pushes each message into its first step; a
``SourceActor`` reads a source connector instead. Actors share nothing mutable and talk
only through mailboxes.

Watermark rule of an actor with several input channels:
1. Each channel's watermark only moves forward; an ended channel counts as +inf.
2. Channels marked idle by their source are left out of the minimum, until they speak.
3. The actor's watermark is the minimum over the rest; it is passed on only when it
   moved forward (so watermarks never go backwards downstream).
Design: docs/runtime.md#actors
"""

from __future__ import annotations

import asyncio
import logging
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any

from streamcore.drop_log import DropLog, shown
from streamcore.duration import timestamp_unit_warning, to_timestamp_ms
from streamcore.errors import SourceError, StreamcoreError
from streamcore.io import Source, SourceContext
from streamcore.item_lookup import item_lookup
from streamcore.runtime.chain import StatelessStage
from streamcore.runtime.mailbox import Mailbox
from streamcore.runtime.messages import Barrier, Batch, EndOfStream, Message, Watermark
from streamcore.runtime.steps import DeadLetter, Outlet, Step
from streamcore.state.snapshot import (
    ActorPart,
    EncodedSnapshot,
    Stateful,
    StepSnapshot,
    encode_snapshot,
)
from streamcore.time.watermarks import BoundedOutOfOrderness, Idleness, PerPartition, SourceGiven

if TYPE_CHECKING:
    from streamcore.state.coordinator import CheckpointCoordinator
    from streamcore.time.idle_advance import IdleAdvance

__all__ = ["Actor", "ActorStatistics", "DeadLetterCollector", "SourceActor"]

log = logging.getLogger("streamcore.runtime")

NEG_INF = -math.inf
BATCH_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds of the batch-handling time histogram (``ActorStatistics.batch_seconds_counts``)."""
POS_INF = math.inf


@dataclass(frozen=True)
class ActorStatistics:
    """Counters of one actor (a source, or a fused chain of stages)."""

    name: str
    stages: tuple[str, ...]
    records_in: int
    batches_in: int
    records_out: int
    busy_s: float
    """Time spent processing messages."""
    idle_s: float
    """Time spent waiting for input."""
    backpressured_s: float
    """Time spent waiting for room downstream."""
    watermark_ms: float
    """The actor's current watermark (-inf before the first one)."""
    held_back_by: Any
    """What holds the watermark back: the input channel index (stages) or the
    partition (partitioned sources), if any."""
    dropped: int
    dead_letters: int
    skipped: int
    finished: bool
    batch_seconds_counts: tuple[int, ...] = ()
    """Batches handled per bucket of ``BATCH_BUCKETS_S`` (the last: slower than all of them);
    empty for sources. The time includes waiting for room downstream."""
    batch_seconds_sum: float = 0.0


class DeadLetterCollector:
    """Collects an actor's failed records between batches; counts skipped ones."""

    def __init__(self, mailbox: Mailbox | None, channel: int = 0) -> None:
        self.mailbox = mailbox
        self.channel = channel
        self.pending: list[DeadLetter] = []
        self.dead_letters = 0
        self.skipped = 0
        self.drops = DropLog(log)

    def __call__(self, stage: StatelessStage, record: Any, error: BaseException) -> None:
        detail = f"record={shown(record)} error={f'{type(error).__name__}: {error}'!r}"
        if stage.on_error == "dead_letter" and self.mailbox is not None:
            self.pending.append(DeadLetter(stage.name, record, error))
            self.dead_letters += 1
            self.drops.record("dead-lettered", stage.name, detail)
        else:
            self.skipped += 1
            self.drops.record("skipped", stage.name, detail)

    def skip(self, stage: str, record: Any, error: BaseException) -> None:
        """Count and log a record skipped before any stage ran (a source's bad input)."""
        self.skipped += 1
        self.drops.record("skipped", stage, f"record={shown(record)} error={str(error)!r}")

    async def flush(self) -> None:
        """Send what was collected to the flow's dead-letter stream."""
        if self.pending and self.mailbox is not None:
            batch, self.pending = self.pending, []
            await self.mailbox.send(Batch(batch, None, self.channel))

    def barrier(self, checkpoint_id: int, full: bool) -> None:
        """Pass a checkpoint barrier on to the dead-letter stream (after ``flush``)."""
        if self.mailbox is not None and not self.mailbox.closed:
            self.mailbox.send_control(Barrier(checkpoint_id, self.channel, full))

    def end(self) -> None:
        """This actor will send no more dead letters."""
        if self.mailbox is not None and not self.mailbox.closed:
            self.mailbox.send_control(EndOfStream(self.channel))


class Actor:
    """Reads an inbox with one or more input channels and drives its steps."""

    def __init__(
        self,
        name: str,
        stages: tuple[str, ...],
        inbox: Mailbox,
        head: Step,
        steps: list[Step],
        channels: int,
        outlets: list[Outlet],
        dead_letters: DeadLetterCollector,
        instance: int = 0,
    ) -> None:
        self.name = name
        self.stages = stages
        self.instance = instance
        """Which of its group's parallel actors this is (keys are routed by it)."""
        self.inbox = inbox
        self.head = head
        self.steps = steps
        self.channels = channels
        self.outlets = outlets
        self.dead = dead_letters
        self.watermarks = [NEG_INF] * channels
        self.idle = [False] * channels
        self._all_idle = False
        self.batch_counts = [0] * (len(BATCH_BUCKETS_S) + 1)
        self.batch_seconds_sum = 0.0
        self.ended = [False] * channels
        self.watermark_ms: float = NEG_INF
        self.records_in = 0
        self.batches_in = 0
        self.busy_s = 0.0
        self.idle_s = 0.0
        self.finished = False
        self.checkpoint: CheckpointCoordinator | None = None
        self.stateful: list[Stateful] = [s for s in steps if isinstance(s, Stateful)]
        self._routed = getattr(head, "on_channel_batch", None)
        """A head step with several inputs to tell apart (a join) takes batches with their channel."""
        # Barrier alignment: which channels delivered the barrier being aligned, the
        # messages held back meanwhile, and those to process again before the inbox.
        self._aligning: Barrier | None = None
        self._blocked: list[bool] | None = None
        self._held: deque[Message] = deque()
        self._replay: deque[Message] = deque()
        self.held_records = 0
        """Records held back by barrier alignment, in total."""

    def __repr__(self) -> str:
        return f"<Actor {self.name!r} channels={self.channels} watermark={self.watermark_ms}>"

    async def run(self) -> None:
        """Process messages until every input channel has ended.

        Steps are closed at the end, or aborted after a failure. Under checkpointing, a
        step that publishes on commit (an exactly-once sink) is closed by the runtime
        after the final checkpoint instead, so its last commit finds it still open.
        """
        for step in self.steps:
            await step.open()
        ok = False
        try:
            await self._loop()
            ok = True
        except asyncio.CancelledError:
            # Nobody will drain this inbox any more: release the senders blocked on it
            # (MailboxClosedError), or one that lost its own cancel would wait forever.
            self.inbox.close()
            raise
        finally:
            for step in reversed(self.steps):
                if not ok:
                    await step.abort()
                elif self.checkpoint is not None and getattr(step, "transactional", False):
                    self.checkpoint.defer_close(step.close)
                else:
                    await step.close()

    async def _loop(self) -> None:
        inbox, head, dead, replay = self.inbox, self.head, self.dead, self._replay
        self.open_channels = self.channels
        while self.open_channels:
            if replay:
                msg: Message | None = replay.popleft()
            else:
                msg = inbox.receive_nowait()
            if msg is None:
                waited = perf_counter()
                msg = await inbox.receive()
                self.idle_s += perf_counter() - waited
            started = perf_counter()
            cls = msg.__class__
            if self._blocked is not None and self._blocked[msg.channel]:
                # Behind a barrier on its channel: waits for the other channels' barriers.
                self._held.append(msg)
                if cls is Batch:
                    self.held_records += len(msg.records)  # type: ignore[union-attr]
            elif cls is Batch:
                self.records_in += len(msg.records)  # type: ignore[union-attr]
                self.batches_in += 1
                if self._routed is None:
                    await head.on_batch(msg.records, msg.timestamps)  # type: ignore[union-attr]
                else:
                    await self._routed(msg.channel, msg.records, msg.timestamps)  # type: ignore[union-attr]
                if dead.pending:
                    await dead.flush()
                spent = perf_counter() - started
                self.batch_counts[bisect_left(BATCH_BUCKETS_S, spent)] += 1
                self.batch_seconds_sum += spent
            elif cls is Watermark:
                await self._on_watermark(msg)  # type: ignore[arg-type]
            elif cls is Barrier:
                await self._on_barrier(msg)  # type: ignore[arg-type]
            elif cls is EndOfStream:
                await self._on_end_of_stream(msg.channel)
            self.busy_s += perf_counter() - started
        # Every input ended: the watermark is +inf, flush and pass the end on.
        started = perf_counter()
        await head.on_end()
        if dead.pending:
            await dead.flush()
        if self.checkpoint is not None:
            self.checkpoint.final(ActorPart(self.name, await self._snapshots(self.checkpoint.next_id, True)))
        dead.end()
        self.busy_s += perf_counter() - started
        self.finished = True

    async def _on_end_of_stream(self, channel: int) -> None:
        if self.ended[channel]:
            return
        self.ended[channel] = True
        self.open_channels -= 1
        self.watermarks[channel] = POS_INF
        self.idle[channel] = False
        if self.open_channels:
            await self._advance()
            if self._blocked is not None:
                await self._check_aligned()

    async def _on_barrier(self, barrier: Barrier) -> None:
        if self.checkpoint is None:
            return
        if self._blocked is None:
            self._aligning = barrier
            self._blocked = [False] * self.channels
        self._blocked[barrier.channel] = True
        await self._check_aligned()

    async def _check_aligned(self) -> None:
        blocked, barrier = self._blocked, self._aligning
        assert blocked is not None and barrier is not None and self.checkpoint is not None
        if not all(b or e for b, e in zip(blocked, self.ended, strict=True)):
            return
        n, full = barrier.checkpoint_id, barrier.full
        snapshots = await self._snapshots(n, full)
        if self.dead.pending:
            await self.dead.flush()
        self.dead.barrier(n, full)
        for outlet in self.outlets:
            outlet.on_barrier(n, full)
        self.checkpoint.ack(n, ActorPart(self.name, snapshots))
        self._blocked = self._aligning = None
        if self._held:
            # Held messages came before anything still in the inbox: process them first.
            self._replay.extendleft(reversed(self._held))
            self._held.clear()

    async def _snapshots(self, checkpoint_id: int, full: bool) -> list[EncodedSnapshot]:
        encoded = []
        for step in self.stateful:
            snapshot = step.snapshot_state(checkpoint_id, full)
            if not isinstance(snapshot, StepSnapshot):
                snapshot = await snapshot
            encoded.append(encode_snapshot(step.name, snapshot))
        return encoded

    def enable_checkpoints(self, coordinator: CheckpointCoordinator) -> None:
        """Take part in ``coordinator``'s checkpoints."""
        self.checkpoint = coordinator
        for step in self.stateful:
            step.enable_checkpoints()

    async def _on_watermark(self, msg: Watermark) -> None:
        channel = msg.channel
        if msg.idle:
            self.idle[channel] = True
        else:
            self.idle[channel] = False
            if msg.timestamp_ms > self.watermarks[channel]:
                self.watermarks[channel] = msg.timestamp_ms
        await self._advance()
        all_idle = any(self.idle) and all(i or e for i, e in zip(self.idle, self.ended, strict=True))
        if all_idle != self._all_idle:
            self._all_idle = all_idle
            await self.head.on_idle(all_idle)

    def _current(self) -> tuple[float, int | None]:
        best = POS_INF
        holder = None
        any_active = False
        for i, wm in enumerate(self.watermarks):
            if self.idle[i]:
                continue
            any_active = True
            if wm < best:
                best, holder = wm, i
        if not any_active or (best == POS_INF and any(self.idle)):
            # Only idle inputs are left open: ended inputs must not carry the watermark to
            # +inf past an idle one, whose records would all be late when it resumes.
            return self.watermark_ms, None
        return best, holder

    async def _advance(self) -> None:
        wm, _ = self._current()
        if wm > self.watermark_ms:
            self.watermark_ms = wm
            if wm < POS_INF:
                await self.head.on_watermark(wm)
                if self.dead.pending:
                    await self.dead.flush()

    def statistics(self) -> ActorStatistics:
        """A snapshot of this actor's counters."""
        return ActorStatistics(
            name=self.name,
            stages=self.stages,
            records_in=self.records_in,
            batches_in=self.batches_in,
            records_out=sum(o.records_out for o in self.outlets),
            busy_s=self.busy_s,
            idle_s=self.idle_s,
            backpressured_s=sum(o.blocked_s for o in self.outlets),
            watermark_ms=self.watermark_ms,
            held_back_by=self._current()[1] if not self.finished else None,
            dropped=sum(o.dropped for o in self.outlets),
            dead_letters=self.dead.dead_letters,
            skipped=self.dead.skipped,
            finished=self.finished,
            batch_seconds_counts=tuple(self.batch_counts),
            batch_seconds_sum=self.batch_seconds_sum,
        )


class SourceActor:
    """Reads a source connector in batches, stamps event time and emits watermarks."""

    def __init__(
        self,
        name: str,
        source: Source,
        head: Step,
        outlet: Outlet,
        *,
        timestamp: Callable[[Any], Any] | None,
        max_out_of_orderness_ms: int,
        batch_size: int,
        linger_ms: float,
        max_rate: float | None,
        idle_timeout_ms: int | None,
        forward_timestamps: bool,
        on_error: str,
        dead_letters: DeadLetterCollector,
        advance_when_idle: IdleAdvance | None = None,
    ) -> None:
        self.name = name
        self.stages = (name,)
        self.source = source
        self.head = head
        self.outlet = outlet
        self.timestamp = timestamp
        self._unit_checked = False
        lookup = item_lookup(timestamp)
        # lambda e: e["ts"] is taken by itemgetter, in C (same lookup, same errors).
        self._timestamps_of: Any = timestamp if lookup is None else itemgetter(lookup[0])
        self.bound_ms = max_out_of_orderness_ms
        self.batch_size = batch_size
        if max_rate is not None:
            # Small batches keep a throttled stream smooth instead of bursty.
            self.batch_size = max(1, min(batch_size, int(max_rate / 20)))
        self.linger_s = linger_ms / 1000
        self.max_rate = max_rate
        self.idle_timeout_s = None if idle_timeout_ms is None else idle_timeout_ms / 1000
        self.advance_when_idle = advance_when_idle
        self.forward_timestamps = forward_timestamps
        self.on_error = on_error
        self.dead = dead_letters
        self.position: Any = None
        self.records_out = 0
        self.batches = 0
        self.busy_s = 0.0
        self.idle_s = 0.0
        self.finished = False
        self._stop = asyncio.Event()
        self._paused = False
        self._poke = asyncio.Event()
        self.checkpoint: CheckpointCoordinator | None = None
        self._barrier: tuple[int, bool] | None = None
        self.partitioned = type(source).record_partitions is not Source.record_partitions
        # Sources that know event times and the watermark themselves (a repartition topic).
        self.own_time = type(source).record_timestamps is not Source.record_timestamps
        self.own_watermark = type(source).watermark is not Source.watermark
        # The watermark rules are strategy objects of the time layer (time/watermarks.py).
        self.marks: BoundedOutOfOrderness | SourceGiven
        if self.own_watermark:
            self.marks = SourceGiven()
        elif self.partitioned:
            self.marks = PerPartition(max_out_of_orderness_ms, self.idle_timeout_s, monotonic)
        else:
            self.marks = BoundedOutOfOrderness(max_out_of_orderness_ms)
        self.idleness = Idleness(self.idle_timeout_s, monotonic)

    @property
    def watermark_ms(self) -> float:
        """The source's watermark (event-time ms; -inf before the first)."""
        return self.marks.watermark_ms

    @property
    def max_timestamp_ms(self) -> float:
        """The largest event time seen (over partitions not idle, for a partitioned source)."""
        return self.marks.max_timestamp_ms

    @property
    def partition_max(self) -> dict[Any, float]:
        """Partitioned sources: the largest event time per partition."""
        return self.marks.partition_max if isinstance(self.marks, PerPartition) else {}

    @property
    def held_back_by(self) -> Any:
        """The partition whose event time holds the watermark back (partitioned sources)."""
        return self.marks.held_back_by if isinstance(self.marks, PerPartition) else None

    @property
    def is_idle(self) -> bool:
        """Whether the source holds its consumers' watermark back no longer (idle)."""
        return self.idleness.is_idle

    def __repr__(self) -> str:
        return f"<SourceActor {self.name!r} watermark={self.watermark_ms}>"

    def request_stop(self) -> None:
        """Stop reading; end the stream after the batch in hand (graceful drain)."""
        self._stop.set()
        self._poke.set()

    def request_pause(self) -> None:
        """Stop reading after the batch in hand but keep the stream open: barriers still
        pass, so a checkpoint taken now holds everything read (see ``Runtime.suspend``)."""
        self._paused = True

    def request_barrier(self, checkpoint_id: int, full: bool) -> None:
        """Inject checkpoint barrier ``checkpoint_id`` after the batch in hand."""
        self._barrier = (checkpoint_id, full)
        self._poke.set()

    def enable_checkpoints(self, coordinator: CheckpointCoordinator) -> None:
        """Take part in ``coordinator``'s checkpoints (as a source: inject barriers)."""
        self.checkpoint = coordinator
        coordinator.barrier_targets[self.name] = self.request_barrier

    def restore(self, meta: Any) -> None:
        """Resume where a checkpoint left this source: position and watermark."""
        if meta is None:
            return
        self.position = meta["position"]
        self.marks.max_timestamp_ms = meta["max_timestamp_ms"]
        self.marks.watermark_ms = meta["watermark_ms"]
        if isinstance(self.marks, PerPartition):
            self.marks.partition_max = dict(meta.get("partition_max", []))

    def _snapshot(self) -> list[EncodedSnapshot]:
        meta = {
            "position": self.position,
            "max_timestamp_ms": self.max_timestamp_ms,
            "watermark_ms": self.watermark_ms,
            "partition_max": [[p, m] for p, m in self.partition_max.items()],
        }
        return [EncodedSnapshot(self.name, meta, {}, True)]

    async def _inject_barrier(self) -> None:
        assert self._barrier is not None and self.checkpoint is not None
        n, full = self._barrier
        self._barrier = None
        if self.dead.pending:
            await self.dead.flush()
        self.dead.barrier(n, full)
        self.outlet.on_barrier(n, full)
        self.checkpoint.ack(n, ActorPart(self.name, self._snapshot()))

    async def run(self) -> None:
        """Read until the source ends (or a stop is requested), then end the stream."""
        context = SourceContext(
            self.name, on_error=self.on_error, linger_s=self.linger_s, dead_letter=self._bad_record,
            skipped=self._skipped,
        )
        await self.source.open(context, self.position)
        ok = False
        try:
            self.position = self.source.position()
            await self._loop()
            ok = True
        finally:
            if ok and self.checkpoint is not None:
                # Open until the final checkpoint, which commits its positions (e.g. Kafka offsets).
                self.checkpoint.defer_close(self.source.release)
            else:
                await self.source.release()
        if self.checkpoint is not None:
            self.checkpoint.final(ActorPart(self.name, self._snapshot()))
        self.dead.end()

    def _bad_record(self, raw: object, error: BaseException) -> None:
        self.dead.pending.append(DeadLetter(self.name, raw, error))
        self.dead.dead_letters += 1

    def _skipped(self) -> None:
        self.dead.skipped += 1

    async def _loop(self) -> None:
        source, outlet, stop, idleness = self.source, self.outlet, self._stop, self.idleness
        poll_s = 0.1 if self.idle_timeout_s is None else min(0.1, self.idle_timeout_s / 2)
        advance = self.advance_when_idle
        if advance is not None:
            poll_s = min(poll_s, max(0.01, advance.after_ms / 2000))
            quiet_since_ms = advance.clock.now_ms()
        rate_start = monotonic()
        rate_count = 0
        while not stop.is_set():
            if self._paused:
                await self._paused_step(poll_s)
                continue
            waited = perf_counter()
            records = await source.read_batch(self.batch_size, poll_s)
            self.idle_s += perf_counter() - waited
            if records is None:
                break
            started = perf_counter()
            if not records:
                await self._emit(self._watermark_after(None, None))
                marks = self.marks
                if (
                    advance is not None
                    and isinstance(marks, BoundedOutOfOrderness)  # not a source-given watermark
                    and not idleness.is_idle
                    and advance.quiet_for_ms(quiet_since_ms) >= advance.after_ms
                ):
                    # advance_when_idle, step 2: move with the clock, never backwards.
                    await self._emit(marks.advance_to(advance.watermark(self.bound_ms)))
                await self._check_idle()
                self.busy_s += perf_counter() - started
                if self.dead.pending:
                    await self.dead.flush()
                if self._barrier is not None:
                    await self._inject_barrier()
                continue
            if idleness.on_data():
                await outlet.on_watermark_status(idle=False, timestamp_ms=self.watermark_ms)
            self.position = source.position()
            if self.own_time:
                timestamps = source.record_timestamps()
            else:
                timestamps = self._stamp(records) if self.timestamp is not None else None
            self.records_out += len(records)
            self.batches += 1
            if records:
                await self.head.on_batch(records, timestamps if self.forward_timestamps else None)
            await self._emit(self._watermark_after(records, timestamps))
            if self.dead.pending:
                await self.dead.flush()
            if self._barrier is not None:
                await self._inject_barrier()
            # Idleness counts from here: time blocked sending downstream (backpressure)
            # is not time without input.
            idleness.on_data()
            if advance is not None:
                quiet_since_ms = advance.clock.now_ms()  # advance_when_idle, step 1
            self.busy_s += perf_counter() - started
            if self.max_rate is not None:
                rate_count += len(records)
                ahead_s = rate_count / self.max_rate - (monotonic() - rate_start)
                if ahead_s > 0:
                    # Throttling is the point here: wait out the time we are ahead.
                    await asyncio.sleep(ahead_s)
        await self.head.on_end()
        self.finished = True

    def _watermark_after(self, records: list[Any] | None, timestamps: list[int] | None) -> float | None:
        """The strategy's new watermark after a batch (``records`` None: an empty read)."""
        marks, source = self.marks, self.source
        if isinstance(marks, SourceGiven):
            return marks.on_source(source.watermark())
        if isinstance(marks, PerPartition):
            parts = source.record_partitions() if records else None
            return marks.on_batch(parts, timestamps, source.assigned(), set(source.caught_up()))
        return marks.on_timestamps(timestamps) if timestamps else None

    async def _emit(self, watermark_ms: float | None) -> None:
        if watermark_ms is not None:
            await self.head.on_watermark(watermark_ms)

    async def _check_idle(self) -> None:
        """After an empty read: tell the consumers once the source stops holding them back."""
        idleness, source = self.idleness, self.source
        if idleness.is_idle:
            return
        caught_up = not self.partitioned or set(source.assigned()) <= set(source.caught_up())
        if idleness.goes_idle(caught_up):
            # Only time spent waiting for input counts: a source blocked on a full
            # mailbox is inside outlet.on_batch, not here.
            await self.outlet.on_watermark_status(idle=True)
        elif isinstance(self.marks, PerPartition) and self.marks.never_gave_and_caught_up(
            source.assigned(), source.caught_up()
        ):
            # As for one partition of a partitioned source: caught up without a record
            # yet, so it holds nothing back (e.g. an empty partition's task).
            idleness.is_idle = True
            await self.outlet.on_watermark_status(idle=True)

    async def _paused_step(self, poll_s: float) -> None:
        """While paused: pass barriers on, read nothing."""
        if self.dead.pending:
            await self.dead.flush()
        if self._barrier is not None:
            await self._inject_barrier()
            return
        self._poke.clear()
        waiter = asyncio.ensure_future(self._poke.wait())
        try:
            await asyncio.wait([waiter], timeout=poll_s)
        finally:
            waiter.cancel()

    def _stamp(self, records: list[Any]) -> list[int]:
        stamps = self._stamp_all(records)
        if not self._unit_checked and stamps:
            # One look at the first event time catches seconds or microseconds by mistake.
            self._unit_checked = True
            warning = timestamp_unit_warning(stamps[0], self.name)
            if warning is not None:
                log.warning(warning)
        return stamps

    def _stamp_all(self, records: list[Any]) -> list[int]:
        fn = self.timestamp
        assert fn is not None
        try:
            # map and a set of types run in C: per record only the user's function runs here.
            timestamps = list(map(self._timestamps_of, records))
            if set(map(type, timestamps)) <= {int}:
                return timestamps
            return [to_timestamp_ms(t) for t in timestamps]
        except Exception:
            pass
        good: list[Any] = []
        stamps: list[int] = []
        for r in records:
            try:
                stamps.append(to_timestamp_ms(fn(r)))
                good.append(r)
            except Exception as exc:
                err = SourceError(f"source {self.name!r}: cannot take the event time of {r!r}: {exc}")
                if self.on_error == "fail":
                    raise err from exc
                if self.on_error == "dead_letter":
                    self._bad_record(r, err)
                    self.dead.drops.record("dead-lettered", self.name, f"record={shown(r)} error={str(exc)!r}")
                else:
                    self.dead.skip(self.name, r, exc)
        records[:] = good
        return stamps

    def statistics(self) -> ActorStatistics:
        """A snapshot of this source's counters."""
        return ActorStatistics(
            name=self.name,
            stages=self.stages,
            records_in=self.records_out,
            batches_in=self.batches,
            records_out=self.outlet.records_out,
            busy_s=self.busy_s,
            idle_s=self.idle_s,
            backpressured_s=self.outlet.blocked_s,
            watermark_ms=self.watermark_ms,
            held_back_by=self.held_back_by,
            dropped=self.outlet.dropped,
            dead_letters=self.dead.dead_letters,
            skipped=self.dead.skipped,
            finished=self.finished,
        )


def wrap_actor_error(name: str, exc: BaseException) -> StreamcoreError:
    """An actor's failure as a ``StreamcoreError`` naming the stage."""
    if isinstance(exc, StreamcoreError):
        return exc
    err = StreamcoreError(f"stage {name!r} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
