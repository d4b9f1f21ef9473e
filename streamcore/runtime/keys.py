"""The error for a key that cannot be hashed, naming the ``key_by`` stage that made it.

Keys are hashed where they are used (routing to a parallel actor, the state dict of a
window or ``process`` stage), far from the ``key_by`` whose function produced them; a bare
``TypeError: unhashable type: 'dict'`` there names the wrong stage. These helpers turn it
into a ``StageError`` for the ``key_by`` stage, carrying the record.
Design: docs/guarantees.md#faults-and-bad-inputs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamcore.drop_log import shown
from streamcore.errors import StageError

__all__ = ["explain_key_failure", "unhashable_key_error"]


def unhashable_key_error(key_stage: str, record: object, key: object) -> StageError:
    """The error for a record whose key (from stage ``key_stage``) cannot be hashed."""
    return StageError(
        f"stage {key_stage!r} (key_by) gave record {shown(record)} the key {key!r} of type "
        f"{type(key).__name__}, which is unhashable; keys must be hashable: return a str, "
        "int, tuple or frozen dataclass (e.g. tuple(sorted(d.items())) for a dict)",
        stage=key_stage,
        record=record,
    )


def explain_key_failure(
    error: BaseException, key_stage: str | None, key: Callable[[Any], Any], record: object
) -> StageError | None:
    """``error`` as an unhashable-key error when that is what it is, else None."""
    if not isinstance(error, TypeError) or key_stage is None:
        return None
    try:
        value = key(record)
    except Exception:
        return None  # the key function itself fails: the caller's error says so
    try:
        hash(value)
    except TypeError:
        err = unhashable_key_error(key_stage, record, value)
        err.__cause__ = error
        return err
    return None
