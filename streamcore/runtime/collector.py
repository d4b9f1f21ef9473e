"""The cyclic garbage collector's young-generation threshold while flows run.

A batch keeps about a thousand fresh containers alive at once (decoded records, new
accumulators, result rows). With CPython's default threshold of 700 the collector then
runs once or twice per batch and walks records that are still in use, and every tenth
of those runs walks the older generation too (window state included): 1,984 young and
16 full collections for W2's 1,000,000 events, about a fifth of its CPU time. While any
flow runs, the young threshold is raised to ``DEFAULT_YOUNG_THRESHOLD`` (137 young
collections for the same run); reference cycles are still collected, only less often.

Rules:
1. Raised only if the current threshold is lower: a larger one set by the application
   is kept.
2. Put back when the last running flow of the process ends (runs may overlap, in one
   loop or in several threads), and only if nothing else changed it meanwhile.
3. ``STREAMCORE_GC_THRESHOLD=N`` chooses the threshold; ``0`` leaves the collector alone.

Design: docs/performance.md#the-garbage-collector
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from streamcore.errors import ConfigurationError

__all__ = ["DEFAULT_YOUNG_THRESHOLD", "ENVIRONMENT_VARIABLE", "young_threshold_raised"]

DEFAULT_YOUNG_THRESHOLD = 10_000
"""Young-generation threshold while flows run (CPython's default is 700)."""

ENVIRONMENT_VARIABLE = "STREAMCORE_GC_THRESHOLD"

_lock = threading.Lock()
_running = 0
# (threshold before the first run, threshold set by it); None when it was left alone.
_changed: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None


def _wanted() -> int:
    raw = os.environ.get(ENVIRONMENT_VARIABLE)
    if raw is None or raw.strip() == "":
        return DEFAULT_YOUNG_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(
            f"{ENVIRONMENT_VARIABLE}={raw!r}: expected a whole number of allocations "
            f"(0 leaves the garbage collector alone; default {DEFAULT_YOUNG_THRESHOLD})"
        )
    return value


def _enter() -> None:
    global _running, _changed
    wanted = _wanted()
    with _lock:
        _running += 1
        if _running > 1:
            return
        before = gc.get_threshold()
        if wanted and before[0] < wanted:
            after = (wanted, before[1], before[2])
            gc.set_threshold(*after)
            _changed = (before, after)
        else:
            _changed = None


def _leave() -> None:
    global _running, _changed
    with _lock:
        _running -= 1
        if _running > 0 or _changed is None:
            return
        before, after = _changed
        _changed = None
        if gc.get_threshold() == after:
            gc.set_threshold(*before)


@contextmanager
def young_threshold_raised() -> Iterator[None]:
    """Raise the young-generation threshold for the duration of a run (see the rules above)."""
    _enter()
    try:
        yield
    finally:
        _leave()
