"""Connecting the Redis connectors, and their errors naming stream, entry and URL.

Every redis-py (or socket) exception leaving ``connectors.redis`` goes through
``Connection.error``: a ``SourceConnectorError`` or ``SinkConnectorError`` (the
``ConnectorError`` side of the connector's ``SourceError`` or ``SinkError``) that names
the connector, what it was doing (the stream and entry id where known), the URL with its password masked and
what to check, with the original as ``__cause__``.
Design: docs/connectors-redis.md#connection
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.errors import SinkConnectorError, SourceConnectorError, SourceError, StreamcoreError
from streamcore.state.redis_settings import RedisSettings, close_quietly

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Connection"]


class Connection:
    """The settings of one connector, and how its failures read.

    ``kind`` is the class (``"RedisStreamSource"``), ``name`` the connector as errors
    show it (``"Redis stream source 'a,b'"``); ``error`` the connector's side
    (``SourceError`` or ``SinkError``: bad settings raise it, client failures its
    ``ConnectorError`` subclass);
    ``permissions`` what the Redis user needs.
    """

    def __init__(
        self,
        settings: RedisSettings,
        kind: str,
        name: str,
        error: type[StreamcoreError],
        permissions: str,
    ) -> None:
        problem = settings.problem(kind)
        if problem is not None:
            raise error(f"{name}: {problem}")
        self.settings = settings
        self.name = name
        self._error = error
        # A failure of redis-py itself is the ConnectorError side of the connector's error.
        self._client_error: type[StreamcoreError] = (
            SourceConnectorError if issubclass(error, SourceError) else SinkConnectorError
        )
        self._permissions = permissions
        self.errors = settings.errors()

    def describe(self) -> str:
        """The URL with its password masked."""
        return self.settings.describe()

    async def open(self, *, reply_timeout_s: float | None = None) -> Redis:
        """A client that answered PING, or the connector's error saying what to check."""
        try:
            return await self.settings.connect(reply_timeout_s=reply_timeout_s)
        except self.errors as exc:
            raise self._client_error(
                f"{self.name}: cannot connect to Redis at {self.describe()}: "
                f"{self.settings.open_hint(exc)}"
            ) from exc

    def error(self, exc: BaseException, what: str) -> StreamcoreError:
        """The connector's error for ``exc`` raised while doing ``what``."""
        hint = self.settings.failure_hint(exc, self._permissions)
        err = self._client_error(f"{self.name}: {what} failed at {self.describe()}: {hint}")
        err.__cause__ = exc
        return err

    async def close(self, client: Redis | None) -> None:
        """Close ``client`` (if any) without raising."""
        if client is not None:
            await close_quietly(client)
