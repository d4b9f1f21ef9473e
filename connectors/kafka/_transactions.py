"""The exactly-once bookkeeping of ``KafkaSink``: sealed groups, checkpoint state, marker.

Terms:
- An *item* is one serialised record: ``(key, value, headers)`` as bytes.
- A *group* is what ``pre_commit(n)`` sealed: the items written since the previous
  seal, with a sequence number ``seq`` that grows by one per group and across restarts.
- The *marker* is the highest ``seq`` whose items are committed to Kafka. Each Kafka
  transaction that publishes groups also commits, in the same transaction, the offset
  ``seq`` of its last group for the consumer group ``marker_group`` on partition 0 of
  the output topic (``send_offsets_to_transaction``). It therefore becomes visible
  exactly when the records do, and ``restore`` reads it to know which groups of a
  checkpoint's state are already published.
- The checkpoint *state* is a write-ahead log: every group not known to be published,
  with its items (base64), so ``restore`` can publish again what an aborted transaction
  lost.
Design: docs/connectors-kafka.md#exactly-once
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATE_VERSION", "Group", "Item", "State", "decode_state", "encode_state"]

STATE_VERSION = 1

Item = tuple["bytes | None", "bytes | None", "list[tuple[str, bytes]] | None"]


@dataclass
class Group:
    """Items sealed by ``pre_commit(checkpoint)``; ``sent`` once in the open transaction."""

    seq: int
    checkpoint: int
    items: list[Item] = field(default_factory=list)
    sent: bool = False


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def encode_state(
    transactional_id: str, marker_group: str, seq: int, groups: list[Group]
) -> dict[str, Any]:
    """The JSON-serialisable checkpoint state (see the module docstring)."""
    return {
        "version": STATE_VERSION,
        "transactional_id": transactional_id,
        "marker_group": marker_group,
        "seq": seq,
        "groups": [
            {
                "seq": g.seq,
                "checkpoint": g.checkpoint,
                "records": [
                    [_b64(k), _b64(v), None if h is None else [[n, _b64(b)] for n, b in h]]
                    for k, v, h in g.items
                ],
            }
            for g in groups
        ],
    }


@dataclass(frozen=True)
class State:
    """A decoded checkpoint state."""

    transactional_id: str
    marker_group: str
    seq: int
    groups: list[Group]


def decode_state(state: Any) -> State:
    """The state ``encode_state`` made; ValueError when it is not one."""
    try:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown version {state.get('version')!r}")
        groups = []
        for g in state["groups"]:
            items: list[Item] = []
            for k, v, h in g["records"]:
                headers = None if h is None else [(str(n), _unb64(b) or b"") for n, b in h]
                items.append((_unb64(k), _unb64(v), headers))
            groups.append(Group(int(g["seq"]), int(g["checkpoint"]), items))
        return State(
            str(state["transactional_id"]), str(state["marker_group"]), int(state["seq"]), groups
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a state this sink returned from pre_commit: {exc}") from exc
