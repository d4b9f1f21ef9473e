"""The bounded mailbox: order, water marks, close, cancellation and statistics."""

from __future__ import annotations

import asyncio
import random
from time import monotonic

import pytest
from runtime_helpers import let_others_run, wait_until

from streamcore.errors import MailboxClosedError, MailboxFullError
from streamcore.runtime.mailbox import Mailbox
from streamcore.runtime.messages import Barrier, Batch, EndOfStream, Message, Watermark


def batch(n: int, start: int = 0) -> Batch:
    """A batch of ``n`` consecutive ints from ``start``."""
    return Batch(list(range(start, start + n)))


async def fill(box: Mailbox, batches: int, size: int = 1) -> None:
    """Send ``batches`` batches of ``size`` records, none of which may wait."""
    for i in range(batches):
        await asyncio.wait_for(box.send(batch(size, i * size)), 1)


async def blocked_send(box: Mailbox, b: Batch, waiting: int = 1) -> asyncio.Task[None]:
    """Start sending ``b`` and wait until it is one of ``waiting`` blocked senders."""
    task = asyncio.create_task(box.send(b))
    await wait_until(lambda: box.statistics().senders_waiting == waiting, what="a blocked sender")
    return task


def drain(box: Mailbox) -> list[Message]:
    """Everything the mailbox holds right now."""
    out: list[Message] = []
    while (msg := box.receive_nowait()) is not None:
        out.append(msg)
    return out


def records_of(messages: list[Message]) -> list[object]:
    return [r for m in messages if isinstance(m, Batch) for r in m.records]


async def test_batches_and_control_messages_leave_in_the_order_they_entered() -> None:
    box = Mailbox(100)
    await box.send(Batch([1, 2]))
    box.send_control(Watermark(10))
    await box.send(Batch([3]))
    box.send_control(Barrier(7))
    box.send_nowait(Batch([4, 5]))
    box.send_control(EndOfStream())
    got = [await box.receive() for _ in range(6)]
    assert [type(m) for m in got] == [Batch, Watermark, Batch, Barrier, Batch, EndOfStream]
    assert records_of(got) == [1, 2, 3, 4, 5]
    assert box.receive_nowait() is None


async def test_a_receiver_waiting_on_an_empty_mailbox_gets_the_next_message() -> None:
    box = Mailbox(10)
    receiver = asyncio.create_task(box.receive())
    await let_others_run()
    assert not receiver.done()
    await box.send(Batch(["x"]))
    msg = await asyncio.wait_for(receiver, 1)
    assert isinstance(msg, Batch) and msg.records == ["x"]


async def test_a_sender_blocked_at_the_high_mark_is_released_only_at_the_low_mark() -> None:
    box = Mailbox(10, low_water=4)
    await fill(box, 10)
    assert box.size == 10
    sender = await blocked_send(box, Batch(["late"]))
    # Just below the high mark there is room for one record, but hysteresis holds it back.
    for size_left in (9, 8, 7, 6, 5):
        box.receive_nowait()
        await let_others_run()
        assert box.size == size_left
        assert not sender.done(), f"sender released at size {size_left}, above the low mark 4"
    box.receive_nowait()
    await asyncio.wait_for(sender, 1)
    assert box.size == 5
    assert records_of(drain(box))[-1] == "late"


async def test_send_nowait_refuses_at_the_high_mark_until_drained_to_the_low_mark() -> None:
    box = Mailbox(4, low_water=1, name="inbox")
    await fill(box, 4)
    with pytest.raises(MailboxFullError, match=r"mailbox 'inbox' is full \(4/4 records\)"):
        box.send_nowait(Batch([0]))
    box.receive_nowait()
    box.receive_nowait()
    with pytest.raises(MailboxFullError):
        box.send_nowait(Batch([0]))
    box.receive_nowait()
    box.send_nowait(Batch(["fits"]))
    assert box.size == 2


async def test_a_batch_larger_than_the_capacity_is_admitted_into_an_empty_mailbox() -> None:
    box = Mailbox(10)
    await asyncio.wait_for(box.send(batch(25)), 1)
    assert box.size == 25
    # It is over the high mark now: the next sender waits.
    sender = await blocked_send(box, Batch([99]))
    box.receive_nowait()
    await asyncio.wait_for(sender, 1)


async def test_a_batch_larger_than_the_capacity_waits_until_the_mailbox_is_empty() -> None:
    box = Mailbox(10, low_water=5)
    await fill(box, 2, size=3)
    sender = await blocked_send(box, batch(25))
    box.receive_nowait()  # 3 records left: under the low mark, but 3 + 25 does not fit
    await let_others_run()
    assert not sender.done()
    box.receive_nowait()
    await asyncio.wait_for(sender, 1)
    assert box.size == 25


