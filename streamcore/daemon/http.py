"""The daemon's HTTP server (aiohttp): metrics, health, readiness and the flow graph.

Routes (docs/operations.md):

- ``GET /metrics``: Prometheus text format (``streamcore.metrics``).
- ``GET /healthz``: 200 while the event loop is responsive (a ticker measures how late
  it runs); 503 once it lags more than ``max_loop_lag_s``.
- ``GET /``: the live page (static/index.html: plain HTML, CSS and JS polling
  ``/api/graph``; nothing is fetched from elsewhere).
- ``GET /readyz``: 200 once the flow runs (restored from its checkpoint, and for a
  scaled-out flow every assigned task started); 503 with the reason before.
- ``GET /api/graph``: JSON of the stages, edges and per-actor statistics.
- ``GET /api/runs``: recent runs of the scheduled pipeline and their tasks.
- ``POST /api/stop``: stop the flow as SIGTERM does; ``POST /api/pipelines/<name>/runs``:
  run the scheduled pipeline now (202 with the run id; 409 while a run is in flight and
  the schedule does not allow overlap). They change something, so they need
  ``Authorization: Bearer <token>`` (401 without one, 403 for a wrong one) and are
  disabled (403) when the daemon has no token.

The server binds 127.0.0.1 unless told otherwise. It holds at most ``max_connections``
connections and closes one whose request head is not in after ``header_timeout_s``
(``streamcore.daemon.connections``); an ``Authorization`` header that is not ASCII is a 400.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamcore.batch.history import RunHistory
from streamcore.daemon.connections import ConnectionGuard
from streamcore.metrics import metrics_registry

if TYPE_CHECKING:
    from streamcore.dataflow.handle import FlowRun

__all__ = ["DaemonServer", "ScheduledPipeline", "graph"]

log = logging.getLogger("streamcore.daemon")

_TICK_S = 0.25
_MAX_CONNECTIONS = 256
_HEADER_TIMEOUT_S = 10.0
_LINGER_S = 2.0
_MAX_BODY_BYTES = 64 * 1024
_PAGE = Path(__file__).with_name("static") / "index.html"


@dataclass
class ScheduledPipeline:
    """A pipeline the daemon runs on a schedule: its recent runs, and how to ask for one now."""

    name: str
    history: RunHistory
    triggers: asyncio.Queue[asyncio.Future[str]] = field(default_factory=asyncio.Queue)


class DaemonServer:
    """Serves one flow's (or a scheduled pipeline's) metrics and state; ``start()`` then
    ``stop()``."""

    def __init__(
        self,
        run: FlowRun | None,
        *,
        pipeline: ScheduledPipeline | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: str | None = None,
        on_stop: Callable[[], None] | None = None,
        max_loop_lag_s: float = 5.0,
        max_connections: int = _MAX_CONNECTIONS,
        header_timeout_s: float = _HEADER_TIMEOUT_S,
    ) -> None:
        self.run = run
        self.flow = None if run is None else run.flow
        self.pipeline = pipeline
        self.host = host
        self.port = port
        self.api_token = api_token
        self.on_stop = on_stop
        self.max_loop_lag_s = max_loop_lag_s
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.guard: ConnectionGuard | None = None
        self._listener: asyncio.Server | None = None
        self.registry = metrics_registry(run)
        self.loop_lag_s = 0.0
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        what = self.flow.name if self.flow is not None else getattr(self.pipeline, "name", None)
        return f"<DaemonServer {what!r} http://{self.host}:{self.port}>"

    async def start(self) -> None:
        """Listen; ``port`` is the bound port afterwards (useful with port 0)."""
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_get("/", self._page)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/graph", self._graph)
        app.router.add_post("/api/stop", self._stop)
        app.router.add_get("/api/runs", self._runs)
        app.router.add_post("/api/pipelines/{name}/runs", self._trigger)
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.header_timeout_s, lingering_time=_LINGER_S
        )
        guard = ConnectionGuard(
            lambda: _protocol(runner), max_connections=self.max_connections, header_timeout_s=self.header_timeout_s
        )
        app.middlewares.append(guard.middleware)
        await runner.setup()
        # Our own listening socket, so that every connection passes the guard first.
        try:
            listener = await asyncio.get_running_loop().create_server(
                guard, self.host, self.port, reuse_address=True
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self.guard, self._listener = runner, guard, listener
        if listener.sockets:
            self.port = listener.sockets[0].getsockname()[1]
        self._ticker = asyncio.ensure_future(self._tick())
        log.info("serving metrics and health url=http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()  # closes the open connections too
            self._runner = None

    async def _tick(self) -> None:
        """How late the loop runs a timer: the health signal."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + _TICK_S
            # Measuring the loop's lateness is the point of this sleep.
            await asyncio.sleep(_TICK_S)
            self.loop_lag_s = max(0.0, loop.time() - due)

    # -- handlers ------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_PAGE.read_bytes(), content_type="text/html", charset="utf-8")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = self.loop_lag_s <= self.max_loop_lag_s
        return web.json_response(
            {"status": "ok" if ok else "loop lagging", "loop_lag_s": round(self.loop_lag_s, 4)},
            status=200 if ok else 503,
        )

    async def _readyz(self, request: web.Request) -> web.Response:
        run = self.run
        if run is None:
            return web.json_response({"status": "ready"})  # a schedule is ready once it runs
        why = None
        if run.stop_requested is not None or run.done:
            why = f"the flow is {run.state.value}"
        elif run.attempt is None:
            why = "the flow has not started"
        elif not run.ready:
            why = f"the flow is {run.state.value} (restoring its checkpoint, joining its group)"
        return web.json_response(
            {"status": "ready" if why is None else why}, status=200 if why is None else 503
        )

    async def _graph(self, request: web.Request) -> web.Response:
        if self.run is None:
            return web.json_response({"error": "this daemon runs a pipeline, not a dataflow"}, status=404)
        return web.json_response(graph(self.run), dumps=_dumps)

    async def _runs(self, request: web.Request) -> web.Response:
        runs = [] if self.pipeline is None else self.pipeline.history.as_json()
        return web.json_response({"runs": runs}, dumps=_dumps)

    async def _trigger(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        if self.pipeline is None or self.pipeline.name != name:
            return web.json_response({"error": f"no scheduled pipeline {name!r} here"}, status=404)
        asked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await self.pipeline.triggers.put(asked)
        try:
            async with asyncio.timeout(10):
                run_id = await asyncio.shield(asked)
        except RuntimeError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except TimeoutError:
            asked.cancel()
            return web.json_response({"error": "the scheduler did not answer"}, status=503)
        return web.json_response({"run_id": run_id}, status=202)

    async def _stop(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if self.on_stop is None or self.flow is None:
            return web.json_response({"error": "this daemon cannot be stopped over HTTP"}, status=404)
        log.info("stop requested over HTTP flow=%s", self.flow.name)
        self.on_stop()
        return web.json_response({"status": "stopping"}, status=202)

    def _refused(self, request: web.Request) -> web.Response | None:
        """401 without a bearer token, 403 for a wrong one or when none is configured."""
        header = request.headers.get("Authorization", "")
        if not header.isascii():
            # Bytes that are not ASCII arrive as undecodable surrogates; a token never has them.
            return web.json_response(
                {"error": "the Authorization header must be ASCII: send Authorization: Bearer <token>"},
                status=400,
            )
        if not header.startswith("Bearer "):
            return web.json_response(
                {"error": "send Authorization: Bearer <token>"}, status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.api_token is None:
            return web.json_response(
                {"error": "endpoints that change anything are disabled: start with --api-token"}, status=403
            )
        if not hmac.compare_digest(header[len("Bearer "):].encode(), self.api_token.encode()):
            return web.json_response({"error": "wrong token"}, status=403)
        return None


def _protocol(runner: web.AppRunner) -> asyncio.Protocol:
    """aiohttp's protocol for one new connection."""
    server = runner.server
    assert server is not None, "the runner is set up before the socket listens"
    return server()


def graph(run: FlowRun) -> dict[str, Any]:
    """The stages and edges of the run's flow, with each actor's statistics (JSON-ready)."""
    flow = run.flow
    stages = [
        {"name": n.name, "kind": getattr(n, "op", None) or n.kind, "parallelism": n.parallelism}
        for n in flow.nodes
    ]
    edges = [
        {"from": up.name, "to": n.name, "port": port} for n in flow.nodes for up, port in n.inputs
    ]
    out: dict[str, Any] = {"flow": flow.name, "stages": stages, "edges": edges, "time_ms": time.time() * 1000}
    out["state"] = run.state.value
    out["restarts"] = run.restarts
    stats = run.statistics()
    if stats is None:
        out.update(actors=[], mailboxes={}, ready=False, checkpoints=None)
        return out
    actors = []
    for a in stats.actors:
        total = a.busy_s + a.idle_s + a.backpressured_s
        actors.append(
            {
                "name": a.name,
                "stages": list(a.stages),
                "records_in": a.records_in,
                "records_out": a.records_out,
                "watermark_ms": a.watermark_ms if math.isfinite(a.watermark_ms) else None,
                "busy": a.busy_s / total if total else 0.0,
                "idle": a.idle_s / total if total else 0.0,
                "backpressured": a.backpressured_s / total if total else 0.0,
                "dead_letters": a.dead_letters,
                "finished": a.finished,
            }
        )
    out["actors"] = actors
    out["mailboxes"] = {
        name: {"size": m.size, "capacity": m.capacity} for name, m in stats.mailboxes.items()
    }
    out["ready"] = run.ready
    out["checkpoints"] = _checkpoints(run)
    return out


def _checkpoints(run: FlowRun) -> dict[str, Any] | None:
    """Checkpoint counters, summed over partition tasks (last id: the newest)."""
    stats = [r.coordinator.statistics() for r in run.runtimes() if r.coordinator is not None]
    if not stats:
        return None
    last = max((s for s in stats if s.last_id is not None), key=lambda s: s.last_id or 0, default=None)
    return {
        "completed": sum(s.completed for s in stats),
        "failed": sum(s.failed for s in stats),
        "last_id": None if last is None else last.last_id,
        "last_duration_s": None if last is None else last.last_duration_s,
        "last_bytes": None if last is None else last.last_bytes,
        "restored_from": max((s.restored_from for s in stats if s.restored_from is not None), default=None),
    }


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
