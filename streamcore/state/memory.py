"""The embedded state store: a dict in this process, the default backend.

Every method does its work without awaiting in the middle, so on one event loop each
call is atomic with respect to every other coroutine; that is the whole of its
atomicity argument (it is not thread-safe, and it is gone when the process exits).
``close()`` keeps the data, so closing and reopening the same object resumes from it,
which lets recovery be exercised in one process.
Design: docs/state.md#memorystatestore
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from streamcore.errors import StateError
from streamcore.state.store import (
    BytesLike,
    Fence,
    StateStore,
    StateStoreStatistics,
    check_items,
    check_keys,
    fenced_error,
)

__all__ = ["MemoryStateStore"]


class MemoryStateStore(StateStore):
    """A dict-backed ``StateStore``: fast, atomic per call, not durable."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._is_open = False
        self._stats = StateStoreStatistics()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<MemoryStateStore {state} keys={len(self._data)}>"

    def __len__(self) -> int:
        return len(self._data)

    async def open(self) -> None:
        """Make the store usable; opening an open store does nothing."""
        self._is_open = True

    async def close(self) -> None:
        """Make the store unusable until reopened; the data is kept."""
        self._is_open = False

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those keys that exist."""
        self._check_open("get_many")
        data = self._data
        found = {key: data[key] for key in check_keys(keys) if key in data}
        self._count_reads(found)
        return found

    async def commit(self, puts: Mapping[str, BytesLike], deletes: Iterable[str]) -> None:
        """Apply ``deletes`` then ``puts``; validated first, so a bad item writes nothing."""
        self._check_open("commit")
        checked = check_items(puts)
        delete_keys = check_keys(deletes)
        if not checked and not delete_keys:
            return
        data = self._data
        deleted = 0
        for key in delete_keys:
            if data.pop(key, None) is not None:
                deleted += 1
        data.update(checked)
        self._stats = replace(
            self._stats,
            commits=self._stats.commits + 1,
            keys_written=self._stats.keys_written + len(checked),
            keys_deleted=self._stats.keys_deleted + deleted,
            bytes_written=self._stats.bytes_written + sum(map(len, checked.values())),
        )

    async def commit_fenced(
        self, puts: Mapping[str, BytesLike], deletes: Iterable[str], fence: Fence
    ) -> None:
        """``commit`` unless a newer generation is stored at ``fence.key`` (store contract 8)."""
        self._check_open("commit_fenced")
        checked = check_items(puts)
        delete_keys = check_keys(deletes)
        stored = self._data.get(fence.key)
        current = None if stored is None else int(stored)
        if current is not None and current > fence.generation:
            raise fenced_error(fence, current)
        if current != fence.generation:
            self._data[fence.key] = b"%d" % fence.generation
        # No await between the check above and the writes: atomic on this event loop.
        await self.commit(checked, delete_keys)

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Every key starting with ``prefix``, with its value, in key order."""
        self._check_open("scan")
        data = self._data
        found = {key: data[key] for key in sorted(k for k in data if k.startswith(prefix))}
        self._count_reads(found)
        return found

    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        self._check_open("keys")
        return sorted(k for k in self._data if k.startswith(prefix))

    def snapshot_bytes(self) -> int:
        """Total size of what is stored: UTF-8 keys plus values, in bytes."""
        return sum(len(k.encode()) + len(v) for k, v in self._data.items())

    def statistics(self) -> StateStoreStatistics:
        """Read and write counters since the store was created."""
        return self._stats

    def describe(self) -> str:
        """``memory``: the data lives in this process only."""
        return "memory (this process only)"

    def _check_open(self, operation: str) -> None:
        if not self._is_open:
            raise StateError(
                f"{operation} on a closed MemoryStateStore; await store.open() first "
                "(or use 'async with store:')"
            )

    def _count_reads(self, found: Mapping[str, bytes]) -> None:
        self._stats = replace(
            self._stats,
            keys_read=self._stats.keys_read + len(found),
            bytes_read=self._stats.bytes_read + sum(map(len, found.values())),
        )
