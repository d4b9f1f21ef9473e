"""State: where actors' snapshots and batch task results are kept between runs.

``StateStore`` is the interface; ``MemoryStateStore`` (embedded default) and
``RedisStateStore`` are the backends (``RedisSettings``: how to reach Redis, shared
with the Redis connectors); ``serde`` turns values into the bytes they store.
Importing this package never imports redis-py: ``RedisStateStore`` imports it when one
is created. The names below are imported on first use, so that the runtime, which needs
only ``snapshot``, does not load the serde and the backends with it.
Design: docs/state.md
"""

from typing import TYPE_CHECKING

from streamcore._lazy import lazy_attributes

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_attributes(
    __name__,
    globals(),
    {
        "Codec": "streamcore.state.serde",
        "CodecRegistry": "streamcore.state.serde",
        "JsonCodec": "streamcore.state.serde",
        "MemoryStateStore": "streamcore.state.memory",
        "PickleCodec": "streamcore.state.serde",
        "RedisSettings": "streamcore.state.redis_settings",
        "RedisStateStore": "streamcore.state.redis",
        "StateStore": "streamcore.state.store",
        "StateStoreStatistics": "streamcore.state.store",
        "decode": "streamcore.state.serde",
        "encode": "streamcore.state.serde",
        "register_codec": "streamcore.state.serde",
    },
)
