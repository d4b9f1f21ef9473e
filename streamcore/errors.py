"""Every error a user of streamcore can meet.

The tree::

    StreamcoreError                  root: catch this to catch everything of ours
    ├── GraphError                   the dataflow graph is wrong; raised before anything runs
    │   └── DurationError            a duration argument is wrong (also a ValueError and TypeError)
    ├── StageError                   a user function failed in a stage (``__cause__`` is theirs)
    ├── SourceError                  a source cannot read its input (bad file, bad line)
    ├── SinkError                    a sink cannot write its output
    ├── ConnectorError               a foreign client (Kafka, Redis) failed; mapped at the boundary
    ├── StateError                   the state store failed or holds something unreadable
    │   ├── SerializationError       a value cannot be written to (or read from) the store
    │   └── FencedError              a write from an owner a newer generation fenced out
    ├── CheckpointError              checkpoints keep failing, or recovery is impossible
    │   └── CheckpointSetupError     the run cannot checkpoint as set up (also a SetupError)
    ├── SetupError                   the run cannot start as set up; a restart would not help
    ├── DrainTimeoutError            a drain did not end within its bound; records were lost
    ├── PipelineError                a batch pipeline failed
    │   └── PipelineValidationError  the task graph is wrong; raised before anything runs
    └── MailboxClosedError           a mailbox was used after it was closed (engine bug or misuse)

Messages say what happened, with the offending values, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointSetupError",
    "ConnectorError",
    "DrainTimeoutError",
    "DurationError",
    "FencedError",
    "GraphError",
    "MailboxClosedError",
    "MailboxFullError",
    "PipelineError",
    "PipelineValidationError",
    "SerializationError",
    "SetupError",
    "SinkError",
    "SourceError",
    "StageError",
    "StateError",
    "StreamcoreError",
]


class StreamcoreError(Exception):
    """Root of every error raised by streamcore."""


class GraphError(StreamcoreError):
    """The dataflow graph is invalid; nothing has run."""


class DurationError(GraphError, ValueError, TypeError):
    """A duration argument is not a duration, or not one that can be meant unambiguously.

    Also a ``ValueError`` and a ``TypeError``: the batch API and ``Checkpointing`` raised
    those for bad durations before there was one parser, and callers may catch them.
    """


class StageError(StreamcoreError):
    """A user function failed inside a stage; the user's exception is ``__cause__``."""

    def __init__(self, message: str, *, stage: str, record: object = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.record = record


class SourceError(StreamcoreError):
    """A source could not read its input."""


class SinkError(StreamcoreError):
    """A sink could not write its output."""


class ConnectorError(StreamcoreError):
    """A foreign client library failed; the original error is ``__cause__``."""


class StateError(StreamcoreError):
    """The state store failed, or holds data that cannot be used."""


class SerializationError(StateError):
    """A value could not be serialised for the state store, or read back."""


class FencedError(StateError):
    """A fenced write was refused: a newer owner (a newer group generation) claimed the
    key space, so this writer lost it (a process cut off from its group, a *zombie*)."""

    def __init__(self, message: str, *, generation: int, current: int) -> None:
        super().__init__(message)
        self.generation = generation
        self.current = current


class CheckpointError(StreamcoreError):
    """Checkpointing failed more often than allowed, or recovery is impossible."""


class SetupError(StreamcoreError):
    """The run cannot start as set up (a source that cannot rewind under checkpoints...).

    Another attempt would meet the same error, so restart policies do not retry it."""


class CheckpointSetupError(CheckpointError, SetupError):
    """Checkpoints cannot work with this flow as set up (e.g. a source that cannot rewind)."""


class DrainTimeoutError(StreamcoreError):
    """A drain did not end within its bound; ``in_flight`` records were still on the way."""

    def __init__(self, message: str, *, in_flight: int) -> None:
        super().__init__(message)
        self.in_flight = in_flight


class PipelineError(StreamcoreError):
    """A batch pipeline failed."""


class PipelineValidationError(PipelineError):
    """The pipeline's task graph is invalid (cycle, unknown dependency...); nothing has run."""


class MailboxClosedError(StreamcoreError):
    """A mailbox was sent to or received from after it was closed."""


class MailboxFullError(StreamcoreError):
    """``send_nowait`` found the mailbox at its high water mark."""
