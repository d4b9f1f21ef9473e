"""streamcore: an actor-model stream processing engine for Python.

The layers, bottom up (each imports only the ones below it):

- ``streamcore.runtime``: mailboxes, actors, the planner and the runner;
- ``streamcore.time``: timestamps, watermarks, windows, aggregators, keyed process;
- ``streamcore.state``: state stores and checkpoints;
- ``streamcore.operators``: joins and async enrichment, built on the step protocol and
  chosen for a graph node through the runtime's step registry;
- ``streamcore.dataflow``: the builder API users write flows with;
- ``streamcore.batch``: batch DAG pipelines run as finite streams on the same runtime;
- ``streamcore.daemon``: the command line, signals, HTTP endpoints.

Connectors live in the top-level ``connectors`` package and use only these public names.
"""

from streamcore import agg
from streamcore.batch import Pipeline, PipelineResult, Retry
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
from streamcore.operators import JoinResult
from streamcore.operators.cache import cached
from streamcore.runtime.handle import FlowRun, RunState
from streamcore.runtime.steps import DeadLetter
from streamcore.state import MemoryStateStore, RedisStateStore
from streamcore.state.checkpointing import Checkpointing, RestartPolicy
from streamcore.time.aggregators import Aggregator
from streamcore.time.process import KeyedProcessFunction, ProcessContext
from streamcore.time.windows import SessionWindows, SlidingWindows, TumblingWindows, WindowResult

__version__ = "0.1.0"

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
    "JoinResult",
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
    "cached",
]
