"""Bounded mailbox between two actors.

The only channel actors share. It is bounded in *records* (not messages): ``send`` of a
batch waits while the mailbox is at its high water mark and resumes only once the
receiver has drained it to the low water mark (hysteresis, so producers do not thrash
at the boundary). That is the engine's backpressure, so there is no unbounded variant.

Invariants:
1. Messages leave in the order they entered; nothing is reordered or lost.
2. Control messages (watermarks, barriers, end of stream) never wait for room and do not
   count towards the size: a barrier must not queue behind backpressure.
3. A batch is admitted when it fits under the high mark, or when the mailbox holds no
   records at all (so one batch larger than the capacity cannot deadlock). The size is
   thus never above ``max(high_water, largest batch)``.
4. While any sender is waiting, new senders queue behind it (FIFO, no starvation).
5. ``close()`` is explicit: later sends raise ``MailboxClosedError``; the receiver still
   gets everything sent before, then ``MailboxClosedError``. A cancelled receiving actor
   closes its inbox, so no sender waits for room that will never come.

Design: docs/runtime.md#mailbox
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from time import perf_counter

from streamcore.errors import MailboxClosedError, MailboxFullError
from streamcore.runtime.messages import Batch, Message

__all__ = ["Mailbox", "MailboxStatistics"]


@dataclass(frozen=True)
class MailboxStatistics:
    """A snapshot of a mailbox's counters."""

    size: int
    """Records waiting in the mailbox."""
    capacity: int
    high_water: int
    low_water: int
    messages_waiting: int
    senders_waiting: int
    blocked_s: float
    """Total time senders spent waiting for room (the backpressure time)."""
    batches_through: int
    records_through: int
    controls_through: int
    closed: bool


