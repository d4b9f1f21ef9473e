"""What the user configures: ``Checkpointing`` (how often, where, how many to keep) and
``RestartPolicy`` (how often a failed flow is run again from its last checkpoint).

Design: docs/checkpoints.md
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from streamcore.duration import to_seconds
from streamcore.state.store import StateStore

__all__ = ["Checkpointing", "RestartPolicy"]


@dataclass(frozen=True, init=False)
class Checkpointing:
    """``flow.run(checkpoint=sc.Checkpointing(store, interval=timedelta(seconds=10)))``.

    ``keep`` complete checkpoints are retained; a checkpoint not complete within
    ``timeout`` fails; more than ``tolerable_failures`` failures in a row fail the flow; every
    ``compact_every``-th checkpoint is a full one (the others write changed keys only).
    """

    store: StateStore
    interval_s: float
    keep: int
    timeout_s: float
    tolerable_failures: int
    compact_every: int

    def __init__(
        self,
        store: StateStore,
        *,
        interval: timedelta | float | str = timedelta(seconds=10),
        keep: int = 3,
        timeout: timedelta | float | str = timedelta(minutes=1),
        tolerable_failures: int = 3,
        compact_every: int = 20,
    ) -> None:
        if not isinstance(store, StateStore):
            raise TypeError(
                f"Checkpointing needs a state store (sc.MemoryStateStore() or "
                f"sc.RedisStateStore(url)), got {type(store).__name__}"
            )
        interval_s = to_seconds(interval, "checkpoint interval")
        timeout_s = to_seconds(timeout, "checkpoint timeout")
        if interval_s <= 0:
            raise ValueError(f"checkpoint interval must be positive, got {interval_s}s")
        if timeout_s <= 0:
            raise ValueError(f"checkpoint timeout must be positive, got {timeout_s}s")
        if keep < 1:
            raise ValueError(f"keep must be at least 1 checkpoint, got {keep}")
        if tolerable_failures < 0:
            raise ValueError(f"tolerable_failures must be >= 0, got {tolerable_failures}")
        if compact_every < 1:
            raise ValueError(f"compact_every must be at least 1, got {compact_every}")
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "interval_s", interval_s)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "timeout_s", timeout_s)
        object.__setattr__(self, "tolerable_failures", tolerable_failures)
        object.__setattr__(self, "compact_every", compact_every)


@dataclass(frozen=True, init=False)
class RestartPolicy:
    """Run a failed flow again from its last complete checkpoint, ``attempts`` times at most.

    The wait before restart ``n`` (1-based) is ``delay`` (fixed) or ``delay * 2 ** (n - 1)``
    (exponential), capped by ``max_delay`` and scaled by ``1 ± jitter``.
    """

    attempts: int
    delay_s: float
    backoff: Literal["fixed", "exponential"]
    max_delay_s: float
    jitter: float

    def __init__(
        self,
        attempts: int = 3,
        *,
        delay: timedelta | float | str = timedelta(seconds=1),
        backoff: Literal["fixed", "exponential"] = "exponential",
        max_delay: timedelta | float | str = timedelta(minutes=1),
        jitter: float = 0.0,
    ) -> None:
        if attempts < 0:
            raise ValueError(f"restart attempts must be >= 0, got {attempts}")
        if backoff not in ("fixed", "exponential"):
            raise ValueError(f"backoff must be 'fixed' or 'exponential', got {backoff!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "delay_s", to_seconds(delay, "restart delay"))
        object.__setattr__(self, "backoff", backoff)
        object.__setattr__(self, "max_delay_s", to_seconds(max_delay, "restart max_delay"))
        object.__setattr__(self, "jitter", jitter)

    def wait_s(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based)."""
        base = self.delay_s if self.backoff == "fixed" else self.delay_s * 2 ** (restart - 1)
        base = min(base, self.max_delay_s)
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return base