async def test_control_messages_never_wait_and_take_no_room() -> None:
    box = Mailbox(3)
    await fill(box, 3)
    sender = await blocked_send(box, Batch([3]))
    # Synchronous calls: they cannot wait.
    box.send_control(Watermark(5))
    box.send_control(Barrier(1))
    box.send_control(EndOfStream())
    stats = box.statistics()
    assert stats.size == 3
    assert stats.controls_through == 3
    assert stats.messages_waiting == 6
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sender


async def test_sends_after_close_raise_mailbox_closed_error() -> None:
    box = Mailbox(10, name="inbox")
    box.close()
    with pytest.raises(MailboxClosedError, match="send to closed mailbox 'inbox'"):
        await box.send(Batch([1]))
    with pytest.raises(MailboxClosedError, match="send to closed mailbox 'inbox'"):
        box.send_nowait(Batch([1]))
    with pytest.raises(MailboxClosedError, match="send to closed mailbox 'inbox'"):
        box.send_control(EndOfStream())
    assert box.statistics().closed


async def test_the_receiver_gets_everything_sent_before_close_then_mailbox_closed_error() -> None:
    box = Mailbox(10, name="inbox")
    await box.send(Batch([1, 2]))
    box.send_control(Watermark(3))
    box.close()
    first = await box.receive()
    second = await box.receive()
    assert isinstance(first, Batch) and first.records == [1, 2]
    assert isinstance(second, Watermark)
    with pytest.raises(MailboxClosedError, match="mailbox 'inbox' is closed and empty"):
        await box.receive()
    with pytest.raises(MailboxClosedError, match="mailbox 'inbox' is closed and empty"):
        box.receive_nowait()


async def test_a_waiting_receiver_is_woken_by_close_with_mailbox_closed_error() -> None:
    box = Mailbox(10, name="inbox")
    receiver = asyncio.create_task(box.receive())
    await let_others_run()
    box.close()
    with pytest.raises(MailboxClosedError, match="closed and empty"):
        await asyncio.wait_for(receiver, 1)


async def test_blocked_senders_are_woken_by_close_with_mailbox_closed_error() -> None:
    box = Mailbox(2, name="inbox")
    await fill(box, 2)
    first = await blocked_send(box, Batch(["a"]), waiting=1)
    second = await blocked_send(box, Batch(["b"]), waiting=2)
    box.close()
    for sender in (first, second):
        with pytest.raises(MailboxClosedError, match="mailbox 'inbox' closed while sending"):
            await asyncio.wait_for(sender, 1)
    assert box.statistics().senders_waiting == 0


