"""State: where actors' snapshots and batch task results are kept between runs.

``StateStore`` is the interface; ``MemoryStateStore`` (embedded default) and
``RedisStateStore`` are the backends (``RedisSettings``: how to reach Redis, shared
with the Redis connectors); ``serde`` turns values into the bytes they store.
Importing this package never imports redis-py: ``RedisStateStore`` imports it when one
is created.
Design: docs/state.md
"""

from streamcore.state.memory import MemoryStateStore
from streamcore.state.redis import RedisStateStore
from streamcore.state.redis_settings import RedisSettings
from streamcore.state.serde import (
    Codec,
    CodecRegistry,
    JsonCodec,
    PickleCodec,
    decode,
    encode,
    register_codec,
)
from streamcore.state.store import StateStore, StateStoreStatistics

__all__ = [
    "Codec",
    "CodecRegistry",
    "JsonCodec",
    "MemoryStateStore",
    "PickleCodec",
    "RedisSettings",
    "RedisStateStore",
    "StateStore",
    "StateStoreStatistics",
    "decode",
    "encode",
    "register_codec",
]
