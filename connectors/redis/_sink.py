"""What the Redis sinks share: one client from ``open`` to ``close``, and how a batch is encoded.

Design: docs/connectors-redis.md
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from connectors.redis._connection import Connection
from connectors.redis._fields import default_fields, encode_records, field_encoder
from streamcore.errors import SinkError
from streamcore.io import Sink, SinkContext
from streamcore.state import RedisSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisSink"]


class RedisSink(Sink):
    """A sink holding one redis-py client while open; subclasses write the batches."""

    def __init__(
        self,
        kind: str,
        name: str,
        url: str,
        fields: Callable[[Any], Mapping[Any, Any]] | None,
        value_format: str,
        socket_timeout_s: float,
        connect_retries: int,
        permissions: str,
    ) -> None:
        self.fields = fields if fields is not None else default_fields
        self.value_format = value_format
        self._encode = field_encoder(value_format)
        self.connection = Connection(
            RedisSettings(url, socket_timeout_s, connect_retries), kind, name, SinkError, permissions
        )
        self._client: Redis | None = None

    def _error(self, message: str) -> SinkError:
        return SinkError(f"{self.connection.name}: {message}")

    async def open(self, context: SinkContext) -> None:
        """Connect (and PING), closing a client an earlier run left."""
        await super().open(context)
        await self._disconnect()
        self._client = await self.connection.open()

    async def close(self) -> None:
        """Disconnect; every batch written is already in Redis."""
        await self._disconnect()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        await self.connection.close(client)

    def _encoded(self, records: list[Any]) -> tuple[Redis, list[dict[Any, Any]]]:
        """The open client and every record's encoded fields (see ``encode_records``)."""
        client = self._client
        if client is None:
            raise self._error("write_batch needs open() first")
        return client, encode_records(records, self.fields, self._encode, self._error)
