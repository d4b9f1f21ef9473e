"""Snapshots of stateful steps and how they become bytes in the store.

A stateful step implements ``snapshot_state(checkpoint_id, full) -> StepSnapshot`` and
``restore_state(meta, entries)``. Entries are keyed by the user's key; a delta snapshot
holds the keys that changed since the previous snapshot, with ``deleted`` naming the
keys left without state.

Invariants:
1. ``encode_snapshot`` runs in the actor, at the barrier, before the actor goes on: the
   bytes it returns are the state as of the barrier whatever the step does afterwards.
2. Entries are split into key groups by ``crc32(encode(key)) % KEY_GROUPS``, the same in
   every process (Python's ``hash`` of a str is not).
3. A blob is the serde encoding of ``[[key, value], ..., [key]]``: a one-element pair is
   a tombstone. Replaying blobs in checkpoint order rebuilds the entries.
Design: docs/checkpoints.md#what-a-snapshot-holds
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from streamcore.errors import CheckpointError, CheckpointSetupError, SerializationError

# The serde (uuid, decimal, zoneinfo, pickle) is imported by the first checkpoint, not by
# every flow: the runtime imports this module, and a flow without checkpoints never
# encodes a snapshot (docs/performance.md#start-up).

__all__ = [
    "KEY_GROUPS",
    "ActorPart",
    "EncodedSnapshot",
    "Stateful",
    "StepSnapshot",
    "apply_blob",
    "encode_snapshot",
    "key_group",
    "remember_stored",
]

KEY_GROUPS = 128


@dataclass
class StepSnapshot:
    """The state of one step at a barrier: a small ``meta`` and per-key ``entries``."""

    meta: Any
    entries: dict[Any, Any] = field(default_factory=dict)
    deleted: list[Any] = field(default_factory=list)
    full: bool = True


@runtime_checkable
class Stateful(Protocol):
    """A step whose state is checkpointed."""

    name: str

    def enable_checkpoints(self) -> None:
        """Start tracking which keys change (called once, before the first record)."""

    def snapshot_state(self, checkpoint_id: int, full: bool) -> StepSnapshot | Awaitable[StepSnapshot]:
        """The state now: every key when ``full``, else the keys changed since the last call.
        (A sink's may be awaitable: its ``pre_commit`` may need I/O.)"""

    def restore_state(self, meta: Any, entries: dict[Any, Any]) -> None:
        """Take the state a snapshot described (``entries`` already merged and filtered)."""


@dataclass
class EncodedSnapshot:
    """A step's snapshot as bytes: the meta (for the manifest) and one blob per key group."""

    stage: str
    meta: Any
    blobs: dict[int, bytes]
    full: bool


@dataclass
class ActorPart:
    """What one actor hands over at a barrier (or at its end): its steps' snapshots."""

    actor: str
    snapshots: list[EncodedSnapshot]


def remember_stored(stored: set[Any], entries: dict[Any, Any], deleted: list[Any], full: bool) -> set[Any]:
    """The keys the checkpoints hold after this snapshot (a delta writes tombstones only
    for these)."""
    if full:
        return set(entries)
    stored.update(entries)
    stored.difference_update(deleted)
    return stored


def key_group(key: Any) -> int:
    """The key group of ``key``, stable across processes."""
    if type(key) is str:
        # The common case, without a trip through the serde.
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % KEY_GROUPS
    from streamcore.state.serde import encode

    return zlib.crc32(encode(key)) % KEY_GROUPS


def encode_snapshot(stage: str, snapshot: StepSnapshot) -> EncodedSnapshot:
    """Encode ``snapshot`` now; a value the serde cannot write is a ``CheckpointError``."""
    from streamcore.state.serde import encode

    groups: dict[int, list[list[Any]]] = {}
    try:
        for key, value in snapshot.entries.items():
            groups.setdefault(key_group(key), []).append([key, value])
        for key in snapshot.deleted:
            groups.setdefault(key_group(key), []).append([key])
        blobs = {kg: encode(pairs) for kg, pairs in groups.items()}
        encode(snapshot.meta)
    except SerializationError as exc:
        raise CheckpointSetupError(
            f"stage {stage!r}: cannot checkpoint its state: {exc}; register a codec for "
            "the type with streamcore.state.register_codec"
        ) from exc
    return EncodedSnapshot(stage, snapshot.meta, blobs, snapshot.full)


def apply_blob(entries: dict[Any, Any], blob: bytes) -> None:
    """Replay one blob onto ``entries`` (later blobs win, tombstones delete)."""
    from streamcore.state.serde import decode

    for pair in decode(blob):
        if len(pair) == 1:
            entries.pop(_hashable(pair[0]), None)
        else:
            entries[_hashable(pair[0])] = pair[1]


def _hashable(key: Any) -> Any:
    # Keys come back as the serde wrote them; lists (not hashable) only arise from
    # containers a user key cannot be, but guard so a bad key fails with a clear error.
    if isinstance(key, list):
        raise CheckpointError(f"a checkpointed key decoded as a list ({key!r}); keys must be hashable")
    return key
