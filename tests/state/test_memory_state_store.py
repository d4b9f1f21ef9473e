"""What only the memory backend does: size reporting, and keeping data across close."""

from __future__ import annotations

from streamcore.state import MemoryStateStore


async def test_snapshot_bytes_counts_utf8_keys_and_values() -> None:
    async with MemoryStateStore() as store:
        await store.put_many({"ab": b"123", "é": b""})
        assert store.snapshot_bytes() == 2 + 3 + 2
        assert len(store) == 2
        await store.delete_many(["ab"])
        assert store.snapshot_bytes() == 2


async def test_close_keeps_the_data_for_the_same_object() -> None:
    store = MemoryStateStore()
    async with store:
        await store.put_many({"a": b"1"})
    assert "closed" in repr(store) and "keys=1" in repr(store)
    async with store:
        assert await store.get("a") == b"1"


def test_describe_says_the_data_is_in_this_process() -> None:
    assert "memory" in MemoryStateStore().describe()
