"""Fixtures for the state store tests: every backend behind one ``store`` fixture.

``store`` is parametrised over the memory and Redis backends; the Redis one uses the
suite's ``redis_url`` (tests/conftest.py) and a key prefix of its own per test, and
deletes its keys afterwards. ``private_redis`` is a Redis server for this module
alone, for tests that change server settings or stop the server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from services import RedisServer, ServiceError, release, unavailable

from streamcore.state import MemoryStateStore, RedisStateStore, StateStore

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses: ``test-<test name>-<8 hex>``."""
    return f"test-{request.node.name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    """An opened store of each backend, with an empty key space."""
    backend: StateStore
    if request.param == "memory":
        backend = MemoryStateStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStateStore(url, key_prefix=unique_prefix(request))
    await backend.open()
    try:
        yield backend
    finally:
        if isinstance(backend, RedisStateStore):
            await backend.open()
            await backend.delete_prefix("")
        await backend.close()


@pytest.fixture
async def redis_store(
    redis_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[RedisStateStore]:
    """An opened ``RedisStateStore`` on the suite's server, with its own key prefix."""
    backend = RedisStateStore(redis_url, key_prefix=unique_prefix(request))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.open()
        await backend.delete_prefix("")
        await backend.close()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server of this module's own, started with scripts/redis.sh."""
    state_dir: Path = tmp_path_factory.mktemp("private-redis")
    server = RedisServer(state_dir, "", owned=True)
    try:
        server.start()
    except ServiceError as exc:
        unavailable(f"cannot start a private Redis server: {exc}")
    try:
        yield server
    finally:
        release(server)