class Mailbox:
    """A FIFO of batches and control messages, bounded in records with two water marks."""

    def __init__(self, capacity: int, low_water: int | None = None, name: str = "") -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1 record, got {capacity}")
        if low_water is None:
            low_water = capacity // 2
        if not 0 <= low_water < capacity:
            raise ValueError(f"low water mark must be in [0, {capacity}), got {low_water}")
        self.name = name
        self._high = capacity
        self._low = low_water
        self._queue: deque[Message] = deque()
        self._size = 0
        self._closed = False
        # Set when a sender found no room; cleared only when the size drops to the low mark.
        self._throttled = False
        self._send_waiters: deque[asyncio.Future[None]] = deque()
        self._receive_waiter: asyncio.Future[None] | None = None
        self._blocked_s = 0.0
        self._blocked_since: float | None = None
        self._batches = 0
        self._records = 0
        self._controls = 0

    def __repr__(self) -> str:
        return (
            f"<Mailbox {self.name!r} size={self._size}/{self._high} low={self._low} "
            f"waiting_senders={len(self._send_waiters)} closed={self._closed}>"
        )

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def size(self) -> int:
        """Records currently waiting."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def _fits(self, n: int) -> bool:
        return self._size == 0 or self._size + n <= self._high

    # -- sending ---------------------------------------------------------------

    def send_nowait(self, batch: Batch) -> None:
        """Put a batch in, or raise ``MailboxFullError`` if it would have to wait."""
        if self._closed:
            raise MailboxClosedError(f"send to closed mailbox {self.name!r}")
        n = len(batch.records)
        if self._throttled or self._send_waiters or not self._fits(n):
            # Only a batch that truly does not fit starts the throttle: setting it because
            # other senders are queued could leave an empty mailbox throttled forever.
            if not self._fits(n):
                self._throttled = True
            raise MailboxFullError(f"mailbox {self.name!r} is full ({self._size}/{self._high} records)")
        self._put(batch, n)

    async def send(self, batch: Batch) -> None:
        """Put a batch in, waiting (backpressure) until there is room for it."""
        if self._closed:
            raise MailboxClosedError(f"send to closed mailbox {self.name!r}")
        n = len(batch.records)
        if not self._throttled and not self._send_waiters and self._fits(n):
            self._put(batch, n)
            return
        if not self._fits(n):
            self._throttled = True
        waiter = asyncio.get_running_loop().create_future()
        self._send_waiters.append(waiter)
        if self._blocked_since is None:
            self._blocked_since = perf_counter()
        try:
            while True:
                await waiter
                if self._closed:
                    raise MailboxClosedError(f"mailbox {self.name!r} closed while sending")
                if not self._throttled and self._fits(n):
                    break
                # Woken but the receiver has not drained far enough yet: wait again,
                # keeping our place at the head of the queue. Throttle so that the next
                # drain to the low mark wakes us (the mailbox holds records, or we fit).
                self._throttled = True
                waiter = asyncio.get_running_loop().create_future()
                self._send_waiters[0] = waiter
        except BaseException:
            # Cancelled (or closed) while waiting: give our turn to the next sender so
            # a cancellation never strands the others.
            try:
                self._send_waiters.remove(waiter)
            except ValueError:
                pass
            self._stop_blocked_clock()
            self._wake_next_sender()
            raise
        self._send_waiters.popleft()
        self._stop_blocked_clock()
        self._put(batch, n)
        self._wake_next_sender()

    def _stop_blocked_clock(self) -> None:
        if not self._send_waiters and self._blocked_since is not None:
            self._blocked_s += perf_counter() - self._blocked_since
            self._blocked_since = None

    def send_control(self, message: Message) -> None:
        """Put a control message in; never waits (control messages do not take room)."""
        if self._closed:
            raise MailboxClosedError(f"send to closed mailbox {self.name!r}")
        self._queue.append(message)
        self._controls += 1
        self._wake_receiver()

    def _put(self, batch: Batch, n: int) -> None:
        self._queue.append(batch)
        self._size += n
        self._batches += 1
        self._records += n
        if self._size >= self._high:
            self._throttled = True
        self._wake_receiver()

    def evict_oldest(self, records: int) -> int:
        """Drop the oldest batches until at least ``records`` are gone; keep control messages.

        Used by sources that cannot be held back (``overflow="drop_oldest"``). Returns
        the number of records dropped, which the caller must count.
        """
        dropped = 0
        kept: deque[Message] = deque()
        while self._queue and dropped < records:
            msg = self._queue.popleft()
            if isinstance(msg, Batch):
                dropped += len(msg.records)
            else:
                kept.append(msg)
        kept.extend(self._queue)
        self._queue = kept
        self._size -= dropped
        self._records -= dropped
        self._on_drained()
        return dropped

    # -- receiving -------------------------------------------------------------

    def receive_nowait(self) -> Message | None:
        """Take the next message, or None if there is none yet."""
        if not self._queue:
            if self._closed:
                raise MailboxClosedError(f"mailbox {self.name!r} is closed and empty")
            return None
        msg = self._queue.popleft()
        if msg.__class__ is Batch:
            self._size -= len(msg.records)
            if self._throttled and self._size <= self._low:
                self._on_drained()
        return msg

    async def receive(self) -> Message:
        """Take the next message, waiting for one."""
        while not self._queue:
            if self._closed:
                raise MailboxClosedError(f"mailbox {self.name!r} is closed and empty")
            waiter = asyncio.get_running_loop().create_future()
            self._receive_waiter = waiter
            try:
                await waiter
            finally:
                self._receive_waiter = None
        msg = self.receive_nowait()
        assert msg is not None
        return msg

    def _wake_receiver(self) -> None:
        waiter = self._receive_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_drained(self) -> None:
        if self._size <= self._low:
            self._throttled = False
            self._wake_next_sender()

    def _wake_next_sender(self) -> None:
        if self._send_waiters and not self._throttled:
            waiter = self._send_waiters[0]
            if not waiter.done():
                waiter.set_result(None)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Refuse further sends; wake everybody waiting so they can see it."""
        self._closed = True
        for waiter in self._send_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._wake_receiver()

    def statistics(self) -> MailboxStatistics:
        """Counters for metrics and tests."""
        blocked = self._blocked_s
        if self._blocked_since is not None:
            blocked += perf_counter() - self._blocked_since
        return MailboxStatistics(
            size=self._size,
            capacity=self._high,
            high_water=self._high,
            low_water=self._low,
            messages_waiting=len(self._queue),
            senders_waiting=len(self._send_waiters),
            blocked_s=blocked,
            batches_through=self._batches,
            records_through=self._records,
            controls_through=self._controls,
            closed=self._closed,
        )
