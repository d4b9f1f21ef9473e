"""The public surface: ``__all__`` is tidy and holds every name the API contract promises."""

from __future__ import annotations

import importlib

import pytest

import streamcore as sc

# Every top-level name the API contract promises. (sc.Checkpointing is promised too; it is
# added together with checkpoints and belongs in this list from then on.)
PROMISED = [
    "Aggregator",
    "Dataflow",
    "DeadLetter",
    "JoinResult",
    "MemoryStateStore",
    "Pipeline",
    "PipelineValidationError",
    "RedisStateStore",
    "Retry",
    "SessionWindows",
    "SlidingWindows",
    "StreamcoreError",
    "TumblingWindows",
    "WindowResult",
    "agg",
]
AGGREGATORS = ["count", "sum", "min", "max", "mean", "first", "last", "collect"]
CONNECTORS = {
    "connectors.kafka": ["KafkaRecord", "KafkaSink", "KafkaSource"],
    "connectors.memory": ["IterableSource", "ListSink", "QueueSink", "QueueSource"],
    "connectors.redis": ["RedisHashSink", "RedisStreamRecord", "RedisStreamSink", "RedisStreamSource"],
    "connectors.files": [
        "AvroSink",
        "AvroSource",
        "CsvSink",
        "CsvSource",
        "JsonLinesSink",
        "JsonLinesSource",
    ],
}


def test_streamcore_all_is_sorted_without_duplicates() -> None:
    assert sc.__all__ == sorted(sc.__all__)
    assert len(set(sc.__all__)) == len(sc.__all__)


def test_every_name_in_streamcore_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec(f"from streamcore import {', '.join(sc.__all__)}", namespace)
    missing = [name for name in sc.__all__ if namespace.get(name) is None]
    assert missing == []


@pytest.mark.parametrize("name", PROMISED)
def test_a_name_promised_by_the_api_contract_is_exported(name: str) -> None:
    assert name in sc.__all__
    assert getattr(sc, name) is not None


@pytest.mark.parametrize("name", AGGREGATORS)
def test_each_promised_aggregator_builds_an_aggregator(name: str) -> None:
    factory = getattr(sc.agg, name)
    made = factory() if name == "count" else factory(lambda r: r)
    assert isinstance(made, sc.Aggregator)


def test_the_error_names_a_user_catches_share_one_root() -> None:
    errors = [getattr(sc, name) for name in sc.__all__ if name.endswith("Error")]
    assert errors, "no errors exported"
    assert all(issubclass(e, sc.StreamcoreError) for e in errors)


@pytest.mark.parametrize("module_name", sorted(CONNECTORS))
def test_connector_packages_export_the_promised_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in CONNECTORS[module_name]:
        assert name in module.__all__
        assert getattr(module, name) is not None
