"""Real Redis and Kafka servers for tests.

``scripts/test.sh`` starts both and exports ``REDIS_URL``/``REDIS_DIR`` and
``KAFKA_BOOTSTRAP``/``KAFKA_DIR``. When those are unset (plain ``pytest``), the
fixtures in ``tests/conftest.py`` start the servers themselves through
``scripts/redis.sh`` and ``scripts/kafka.sh`` for the session. A service that cannot
be had skips the tests that need it, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts"

#: Seconds a start script may take; the first Kafka start downloads the broker.
START_TIMEOUT = float(os.environ.get("STREAMCORE_SERVICE_START_TIMEOUT", "600"))


#: Type of the ``kafka_topic_factory`` fixture: ``await factory(partitions, config=...)``.
TopicFactory = Callable[..., Awaitable[str]]


class ServiceError(RuntimeError):
    """A service script failed; the message carries its output."""


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where missing services are failures."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test for a missing service, or fail it under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def _parse_env(output: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in output.splitlines():
        m = re.fullmatch(r"([A-Z_]+)=(\S+)", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def wait_tcp(host: str, port: int, timeout: float) -> bool:
    """Poll until ``host:port`` accepts a TCP connection or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


class ServiceProcess:
    """A server run by one of the ``scripts/<name>.sh`` scripts in a state directory."""

    name = ""
    env_key = ""

    def __init__(self, state_dir: Path | None, address: str, *, owned: bool) -> None:
        self.state_dir = state_dir
        self.address = address
        #: True when this process was started by the fixtures (and is stopped by them).
        self.owned = owned

    @property
    def script(self) -> Path:
        """The shell script that manages this service."""
        return SCRIPTS / f"{self.name}.sh"

    @property
    def controllable(self) -> bool:
        """True when the server can be stopped and started again from tests."""
        return self.state_dir is not None

    def _run(self, command: str, timeout: float) -> str:
        if self.state_dir is None:
            raise ServiceError(
                f"{self.name}: {self.env_key} was given without its state directory; "
                "cannot stop or start the server"
            )
        return run_script(self.name, command, self.state_dir, timeout=timeout)

    def start(self) -> str:
        """Start the server again (same port when still free); returns its address."""
        out = self._run("start", START_TIMEOUT)
        address = _parse_env(out).get(self.env_key)
        if not address:
            raise ServiceError(f"{self.name} start printed no {self.env_key}:\n{out}")
        previous, self.address = self.address, address
        if previous and previous != address:
            raise ServiceError(
                f"{self.name} came back at {address}, not {previous} (port taken meanwhile)"
            )
        return address

    def stop(self) -> None:
        """Shut the server down cleanly and wait for the process to exit."""
        self._run("stop", 120)

    def kill(self) -> None:
        """SIGKILL the server, as a crash; its data directory stays for a restart."""
        self._run("kill", 30)

    def restart(self) -> str:
        """Clean stop followed by start; returns the (possibly new) address."""
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        """True when the script reports the server up and answering."""
        if self.state_dir is None:
            return True
        try:
            run_script(self.name, "status", self.state_dir, timeout=30)
        except ServiceError:
            return False
        return True

    async def astart(self) -> str:
        """:meth:`start` off the event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """:meth:`stop` off the event loop."""
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        """:meth:`kill` off the event loop."""
        await asyncio.to_thread(self.kill)

    async def arestart(self) -> str:
        """:meth:`restart` off the event loop."""
        return await asyncio.to_thread(self.restart)


class RedisServer(ServiceProcess):
    """The Redis server tests talk to; ``address`` is the ``redis://`` URL."""

    name = "redis"
    env_key = "REDIS_URL"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return self.address

    @property
    def port(self) -> int:
        """TCP port of the server."""
        return urlsplit(self.address).port or 6379


