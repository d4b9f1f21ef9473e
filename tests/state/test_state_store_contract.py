"""The state store contract, run against every backend (memory and Redis)."""

from __future__ import annotations

from streamcore.state import RedisStateStore, StateStore
from streamcore.testing.state_contract import StateStoreContract


class TestStateStoreContract(StateStoreContract):
    """Each contract test, once per backend of the ``store`` fixture."""

    async def reopen(self, store: StateStore) -> StateStore:
        """For Redis, a new client object: only the server can carry the data over."""
        if isinstance(store, RedisStateStore):
            await store.close()
            fresh = RedisStateStore(store.url, key_prefix=store.key_prefix)
            await fresh.open()
            return fresh
        return await super().reopen(store)
