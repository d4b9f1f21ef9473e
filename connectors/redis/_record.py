"""``RedisStreamRecord``: one entry read from a Redis stream, and entry-id arithmetic.

Entry ids are ``"<milliseconds>-<sequence>"`` strings everywhere the runtime sees them
(positions in checkpoints, dead letters, errors); ``id_key`` turns one into a tuple that
orders as Redis orders ids.
Design: docs/connectors-redis.md#records
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RedisStreamRecord", "id_key"]


@dataclass(frozen=True, slots=True)
class RedisStreamRecord:
    """An entry of stream ``stream`` with id ``id`` and its ``fields`` decoded per the
    source's ``value_format`` (``str`` values for ``"text"``)."""

    stream: str
    id: str
    fields: dict[Any, Any]

    @property
    def id_ms(self) -> int:
        """The milliseconds part of the entry id: when Redis added it (unless the writer chose the id)."""
        return int(self.id.partition("-")[0])


def id_key(entry_id: str) -> tuple[int, int]:
    """``(milliseconds, sequence)`` of an entry id; ValueError if it is not one."""
    ms, _, seq = entry_id.partition("-")
    key = (int(ms), int(seq) if seq else 0)
    if key[0] < 0 or key[1] < 0:
        raise ValueError(f"{entry_id!r} is not a stream entry id")
    return key
