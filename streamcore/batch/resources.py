"""Resource accounting: tasks ask for ``{"cpu": 2, "memory_gb": 4}`` and wait for room.

Invariants:
1. The sum of the requests of running tasks never exceeds the capacity, resource by resource.
2. A task asking nothing always fits; a task asking more than the whole capacity is
   rejected by validation, so every admitted request fits once the pool is empty.
The default capacity is the machine's (CPU count, total memory), read with psutil.
Design: docs/batch.md#resources
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ResourcePool", "machine_capacity"]

# Requests are floats: tolerate rounding so 0.1 + 0.2 fits in 0.3.
_EPSILON = 1e-9


def machine_capacity() -> dict[str, float]:
    """This machine: ``cpu`` (logical CPUs) and ``memory_gb`` (total memory in GiB)."""
    import psutil  # a Pipeline's first use pays for it, not every import of the package

    return {
        "cpu": float(psutil.cpu_count() or 1),
        "memory_gb": psutil.virtual_memory().total / 2**30,
    }


class ResourcePool:
    """The capacity of one pipeline run and what running tasks hold of it."""

    def __init__(self, capacity: Mapping[str, float]) -> None:
        self.capacity = dict(capacity)
        self._in_use = dict.fromkeys(self.capacity, 0.0)

    def __repr__(self) -> str:
        used = ", ".join(f"{k}={self._in_use[k]:g}/{v:g}" for k, v in self.capacity.items())
        return f"<ResourcePool {used}>"

    def fits(self, request: Mapping[str, float]) -> bool:
        """True when ``request`` can be granted now."""
        for key, amount in request.items():
            if self._in_use.get(key, 0.0) + amount > self.capacity.get(key, 0.0) + _EPSILON:
                return False
        return True

    def acquire(self, request: Mapping[str, float]) -> None:
        """Take ``request``; the caller checked ``fits`` first."""
        for key, amount in request.items():
            self._in_use[key] = self._in_use.get(key, 0.0) + amount

    def release(self, request: Mapping[str, float]) -> None:
        """Give ``request`` back."""
        for key, amount in request.items():
            self._in_use[key] = self._in_use.get(key, 0.0) - amount

    def in_use(self) -> dict[str, float]:
        """What running tasks hold now."""
        return dict(self._in_use)
