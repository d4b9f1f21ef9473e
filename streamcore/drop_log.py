"""Log lines for records that leave the flow's main path, at a bounded rate.

Skipped, dead-lettered, late and dropped records are always *counted* (actor statistics,
``streamcore_stage_*`` metrics); they are also *logged*, with where they came from
(stage; file and line, or topic, partition and offset, when the source knows them). A
bad input can hold millions of such records, so per stage and kind the first
``first`` are logged one by one, then one summary line per ``every_s`` says how many
more there were. Lines use ``key=value`` pairs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["DropLog", "shown"]

FIRST = 10
EVERY_S = 60.0
_SHOWN_CHARS = 200


def shown(value: object) -> str:
    """``repr(value)``, cut to a length a log line can carry."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


class DropLog:
    """Logs ``what`` happened to a record of ``stage``: the first few, then summaries."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        first: int = FIRST,
        every_s: float = EVERY_S,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.first = first
        self.every_s = every_s
        self.level = level
        self.clock = clock
        self._seen: dict[tuple[str, str], int] = {}
        self._unlogged: dict[tuple[str, str], int] = {}
        self._summary_at: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return f"<DropLog {self.logger.name} seen={sum(self._seen.values())} unlogged={sum(self._unlogged.values())}>"

    def record(self, what: str, stage: str, detail: str) -> None:
        """One record of ``stage`` was ``what`` (``"skipped"``, ``"late"``...); ``detail``: key=value pairs."""
        key = (what, stage)
        seen = self._seen.get(key, 0) + 1
        self._seen[key] = seen
        if seen <= self.first:
            suffix = (
                f" (further {what} records of this stage are summarised every {self.every_s:g} s)"
                if seen == self.first else ""
            )
            self.logger.log(self.level, "%s record stage=%s %s%s", what, stage, detail, suffix)
            if seen == self.first:
                self._summary_at[key] = self.clock()
            return
        unlogged = self._unlogged.get(key, 0) + 1
        now = self.clock()
        if now - self._summary_at[key] < self.every_s:
            self._unlogged[key] = unlogged
            return
        self._unlogged[key] = 0
        self._summary_at[key] = now
        self.logger.log(
            self.level, "%s records stage=%s count=%d total=%d latest: %s",
            what, stage, unlogged, seen, detail,
        )
