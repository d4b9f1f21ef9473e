"""In-memory connectors: any (async) iterable as a source, a list as a sink."""

from connectors.memory.iterable import IterableSource
from connectors.memory.list_sink import ListSink

__all__ = ["IterableSource", "ListSink"]
