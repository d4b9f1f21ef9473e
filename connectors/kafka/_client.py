"""What the Kafka source and sink share: connection options, a bounded start, errors.

aiokafka's exceptions never leave this package: each call into aiokafka that can fail
is wrapped, and the failure is raised as ``SourceConnectorError`` or
``SinkConnectorError`` (a ``SourceError`` or ``SinkError`` that is also a
``ConnectorError``) with the aiokafka exception as ``__cause__`` (which errors are retried, and how: ``_errors.py``).
Starting a client is retried a bounded number of times within a bounded time, so an
unreachable broker fails ``open`` with a message naming the bootstrap servers instead
of hanging.
Design: docs/connectors-kafka.md#connecting
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.kafka._errors import describe, retry
from streamcore.errors import ConfigurationError

__all__ = ["Connection", "describe", "start_with_retry", "stop_quietly"]

log = logging.getLogger("connectors.kafka")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Connection:
    """Where the broker is and how to authenticate; ``options()`` is what aiokafka takes.

    ``attempts`` starts are tried within ``timeout_s`` seconds in all before ``open``
    gives up.
    """

    bootstrap_servers: str | list[str]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    attempts: int = 3
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"connect_attempts must be at least 1, got {self.attempts}")
        if self.timeout_s <= 0:
            raise ConfigurationError(f"connect_timeout_s must be positive, got {self.timeout_s}")
        if not self.bootstrap_servers:
            raise ConfigurationError("bootstrap_servers is empty: give 'host:port' (or a list of them)")

    @property
    def servers(self) -> str:
        """The bootstrap servers as one string, for messages."""
        if isinstance(self.bootstrap_servers, str):
            return self.bootstrap_servers
        return ",".join(self.bootstrap_servers)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client (unset options keep aiokafka's defaults)."""
        out: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        for name in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "ssl_context"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def __repr__(self) -> str:
        # Never show the password.
        return f"Connection({self.servers!r}, security_protocol={self.security_protocol!r})"


async def start_with_retry(
    make: Callable[[], _T],
    start: Callable[[_T], Awaitable[None]],
    stop: Callable[[_T], Awaitable[None]],
    connection: Connection,
    fail: Callable[[str], Exception],
) -> _T:
    """``make()`` a client and ``start`` it, retrying within the connection's bounds.

    Retriable failures (``_errors.RULES``) are retried until ``connection.attempts``
    starts were made or ``connection.timeout_s`` passed; each failed client is stopped.
    A fatal error is raised at once. What is raised is ``fail(message)`` with the last
    aiokafka error as ``__cause__``.
    """

    async def attempt() -> _T:
        client = make()
        try:
            await start(client)
        except BaseException:
            await stop_quietly(stop, client)
            raise
        return client

    return await retry(
        attempt,
        what=f"connect to Kafka at bootstrap servers {connection.servers!r}",
        fail=fail,
        budget_s=connection.timeout_s,
        attempts=connection.attempts,
        advice="check that the broker runs and that bootstrap_servers and the security settings are right",
    )


async def stop_quietly(stop: Callable[[_T], Awaitable[None]], client: _T) -> None:
    """Stop a client, logging (not raising) what goes wrong: used on paths that already fail."""
    try:
        await stop(client)
    except Exception as exc:
        log.warning("kafka client stop failed error=%r", describe(exc))
