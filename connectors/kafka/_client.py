"""What the Kafka source and sink share: connection options, a bounded start, errors.

aiokafka's exceptions never leave this package: each call into aiokafka that can fail
is wrapped, and the failure is raised as ``SourceError`` or ``SinkError`` with the
aiokafka exception as ``__cause__`` (``describe`` turns it into a readable phrase).
Starting a client is retried a bounded number of times within a bounded time, so an
unreachable broker fails ``open`` with a message naming the bootstrap servers instead
of hanging.
Design: docs/connectors-kafka.md#connecting
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

__all__ = ["Connection", "describe", "start_with_retry", "stop_quietly"]

log = logging.getLogger("connectors.kafka")

_T = TypeVar("_T")
_BACKOFF_FIRST_S = 0.25


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
            raise ValueError(f"connect_attempts must be at least 1, got {self.attempts}")
        if self.timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.timeout_s}")
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is empty: give 'host:port' (or a list of them)")

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


def describe(exc: BaseException) -> str:
    """A short phrase for an aiokafka (or other) exception."""
    text = str(exc).strip()
    name = type(exc).__name__
    if not text or text == name:
        return name
    if text.startswith(name):
        return text
    return f"{name}: {text}"


async def start_with_retry(
    make: Callable[[], _T],
    start: Callable[[_T], Awaitable[None]],
    stop: Callable[[_T], Awaitable[None]],
    connection: Connection,
    fail: Callable[[str], Exception],
) -> _T:
    """``make()`` a client and ``start`` it, retrying within the connection's bounds.

    Connection failures and timeouts are retried (with a doubling pause) until
    ``connection.attempts`` starts were made or ``connection.timeout_s`` passed; each
    failed client is stopped. Any other error is raised at once. What is raised is
    ``fail(message)`` with the last aiokafka error as ``__cause__``.
    """
    started = monotonic()
    deadline = started + connection.timeout_s
    pause = _BACKOFF_FIRST_S
    last: BaseException | None = None
    made = 0
    for attempt in range(1, connection.attempts + 1):
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        client = make()
        made = attempt
        # Each attempt gets an equal share of what is left, so the later ones still run.
        budget = remaining / (connection.attempts - attempt + 1)
        try:
            await asyncio.wait_for(start(client), timeout=budget)
            return client
        except (TimeoutError, KafkaError, OSError) as exc:
            await stop_quietly(stop, client)
            if isinstance(exc, KafkaError) and not _retriable(exc):
                raise fail(f"cannot start against {connection.servers!r}: {describe(exc)}") from exc
            last = exc
            log.warning(
                "kafka connect failed servers=%s attempt=%d of=%d error=%r",
                connection.servers,
                attempt,
                connection.attempts,
                describe(exc),
            )
        except BaseException:
            await stop_quietly(stop, client)
            raise
        if attempt < connection.attempts:
            wait = min(pause, deadline - monotonic())
            if wait > 0:
                # A pause between attempts: a broker that is restarting gets time to come up.
                await asyncio.sleep(wait)
            pause *= 2
    elapsed = monotonic() - started
    if last is None:
        reason = "no time left"
    else:
        reason = "timed out" if isinstance(last, TimeoutError) else describe(last)
    raise fail(
        f"cannot connect to Kafka at bootstrap servers {connection.servers!r} after "
        f"{made} attempt(s) in {elapsed:.1f}s ({reason}); check that the broker runs and "
        "that bootstrap_servers and the security settings are right"
    ) from last


def _retriable(exc: KafkaError) -> bool:
    return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in (
        "KafkaConnectionError",
        "KafkaTimeoutError",
        "NoBrokersAvailable",
        "RequestTimedOutError",
    )


async def stop_quietly(stop: Callable[[_T], Awaitable[None]], client: _T) -> None:
    """Stop a client, logging (not raising) what goes wrong: used on paths that already fail."""
    try:
        await stop(client)
    except Exception as exc:
        log.warning("kafka client stop failed error=%r", describe(exc))
