"""The messages that travel through mailboxes.

Data moves as ``Batch`` (a list of records, optionally with a parallel list of event
timestamps); everything else is a control message that keeps its place in the order of
the stream. ``channel`` is the index of the input the message arrived on at its receiver,
set by the sender's outlet, so actors with several inputs can track watermarks, barriers
and end of stream per input.
Design: docs/runtime.md#messages
"""

from __future__ import annotations

from typing import Any

__all__ = ["Barrier", "Batch", "EndOfStream", "Message", "Watermark"]


class Batch:
    """A list of records; ``timestamps`` is None or a list of int ms, one per record."""

    __slots__ = ("channel", "records", "timestamps")

    def __init__(self, records: list[Any], timestamps: list[int] | None = None, channel: int = 0):
        self.records = records
        self.timestamps = timestamps
        self.channel = channel

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Batch(n={len(self.records)}, timestamps={self.timestamps is not None}, channel={self.channel})"


class Watermark:
    """No record with an event time below ``timestamp_ms`` will follow on this channel.

    ``idle=True`` says the channel's source has gone quiet: leave it out of the minimum
    until it sends a watermark with ``idle=False`` (or a record) again.
    """

    __slots__ = ("channel", "idle", "timestamp_ms")

    def __init__(self, timestamp_ms: float, channel: int = 0, idle: bool = False):
        self.timestamp_ms = timestamp_ms
        self.channel = channel
        self.idle = idle

    def __repr__(self) -> str:
        return f"Watermark({self.timestamp_ms}, channel={self.channel}, idle={self.idle})"


class Barrier:
    """Checkpoint barrier number ``checkpoint_id``: state before it belongs to that checkpoint.

    ``full`` asks every stateful step for a full snapshot instead of the changed keys.
    """

    __slots__ = ("channel", "checkpoint_id", "full")

    def __init__(self, checkpoint_id: int, channel: int = 0, full: bool = True):
        self.checkpoint_id = checkpoint_id
        self.channel = channel
        self.full = full

    def __repr__(self) -> str:
        return f"Barrier({self.checkpoint_id}, channel={self.channel}, full={self.full})"


class EndOfStream:
    """The input on ``channel`` is finished; nothing else follows on it."""

    __slots__ = ("channel",)

    def __init__(self, channel: int = 0):
        self.channel = channel

    def __repr__(self) -> str:
        return f"EndOfStream(channel={self.channel})"


Message = Batch | Watermark | Barrier | EndOfStream
