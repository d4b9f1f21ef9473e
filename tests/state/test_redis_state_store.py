"""What only the Redis backend does: URLs, key layout, chunking, and mapping its errors."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio
import redis.exceptions
from services import RedisServer

from streamcore.errors import StateError
from streamcore.state import RedisStateStore
from streamcore.state.redis import mask_url_password


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def with_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
async def private_admin(private_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.from_url(private_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


# URLs and passwords (no server needed).


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:s3cret@host:6379/2", "redis://:***@host:6379/2"),
        ("rediss://u:p%40ss@host/0?ssl_cert_reqs=none", "rediss://u:***@host/0?ssl_cert_reqs=none"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("unix:///tmp/redis.sock?db=1&password=s3cret", "unix:///tmp/redis.sock?db=1&password=***"),
    ],
)
def test_mask_url_password_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url_password(url) == masked


def test_describe_and_repr_never_show_the_password() -> None:
    store = RedisStateStore("rediss://app:s3cret@redis.example:6380/3?ssl_cert_reqs=none")
    assert store.describe() == "rediss://app:***@redis.example:6380/3?ssl_cert_reqs=none"
    assert "s3cret" not in repr(store)
    assert store.url.startswith("rediss://app:s3cret@")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://user:s3cret@host:6379/0", "scheme must be redis://"),
        ("redis://user:s3cret@host:6379/0?socket_timeout=soon", "invalid Redis URL"),
    ],
)
def test_a_bad_url_is_refused_when_the_store_is_created(url: str, match: str) -> None:
    with pytest.raises(StateError, match=match) as caught:
        RedisStateStore(url)
    assert "s3cret" not in str(caught.value)


def test_streamcore_state_imports_without_redis_installed() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from streamcore.errors import StateError\n"
        "import streamcore.state as state\n"
        "try:\n"
        "    state.RedisStateStore('redis://localhost/0')\n"
        "except StateError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'streamcore[redis]'" in result.stdout


# Failing to open: each cause becomes a StateError saying what to check.


async def test_a_closed_port_raises_state_error_naming_the_url(closed_port: int) -> None:
    url = f"redis://:s3cret@127.0.0.1:{closed_port}/0"
    store = RedisStateStore(url, connect_retries=1, socket_timeout_s=2)
    with pytest.raises(StateError) as caught:
        await store.open()
    message = str(caught.value)
    assert f"redis://:***@127.0.0.1:{closed_port}/0" in message
    assert "s3cret" not in message
    assert "tried 2 time(s)" in message and "running" in message
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    with pytest.raises(StateError, match="closed RedisStateStore"):
        await store.get("a")


async def test_a_server_that_never_answers_times_out_as_state_error(silent_server: int) -> None:
    store = RedisStateStore(
        f"redis://127.0.0.1:{silent_server}/0", socket_timeout_s=0.2, connect_retries=0
    )
    with pytest.raises(StateError, match=f"127.0.0.1:{silent_server}") as caught:
        await store.open()
    assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError | TimeoutError)


@pytest.mark.redis
async def test_wrong_credentials_raise_state_error_about_the_password(redis_url: str) -> None:
    url = with_credentials(redis_url, f"nobody-{uuid.uuid4().hex[:6]}", "s3cret")
    with pytest.raises(StateError, match="password") as caught:
        await RedisStateStore(url, connect_retries=0).open()
    assert "s3cret" not in str(caught.value)
    assert ":***@" in str(caught.value)
    assert isinstance(caught.value.__cause__, redis.exceptions.AuthenticationError)


@pytest.mark.redis
async def test_a_db_number_the_server_lacks_raises_state_error(redis_url: str) -> None:
    with pytest.raises(StateError, match="db number"):
        await RedisStateStore(with_db(redis_url, 999), connect_retries=0).open()


# Key layout and batching.


@pytest.mark.redis
async def test_keys_are_stored_under_the_key_prefix(redis_store: RedisStateStore) -> None:
    await redis_store.put_many({"flow/stage/1": b"v"})
    raw = redis.asyncio.from_url(redis_store.url)
    try:
        assert await raw.get(f"{redis_store.key_prefix}:flow/stage/1") == b"v"
        assert await raw.get("flow/stage/1") is None
    finally:
        await raw.aclose()


@pytest.mark.redis
async def test_stores_with_different_prefixes_do_not_see_each_other(
    redis_store: RedisStateStore,
) -> None:
    other = RedisStateStore(redis_store.url, key_prefix=redis_store.key_prefix + "-other")
    async with other:
        await other.put_many({"k": b"other"})
        try:
            await redis_store.put_many({"k": b"mine"})
            assert await redis_store.scan("") == {"k": b"mine"}
            assert await other.get("k") == b"other"
        finally:
            await other.delete_prefix("")


@pytest.mark.redis
async def test_a_prefix_with_glob_characters_isolates_its_keys(redis_url: str) -> None:
    base = f"test-glob-{uuid.uuid4().hex[:8]}"
    starred = RedisStateStore(redis_url, key_prefix=f"{base}*")
    plain = RedisStateStore(redis_url, key_prefix=f"{base}x")
    async with starred, plain:
        try:
            await plain.put_many({"k": b"x"})
            await starred.put_many({"k": b"*"})
            assert await starred.scan("") == {"k": b"*"}
        finally:
            await starred.delete_prefix("")
            await plain.delete_prefix("")


@pytest.mark.redis
async def test_batches_larger_than_one_command_chunk_stay_whole(
    redis_store: RedisStateStore,
) -> None:
    items = {f"chunk/{i:06d}": str(i).encode() for i in range(25_000)}
    await redis_store.commit(items, [])
    assert await redis_store.get_many(list(items)) == items
    assert await redis_store.scan("chunk/") == items
    await redis_store.commit({"chunk/new": b"n"}, list(items))
    assert await redis_store.scan("chunk/") == {"chunk/new": b"n"}
    assert await redis_store.delete_prefix("chunk/") == 1


# A server of our own: settings that must not leak into other tests.


@pytest.mark.redis
async def test_an_evicting_maxmemory_policy_logs_a_warning(
    private_redis: RedisServer,
    private_admin: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="streamcore.state.redis")
    await private_admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        async with RedisStateStore(private_redis.url):
            pass
    finally:
        await private_admin.config_set("maxmemory-policy", "noeviction")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("maxmemory-policy=allkeys-lru" in w and "noeviction" in w for w in warnings)
    caplog.clear()
    async with RedisStateStore(private_redis.url):
        pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.redis
async def test_a_denied_command_raises_state_error_about_permissions(
    private_redis: RedisServer, private_admin: redis.asyncio.Redis
) -> None:
    user = f"limited-{uuid.uuid4().hex[:6]}"
    # The user may touch only keys under "allowed:" and may not run CONFIG, which
    # open() must shrug off.
    await private_admin.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~allowed:*", "+@all", "-@dangerous"
    )
    try:
        url = with_credentials(private_redis.url, user, "pw")
        async with RedisStateStore(url, key_prefix="allowed") as allowed:
            await allowed.put_many({"k": b"1"})
            assert await allowed.get("k") == b"1"
            await allowed.delete_prefix("")
        async with RedisStateStore(url, key_prefix="forbidden", connect_retries=0) as denied:
            with pytest.raises(StateError, match="permission") as caught:
                await denied.put_many({"k": b"1"})
        assert isinstance(caught.value.__cause__, redis.exceptions.NoPermissionError)
        assert ":***@" in str(caught.value)
    finally:
        await private_admin.execute_command("ACL", "DELUSER", user)


@pytest.mark.redis
async def test_a_store_fails_while_redis_is_down_and_recovers_after_restart(
    private_redis: RedisServer,
) -> None:
    store = RedisStateStore(private_redis.url, key_prefix="restart", connect_retries=1)
    async with store:
        await store.commit({"before": b"1"}, [])
        await private_redis.astop()
        try:
            with pytest.raises(StateError, match="still running") as caught:
                await store.commit({"during": b"2"}, [])
            assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
        finally:
            await private_redis.astart()
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                found = await store.scan("")
                break
            except StateError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        assert found == {"before": b"1"}
        await store.delete_prefix("")
