"""``ListSink``: collects a stream's records in a list, for tests and embedded use."""

from __future__ import annotations

from typing import Any

from streamcore.io import Sink

__all__ = ["ListSink"]


class ListSink(Sink):
    """Appends every record to ``items``, in arrival order."""

    default_name = "list_sink"

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False

    def write_batch(self, records: list[Any]) -> None:
        """Append the batch."""
        self.items.extend(records)

    async def close(self) -> None:
        """Mark the sink finished."""
        self.closed = True
