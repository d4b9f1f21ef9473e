"""Suite-wide fixtures: real Redis and Kafka (see tests/services.py, docs/testing.md).

Fixtures:
    redis_url            session  str    ``redis://127.0.0.1:<port>/0``
    redis_restart        function RedisServer with stop()/start()/kill()/restart() and
                                         async astop()/astart()/akill()/arestart();
                                         Redis is running again after the test
    kafka_bootstrap      session  str    ``127.0.0.1:<port>``
    kafka_topic_factory  function async (partitions=1, *, config=None) -> topic name

Under ``CI=true`` a test that was skipped for any reason fails the run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

# Makes `import services` work for this file and the test modules, whether or not
# tests/ is a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from services import (
    KafkaBroker,
    RedisServer,
    ServiceError,
    TopicFactory,
    acquire_kafka,
    acquire_redis,
    create_topic,
    in_ci,
    release,
    unavailable,
)


@pytest.fixture(scope="session")
def _redis_service() -> Iterator[RedisServer]:
    server = acquire_redis()
    try:
        yield server
    finally:
        release(server)


@pytest.fixture(scope="session")
def redis_url(_redis_service: RedisServer) -> str:
    """URL of the session's Redis server (DB 0)."""
    return _redis_service.url


@pytest.fixture
def redis_restart(_redis_service: RedisServer) -> Iterator[RedisServer]:
    """Control of the session's Redis: stop, kill and start it mid-test.

    The server keeps its port and its append-only data across a restart. Whatever the
    test did, Redis is running again when the test ends.
    """
    if not _redis_service.controllable:
        unavailable("REDIS_URL points at a server without REDIS_DIR: cannot restart it")
    yield _redis_service
    if not _redis_service.is_running():
        try:
            _redis_service.start()
        except ServiceError as exc:
            pytest.fail(f"could not bring Redis back after the test: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def _kafka_service() -> Iterator[KafkaBroker]:
    broker = acquire_kafka()
    try:
        yield broker
    finally:
        release(broker)


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_service: KafkaBroker) -> str:
    """Bootstrap address of the session's Kafka broker."""
    return _kafka_service.bootstrap


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> TopicFactory:
    """Async callable creating a fresh topic named after the test; returns the name.

    ``await kafka_topic_factory(4)`` or ``await kafka_topic_factory(2, config={...})``.
    """

    async def make(partitions: int = 1, *, config: Mapping[str, str] | None = None) -> str:
        return await create_topic(
            kafka_bootstrap, partitions, prefix=request.node.name, config=config
        )

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``CI=true``, any skipped test turns a green session into a failure."""
    if not in_ci() or exitstatus != pytest.ExitCode.OK:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [getattr(r, "nodeid", "?") or "?" for r in reporter.stats.get("skipped", [])]
    if not skipped:
        return
    reporter.write_line(
        f"CI=true: {len(skipped)} skipped test(s) count as failures:", red=True, bold=True
    )
    for nodeid in skipped:
        reporter.write_line(f"  SKIPPED {nodeid}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
