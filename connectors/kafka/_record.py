"""``KafkaRecord``: one consumed Kafka record, its value already decoded.

Partitions are named ``"<topic>:<partition>"`` everywhere the runtime sees them
(``position()``, ``record_partitions()``, ``assigned()``, ``caught_up()``): a plain string
is JSON-serialisable and Kafka topic names cannot contain a colon.
Design: docs/connectors-kafka.md#records
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["KafkaRecord", "parse_partition_id", "partition_id"]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A record read from Kafka.

    ``key`` and ``value`` are decoded per the source's ``key_format`` and
    ``value_format`` (``None`` stays ``None``: a tombstone or a record without a key).
    ``timestamp_ms`` is the record's Kafka timestamp (create or log-append time, per the
    topic's ``message.timestamp.type``). ``headers`` is a tuple of ``(name, bytes)``.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: Any
    value: Any
    headers: tuple[tuple[str, bytes], ...] = ()


def partition_id(topic: str, partition: int) -> str:
    """``"<topic>:<partition>"``."""
    return f"{topic}:{partition}"


def parse_partition_id(pid: str) -> tuple[str, int]:
    """``("<topic>", partition)`` from ``"<topic>:<partition>"``; ValueError if malformed."""
    topic, sep, number = pid.rpartition(":")
    if not sep or not topic:
        raise ValueError(f"{pid!r} is not '<topic>:<partition>'")
    partition = int(number)
    if partition < 0:
        raise ValueError(f"{pid!r} names a negative partition")
    return topic, partition
