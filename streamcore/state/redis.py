"""The Redis state store: checkpoints that outlive the process, shared between processes.

Every operation is one round trip or one pipeline: ``get_many`` is one MGET (a
MULTI/EXEC of MGET chunks past 10,000 keys), ``commit`` is one MULTI/EXEC holding the
DELs and then the MSETs, ``scan`` walks SCAN MATCH on the glob-escaped prefix and then
reads the values found with MGETs in one MULTI/EXEC.

Invariants:
1. A key ``k`` is stored under ``<key_prefix>:k`` (UTF-8), so several flows or test
   runs share one database without seeing each other's keys.
2. redis-py is imported only when a ``RedisStateStore`` is created, so streamcore
   imports without it.
3. Every redis-py (or socket) exception leaving this module is a ``StateError`` whose
   message names the URL with its password masked, with the original as ``__cause__``.
4. A commit is applied by Redis all or nothing: DEL and MSET cannot fail once queued,
   and a command refused while queueing (out of memory) aborts the whole transaction.
5. A fenced commit is one Lua script (``_FENCED_COMMIT``): Redis runs a script with no
   other command in between, so comparing the stored generation, raising it and
   applying the deletes and puts are one atomic step.
Design: docs/state.md#redisstatestore
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, TypeVar, cast

from streamcore.errors import StateError
from streamcore.state.redis_settings import (
    RedisSettings,
    close_quietly,
    glob_escape,
    mask_url_password,
)
from streamcore.state.store import (
    BytesLike,
    Fence,
    StateStore,
    StateStoreStatistics,
    check_items,
    check_keys,
    fenced_error,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStateStore", "mask_url_password"]

log = logging.getLogger("streamcore.state.redis")

# Bounds each command's argument list: Redis and the client both handle one huge
# command, but chunks keep any single command's time on the server short.
_CHUNK_KEYS = 10_000
# SCAN's COUNT is a hint of how many slots to visit per call; larger means fewer
# round trips for big namespaces at the price of slightly longer server pauses.
_SCAN_COUNT = 5_000
_T = TypeVar("_T")

# KEYS: the fence key, then the keys to delete, then the keys to put.
# ARGV: the generation, the number of deletes, then the values of the puts in order.
# Returns {1, stored generation} when refused, else {0, keys deleted}.
_FENCED_COMMIT = """
local stored = redis.call('GET', KEYS[1])
local generation = tonumber(ARGV[1])
if stored and tonumber(stored) > generation then
  return {1, stored}
end
if not stored or tonumber(stored) ~= generation then
  redis.call('SET', KEYS[1], ARGV[1])
end
local ndel = tonumber(ARGV[2])
local deleted = 0
for i = 2, ndel + 1 do
  deleted = deleted + redis.call('DEL', KEYS[i])
