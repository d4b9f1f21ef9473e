"""The state store interface: where checkpoints and task results are kept.

Working state lives in memory inside the actors; a store is only written at checkpoints
(and by batch pipelines when a task finishes), always in batches, never per record.
Keys are plain strings that callers namespace (``<flow>/<stage>/<key group>/...``);
values are bytes produced by ``streamcore.state.serde``.

Contract (every backend, checked by ``streamcore.testing.state_contract``):
1. ``put_many`` and ``delete_many`` are each applied as one unit (all or nothing).
2. ``commit`` applies puts and deletes atomically together: a reader sees all of it or none.
3. ``scan(prefix)`` returns every key starting with ``prefix`` with its value.
4. A store is usable only between ``open()`` and ``close()``; both may be awaited twice.
Design: docs/checkpoints.md
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["StateStore"]


class StateStore:
    """Abstract key/value store with atomic batched writes."""

    async def open(self) -> None:
        """Connect; raise ``StateError`` naming the location if it cannot."""

    async def close(self) -> None:
        """Disconnect."""

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        raise NotImplementedError

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those keys that exist."""
        raise NotImplementedError

    async def put_many(self, items: Mapping[str, bytes]) -> None:
        """Write several keys in one round trip."""
        await self.commit(items, ())

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Delete several keys in one round trip."""
        await self.commit({}, keys)

    async def commit(self, puts: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        """Apply ``puts`` and ``deletes`` atomically."""
        raise NotImplementedError

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Every key starting with ``prefix``, with its value."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the data lives, for messages (never includes a password)."""
        return type(self).__name__
