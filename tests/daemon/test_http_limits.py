"""The daemon's HTTP server under hostile clients: bad headers, half-sent requests, floods.

Real servers on loopback, real sockets: ``DaemonServer`` in the test's loop for the
header rules, and ``streamcore run --metrics-port`` as a subprocess with a small file
descriptor limit for the flood. Every loop is bounded and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamcore.daemon.http import DaemonServer
from tests.daemon.test_cli import DEADLINE_S, _env, stop, wait_until, write
from tests.daemon.test_http import FLOW, free_port, get, inputs

HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes (bounded by a deadline)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(DEADLINE_S):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe\xfd", b"\xc3\x28", b"Bearer caf\xc3\xa9"])
async def test_an_authorization_header_that_is_not_ascii_is_a_400_without_a_traceback(
    value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = DaemonServer(None, api_token="s3cret", on_stop=lambda: None)
    await server.start()
    try:
        with caplog.at_level(logging.DEBUG):
            answer = await exchange(
                server.port,
                b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + value
                + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
    finally:
        await server.stop()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"must be ASCII" in answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_half_sent_request_is_closed_after_the_header_timeout() -> None:
    server = DaemonServer(None, header_timeout_s=0.5)
    await server.start()
    try:
        started = time.monotonic()
        answer = await exchange(server.port, HALF_SENT)
        waited_s = time.monotonic() - started
        assert answer == b""  # closed without an answer
        assert waited_s < DEADLINE_S
        assert server.guard is not None and server.guard.timed_out == 1
        # A complete request on a fresh connection is still served.
        reply = await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 ")
    finally:
        await server.stop()


async def test_beyond_max_connections_the_oldest_idle_connection_makes_room() -> None:
    server = DaemonServer(None, max_connections=4)
    await server.start()
    writers = []
    try:
        for _ in range(10):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(HALF_SENT)
            writers.append(writer)
        reply = await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert server.guard is not None
        assert server.guard.open_connections <= 4 and server.guard.evicted >= 7
    finally:
        for writer in writers:
            writer.close()
        await server.stop()


def test_1500_half_sent_requests_cannot_starve_healthz_of_a_daemon_limited_to_1024_files(
    tmp_path: Path,
) -> None:
    inputs(tmp_path, 400_000)  # about 200 s at the flow's max_rate: still running when we stop it
    write(tmp_path, "served.py", FLOW)
    port = free_port()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2_000 and hard < 2_000:
        pytest.skip(f"this test holds 1,500 sockets itself; RLIMIT_NOFILE is {soft}/{hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4_096)), hard))
    limit = 1_024

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamcore", "run", "served:flow", "--metrics-port", str(port)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, text=True, env=_env(),
            preexec_fn=few_files,
        )
    held: list[socket.socket] = []
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, "/healthz before the flood")
        deadline = time.monotonic() + 60
        for _ in range(1_500):
            if time.monotonic() > deadline:
                break
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                break  # the server stopped accepting: the listen backlog is full
            held.append(s)
            try:
                s.sendall(HALF_SENT)
            except OSError:
                pass  # already closed by the server to make room
        wait_until(lambda: get(port, "/healthz")[0] == 200, "/healthz during the flood", timeout_s=15)
        assert len(held) == 1_500
        open_files = len(os.listdir(f"/proc/{process.pid}/fd"))
        assert open_files < limit // 2, f"the daemon holds {open_files} files"
        assert get(port, "/readyz")[0] == 200
    finally:
        for s in held:
            s.close()
        process.terminate()
        stop(process, tmp_path)
        process.kill()
