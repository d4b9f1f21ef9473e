"""examples/embedded_aiohttp.py with real HTTP requests: events in through POST /events,
window results out through the websocket, a clean drain when the server shuts down."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedded_aiohttp.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embedded_aiohttp", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def receive(socket: aiohttp.ClientWebSocketResponse, n: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """The next ``n`` JSON messages, or fail after ``timeout_s``."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            out.append(await socket.receive_json())
    return out


async def test_events_posted_over_http_come_back_as_window_results_on_the_websocket() -> None:
    example = load_example()
    # 1 s windows, and a quiet stream advances after 200 ms: results come without more events.
    app = example.make_app(window=timedelta(seconds=1), idle=timedelta(milliseconds=200))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    run = app[example.RUN]
    assert run.ready
    base = int(time.time() * 1000) // 1000 * 1000  # a window start close to now
    events = [
        {"user": "ann", "amount": 70, "ts": base + 10},
        {"user": "bob", "amount": 5, "ts": base + 20},
        {"user": "ann", "amount": 30, "ts": base + 900},
    ]
    try:
        async with aiohttp.ClientSession(base_url=server.make_url("/")) as http:
            async with http.ws_connect("/results") as socket:
                await asyncio.sleep(0)  # the handler registers the socket on its first step
                for event in events:
                    async with http.post("/events", json=event) as response:
                        assert response.status == 202
                async with http.post("/events", data=b"not json") as response:
                    assert response.status == 400
                # Nothing more is posted: the quiet stream's watermark follows the clock.
                results = await receive(socket, 2)
            async with http.get("/totals") as response:
                assert await response.json() == results
    finally:
        await server.close()  # on_cleanup: close the source, drain, end the pump
    by_user = {r["user"]: r for r in results}
    assert by_user["ann"] == {"user": "ann", "start": base, "end": base + 1000, "n": 2, "total": 100}
    assert by_user["bob"] == {"user": "bob", "start": base, "end": base + 1000, "n": 1, "total": 5}
    assert run.done and run.state.value == "stopped"
