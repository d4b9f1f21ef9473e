"""How to reach a Redis server: one settings object for the state store and the connectors.

``RedisStateStore`` and the ``connectors.redis`` sources and sinks take the same URL
(password in the user info or a ``password=`` query, TLS with ``rediss://``, Unix
sockets with ``unix://``), the same socket timeout and the same retry policy, and explain
a failure the same way. Each caller wraps the messages here in its own error class
(``StateError``, ``SourceError``, ``SinkError``).

Invariants:
1. A URL is never shown with its password: ``describe()`` masks it.
2. redis-py is imported only when a client is made or a URL checked, so streamcore
   imports without it.
Design: docs/state.md#redisstatestore, docs/connectors-redis.md#connection
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisSettings", "close_quietly", "glob_escape", "mask_url_password"]

_SCHEMES = ("redis", "rediss", "unix")
_GLOB_SPECIALS = "\\*?[]"


def mask_url_password(url: str) -> str:
    """``url`` with the password (in the user info or a ``password=`` query) shown as ``***``."""
    parts = urlsplit(url)
    masked = url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        masked = masked.replace(f"//{parts.netloc}", f"//{user}:***@{hostport}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            hidden = [(n, "***" if n.lower() == "password" else v) for n, v in pairs]
            masked = masked.replace(f"?{parts.query}", "?" + urlencode(hidden, safe="*"), 1)
    return masked


def glob_escape(text: str) -> str:
    """``text`` with the glob specials of Redis ``MATCH`` patterns escaped."""
    for special in _GLOB_SPECIALS:
        text = text.replace(special, "\\" + special)
    return text


@dataclass(frozen=True)
class RedisSettings:
    """A Redis URL with the socket timeout and retries every client made from it uses.

    ``socket_timeout_s`` bounds connecting and each reply; ``connect_retries`` is how
    many times a failed connection or timed-out command is retried (jittered
    exponential backoff) before the error reaches the caller.
    """

    url: str = field(repr=False)
    socket_timeout_s: float = 5.0
    connect_retries: int = 3

    def __post_init__(self) -> None:
        if self.socket_timeout_s <= 0:
            raise ValueError(f"socket_timeout_s must be positive, got {self.socket_timeout_s}")
        if self.connect_retries < 0:
            raise ValueError(f"connect_retries must be >= 0, got {self.connect_retries}")

    def __repr__(self) -> str:
        return f"RedisSettings({self.describe()!r}, socket_timeout_s={self.socket_timeout_s})"

    def describe(self) -> str:
        """The URL with its password masked."""
        return mask_url_password(self.url)

    def problem(self, user: str) -> str | None:
        """Why ``user`` (e.g. ``"RedisStreamSink"``) cannot use these settings, or None."""
        safe = self.describe()
        try:
            import redis.asyncio.connection
        except ImportError:
            return f"{user}({safe!r}) needs the redis package; install it with: pip install 'streamcore[redis]'"
        if urlsplit(self.url).scheme not in _SCHEMES:
            return (
                f"unsupported Redis URL {safe!r}: the scheme must be redis://, rediss:// (TLS) "
                "or unix://, e.g. redis://localhost:6379/0"
            )
        try:
            redis.asyncio.connection.parse_url(self.url)
        except ValueError as exc:
            return f"invalid Redis URL {safe!r}: {exc}"
        return None

    def client(self, *, reply_timeout_s: float | None = None) -> Redis:
        """A new redis-py asyncio client (bytes replies); connecting happens on first use.

        ``reply_timeout_s`` raises the reply timeout for clients that block on purpose
        (``XREAD BLOCK``); it is never below ``socket_timeout_s``.
        """
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        timeout_s = self.socket_timeout_s
        if reply_timeout_s is not None:
            timeout_s = max(timeout_s, reply_timeout_s)
        return redis.asyncio.from_url(
            self.url,
            socket_timeout=timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
            retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), self.connect_retries),
            decode_responses=False,
        )

    def errors(self) -> tuple[type[Exception], ...]:
        """The exceptions a client call can raise for a Redis or network failure."""
        import redis

        return (redis.RedisError, OSError)

    def open_hint(self, exc: BaseException) -> str:
        """``"<cause>; <what to check>"`` for a failure to connect or to PING."""
        from redis import exceptions as rx

        cause = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
        if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
            hint = "check the user name and password in the URL (redis://user:password@host:port/db)"
        elif isinstance(exc, rx.NoPermissionError):
            hint = "the Redis user lacks a permission; grant it +ping and the key commands"
        elif isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError):
            hint = (
                f"tried {self.connect_retries + 1} time(s); check that redis-server is running and "
                "reachable at that host and port (firewall, bind address), that the db number "
                "exists, and for TLS that the URL starts with rediss:// with the right ssl_* options"
            )
        else:
            hint = "check the db number and the server's configuration"
        return f"{cause}; {hint}"

    def failure_hint(self, exc: BaseException, permissions: str, *, when_full: str = "keep less data in it") -> str:
        """``"<cause>; <what to check>"`` for a failed command; ``permissions`` says which
        keys and commands the Redis user needs, ``when_full`` what to do at maxmemory."""
        from redis import exceptions as rx

        if isinstance(exc, rx.OutOfMemoryError) or "OOM" in str(exc):
            hint = f"Redis reached maxmemory; raise maxmemory or {when_full}"
        elif isinstance(exc, rx.ReadOnlyError):
            hint = "the URL points at a read-only replica; point it at the primary"
        elif isinstance(exc, rx.NoPermissionError):
            hint = f"the Redis user lacks a permission; grant it {permissions}"
        elif isinstance(exc, rx.AuthenticationError):
            hint = "check the user name and password in the URL"
        elif isinstance(exc, rx.TimeoutError):
            hint = (
                f"no reply within socket_timeout_s={self.socket_timeout_s}; check the "
                "server's load and the network, or raise socket_timeout_s"
            )
        elif isinstance(exc, rx.ConnectionError | OSError):
            hint = "the connection failed; check that redis-server is still running and reachable"
        else:
            hint = "see the Redis error above"
        return f"{type(exc).__name__}: {str(exc).rstrip('.')}; {hint}"

    async def connect(self, **client_options: Any) -> Redis:
        """A client that answered PING; the redis-py error propagates after closing it."""
        client = self.client(**client_options)
        try:
            await client.ping()
        except BaseException:
            await close_quietly(client)
            raise
        return client


async def close_quietly(client: Redis) -> None:
    """Close ``client``; a broken connection must not mask the error being reported."""
    try:
        await client.aclose()
    except Exception:
        # The connection may already be broken; closing must not mask the real error.
        return
