"""streamcore: an actor-model stream processing engine for Python.

The layers, bottom up (each imports only the ones below it):

- ``streamcore.runtime``: mailboxes, actors, the planner and the runner;
- ``streamcore.time``: timestamps, watermarks, windows, aggregators, keyed process;
- ``streamcore.state``: state stores and checkpoints;
- ``streamcore.dataflow``: the builder API users write flows with;
- ``streamcore.batch``: batch DAG pipelines run as finite streams on the same runtime;
- ``streamcore.daemon``: the command line, signals, HTTP endpoints.

Connectors live in the top-level ``connectors`` package and use only these public names.

The batch names (``Pipeline``, ``PipelineResult``, ``Retry``) and the state stores are
imported on first use: a stream job never needs the batch executors, nor a store and
the serde unless it checkpoints, and importing them would more than double the time
``import streamcore`` takes (docs/performance.md#start-up).
"""

from typing import TYPE_CHECKING

from streamcore import agg
from streamcore._lazy import lazy_attributes
from streamcore.dataflow.flow import Dataflow, KeyedStream, Stream, WindowedStream
from streamcore.errors import (
    CheckpointError,
    ConnectorError,
    DrainTimeoutError,
    GraphError,
    PipelineError,
    PipelineValidationError,
    SerializationError,
    SetupError,
    SinkError,
    SourceError,
    StageError,
    StateError,
    StreamcoreError,
)
from streamcore.io import Sink, SinkContext, Source, SourceContext
from streamcore.runtime.handle import FlowRun, RunState
from streamcore.runtime.steps import DeadLetter
from streamcore.state.checkpointing import Checkpointing, RestartPolicy
from streamcore.time.aggregators import Aggregator
from streamcore.time.process import KeyedProcessFunction, ProcessContext
from streamcore.time.windows import SessionWindows, SlidingWindows, TumblingWindows, WindowResult

if TYPE_CHECKING:
    from streamcore.batch.pipeline import Pipeline
    from streamcore.batch.result import PipelineResult
    from streamcore.batch.retry import Retry
    from streamcore.state.memory import MemoryStateStore
    from streamcore.state.redis import RedisStateStore

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_attributes(
    __name__,
    globals(),
    {
        "Pipeline": "streamcore.batch.pipeline",
        "PipelineResult": "streamcore.batch.result",
        "Retry": "streamcore.batch.retry",
        "MemoryStateStore": "streamcore.state.memory",
        "RedisStateStore": "streamcore.state.redis",
    },
)

__all__ = [
    "Aggregator",
    "CheckpointError",
    "Checkpointing",
    "ConnectorError",
    "Dataflow",
    "DeadLetter",
    "DrainTimeoutError",
    "FlowRun",
    "GraphError",
    "KeyedProcessFunction",
    "KeyedStream",
    "MemoryStateStore",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "PipelineValidationError",
    "ProcessContext",
    "RedisStateStore",
    "RestartPolicy",
    "Retry",
    "RunState",
    "SerializationError",
    "SessionWindows",
    "SetupError",
    "Sink",
    "SinkContext",
    "SinkError",
    "SlidingWindows",
    "Source",
    "SourceContext",
    "SourceError",
    "StageError",
    "StateError",
    "Stream",
    "StreamcoreError",
    "TumblingWindows",
    "WindowResult",
    "WindowedStream",
    "agg",
]
