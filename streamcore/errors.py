"""Every error a user of streamcore can meet.

The tree (a class defined outside this module names its module in brackets)::

    StreamcoreError                  root: catch this to catch everything of ours
    ├── ConfigurationError           an option is wrong; raised when the object is made (also a ValueError)
    │   ├── ConfigurationTypeError   an argument of a kind that cannot be used (also a TypeError)
    │   ├── ConfigError              a daemon setting (environment, config file) is wrong
    │   └── UsageError               the command-line options do not fit the target
    ├── TargetError                  ``streamcore run module:attr`` cannot load or use the target
    │   ├── TargetImportError        the target's module raised while imported (``__cause__``)
    │   └── TargetCallError          the target's factory raised (``__cause__``)
    ├── GraphError                   the dataflow graph is wrong; raised before anything runs
    │   └── DurationError            a duration argument is wrong (also a ValueError and TypeError)
    ├── StageError                   a user function failed in a stage (``__cause__`` is theirs)
    ├── SourceError                  a source cannot read its input (bad file, bad line)
    │   ├── SourceConnectorError     a foreign client failed while reading (also a ConnectorError)
    │   └── QueueClosedError         put to a closed QueueSource [connectors.memory]
    ├── SinkError                    a sink cannot write its output
    │   ├── SinkConnectorError       a foreign client failed while writing (also a ConnectorError)
    │   └── QueueSinkAbortedError    the QueueSink's flow failed [connectors.memory]
    ├── ConnectorError               a foreign client (Kafka, Redis) failed; mapped at the boundary
    ├── StateError                   the state store failed or holds something unreadable
    │   ├── SerializationError       a value cannot be written to (or read from) the store
    │   └── FencedError              a write from an owner a newer generation fenced out
    ├── CheckpointError              checkpoints keep failing, or recovery is impossible
    │   └── CheckpointSetupError     the run cannot checkpoint as set up (also a SetupError)
    ├── SetupError                   the run cannot start as set up; a restart would not help
    ├── DrainTimeoutError            a drain did not end within its bound; records were lost
    ├── PipelineError                a batch pipeline failed
    │   ├── PipelineValidationError  the task graph is wrong; raised before anything runs
    │   ├── TaskTimeoutError         a try of a task ran past its timeout [streamcore.batch.failures]
    │   └── RemoteTaskError          a task failed in a worker process [streamcore.batch.failures]
    ├── LoopError                    ``run_sync()`` inside a running loop [streamcore.runtime.loop]
    ├── MailboxClosedError           a mailbox was used after it was closed (engine bug or misuse)
    └── MailboxFullError             ``send_nowait`` found the mailbox full

Choices:

- **Bad options are ``ConfigurationError``, which is also a ``ValueError``.** Connector
  constructors raised ``ValueError`` (and ``TypeError`` for an argument of the wrong
  kind) before the tree covered them; callers and tests that catch ``ValueError`` keep
  working, and ``except StreamcoreError`` now catches them too. A wrong *kind* of
  argument raises ``ConfigurationTypeError`` (also a ``TypeError``) for the same reason.
- **Foreign-client failures are ``ConnectorError`` and keep their side.** A failure of
  aiokafka or redis-py leaves a connector as ``SourceConnectorError`` (reading, group
  membership, repartition topics) or ``SinkConnectorError`` (writing), with the client's
  exception as ``__cause__``: ``except SourceError`` still catches everything a source
  raises, and ``except ConnectorError`` catches exactly what an outside system caused
  (the case worth retrying or alerting on). The mapping is made in one place per client:
  ``connectors/kafka/_errors.py`` (``retry`` and the ``client_error`` helper) and
  ``connectors/redis/_connection.py``. A source's own complaint about its input (a bad
  line, a bad position) stays a plain ``SourceError``.
- **Daemon errors live here**, so the whole tree is in one file; ``streamcore.daemon``
  modules re-export them under their old import paths.
- Exceptions the engine raises only to itself (``ChainFailure``, ``AbandonedError``,
  private ``_...`` classes) never reach a user and are not in the tree;
  ``tests/test_error_tree.py`` lists them with the reason.

Messages say what happened, with the offending values, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointSetupError",
    "ConfigError",
    "ConfigurationError",
    "ConfigurationTypeError",
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
    "SinkConnectorError",
    "SinkError",
    "SourceConnectorError",
    "SourceError",
    "StageError",
    "StateError",
    "StreamcoreError",
    "TargetCallError",
    "TargetError",
    "TargetImportError",
    "UsageError",
]


class StreamcoreError(Exception):
    """Root of every error raised by streamcore."""


class ConfigurationError(StreamcoreError, ValueError):
    """An option given to a connector, a store or the daemon is not valid; nothing ran.

    Also a ``ValueError``: constructors raised that before the tree covered them.
    """


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument is of a kind that cannot be used (also a ``TypeError``, as before)."""


class ConfigError(ConfigurationError):
    """A setting from the environment or the config file is not valid (exit status 2)."""


class UsageError(ConfigurationError):
    """The options do not fit the target (e.g. a schedule for a Dataflow); exit status 2."""


class TargetError(StreamcoreError):
    """The target cannot be loaded, or is not something the CLI can run."""


class TargetImportError(TargetError):
    """The target's module raised while being imported; its exception is ``__cause__``."""


class TargetCallError(TargetError):
    """The target's factory function raised; the user's exception is ``__cause__``."""


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
    """A foreign client library failed; the original error is ``__cause__``.

    Raised as one of its two sides, ``SourceConnectorError`` or ``SinkConnectorError``.
    """


class SourceConnectorError(SourceError, ConnectorError):
    """A foreign client failed while a source read (or joined its group); ``__cause__`` is its error."""


class SinkConnectorError(SinkError, ConnectorError):
    """A foreign client failed while a sink wrote; ``__cause__`` is its error."""


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
