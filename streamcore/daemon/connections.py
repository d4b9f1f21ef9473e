"""Bounds on the daemon's HTTP connections, so that slow or idle clients cannot starve it.

aiohttp waits as long as a client likes for a request's head and keeps every connection
it accepted, so a few thousand half-sent requests use up the file descriptors and
``/healthz`` goes dark. Between the listening socket and aiohttp sits ``ConnectionGuard``:

1. A connection that has not delivered a complete request head within
   ``header_timeout_s`` of being accepted is closed (aiohttp's keep-alive timeout does
   the same for the next request on a connection that was served).
2. At most ``max_connections`` are open. A new connection beyond that closes the oldest
   connection that has no request in progress (half-sent heads and idle keep-alives
   first in line), so a fresh health check gets through at once; when every
   connection is busy with a request, the new one gets a 503 and is closed.
3. Request bodies are capped by aiohttp's ``client_max_size``, and the time spent reading
   what a client still sends after the response by its ``lingering_time``.
Design: docs/operations.md#http-limits
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

__all__ = ["ConnectionGuard"]

log = logging.getLogger("streamcore.daemon")

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
    b"Connection: close\r\n\r\ntoo many open connections"
)
_WARN_EVERY_S = 60.0


class _Connection(asyncio.Protocol):
    """Passes everything on to aiohttp's protocol; knows whether a request is in progress."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.requests_started = 0
        self.in_progress = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check.
        self.transport = cast(asyncio.Transport, transport)
        self.guard.opened(self)
        self._timer = asyncio.get_running_loop().call_later(self.guard.header_timeout_s, self._head_overdue)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def close(self) -> None:
        """Drop the connection now (no response: the client is slow or idle)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _head_overdue(self) -> None:
        if self.requests_started == 0:
            self.guard.timed_out += 1
            self.close()


class _Refused(asyncio.Protocol):
    """Answers 503 and closes: every connection is busy with a request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(_REFUSED)
        transport.close()


class ConnectionGuard:
    """The protocol factory for the daemon's listening socket (see the module docstring)."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], *, max_connections: int,
                 header_timeout_s: float) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.factory = factory
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self._open: dict[object, _Connection] = {}  # by transport, oldest first
        self._warned_at = -_WARN_EVERY_S

    def __repr__(self) -> str:
        return (
            f"<ConnectionGuard open={len(self._open)}/{self.max_connections} evicted={self.evicted} "
            f"refused={self.refused} timed_out={self.timed_out}>"
        )

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        if len(self._open) >= self.max_connections and not self._evict_one():
            self.refused += 1
            self._warn()
            return _Refused()
        return _Connection(self, self.factory())

    def opened(self, connection: _Connection) -> None:
        assert connection.transport is not None
        self._open[connection.transport] = connection

    def closed(self, connection: _Connection) -> None:
        if connection.transport is not None:
            self._open.pop(connection.transport, None)

    def _evict_one(self) -> bool:
        for transport, connection in self._open.items():
            if connection.in_progress == 0:
                del self._open[transport]
                connection.close()
                self.evicted += 1
                self._warn()
                return True
        return False

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "HTTP connections at their limit max_connections=%d evicted=%d refused=%d; "
                "idle or half-sent connections are closed to make room",
                self.max_connections, self.evicted, self.refused,
            )

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Any:
        """Marks the request's connection busy while the request is handled."""
        connection = self._open.get(request.transport)
        if connection is None:
            return await handler(request)
        connection.requests_started += 1
        connection.in_progress += 1
        try:
            return await handler(request)
        finally:
            connection.in_progress -= 1
