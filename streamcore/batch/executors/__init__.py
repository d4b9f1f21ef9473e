"""Where task code runs: the event loop, threads, processes, or a Dask cluster.

The async executor is the run's own event loop (``async`` functions are awaited, plain
functions are called inline); it lives in ``runner``. The others are created on first
use by ``RunExecutors`` and closed when the run ends.
Design: docs/batch.md#executors
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamcore.batch.executors.dask import DaskExecutor
from streamcore.batch.executors.processes import ProcessExecutor
from streamcore.batch.executors.threads import run_in_thread

__all__ = ["DaskExecutor", "ProcessExecutor", "RunExecutors", "run_in_thread"]


class RunExecutors:
    """The process pool and Dask client of one run, created lazily."""

    def __init__(
        self,
        pipeline: str,
        *,
        process_workers: int,
        dask_address: str | None,
        dask_cluster_options: Mapping[str, Any] | None,
    ) -> None:
        self._pipeline = pipeline
        self._process_workers = process_workers
        self._dask_address = dask_address
        self._dask_cluster_options = dask_cluster_options
        self._process: ProcessExecutor | None = None
        self._dask: DaskExecutor | None = None

    @property
    def process(self) -> ProcessExecutor:
        """The process executor (created on first use)."""
        if self._process is None:
            self._process = ProcessExecutor(self._process_workers)
        return self._process

    @property
    def dask(self) -> DaskExecutor:
        """The Dask executor (connects on first use)."""
        if self._dask is None:
            self._dask = DaskExecutor(self._pipeline, self._dask_address, self._dask_cluster_options)
        return self._dask

    async def close(self, wait: bool = True) -> None:
        """Release pools and clusters; ``wait=False`` (a cancelled run) skips waiting for pool work."""
        process, self._process = self._process, None
        dask, self._dask = self._dask, None
        try:
            if process is not None:
                await process.close(wait)
        finally:
            if dask is not None:
                await dask.close()