class KafkaBroker(ServiceProcess):
    """The Kafka broker tests talk to; ``address`` is the bootstrap ``host:port``."""

    name = "kafka"
    env_key = "KAFKA_BOOTSTRAP"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>``."""
        return self.address


def run_script(name: str, command: str, state_dir: Path, *, timeout: float) -> str:
    """Run ``scripts/<name>.sh COMMAND STATE_DIR``; return stdout, raise on failure."""
    bash = shutil.which("bash") or "/bin/bash"
    try:
        proc = subprocess.run(
            [bash, str(SCRIPTS / f"{name}.sh"), command, str(state_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{name}.sh {command} timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        raise ServiceError(f"{name}.sh {command} exited {proc.returncode}:\n{tail}")
    return proc.stdout


def session_state_dir(name: str) -> Path:
    """State directory for a service started by this pytest process."""
    return REPO_ROOT / ".services" / f"pytest-{os.getpid()}" / name


def _from_env(
    cls: type[ServiceProcess], dir_key: str, environ: Mapping[str, str]
) -> ServiceProcess | None:
    address = environ.get(cls.env_key, "").strip()
    if not address:
        return None
    state = environ.get(dir_key, "").strip()
    return cls(Path(state) if state else None, address, owned=False)


def acquire_redis(environ: Mapping[str, str] | None = None) -> RedisServer:
    """The Redis named by ``REDIS_URL`` (and ``REDIS_DIR``), else one started now.

    Calls :func:`unavailable` (skip, or fail under CI) when neither works.
    """
    env = os.environ if environ is None else environ
    server = _from_env(RedisServer, "REDIS_DIR", env)
    if server is None:
        server = RedisServer(session_state_dir("redis"), "", owned=True)
        try:
            server.start()
        except ServiceError as exc:
            unavailable(f"REDIS_URL unset and starting Redis failed: {exc}")
    assert isinstance(server, RedisServer)
    parts = urlsplit(server.url)
    if not wait_tcp(parts.hostname or "127.0.0.1", server.port, 10):
        unavailable(f"Redis at {server.url} does not accept connections")
    return server


def acquire_kafka(environ: Mapping[str, str] | None = None) -> KafkaBroker:
    """The broker named by ``KAFKA_BOOTSTRAP`` (and ``KAFKA_DIR``), else one started now.

    Calls :func:`unavailable` (skip, or fail under CI) when neither works.
    """
    env = os.environ if environ is None else environ
    broker = _from_env(KafkaBroker, "KAFKA_DIR", env)
    if broker is None:
        broker = KafkaBroker(session_state_dir("kafka"), "", owned=True)
        try:
            broker.start()
        except ServiceError as exc:
            unavailable(f"KAFKA_BOOTSTRAP unset and starting Kafka failed: {exc}")
    assert isinstance(broker, KafkaBroker)
    host, _, port = broker.bootstrap.split(",")[0].rpartition(":")
    if not wait_tcp(host or "127.0.0.1", int(port), 10):
        unavailable(f"Kafka at {broker.bootstrap} does not accept connections")
    return broker


def release(server: ServiceProcess) -> None:
    """Stop a server the fixtures started; leave one provided from outside alone."""
    if not server.owned or server.state_dir is None:
        return
    try:
        server.stop()
    finally:
        shutil.rmtree(server.state_dir, ignore_errors=True)
        parent = server.state_dir.parent
        if parent.name.startswith("pytest-") and not any(parent.iterdir()):
            parent.rmdir()


def unique_topic_name(prefix: str = "t") -> str:
    """A topic name not used before: ``<prefix>-<12 hex chars>``, legal for Kafka."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.")[:180] or "t"
    return f"{clean}-{uuid.uuid4().hex[:12]}"


async def create_topic(
    bootstrap: str,
    partitions: int = 1,
    *,
    name: str | None = None,
    prefix: str = "t",
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> str:
    """Create a topic with ``partitions`` partitions (replication 1) and return its name.

    Returns once every partition has a leader, so producing right away succeeds.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = name or unique_topic_name(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=dict(config or {}))],
            timeout_ms=int(timeout * 1000),
        )
        for err in response.to_object().get("topic_errors", []):
            if err.get("error_code"):
                raise ServiceError(
                    f"creating topic {err.get('topic')!r} failed: error {err['error_code']} "
                    f"{err.get('error_message') or ''}".rstrip()
                )
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics([topic])
            parts = described[0].get("partitions", []) if described else []
            if len(parts) == partitions and all(p.get("leader", -1) >= 0 for p in parts):
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topic {topic}: partitions without a leader: {described!r}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return topic