end
for i = ndel + 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i - ndel + 1])
end
return {0, deleted}
"""


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisStateStore(StateStore):
    """A ``StateStore`` in a Redis database, reached by a ``redis://``, ``rediss://`` or ``unix://`` URL.

    ``redis://user:password@host:6379/0``; TLS with ``rediss://`` and query options such
    as ``?ssl_cert_reqs=none`` or ``?ssl_ca_certs=/path/ca.pem``. ``socket_timeout_s``
    bounds connecting and each reply; ``connect_retries`` is how many times a failed
    connection or timed-out command is retried (with jittered exponential backoff)
    before ``StateError`` is raised.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "streamcore",
        socket_timeout_s: float = 5.0,
        connect_retries: int = 3,
    ) -> None:
        # ValueError for a bad timeout or retry count, as before the settings were shared.
        self._settings = RedisSettings(url, socket_timeout_s, connect_retries)
        self._safe_url = self._settings.describe()
        problem = self._settings.problem("RedisStateStore")
        if problem is not None:
            raise StateError(problem)
        self._url = url
        self._key_prefix = key_prefix
        self._prefix = f"{key_prefix}:" if key_prefix else ""
        self._prefix_bytes = self._prefix.encode()
        self._client: Redis | None = None
        # Two tasks opening at once must share one client, not leak the first.
        self._open_lock = asyncio.Lock()
        self._redis_errors = self._settings.errors()
        self._counters = dict.fromkeys(
            ("commits", "keys_written", "keys_deleted", "bytes_written", "keys_read", "bytes_read"),
            0,
        )

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"<RedisStateStore {state} url={self._safe_url!r} key_prefix={self._key_prefix!r}>"

    @property
    def url(self) -> str:
        """The URL given, password included (never log it; use ``describe()``)."""
        return self._url

    @property
    def key_prefix(self) -> str:
        """Namespace of this store's keys in the database (``<key_prefix>:<key>``)."""
        return self._key_prefix

    def describe(self) -> str:
        """The URL with its password masked."""
        return self._safe_url

    def statistics(self) -> StateStoreStatistics:
        """Read and write counters since the store was created."""
        return StateStoreStatistics(**self._counters)

    async def open(self) -> None:
        """Connect and PING (retrying), then warn if Redis may evict keys."""
        async with self._open_lock:
            if self._client is None:
                self._client = await self._connect()

    async def _connect(self) -> Redis:
        try:
            client = await self._settings.connect()
        except self._redis_errors as exc:
            raise self._open_error(exc) from exc
        try:
            await self._warn_if_evicting(client)
        except self._redis_errors as exc:
            await close_quietly(client)
            raise self._open_error(exc) from exc
        except BaseException:
            await close_quietly(client)
            raise
        return client

    async def close(self) -> None:
        """Disconnect; the data stays in Redis."""
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(client)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those keys that exist, read atomically."""
        client = self._require_open("get_many")
        unique = check_keys(keys)
        if not unique:
            return {}
        names = [self._name(key) for key in unique]
        try:
            values: list[bytes | None]
            if len(names) <= _CHUNK_KEYS:
                values = cast("list[bytes | None]", await client.mget(names))
            else:
                async with client.pipeline(transaction=True) as pipe:
                    for chunk in _chunks(names, _CHUNK_KEYS):
                        pipe.mget(chunk)
                    values = list(chain.from_iterable(await pipe.execute()))
        except self._redis_errors as exc:
            raise self._map_error(exc, f"get_many of {len(names)} keys") from exc
        found = {key: v for key, v in zip(unique, values, strict=True) if v is not None}
        self._count_reads(found.values())
        return found

    async def commit(self, puts: Mapping[str, BytesLike], deletes: Iterable[str]) -> None:
        """Apply ``deletes`` then ``puts`` in one MULTI/EXEC transaction."""
        client = self._require_open("commit")
        checked = check_items(puts)
        delete_names = [self._name(key) for key in check_keys(deletes)]
        if not checked and not delete_names:
            return
        prefix = self._prefix
        items = [((prefix + key).encode(), value) for key, value in checked.items()]
        try:
            async with client.pipeline(transaction=True) as pipe:
                for delete_chunk in _chunks(delete_names, _CHUNK_KEYS):
                    pipe.delete(*delete_chunk)
                for item_chunk in _chunks(items, _CHUNK_KEYS):
                    pipe.mset(dict(item_chunk))
                replies = await pipe.execute()
        except self._redis_errors as exc:
            what = f"commit of {len(items)} puts and {len(delete_names)} deletes"
            raise self._map_error(exc, what) from exc
        n_delete_chunks = -(-len(delete_names) // _CHUNK_KEYS)
        counters = self._counters
        counters["commits"] += 1
        counters["keys_written"] += len(items)
        counters["keys_deleted"] += sum(islice(replies, n_delete_chunks))
        counters["bytes_written"] += sum(len(value) for _, value in items)

    async def commit_fenced(
        self, puts: Mapping[str, BytesLike], deletes: Iterable[str], fence: Fence
    ) -> None:
        """``commit`` unless a newer generation is stored at ``fence.key``: one Lua script."""
        client = self._require_open("commit_fenced")
        checked = check_items(puts)
        delete_names = [self._name(key) for key in check_keys(deletes)]
        put_names = [self._name(key) for key in checked]
        values = list(checked.values())
        try:
            reply = await client.eval(
                _FENCED_COMMIT,
                1 + len(delete_names) + len(put_names),
                self._name(fence.key),
                *delete_names,
                *put_names,
                fence.generation,
                len(delete_names),
                *values,
            )
        except self._redis_errors as exc:
            what = f"fenced commit of {len(put_names)} puts and {len(delete_names)} deletes"
            raise self._map_error(exc, what) from exc
        refused, detail = int(reply[0]), reply[1]
        if refused:
            raise fenced_error(fence, int(detail))
        counters = self._counters
        counters["commits"] += 1
        counters["keys_written"] += len(put_names)
        counters["keys_deleted"] += int(detail)
        counters["bytes_written"] += sum(len(v) for v in values)

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Every key starting with ``prefix`` (taken literally), with its value, in key order."""
        client = self._require_open("scan")
        names = await self._scan_names(client, prefix)
        if not names:
            return {}
        try:
            async with client.pipeline(transaction=True) as pipe:
                for chunk in _chunks(names, _CHUNK_KEYS):
                    pipe.mget(chunk)
                values = list(chain.from_iterable(await pipe.execute()))
        except self._redis_errors as exc:
            raise self._map_error(exc, f"scan of prefix {prefix!r}") from exc
        strip = len(self._prefix_bytes)
        found = {
            name[strip:].decode(): value
            for name, value in zip(names, values, strict=True)
            if value is not None
        }
        self._count_reads(found.values())
        return found

    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted, without reading the values."""
        client = self._require_open("keys")
        strip = len(self._prefix_bytes)
        return [name[strip:].decode() for name in await self._scan_names(client, prefix)]

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` in one transaction; return how many."""
        client = self._require_open("delete_prefix")
        names = await self._scan_names(client, prefix)
        if not names:
            return 0
        try:
            async with client.pipeline(transaction=True) as pipe:
                for chunk in _chunks(names, _CHUNK_KEYS):
                    pipe.delete(*chunk)
                deleted = sum(await pipe.execute())
        except self._redis_errors as exc:
            raise self._map_error(exc, f"delete_prefix of {prefix!r}") from exc
        self._counters["keys_deleted"] += deleted
        return int(deleted)

    async def _scan_names(self, client: Redis, prefix: str) -> list[bytes]:
        """Full Redis names under ``prefix``, sorted, each once."""
        full_prefix = (self._prefix + prefix).encode()
        pattern = glob_escape(self._prefix + prefix).encode() + b"*"
        seen: set[bytes] = set()
        cursor: Any = 0
        try:
            while True:
                cursor, page = await client.scan(cursor, match=pattern, count=_SCAN_COUNT)
                seen.update(cast("list[bytes]", page))
                if int(cursor) == 0:
                    break
        except self._redis_errors as exc:
            raise self._map_error(exc, f"SCAN of prefix {prefix!r}") from exc
        # SCAN may repeat a key across pages (hence the set); the startswith guards
        # against a pattern-escaping mistake ever leaking a neighbour's keys.
        return sorted(name for name in seen if name.startswith(full_prefix))

    def _name(self, key: str) -> bytes:
        return (self._prefix + key).encode()

    def _require_open(self, operation: str) -> Redis:
        if self._client is None:
            raise StateError(
                f"{operation} on a closed RedisStateStore ({self._safe_url}); "
                "await store.open() first (or use 'async with store:')"
            )
        return self._client

    def _count_reads(self, values: Iterable[bytes]) -> None:
        sizes = [len(v) for v in values]
        self._counters["keys_read"] += len(sizes)
        self._counters["bytes_read"] += sum(sizes)

    async def _warn_if_evicting(self, client: Redis) -> None:
        from redis.exceptions import ResponseError

        try:
            reply: dict[Any, Any] = await client.config_get("maxmemory-policy")
        except ResponseError as exc:
            # CONFIG is often renamed or denied on managed Redis; the check is advice only.
            log.debug("cannot read maxmemory-policy at %s: %s", self._safe_url, exc)
            return
        policy = reply.get(b"maxmemory-policy", reply.get("maxmemory-policy"))
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy is not None and policy != "noeviction":
            log.warning(
                "Redis at %s has maxmemory-policy=%s: when it reaches maxmemory it may "
                "evict checkpoint keys and silently lose state; set maxmemory-policy "
                "noeviction (in redis.conf, or CONFIG SET maxmemory-policy noeviction)",
                self._safe_url,
                policy,
            )

    def _open_error(self, exc: BaseException) -> StateError:
        where = f"cannot open the Redis state store at {self._safe_url}"
        return StateError(f"{where}: {self._settings.open_hint(exc)}")

    def _map_error(self, exc: Exception, what: str) -> StateError:
        """The ``StateError`` for a failed Redis operation, with a hint of what to check."""
        permissions = (
            f"the keys '{glob_escape(self._prefix)}*' and +@read +@write +multi +exec +scan"
        )
        return StateError(
            f"Redis {what} failed at {self._safe_url}: {self._settings.failure_hint(exc, permissions, when_full='keep fewer checkpoints')}"
        )
