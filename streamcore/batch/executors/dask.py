"""The Dask executor: tries are submitted to a ``distributed`` cluster.

The cluster is the one at ``dask_address``, or a ``LocalCluster`` created for the run
(one worker, threads, unless ``dask_cluster_options`` say otherwise) and closed after
it. Functions and values travel with cloudpickle, so lambdas work here. On a timeout
the Dask future is cancelled and the result discarded; Dask cannot interrupt a function
that is already running on a worker, so it runs on there until it returns.
Design: docs/batch.md#dask-executor
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from streamcore.batch.executors.calling import call_to_value
from streamcore.batch.failures import TaskTimeoutError

__all__ = ["DaskExecutor"]


class DaskExecutor:
    """A Dask client for one pipeline run, connected on first use."""

    def __init__(self, pipeline: str, address: str | None, cluster_options: Mapping[str, Any] | None) -> None:
        self._pipeline = pipeline
        self._address = address
        self._cluster_options = dict(cluster_options or {})
        self._client: Any = None
        self._cluster: Any = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> Any:
        async with self._lock:
            if self._client is not None:
                return self._client
            from distributed import Client, LocalCluster

            address: Any = self._address
            if address is None:
                options: dict[str, Any] = {
                    "n_workers": 1,
                    "processes": False,
                    "threads_per_worker": max(2, os.cpu_count() or 1),
                    # No dashboard, and its HTTP server on a free port: several runs
                    # (or a user's own cluster on :8787) must not collide.
                    "dashboard_address": ":0",
                    "scheduler_kwargs": {"dashboard": False},
                }
                options.update(self._cluster_options)
                self._cluster = await LocalCluster(asynchronous=True, **options)
                address = self._cluster
            self._client = await Client(address, asynchronous=True)
            return self._client

    async def run(
        self, task: str, fn: Callable[..., Any], args: list[Any], timeout_s: float | None
    ) -> Any:
        """The value of ``fn(*args)`` computed on the cluster."""
        client = await self._connect()
        key = f"{self._pipeline}-{task}-{uuid.uuid4().hex}"
        future = client.submit(call_to_value, fn, tuple(args), key=key, pure=False)
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                return await future
        except TimeoutError:
            if not scope.expired():
                raise
            await _cancel(future)
            raise TaskTimeoutError(
                task, timeout_s or 0.0,
                "its Dask future was cancelled (a function already running on a worker runs on)",
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(_cancel(future))
            raise

    async def close(self) -> None:
        """Disconnect, and close the cluster if this run created it."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            await client.close()
        if cluster is not None:
            await cluster.close()


async def _cancel(future: Any) -> None:
    outcome = future.cancel()
    if inspect.isawaitable(outcome):
        await outcome
