"""streamcore: an actor-model stream processing engine for Python.

The layers, bottom up; each imports only its own and the ones below it, which
``tests/test_layers.py`` checks (lazy imports included). docs/architecture.md has the
picture of a record's path and of the control messages' path.

- ``errors``, ``io`` (the Source/Sink protocols), ``duration``, ``retry``, ``drop_log``,
  ``exact_json``, ``item_lookup``, ``_lazy``, ``stage_options`` (the ``on_error`` and op
  literals): what every layer may use;
- ``streamcore.time``: window assigners, aggregators, watermark helpers (definitions);
- ``streamcore.state``: state stores, the serde, snapshots, the checkpoint coordinator;
- ``streamcore.runtime``: mailboxes, actors, the step protocol and its registry;
- ``streamcore.graph``: the plain-data nodes of a flow, validation, planning;
- ``streamcore.operators``: windows, keyed process functions, joins, async enrichment,
  each registered for its node kind;
- ``streamcore.execution``: a graph built into actors and run (one attempt);
- ``streamcore.scaleout``: one task per partition of a consumer group, graph rewriting;
- ``streamcore.dataflow``: the builder users write flows with, and the run handle;
- ``streamcore.testing``, ``streamcore.batch``, ``streamcore.metrics``, ``streamcore.daemon``.

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
from streamcore.operators.process import KeyedProcessFunction, ProcessContext
from streamcore.runtime.steps import DeadLetter
from streamcore.state.checkpointing import Checkpointing, RestartPolicy
from streamcore.time.aggregators import Aggregator
from streamcore.time.windows import SessionWindows, SlidingWindows, TumblingWindows, WindowResult

if TYPE_CHECKING:
    from streamcore.batch.pipeline import Pipeline
    from streamcore.batch.result import PipelineResult
    from streamcore.dataflow.handle import FlowRun, RunState
    from streamcore.operators import JoinResult
    from streamcore.operators.cache import cached
    from streamcore.retry import Retry
    from streamcore.state.memory import MemoryStateStore
    from streamcore.state.redis import RedisStateStore

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_attributes(
    __name__,
    globals(),
    {
        "FlowRun": "streamcore.dataflow.handle",
        "JoinResult": "streamcore.operators",
        "Pipeline": "streamcore.batch.pipeline",
        "PipelineResult": "streamcore.batch.result",
        "Retry": "streamcore.retry",
        "MemoryStateStore": "streamcore.state.memory",
        "RedisStateStore": "streamcore.state.redis",
        "RunState": "streamcore.dataflow.handle",
        "cached": "streamcore.operators.cache",
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
