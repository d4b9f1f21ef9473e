"""The exactly-once bookkeeping of ``KafkaSink``: journals, sealed groups, checkpoint state.

Terms:
- An *item* is one serialised record: ``(key, value, headers)`` as bytes.
- A *journal* is items appended, as they are written, to one byte string (framing
  below): a record held costs its bytes plus 12, not a tuple and two ``bytes`` objects.
  It also drops the oversized buffers ``orjson.dumps`` returns its output in (about
  4 KiB each, whatever the value's size), which made per-record tuples cost ~4 KiB.
- A *group* is what ``pre_commit(n)`` sealed: the journal of the items written since
  the previous seal, with a sequence number ``seq`` that grows by one per group and
  across restarts.
- The *marker* is the highest ``seq`` whose items are committed to Kafka. Each Kafka
  transaction that publishes groups also commits, in the same transaction, the offset
  ``seq`` of its last group for the consumer group ``marker_group`` on partition 0 of
  the output topic (``send_offsets_to_transaction``). It therefore becomes visible
  exactly when the records do, and ``restore`` reads it to know which groups of a
  checkpoint's state are already published.
- The checkpoint *state* is a write-ahead log: every group not known to be published,
  with its journal (base64, one string per group), so ``restore`` can publish again
  what an aborted transaction lost.

Journal framing, per item: three signed 32-bit big-endian ints (key length, value
length, header count; -1 for None), the key and value bytes, then per header two ints
(name length, value length), the UTF-8 name and the value bytes.
Design: docs/connectors-kafka.md#the-journal
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "STATE_VERSION",
    "Group",
    "Item",
    "Journal",
    "State",
    "decode_state",
    "encode_state",
    "read_journal",
]

STATE_VERSION = 2

Item = tuple["bytes | None", "bytes | None", "list[tuple[str, bytes]] | None"]

_HEAD = struct.Struct(">iii")
_PAIR = struct.Struct(">ii")


class Journal:
    """Items appended to one growing ``bytearray`` (the framing in the module docstring)."""

    __slots__ = ("count", "data")

    def __init__(self) -> None:
        self.data = bytearray()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, items: list[Item]) -> None:
        """Append ``items`` in order."""
        data, head = self.data, _HEAD.pack
        for key, value, headers in items:
            if headers is None:
                data += head(
                    -1 if key is None else len(key), -1 if value is None else len(value), -1
                )
                if key is not None:
                    data += key
                if value is not None:
                    data += value
                continue
            data += head(
                -1 if key is None else len(key), -1 if value is None else len(value), len(headers)
            )
            if key is not None:
                data += key
            if value is not None:
                data += value
            for name, raw in headers:
                encoded = name.encode("utf-8")
                data += _PAIR.pack(len(encoded), len(raw))
                data += encoded
                data += raw
        self.count += len(items)

    def seal(self) -> bytes:
        """The journal as immutable bytes; this journal starts empty again."""
        sealed = bytes(self.data)
        self.data = bytearray()
        self.count = 0
        return sealed


def read_journal(journal: bytes) -> list[Item]:
    """The items of a sealed journal, in order; ValueError when it is truncated."""
    items: list[Item] = []
    view = memoryview(journal)
    unpack, pair = _HEAD.unpack_from, _PAIR.unpack_from
    at, end = 0, len(journal)
    try:
        while at < end:
            n_key, n_value, n_headers = unpack(view, at)
            at += 12
            key = None if n_key < 0 else bytes(view[at : at + n_key])
            at += max(n_key, 0)
            value = None if n_value < 0 else bytes(view[at : at + n_value])
            at += max(n_value, 0)
            headers: list[tuple[str, bytes]] | None = None
            if n_headers >= 0:
                headers = []
                for _ in range(n_headers):
                    n_name, n_raw = pair(view, at)
                    at += 8
                    name = str(view[at : at + n_name], "utf-8")
                    at += n_name
                    headers.append((name, bytes(view[at : at + n_raw])))
                    at += n_raw
            if at > end:
                raise ValueError("the journal is truncated")
            items.append((key, value, headers))
    except struct.error as exc:
        raise ValueError(f"the journal is truncated: {exc}") from exc
    return items


@dataclass
class Group:
    """Items sealed by ``pre_commit(checkpoint)``; ``sent`` once in the open transaction."""

    seq: int
    checkpoint: int
    journal: bytes
    count: int
    sent: bool = False
    _b64: str | None = None

    def encoded(self) -> str:
        """The journal in base64, encoded once per group (every state holding it reuses it)."""
        if self._b64 is None:
            self._b64 = base64.b64encode(self.journal).decode("ascii")
        return self._b64


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
            {"seq": g.seq, "checkpoint": g.checkpoint, "count": g.count, "journal": g.encoded()}
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


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def _group_v1(g: dict[str, Any]) -> Group:
    """A group of a version-1 state: records base64'd one by one."""
    journal = Journal()
    for k, v, h in g["records"]:
        headers = None if h is None else [(str(n), _unb64(b) or b"") for n, b in h]
        journal.append([(_unb64(k), _unb64(v), headers)])
    count = journal.count
    return Group(int(g["seq"]), int(g["checkpoint"]), journal.seal(), count)


def _group_v2(g: dict[str, Any]) -> Group:
    journal = base64.b64decode(g["journal"], validate=True)
    count = int(g["count"])
    if len(read_journal(journal)) != count:
        raise ValueError(f"group {g['seq']} holds a journal of another length than {count}")
    return Group(int(g["seq"]), int(g["checkpoint"]), journal, count)


def decode_state(state: Any) -> State:
    """The state ``encode_state`` made (this version or version 1); ValueError when it
    is not one."""
    try:
        version = state.get("version")
        if version == 1:
            groups = [_group_v1(g) for g in state["groups"]]
        elif version == STATE_VERSION:
            groups = [_group_v2(g) for g in state["groups"]]
        else:
            raise ValueError(f"unknown version {version!r}")
        return State(
            str(state["transactional_id"]), str(state["marker_group"]), int(state["seq"]), groups
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a state this sink returned from pre_commit: {exc}") from exc
