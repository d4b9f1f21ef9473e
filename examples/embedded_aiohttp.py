"""A flow embedded in an aiohttp server: events in through POST /events, window results
out through the websocket GET /results (and GET /totals for what fired so far).

    .venv/bin/python examples/embedded_aiohttp.py --port 8080
    curl -X POST localhost:8080/events -d '{"user": "ann", "amount": 70, "ts": 1700000000000}'

docs/embedding.md walks through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from aiohttp import WSMsgType, web

import streamcore as sc
from connectors.memory import QueueSink, QueueSource

SOURCE: web.AppKey[QueueSource] = web.AppKey("source", QueueSource)
RESULTS: web.AppKey[QueueSink] = web.AppKey("results", QueueSink)
RUN: web.AppKey[sc.FlowRun] = web.AppKey("run", sc.FlowRun)
PUMP: web.AppKey[asyncio.Task[None]] = web.AppKey("pump", asyncio.Task)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets", set)
FIRED: web.AppKey[list[dict[str, Any]]] = web.AppKey("fired", list)


def build_flow(source: QueueSource, results: QueueSink, *, window: timedelta, idle: timedelta) -> sc.Dataflow:
    """Per user and window: how many events and their total amount."""
    flow = sc.Dataflow("embedded-clicks")
    (
        flow.source(
            source,
            timestamp=lambda e: e["ts"],
            max_out_of_orderness=timedelta(seconds=1),
            advance_when_idle=idle,  # a quiet stream still fires its windows
            name="events",
        )
        .key_by(lambda e: e["user"])
        .window(sc.TumblingWindows(window))
        .aggregate({"n": sc.agg.count(), "total": sc.agg.sum(lambda e: e["amount"])})
        .sink(results, name="results")
    )
    return flow


def make_app(*, window: timedelta = timedelta(seconds=10), idle: timedelta = timedelta(seconds=2)) -> web.Application:
    """The application; the flow starts with it and drains when it shuts down."""
    app = web.Application()
    app[SOURCE] = QueueSource(maxsize=10_000)
    app[RESULTS] = QueueSink(maxsize=10_000)
    app[SOCKETS] = set()
    app[FIRED] = []

    async def on_startup(app: web.Application) -> None:
        flow = build_flow(app[SOURCE], app[RESULTS], window=window, idle=idle)
        app[RUN] = await flow.start()
        app[PUMP] = asyncio.create_task(broadcast(app))

    async def on_cleanup(app: web.Application) -> None:
        app[SOURCE].close()  # end of stream: the open windows fire
        await app[RUN].stop(timeout=10)
        await app[PUMP]  # ends with the sink's iterator

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/events", post_event)
    app.router.add_get("/results", results_socket)
    app.router.add_get("/totals", totals)
    return app


async def post_event(request: web.Request) -> web.Response:
    """Accept one event (JSON with user, amount, ts); 503 while the flow is behind."""
    try:
        event = await request.json()
        if not isinstance(event, dict) or not {"user", "amount", "ts"} <= event.keys():
            raise ValueError("expected an object with user, amount and ts")
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    try:
        request.app[SOURCE].put_nowait(event)
    except asyncio.QueueFull:
        return web.json_response({"error": "busy, retry later"}, status=503)
    return web.json_response({"accepted": True}, status=202)


async def results_socket(request: web.Request) -> web.WebSocketResponse:
    """Every window result, as JSON, from the moment the socket opens."""
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    request.app[SOCKETS].add(socket)
    try:
        async for message in socket:
            if message.type is WSMsgType.ERROR:
                break
    finally:
        request.app[SOCKETS].discard(socket)
    return socket


async def totals(request: web.Request) -> web.Response:
    """The results fired so far."""
    return web.json_response(request.app[FIRED])


async def broadcast(app: web.Application) -> None:
    """Results as they come, to every open websocket."""
    async for result in app[RESULTS]:
        payload = {
            "user": result.key, "start": result.start, "end": result.end,
            "n": result.value["n"], "total": result.value["total"],
        }
        app[FIRED].append(payload)
        for socket in list(app[SOCKETS]):
            with contextlib.suppress(ConnectionError):
                await socket.send_json(payload)


def main() -> None:
    """Serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
