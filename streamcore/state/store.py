"""The state store interface: where checkpoints and task results are kept.

Working state lives in memory inside the actors; a store is only written at checkpoints
(and by batch pipelines when a task finishes), always in batches, never per record.
Keys are plain strings that callers namespace (``<flow>/<stage>/<key group>/...``);
values are bytes, normally produced by ``streamcore.state.serde``.

Contract (every backend, checked by ``streamcore.testing.state_contract``):
1. ``put_many`` and ``delete_many`` are each applied as one unit (all or nothing).
2. ``commit`` applies puts and deletes atomically together: a reader sees all of it or
   none. Deletes are applied before puts, so a key in both ends up with the put value.
3. ``get_many`` reads all its keys at one instant (it never mixes two commits).
4. ``scan(prefix)`` returns every key starting with ``prefix`` with its value, in key
   order. Prefixes are literal: ``*``, ``?``, ``[`` and ``]`` have no special meaning.
   A scan is not a snapshot: a commit running during it may be seen in part, so readers
   scan only keys that are no longer being written (e.g. a completed checkpoint).
5. Values are validated before anything is sent: a key that is not ``str`` or a value
   that is not bytes-like raises ``TypeError`` and nothing is written.
6. A store is usable only between ``open()`` and ``close()``; using it outside raises
   ``StateError``. Both may be awaited twice, and a closed store may be opened again.
7. Failures of the backend surface as ``StateError`` (never a foreign exception), with
   the backend's own error as ``__cause__``.
8. ``commit_fenced(puts, deletes, fence)`` compares ``fence.generation`` with the
   generation stored at ``fence.key`` and, in the same atomic step, either refuses the
   whole commit (``FencedError``, nothing written) when the stored one is newer, or
   stores ``fence.generation`` there and applies the commit. Generations only grow, so
   once a newer owner has written (or only claimed, with an empty commit), an older
   one cannot write any more.
Design: docs/state.md
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from streamcore.errors import FencedError, StateError

__all__ = [
    "BytesLike",
    "Fence",
    "StateStore",
    "StateStoreStatistics",
    "check_items",
    "check_keys",
    "fenced_error",
]

#: What a store accepts as a value; it always stores and returns ``bytes``.
BytesLike = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Fence:
    """Who writes: ``generation`` (it only grows) of the owner of the keys guarded by ``key``."""

    key: str
    generation: int


@dataclass(frozen=True, slots=True)
class StateStoreStatistics:
    """Counters since the store was created, for metrics (checkpoint size, I/O)."""

    commits: int = 0
    keys_written: int = 0
    keys_deleted: int = 0
    bytes_written: int = 0
    keys_read: int = 0
    bytes_read: int = 0


class StateStore:
    """Abstract key/value store with atomic batched writes.

    Subclasses implement ``open``, ``close``, ``get_many``, ``commit`` and ``scan``;
    the other methods have correct (if not the fastest) defaults built on those.
    """

    async def open(self) -> None:
        """Connect; raise ``StateError`` naming the location if it cannot."""

    async def close(self) -> None:
        """Disconnect. The data stays where it is (for a persistent backend)."""

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        return (await self.get_many((key,))).get(key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those keys that exist, read at one instant."""
        raise NotImplementedError

    async def put_many(self, items: Mapping[str, BytesLike]) -> None:
        """Write several keys in one round trip, all or nothing."""
        await self.commit(items, ())

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Delete several keys in one round trip; missing keys are ignored."""
        await self.commit({}, keys)

    async def commit(self, puts: Mapping[str, BytesLike], deletes: Iterable[str]) -> None:
        """Apply ``deletes`` then ``puts`` atomically; an empty commit does nothing."""
        raise NotImplementedError

    async def commit_fenced(
        self, puts: Mapping[str, BytesLike], deletes: Iterable[str], fence: Fence
    ) -> None:
        """``commit`` only if no newer generation than ``fence.generation`` is stored at
        ``fence.key`` (then store it there), in one atomic step; else ``FencedError``
        and nothing is written. An empty commit only claims the generation."""
        raise StateError(
            f"{type(self).__name__} cannot fence writes by generation, which a scaled-out flow "
            "needs; use MemoryStateStore or RedisStateStore"
        )

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Every key starting with ``prefix`` (taken literally), with its value, in key order."""
        raise NotImplementedError

    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted, without reading the values."""
        return list(await self.scan(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many were deleted.

        Atomic over the keys found; a key written under ``prefix`` while this runs
        may survive (prune only prefixes nobody writes to any more).
        """
        found = await self.keys(prefix)
        await self.delete_many(found)
        return len(found)

    def statistics(self) -> StateStoreStatistics:
        """Read and write counters since the store was created."""
        return StateStoreStatistics()

    def describe(self) -> str:
        """Where the data lives, for messages (never includes a password)."""
        return type(self).__name__

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def check_keys(keys: Iterable[str]) -> list[str]:
    """``keys`` as a list without duplicates (first occurrence wins); ``TypeError`` on a non-str."""
    unique = list(dict.fromkeys(keys))
    for key in unique:
        if type(key) is not str:
            raise TypeError(f"state store keys must be str, got {type(key).__name__}: {key!r}")
    return unique


def check_items(items: Mapping[str, BytesLike]) -> dict[str, bytes]:
    """``items`` with every value as ``bytes``; ``TypeError`` naming the first bad key or value.

    Copies ``bytearray`` and ``memoryview`` values so a caller mutating its buffer
    afterwards cannot change what was stored.
    """
    checked: dict[str, bytes] = {}
    for key, value in items.items():
        if type(key) is not str:
            raise TypeError(f"state store keys must be str, got {type(key).__name__}: {key!r}")
        if type(value) is not bytes:
            if not isinstance(value, BytesLike):
                raise TypeError(
                    f"state store values must be bytes, got {type(value).__name__} at key "
                    f"{key!r}; encode it with streamcore.state.serde.encode first"
                )
            value = bytes(value)
        checked[key] = value
    return checked


def fenced_error(fence: Fence, current: int) -> FencedError:
    """The error for a write of ``fence`` refused because ``current`` is stored (newer)."""
    return FencedError(
        f"write refused: generation {fence.generation} is older than generation {current} "
        f"stored at {fence.key!r}; a newer owner (after a rebalance) holds these keys now, "
        "so this process lost them",
        generation=fence.generation,
        current=current,
    )
