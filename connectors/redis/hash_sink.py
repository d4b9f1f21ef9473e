"""``RedisHashSink``: an upsert per key (``HSET``) for serving results, e.g. window values.

Each record sets some fields of one Redis hash; the batch's HSETs (and EXPIREs with
``ttl``) go in one pipeline. An upsert is idempotent and a replay after a restart writes
the same records in the same order again, so the hashes converge to what a run without
the crash leaves: this sink needs no checkpoint hooks to be exact in its final state.
Between the crash and the end of the replay a reader may see a key's older value
again (the replay rewinds it to the checkpoint, then moves it forward).
Design: docs/connectors-redis.md#hashes
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from connectors.redis._sink import RedisSink
from streamcore.errors import ConfigurationError

__all__ = ["RedisHashSink"]

_PERMISSIONS = "+hset +pexpire on the hashes' keys"


class RedisHashSink(RedisSink):
    """Writes ``fields(record)`` into the hash ``key(record)`` (``HSET``, so other fields
    of the hash stay); ``ttl`` sets the key's expiry at every write."""

    default_name: ClassVar[str] = "redis-hash"

    def __init__(
        self,
        *,
        url: str,
        key: Callable[[Any], str | bytes],
        fields: Callable[[Any], Mapping[Any, Any]] | None = None,
        ttl: timedelta | int | None = None,
        value_format: str = "text",
        socket_timeout_s: float = 5.0,
        connect_retries: int = 3,
    ) -> None:
        ttl_ms = None
        if ttl is not None:
            ttl_ms = ttl // timedelta(milliseconds=1) if isinstance(ttl, timedelta) else int(ttl) * 1000
            if ttl_ms < 1:
                raise ConfigurationError(f"ttl must be positive, got {ttl!r}")
        super().__init__("RedisHashSink", "Redis hash sink", url, fields, value_format, socket_timeout_s,
                         connect_retries, _PERMISSIONS)
        self.key = key
        self.ttl_ms = ttl_ms
        """Expiry in milliseconds (an int ``ttl`` is in seconds, as for EXPIRE)."""

    def __repr__(self) -> str:
        return f"<RedisHashSink {self.connection.describe()!r} ttl_ms={self.ttl_ms}>"

    async def write_batch(self, records: list[Any]) -> None:
        """HSET (and PEXPIRE) each record's fields, in one pipeline per batch."""
        client, entries = self._encoded(records)
        keys = self._keys(records)
        ttl_ms = self.ttl_ms
        try:
            async with client.pipeline(transaction=False) as pipe:
                for name, mapping in zip(keys, entries, strict=True):
                    if not mapping:
                        continue  # nothing to set: HSET refuses an empty mapping
                    pipe.hset(name, mapping=mapping)
                    if ttl_ms is not None:
                        pipe.pexpire(name, ttl_ms)
                await pipe.execute()
        except self.connection.errors as exc:
            first = keys[0] if keys else None
            raise self.connection.error(
                exc, f"upserting {len(keys)} hashes (keys {first!r} ... {keys[-1]!r})"
            ) from exc

    def _keys(self, records: list[Any]) -> list[Any]:
        key = self.key
        out = []
        for i, r in enumerate(records):
            try:
                name = key(r)
            except Exception as exc:
                raise self._error(f"key() failed on record {i} of the batch ({type(r).__name__}): {exc}") from exc
            if not isinstance(name, str | bytes) or not name:
                raise self._error(
                    f"key() returned {name!r} for record {i} of the batch; it must return a non-empty str"
                )
            out.append(name)
        return out