async def test_a_cancelled_blocked_sender_does_not_strand_the_next_one() -> None:
    box = Mailbox(4, low_water=2)
    await fill(box, 4)
    first = await blocked_send(box, Batch(["first"]), waiting=1)
    second = await blocked_send(box, Batch(["second"]), waiting=2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    drain(box)
    await asyncio.wait_for(second, 1)
    assert records_of(drain(box)) == ["second"]


async def test_a_sender_cancelled_just_after_being_woken_passes_its_turn_on() -> None:
    box = Mailbox(4, low_water=2)
    await fill(box, 4)
    first = await blocked_send(box, Batch(["first"]), waiting=1)
    second = await blocked_send(box, Batch(["second"]), waiting=2)
    drain(box)  # wakes `first`; it is cancelled before it gets to run
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert records_of(drain(box)) == ["second"]


async def test_blocked_senders_get_in_first_come_first_served() -> None:
    box = Mailbox(2, low_water=0)
    await fill(box, 2)
    senders = [await blocked_send(box, Batch([name]), waiting=i + 1) for i, name in enumerate("abc")]
    received: list[object] = []
    while len(received) < 3:
        received.extend(r for r in records_of(drain(box)) if isinstance(r, str))
        await let_others_run()
    await asyncio.wait_for(asyncio.gather(*senders), 1)
    assert received == ["a", "b", "c"]


async def test_a_refused_send_nowait_does_not_strand_a_woken_sender_on_an_empty_mailbox() -> None:
    # A send_nowait refused only because another sender is queued must not throttle
    # the mailbox: the queued sender would wait for a drain that can never come.
    box = Mailbox(10, low_water=5)
    await box.send(batch(10))
    sender = await blocked_send(box, batch(5))
    drain(box)  # empty now: wakes `sender`
    with pytest.raises(MailboxFullError):
        box.send_nowait(Batch(["queue-jumper"]))
    await asyncio.wait_for(sender, 1)
    assert box.size == 5


async def test_a_new_sender_queued_behind_a_woken_one_does_not_strand_it() -> None:
    box = Mailbox(10, low_water=5)
    await box.send(batch(10))
    sender = await blocked_send(box, batch(5))
    go = asyncio.Event()

    async def queue_jumper() -> None:
        await go.wait()
        await box.send(Batch(["later"]))

    later = asyncio.create_task(queue_jumper())
    await let_others_run()
    go.set()  # `later` becomes ready before `sender` is woken below
    drain(box)
    await asyncio.wait_for(asyncio.gather(sender, later), 1)
    assert records_of(drain(box)) == [0, 1, 2, 3, 4, "later"]


@pytest.mark.parametrize("seed", range(30))
async def test_random_senders_and_a_slow_receiver_lose_nothing_and_never_hang(seed: int) -> None:
    rnd = random.Random(seed)
    capacity = rnd.randint(1, 12)
    box = Mailbox(capacity, low_water=rnd.randint(0, capacity - 1))
    largest = sent = 0

    async def sender(name: int) -> None:
        nonlocal largest, sent
        for i in range(rnd.randint(1, 15)):
            n = rnd.randint(1, capacity + 3)
            largest = max(largest, n)
            b = Batch([(name, i)] * n)
            if rnd.random() < 0.3:
                try:
                    box.send_nowait(b)
                    sent += n
                    continue
                except MailboxFullError:
                    pass
            await box.send(b)
            sent += n
            if rnd.random() < 0.5:
                await asyncio.sleep(0)

    senders = [asyncio.create_task(sender(name)) for name in range(rnd.randint(1, 4))]
    done = asyncio.gather(*senders)
    received: list[tuple[int, int]] = []
    deadline = monotonic() + 5
    try:
        while not (done.done() and box.size == 0):
            assert monotonic() < deadline, f"hung: {box!r}"
            msg = box.receive_nowait()
            if msg is None:
                await asyncio.wait({done}, timeout=0.001)
                continue
            assert isinstance(msg, Batch)
            received.extend(msg.records)
            assert box.size <= max(capacity, largest)
            for _ in range(rnd.randint(0, 3)):
                await asyncio.sleep(0)
        await done
    finally:
        done.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
    for name in range(len(senders)):
        mine = [i for s, i in received if s == name]
        assert mine == sorted(mine), f"sender {name} reordered"
    assert len(received) == sent
    assert box.statistics().records_through == sent


async def test_statistics_report_sizes_marks_and_traffic() -> None:
    box = Mailbox(8, low_water=3, name="stats")
    stats = box.statistics()
    assert (stats.size, stats.capacity, stats.high_water, stats.low_water) == (0, 8, 8, 3)
    assert stats.blocked_s == 0.0
    assert not stats.closed
    await box.send(batch(5))
    await box.send(batch(3))
    box.send_control(Watermark(1))
    stats = box.statistics()
    assert stats.size == 8
    assert stats.messages_waiting == 3
    assert (stats.batches_through, stats.records_through, stats.controls_through) == (2, 8, 1)
    sender = await blocked_send(box, batch(2))
    assert box.statistics().senders_waiting == 1
    box.receive_nowait()
    await asyncio.wait_for(sender, 1)
    stats = box.statistics()
    assert stats.blocked_s > 0
    assert stats.senders_waiting == 0
    assert (stats.size, stats.batches_through, stats.records_through) == (5, 3, 10)
    box.close()
    assert box.statistics().closed
    assert "stats" in repr(box) and "size=5/8" in repr(box)


async def test_evict_oldest_drops_batches_but_keeps_control_messages() -> None:
    box = Mailbox(100)
    await box.send(batch(3, 0))
    box.send_control(Watermark(1))
    await box.send(batch(4, 3))
    box.send_control(EndOfStream())
    await box.send(batch(5, 7))
    assert box.evict_oldest(5) == 7
    assert box.size == 5
    left = drain(box)
    assert [type(m) for m in left] == [Watermark, EndOfStream, Batch]
    assert records_of(left) == [7, 8, 9, 10, 11]


async def test_evicting_down_to_the_low_mark_releases_a_blocked_sender() -> None:
    box = Mailbox(4, low_water=2)
    await fill(box, 4)
    sender = await blocked_send(box, Batch(["new"]))
    assert box.evict_oldest(2) == 2
    await asyncio.wait_for(sender, 1)
    assert records_of(drain(box)) == [2, 3, "new"]


def test_a_mailbox_needs_a_positive_capacity_and_a_low_mark_below_it() -> None:
    with pytest.raises(ValueError, match="mailbox capacity must be at least 1 record, got 0"):
        Mailbox(0)
    with pytest.raises(ValueError, match=r"low water mark must be in \[0, 5\), got 5"):
        Mailbox(5, low_water=5)
