"""SIGINT/SIGTERM for the command line: the first asks for a graceful stop, a second exits now.

Protocol:
1. ``install()`` registers both signals on the running loop (so handlers run on the loop
   thread, between callbacks, where touching the runtime is safe).
2. The first signal records which one arrived and calls ``on_first(signum)`` once; what
   "graceful" means belongs to the caller (stop sources and drain, stop a schedule...).
3. Any later signal writes one line to stderr, flushes stdio and ends the process with
   ``os._exit(128 + signum)`` (130 for SIGINT, 143 for SIGTERM): no drain, no cleanup,
   as the user asked twice. Recovery then starts from the last checkpoint.
4. ``remove()`` restores the default handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["SIGNALS", "GracefulSignals", "exit_status_for"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status_for(signum: int) -> int:
    """The shell's status for a process ended by ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class GracefulSignals:
    """Handles SIGINT and SIGTERM on the running loop (see the module docstring)."""

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self._on_first = on_first
        self.received: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Step 1: register the handlers on the running loop."""
        self._loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            self._loop.add_signal_handler(signum, self._handle, signum)

    def remove(self) -> None:
        """Step 4: restore the default handlers."""
        if self._loop is None:
            return
        for signum in SIGNALS:
            self._loop.remove_signal_handler(signum)
        self._loop = None

    def _handle(self, signum: int) -> None:
        if self.received is None:
            # Step 2.
            self.received = signum
            self._on_first(signum)
            return
        # Step 3.
        name = signal.Signals(signum).name
        print(f"{name} received again: exiting at once, without draining", file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe must not block the exit
                stream.flush()
        os._exit(exit_status_for(signum))
