"""``FencedStore``: the view of a shared store that one owner of a partition writes through.

A partition of a scaled-out flow moves between processes at each rebalance, and a
process cut off from its group (a *zombie*: paused, partitioned from the network) may
still be running the partition's task after its new owner restored it. Every write
through this view is a ``commit_fenced`` with the owner's group generation, so:
1. The first use (the coordinator's restore reads first) claims the generation: an
   empty fenced commit raises the stored generation to this owner's.
2. From then on a write of an older generation is refused by the store, atomically,
   with ``FencedError``: the zombie's checkpoint never lands, nor does its pruning.
3. A newer owner claiming first makes this view's own claim or writes fail the same way.
Reads are not fenced (they change nothing). ``open`` and ``close`` do nothing: the
underlying store is shared and whoever shares it opens and closes it.
Design: docs/scale-out.md#fencing
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streamcore.state.store import BytesLike, Fence, StateStore, StateStoreStatistics

__all__ = ["FencedStore"]


class FencedStore(StateStore):
    """``store`` with every write fenced by ``fence`` (see the module docstring)."""

    def __init__(self, store: StateStore, fence: Fence) -> None:
        self.store = store
        self.fence = fence
        self._claimed = False

    def __repr__(self) -> str:
        return f"<FencedStore {self.store!r} key={self.fence.key!r} generation={self.fence.generation}>"

    async def _claim(self) -> None:
        # Step 1.
        if not self._claimed:
            await self.store.commit_fenced({}, (), self.fence)
            self._claimed = True

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Read through (after claiming the generation)."""
        await self._claim()
        return await self.store.get_many(keys)

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Read through (after claiming the generation)."""
        await self._claim()
        return await self.store.scan(prefix)

    async def keys(self, prefix: str) -> list[str]:
        """Read through (after claiming the generation)."""
        await self._claim()
        return await self.store.keys(prefix)

    async def commit(self, puts: Mapping[str, BytesLike], deletes: Iterable[str]) -> None:
        """A fenced commit (step 2); ``FencedError`` once a newer generation wrote."""
        await self.store.commit_fenced(puts, deletes, self.fence)
        self._claimed = True

    async def commit_fenced(
        self, puts: Mapping[str, BytesLike], deletes: Iterable[str], fence: Fence
    ) -> None:
        """Pass a caller's own fence through."""
        await self.store.commit_fenced(puts, deletes, fence)

    def statistics(self) -> StateStoreStatistics:
        """The shared store's counters."""
        return self.store.statistics()

    def describe(self) -> str:
        """The shared store's location."""
        return self.store.describe()
