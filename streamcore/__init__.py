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

Every public name is imported on first use (PEP 562, ``streamcore._lazy``), so
``import streamcore`` costs next to nothing: a program, a tool or a ``--help`` that only
imports the package does not pay for asyncio and the runtime; building a flow does, and
the batch executors, the state stores and the serde load only when a pipeline runs or a
flow checkpoints (docs/performance.md#start-up).
"""

from streamcore._lazy import lazy_attributes

TYPE_CHECKING = False  # typing itself is not imported at start-up
if TYPE_CHECKING:
    from streamcore import agg
    from streamcore.batch.pipeline import Pipeline
    from streamcore.batch.result import PipelineResult
    from streamcore.dataflow.flow import Dataflow, KeyedStream, Stream, WindowedStream
    from streamcore.dataflow.handle import FlowRun, RunState
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
    from streamcore.operators.process import KeyedProcessFunction, ProcessContext
    from streamcore.retry import Retry
    from streamcore.runtime.steps import DeadLetter
    from streamcore.state.checkpointing import Checkpointing, RestartPolicy
    from streamcore.state.memory import MemoryStateStore
    from streamcore.state.redis import RedisStateStore
    from streamcore.time.aggregators import Aggregator
    from streamcore.time.windows import (
        SessionWindows,
        SlidingWindows,
        TumblingWindows,
        WindowResult,
    )

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_attributes(
    __name__,
    globals(),
    {
        "Aggregator": "streamcore.time.aggregators",
        "Checkpointing": "streamcore.state.checkpointing",
        "Dataflow": "streamcore.dataflow.flow",
        "DeadLetter": "streamcore.runtime.steps",
        "FlowRun": "streamcore.dataflow.handle",
        "JoinResult": "streamcore.operators",
        "KeyedProcessFunction": "streamcore.operators.process",
        "KeyedStream": "streamcore.dataflow.flow",
        "MemoryStateStore": "streamcore.state.memory",
        "Pipeline": "streamcore.batch.pipeline",
        "PipelineResult": "streamcore.batch.result",
        "ProcessContext": "streamcore.operators.process",
        "RedisStateStore": "streamcore.state.redis",
        "RestartPolicy": "streamcore.state.checkpointing",
        "Retry": "streamcore.retry",
        "RunState": "streamcore.dataflow.handle",
        "SessionWindows": "streamcore.time.windows",
        "Sink": "streamcore.io",
        "SinkContext": "streamcore.io",
        "SlidingWindows": "streamcore.time.windows",
        "Source": "streamcore.io",
        "SourceContext": "streamcore.io",
        "Stream": "streamcore.dataflow.flow",
        "TumblingWindows": "streamcore.time.windows",
        "WindowResult": "streamcore.time.windows",
        "WindowedStream": "streamcore.dataflow.flow",
        "agg": "streamcore.agg",
        "cached": "streamcore.operators.cache",
        "CheckpointError": "streamcore.errors",
        "ConnectorError": "streamcore.errors",
        "DrainTimeoutError": "streamcore.errors",
        "GraphError": "streamcore.errors",
        "PipelineError": "streamcore.errors",
        "PipelineValidationError": "streamcore.errors",
        "SerializationError": "streamcore.errors",
        "SetupError": "streamcore.errors",
        "SinkError": "streamcore.errors",
        "SourceError": "streamcore.errors",
        "StageError": "streamcore.errors",
        "StateError": "streamcore.errors",
        "StreamcoreError": "streamcore.errors",
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
