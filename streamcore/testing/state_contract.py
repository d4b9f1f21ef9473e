"""Contract tests every ``StateStore`` backend must pass.

Subclass ``StateStoreContract`` in a test module (its name must start with ``Test``)
and provide a ``store`` fixture yielding an *opened* store whose key space is empty;
every test method here then runs against it. Override ``reopen`` when closing and
opening the same object is not the strongest persistence check for the backend (the
Redis tests reopen through a new instance). Each test checks one numbered clause of
the contract in ``streamcore.state.store``.
Design: docs/state.md#the-contract
"""

from __future__ import annotations

import asyncio
import os

import pytest

from streamcore.errors import FencedError, StateError
from streamcore.state.store import Fence, StateStore

__all__ = ["StateStoreContract"]

_LARGE_BATCH = 10_000


class StateStoreContract:
    """Mix-in of contract tests; needs a ``store`` fixture (opened, empty)."""

    async def reopen(self, store: StateStore) -> StateStore:
        """Close ``store`` and return an opened store over the same data."""
        await store.close()
        await store.open()
        return store

    # Reads and writes.

    async def test_a_missing_key_reads_as_none(self, store: StateStore) -> None:
        assert await store.get("missing") is None
        assert await store.get_many(["missing", "also/missing"]) == {}

    async def test_put_many_then_get_returns_each_value(self, store: StateStore) -> None:
        await store.put_many({"a": b"1", "b": b"2"})
        assert await store.get("a") == b"1"
        assert await store.get("b") == b"2"

    async def test_get_many_returns_only_the_keys_that_exist(self, store: StateStore) -> None:
        await store.put_many({"a": b"1", "b": b"2"})
        assert await store.get_many(["a", "nope", "b", "a"]) == {"a": b"1", "b": b"2"}
        assert await store.get_many([]) == {}

    async def test_put_many_overwrites_existing_values(self, store: StateStore) -> None:
        await store.put_many({"a": b"old", "b": b"kept"})
        await store.put_many({"a": b"new"})
        assert await store.get_many(["a", "b"]) == {"a": b"new", "b": b"kept"}

    async def test_delete_many_removes_keys_and_ignores_missing_ones(
        self, store: StateStore
    ) -> None:
        await store.put_many({"a": b"1", "b": b"2", "c": b"3"})
        await store.delete_many(["a", "c", "never-written"])
        assert await store.scan("") == {"b": b"2"}

    # Clause 2: commit.

    async def test_commit_applies_puts_and_deletes_together(self, store: StateStore) -> None:
        await store.put_many({"ckpt/1/x": b"1", "ckpt/1/y": b"2"})
        await store.commit({"ckpt/2/x": b"10", "ckpt/2/y": b"20"}, ["ckpt/1/x", "ckpt/1/y"])
        assert await store.scan("ckpt/") == {"ckpt/2/x": b"10", "ckpt/2/y": b"20"}

    async def test_a_key_both_put_and_deleted_in_one_commit_keeps_the_put(
        self, store: StateStore
    ) -> None:
        await store.put_many({"k": b"old"})
        await store.commit({"k": b"new"}, ["k"])
        assert await store.get("k") == b"new"

    async def test_an_empty_commit_changes_nothing(self, store: StateStore) -> None:
        await store.put_many({"a": b"1"})
        await store.commit({}, [])
        await store.put_many({})
        await store.delete_many([])
        assert await store.scan("") == {"a": b"1"}

    # Clause 8: fenced commits.

    async def test_a_fenced_commit_from_an_older_generation_writes_nothing(
        self, store: StateStore
    ) -> None:
        await store.put_many({"t/x": b"kept"})
        await store.commit_fenced({"t/y": b"new"}, [], Fence("t/fence", 7))
        with pytest.raises(FencedError, match="generation 6 is older than generation 7") as caught:
            await store.commit_fenced({"t/z": b"zombie"}, ["t/x"], Fence("t/fence", 6))
        assert (caught.value.generation, caught.value.current) == (6, 7)
        assert await store.scan("t/") == {"t/fence": b"7", "t/x": b"kept", "t/y": b"new"}

    async def test_an_empty_fenced_commit_claims_the_generation(self, store: StateStore) -> None:
        await store.commit_fenced({"t/a": b"1"}, [], Fence("t/fence", 1))
        await store.commit_fenced({}, [], Fence("t/fence", 2))
        with pytest.raises(FencedError):
            await store.commit_fenced({"t/a": b"zombie"}, [], Fence("t/fence", 1))
        assert await store.get("t/a") == b"1"

    async def test_the_current_generation_writes_and_deletes_again(self, store: StateStore) -> None:
        fence = Fence("t/fence", 3)
        await store.commit_fenced({"t/a": b"1", "t/b": b"2"}, [], fence)
        await store.commit_fenced({"t/b": b"3", "t/c": b"4"}, ["t/a", "t/b"], fence)
        assert await store.scan("t/") == {"t/b": b"3", "t/c": b"4", "t/fence": b"3"}

    async def test_concurrent_fenced_writers_leave_only_the_newest_generations_writes(
        self, store: StateStore
    ) -> None:
        async def writer(generation: int) -> None:
            for i in range(20):
                try:
                    await store.commit_fenced({f"t/{i}": b"%d" % generation}, [], Fence("t/fence", generation))
                except FencedError:
                    return

        await asyncio.gather(*(writer(g) for g in range(1, 6)))
        # Once generation 5 wrote, no older one did: every key it wrote holds its value.
        assert await store.get("t/fence") == b"5"
        assert all(v == b"5" for v in (await store.get_many([f"t/{i}" for i in range(20)])).values())

    async def test_concurrent_readers_never_see_half_a_commit(self, store: StateStore) -> None:
        keys = [f"atomic/{i:05d}" for i in range(2_000)]
        await store.put_many(dict.fromkeys(keys, b"0"))
        rounds = 20
        done = asyncio.Event()
        mixed: list[set[bytes]] = []

        async def write() -> None:
            for version in range(1, rounds + 1):
                await store.commit(dict.fromkeys(keys, str(version).encode()), [])
                await asyncio.sleep(0)
            done.set()

        async def read() -> int:
            reads = 0
            while not done.is_set() or reads == 0:
                seen = set((await store.get_many(keys)).values())
                reads += 1
                # An in-process store never yields inside get_many; let the writer run.
                await asyncio.sleep(0)
                if len(seen) != 1:
                    mixed.append(seen)
            return reads

        _, reads = await asyncio.gather(write(), read())
        assert reads > 0
        assert not mixed, f"a reader saw values of several commits at once: {mixed[0]}"
        assert set((await store.get_many(keys)).values()) == {str(rounds).encode()}

    # Clause 5: validation before anything is written.

    async def test_a_commit_with_a_bad_value_writes_nothing(self, store: StateStore) -> None:
        await store.put_many({"keep": b"1"})
        with pytest.raises(TypeError, match="'bad'"):
            await store.commit({"good": b"1", "bad": "text"}, ["keep"])  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            await store.commit({"good": b"1"}, ["keep", 3])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await store.put_many({("tuple", "key"): b"1"})  # type: ignore[dict-item]
        assert await store.scan("") == {"keep": b"1"}

    async def test_bytes_like_values_are_stored_as_a_copy(self, store: StateStore) -> None:
        buffer = bytearray(b"abc")
        await store.put_many({"ba": buffer, "mv": memoryview(b"xyz")})
        buffer[0:1] = b"Z"
        assert await store.get_many(["ba", "mv"]) == {"ba": b"abc", "mv": b"xyz"}
        assert type(await store.get("ba")) is bytes

    async def test_binary_values_round_trip_byte_for_byte(self, store: StateStore) -> None:
        values = {
            "empty": b"",
            "every-byte": bytes(range(256)),
            "nul": b"\x00\x00",
            "crlf": b"\r\n$-1\r\n*0\r\n",
            "random": os.urandom(1 << 20),
        }
        await store.put_many(values)
        assert await store.get_many(list(values)) == values
        assert await store.scan("") == values

    # Clause 4: scan by literal prefix.

    async def test_scan_returns_only_keys_under_the_prefix_in_key_order(
        self, store: StateStore
    ) -> None:
        await store.put_many(
            {"f/s/2": b"2", "f/s/1": b"1", "f/s/10": b"10", "f/t/1": b"x", "f/": b"y", "g": b"z"}
        )
        found = await store.scan("f/s/")
        assert found == {"f/s/1": b"1", "f/s/10": b"10", "f/s/2": b"2"}
        assert list(found) == ["f/s/1", "f/s/10", "f/s/2"]
        assert await store.scan("nothing/") == {}

    async def test_scan_treats_glob_characters_in_the_prefix_literally(
        self, store: StateStore
    ) -> None:
        keys = ["a*b", "a*c", "aXb", "a?b", "aab", "a[b]c", "abc", "a]b", "a\\b", "a\\*b", "a^b"]
        await store.put_many({k: k.encode() for k in keys})
        assert set(await store.scan("a*")) == {"a*b", "a*c"}
        assert set(await store.scan("a?")) == {"a?b"}
        assert set(await store.scan("a[b]")) == {"a[b]c"}
        assert set(await store.scan("a[")) == {"a[b]c"}
        assert set(await store.scan("a]")) == {"a]b"}
        assert set(await store.scan("a\\")) == {"a\\b", "a\\*b"}
        assert set(await store.scan("a\\*")) == {"a\\*b"}
        assert set(await store.scan("a^")) == {"a^b"}
        assert set(await store.scan("a")) == set(keys)

    async def test_scan_of_the_empty_prefix_returns_every_key(self, store: StateStore) -> None:
        items = {"x": b"1", "y/z": b"2", "": b"empty key"}
        await store.put_many(items)
        assert await store.scan("") == items

    async def test_keys_may_hold_any_unicode_text(self, store: StateStore) -> None:
        items = {"flow/ключ/🙂": b"1", "a:b:c": b"2", "tab\tand space": b"3", "é/è": b"4"}
        await store.put_many(items)
        assert await store.get_many(list(items)) == items
        assert await store.scan("flow/ключ/") == {"flow/ключ/🙂": b"1"}

    async def test_keys_lists_names_under_a_prefix_sorted(self, store: StateStore) -> None:
        await store.put_many({"p/b": b"1", "p/a": b"2", "q": b"3"})
        assert await store.keys("p/") == ["p/a", "p/b"]

    async def test_delete_prefix_removes_only_that_prefix(self, store: StateStore) -> None:
        await store.put_many({"ckpt/1/a": b"1", "ckpt/1/b": b"2", "ckpt/10/a": b"3", "x": b"4"})
        assert await store.delete_prefix("ckpt/1/") == 2
        assert await store.scan("") == {"ckpt/10/a": b"3", "x": b"4"}
        assert await store.delete_prefix("nothing/") == 0

    async def test_a_large_batch_of_10000_keys_round_trips(self, store: StateStore) -> None:
        items = {f"big/{i:06d}": i.to_bytes(4, "big") * 8 for i in range(_LARGE_BATCH)}
        await store.commit(items, [])
        assert await store.get_many(list(items)) == items
        assert await store.scan("big/") == items
        half = list(items)[::2]
        await store.commit({"big/extra": b"1"}, half)
        remaining = await store.scan("big/")
        assert len(remaining) == _LARGE_BATCH - len(half) + 1
        assert not set(half) & set(remaining)

    # Clause 6: lifecycle.

    async def test_data_survives_close_and_reopen(self, store: StateStore) -> None:
        await store.commit({"persist/a": b"1", "persist/b": b"2"}, [])
        reopened = await self.reopen(store)
        try:
            assert await reopened.scan("persist/") == {"persist/a": b"1", "persist/b": b"2"}
        finally:
            if reopened is not store:
                await reopened.close()

    async def test_a_closed_store_refuses_to_work(self, store: StateStore) -> None:
        await store.close()
        with pytest.raises(StateError, match="open"):
            await store.get("a")
        with pytest.raises(StateError, match="open"):
            await store.commit({"a": b"1"}, [])
        with pytest.raises(StateError, match="open"):
            await store.scan("")
        await store.open()
        assert await store.get("a") is None

    async def test_open_and_close_may_be_awaited_twice(self, store: StateStore) -> None:
        await store.open()
        await store.put_many({"a": b"1"})
        await store.close()
        await store.close()
        await store.open()
        await store.open()
        assert await store.get("a") == b"1"

    async def test_async_with_opens_and_closes(self, store: StateStore) -> None:
        await store.close()
        async with store as opened:
            assert opened is store
            await opened.put_many({"a": b"1"})
        with pytest.raises(StateError):
            await store.get("a")
        await store.open()

    # Reporting.

    async def test_statistics_count_commits_keys_and_bytes(self, store: StateStore) -> None:
        before = store.statistics()
        await store.commit({"a": b"12", "b": b"345"}, [])
        await store.commit({}, ["a"])
        await store.get_many(["b", "missing"])
        after = store.statistics()
        assert after.commits - before.commits == 2
        assert after.keys_written - before.keys_written == 2
        assert after.bytes_written - before.bytes_written == 5
        assert after.keys_deleted - before.keys_deleted == 1
        assert after.keys_read - before.keys_read == 1
        assert after.bytes_read - before.bytes_read == 3

    def test_describe_names_the_location(self, store: StateStore) -> None:
        description = store.describe()
        assert isinstance(description, str) and description
