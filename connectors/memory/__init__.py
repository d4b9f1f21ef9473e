"""In-memory connectors: iterables and a queue as sources, a list and a queue as sinks."""

from connectors.memory.iterable import IterableSource
from connectors.memory.list_sink import ListSink
from connectors.memory.queue_sink import QueueSink, QueueSinkAbortedError
from connectors.memory.queue_source import QueueClosedError, QueueSource

__all__ = ["IterableSource", "ListSink", "QueueClosedError", "QueueSink", "QueueSinkAbortedError", "QueueSource"]
