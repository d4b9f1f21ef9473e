"""``streamcore run --workers N``: N processes of one flow on this machine, supervised.

A flow whose sources split their partitions over a group (``KafkaSource(group_id=...)``,
docs/scale-out.md) scales out over processes; this runs N of them with one command
instead of N service units, so a job can use several cores. The parent runs no flow:

1. It loads the target and checks that it is a Dataflow whose every source has a
   partition group: N copies of any other flow would each read all of the input.
2. It starts N workers, each ``python -m streamcore run`` with the same arguments but
   ``--workers 1`` and a metrics port of its own on 127.0.0.1 (picked free by the
   parent), and ``STREAMCORE_WORKER=<i>`` in its environment.
3. A worker that exits with a failure is started again after a backoff (0.5 s, doubling
   up to 30 s; back to 0.5 s once a worker ran for a minute); one that exits 0 (its
   sources ended) stays down; one that exits 2 (usage: it will not get better) stops
   the others.
4. SIGTERM, SIGINT and SIGHUP are forwarded to every worker (a second SIGTERM too, which
   makes them exit at once); the parent waits for all of them.
5. The exit status is the worst of the workers' last ones (the largest; a worker killed
   by signal ``s`` counts as ``128 + s``). A stop during a restart's backoff counts 0, and
   so does a worker that our forwarded SIGTERM/SIGINT killed before it installed its
   handlers (it was just started and ran nothing).

With ``--metrics-port`` the parent serves ``/metrics``: every worker's samples with a
``worker="<i>"`` label, each family's HELP and TYPE once, and ``streamcore_worker_up``;
``/healthz`` and ``/readyz`` answer 200 when every worker's does.
Design: docs/performance.md, "Several workers"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from streamcore.daemon.exit_codes import EXIT_USAGE
from streamcore.daemon.signals import exit_status_for
from streamcore.daemon.target import load_target, resolve_target
from streamcore.dataflow.flow import Dataflow
from streamcore.errors import UsageError
from streamcore.graph.nodes import SourceNode
from streamcore.runtime.loop import run_coroutine

__all__ = ["merge_metrics", "run_workers", "worker_argv", "worst_status"]

log = logging.getLogger("streamcore.daemon")

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_HEALTHY_AFTER_S = 60.0
_SCRAPE_TIMEOUT_S = 5.0
# Options the parent takes for itself; a worker gets its own values instead.
_PARENT_OPTIONS = ("--workers", "--metrics-port", "--metrics-host")
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def worker_argv(argv: Sequence[str], metrics_port: int) -> list[str]:
    """The ``streamcore`` arguments of one worker: ``argv`` without the parent's options
    (also abbreviated, as argparse accepts them), plus ``--workers 1`` and its own
    metrics port. Explicit flags win over ``STREAMCORE_*`` variables and config files,
    so a worker never starts workers of its own."""
    out: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
            continue
        name, eq, _ = token.partition("=")
        if len(name) > 2 and any(option.startswith(name) for option in _PARENT_OPTIONS):
            skip_value = not eq
            continue
        out.append(token)
    return [
        *out,
        "--workers",
        "1",
        "--metrics-port",
        str(metrics_port),
        "--metrics-host",
        "127.0.0.1",
    ]


def worst_status(statuses: Sequence[int]) -> int:
    """The exit status of the whole: the largest (0 when there is none)."""
    return max((s if s >= 0 else exit_status_for(-s) for s in statuses), default=0)


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def merge_metrics(texts: Mapping[str, str]) -> str:
    """Prometheus text from several workers' (worker label -> text) as one exposition:
    samples get a ``worker`` label, and each family keeps one HELP and one TYPE line with
    every worker's samples after them (the format wants a family's samples together)."""
    families: dict[str, dict[str, Any]] = {}
    for worker, text in texts.items():
        family: str | None = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    entry = families.setdefault(family, {"HELP": None, "TYPE": None, "samples": []})
                    entry[parts[1]] = entry[parts[1]] or line
                continue
            m = _NAME.match(line)
            if m is None:
                continue
            name, rest = m.group(), line[m.end() :]
            label = f'worker="{worker}"'
            if rest.startswith("{}"):
                rest = rest[2:]
            labelled = (
                f"{name}{{{label},{rest[1:]}" if rest.startswith("{") else f"{name}{{{label}}}{rest}"
            )
            key = family if family is not None and name.startswith(family) else name
            entry = families.setdefault(key, {"HELP": None, "TYPE": None, "samples": []})
            entry["samples"].append(labelled)
    lines: list[str] = []
    for entry in families.values():
        lines += [entry[k] for k in ("HELP", "TYPE") if entry[k]]
        lines += entry["samples"]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    """A port nothing listens on now (the worker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def check_group_sources(flow: Dataflow, spec: str) -> None:
    """Raise ``UsageError`` unless every source of ``flow`` splits its partitions over a group."""
    sources = [n for n in flow.nodes if isinstance(n, SourceNode)]
    alone = [n.name for n in sources if n.source.partition_group() is None]
    if not sources or alone:
        raise UsageError(
            f"--workers runs several processes of {spec!r}, but source(s) "
            f"{', '.join(map(repr, alone)) or '(none)'} do not split their partitions over a "
            "group, so every worker would read all of the input; give the source a group "
            "(e.g. KafkaSource(..., group_id=...)) or run one process"
        )


class _Worker:
    """One worker process and what the parent knows of it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class WorkerSupervisor:
    """Starts, restarts and stops the workers, and serves their metrics in one place."""

    def __init__(self, n: int, argv: Sequence[str], metrics_host: str, metrics_port: int | None) -> None:
        self.workers = [_Worker(i) for i in range(n)]
        self.argv = list(argv)
        self.metrics_host = metrics_host
        self.metrics_port = metrics_port
        self.stopping = asyncio.Event()
        self._runner: Any = None

    async def run(self) -> int:
        """Supervise until every worker is down for good; the worst exit status."""
        loop = asyncio.get_running_loop()
        for sig in _FORWARDED:
            loop.add_signal_handler(sig, self._forward, sig)
        try:
            if self.metrics_port is not None:
                await self._serve()
            statuses = await asyncio.gather(*(self._keep(w) for w in self.workers))
        finally:
            for sig in _FORWARDED:
                loop.remove_signal_handler(sig)
            for w in self.workers:  # only on an error of the parent's own
                if w.alive and w.proc is not None:
                    w.proc.kill()
                    await w.proc.wait()
            if self._runner is not None:
                await self._runner.cleanup()
        status = worst_status(statuses)
        log.info("workers done statuses=%s exit_status=%d", list(statuses), status)
        return status

    def _forward(self, sig: signal.Signals) -> None:
        if sig != signal.SIGHUP:
            self.stopping.set()
        log.info("forwarding %s to the workers", sig.name)
        for w in self.workers:
            if w.alive and w.proc is not None:
                w.proc.send_signal(sig)

    async def _keep(self, w: _Worker) -> int:
        """Run worker ``w`` until it is down for good (step 3); its last exit status."""
        backoff = _FIRST_BACKOFF_S
        while True:
            w.port = _free_port()
            w.started = time.monotonic()
            w.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamcore",
                *worker_argv(self.argv, w.port),
                env={**os.environ, "STREAMCORE_WORKER": str(w.index)},
            )
            log.info(
                "worker started worker=%d pid=%d restarts=%d metrics=http://127.0.0.1:%d",
                w.index, w.proc.pid, w.restarts, w.port,
            )
            if self.stopping.is_set():  # a signal came while it was being started
                w.proc.send_signal(signal.SIGTERM)
            code = await w.proc.wait()
            status = worst_status([code])
            log.info("worker exited worker=%d pid=%d status=%d", w.index, w.proc.pid, status)
            if self.stopping.is_set() and code in (-signal.SIGTERM, -signal.SIGINT):
                # Our own forwarded signal reached it before its handlers were in place
                # (it was just started): it ran nothing, so it stopped cleanly.
                return 0
            if status == 0 or self.stopping.is_set():
                return status
            if status == EXIT_USAGE:
                self._forward(signal.SIGTERM)
                return status
            if time.monotonic() - w.started >= _HEALTHY_AFTER_S:
                backoff = _FIRST_BACKOFF_S
            log.warning(
                "worker failed; restarting worker=%d status=%d in_s=%.1f", w.index, status, backoff
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self.stopping.wait()
            if self.stopping.is_set():
                return 0  # stopped while waiting to restart: nothing was left running
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
            w.restarts += 1

    # -- one metrics endpoint for all workers --------------------------------------------

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.metrics_host, self.metrics_port).start()
        log.info("serving the workers' metrics url=http://%s:%d", self.metrics_host, self.metrics_port)

    async def _get(self, w: _Worker, path: str) -> tuple[int, str]:
        """Status and body of a worker's endpoint; (0, "") when it does not answer."""
        import aiohttp

        if not w.alive:
            return 0, ""
        try:
            timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT_S)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"http://127.0.0.1:{w.port}{path}") as resp,
            ):
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return 0, ""

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        answers = await asyncio.gather(*(self._get(w, "/metrics") for w in self.workers))
        texts = {str(w.index): body for w, (code, body) in zip(self.workers, answers, strict=True) if code == 200}
        up = [
            "# HELP streamcore_worker_up Whether the worker answered this scrape (1) or not (0).",
            "# TYPE streamcore_worker_up gauge",
            *(f'streamcore_worker_up{{worker="{w.index}"}} {int(str(w.index) in texts)}' for w in self.workers),
        ]
        body = "\n".join(up) + "\n" + merge_metrics(texts)
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def _health(self, request: Any) -> Any:
        from aiohttp import web

        answers = await asyncio.gather(*(self._get(w, request.path) for w in self.workers))
        lines = [f"worker {w.index}: {code or 'down'}" for w, (code, _) in zip(self.workers, answers, strict=True)]
        ok = all(code == 200 for code, _ in answers)
        return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 503)


def run_workers(argv: Sequence[str], workers: int, spec: str, metrics_host: str, metrics_port: int | None) -> int:
    """Check the target (step 1), then run and supervise ``workers`` processes of it."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    target = run_coroutine(resolve_target(load_target(spec), spec))
    if not isinstance(target, Dataflow):
        raise UsageError(f"--workers runs Dataflows; {spec!r} is a {type(target).__name__}")
    check_group_sources(target, spec)
    supervisor = WorkerSupervisor(workers, argv, metrics_host, metrics_port)
    return run_coroutine(supervisor.run())
