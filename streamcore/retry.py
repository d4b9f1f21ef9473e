"""``Retry``: how often a failed task is tried again, how long to wait, and for which errors.

Invariants:
1. ``attempts`` counts every try, the first included; ``Retry(attempts=1)`` never retries.
2. ``skip_on`` wins over ``retry_on``: a matching error marks the task skipped at once.
3. The wait before try ``n + 1`` is ``delay`` (fixed), ``delay * n`` (linear) or
   ``delay * 2 ** (n - 1)`` (exponential), then scaled by a random factor in
   ``[1 - jitter, 1 + jitter]``, then capped by ``max_delay``.
Design: docs/batch.md#retries
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from streamcore.duration import to_seconds

__all__ = ["NO_RETRY", "Backoff", "Retry", "RetryDecision"]

Backoff = Literal["fixed", "linear", "exponential"]
RetryDecision = Literal["retry", "skip", "fail"]

_BACKOFFS = ("fixed", "linear", "exponential")


def _exception_types(value: Any, what: str) -> tuple[type[BaseException], ...]:
    types = (value,) if isinstance(value, type) else tuple(value)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"{what} must hold exception classes, got {t!r}")
    return types


@dataclass(frozen=True, init=False)
class Retry:
    """The retry policy of a task: ``Retry(3, backoff="exponential", delay=timedelta(seconds=1))``."""

    attempts: int
    backoff: Backoff
    delay_s: float
    max_delay_s: float | None
    jitter: float
    retry_on: tuple[type[BaseException], ...]
    skip_on: tuple[type[BaseException], ...]
    _rng: random.Random = field(compare=False, repr=False)

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: Backoff = "fixed",
        delay: timedelta | float | str = 1.0,
        max_delay: timedelta | float | str | None = None,
        jitter: float = 0.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        skip_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        seed: int | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"Retry attempts counts every try and must be at least 1, got {attempts!r}")
        if backoff not in _BACKOFFS:
            raise ValueError(f"Retry backoff must be one of {', '.join(_BACKOFFS)}; got {backoff!r}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"Retry jitter is a fraction of the delay in [0, 1], got {jitter!r}")
        set_ = object.__setattr__
        set_(self, "attempts", attempts)
        set_(self, "backoff", backoff)
        set_(self, "delay_s", to_seconds(delay, "Retry delay"))
        set_(self, "max_delay_s", None if max_delay is None else to_seconds(max_delay, "Retry max_delay"))
        set_(self, "jitter", float(jitter))
        set_(self, "retry_on", _exception_types(retry_on, "Retry retry_on"))
        set_(self, "skip_on", _exception_types(skip_on, "Retry skip_on"))
        set_(self, "_rng", random.Random(seed))

    def delay_after_s(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based) before the next."""
        if self.backoff == "fixed":
            delay_s = self.delay_s
        elif self.backoff == "linear":
            delay_s = self.delay_s * attempt
        else:
            delay_s = self.delay_s * 2.0 ** (attempt - 1)
        if self.jitter:
            delay_s *= 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        if self.max_delay_s is not None:
            delay_s = min(delay_s, self.max_delay_s)
        return max(delay_s, 0.0)

    def decide(self, error: BaseException, attempt: int) -> RetryDecision:
        """What to do after try number ``attempt`` raised ``error``."""
        if self.skip_on and isinstance(error, self.skip_on):
            return "skip"
        if attempt < self.attempts and isinstance(error, self.retry_on):
            return "retry"
        return "fail"


NO_RETRY = Retry(1)
"""The default policy: one try, errors fail the task."""
