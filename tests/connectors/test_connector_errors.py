"""What leaves a connector is in the error tree: bad options, and foreign-client failures.

Bad options raise ``ConfigurationError`` (still a ``ValueError``) when the connector is
built; a failure of aiokafka or redis-py is a ``ConnectorError`` on the side it happened
(``SourceConnectorError``/``SinkConnectorError``) with the client's error as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.kafka import KafkaSink, KafkaSource
from connectors.memory import IterableSource, QueueSink, QueueSource
from connectors.redis import RedisHashSink, RedisStreamSink, RedisStreamSource
from streamcore.errors import (
    ConfigurationError,
    ConfigurationTypeError,
    ConnectorError,
    SinkConnectorError,
    SourceConnectorError,
    StreamcoreError,
)
from streamcore.io import SinkContext, SourceContext
from tests.connectors.test_kafka import free_port

REDIS = "redis://127.0.0.1:6379/0"
KAFKA = "127.0.0.1:9092"

BAD_OPTIONS: dict[str, Callable[[], Any]] = {
    "QueueSource maxsize": lambda: QueueSource(maxsize=0),
    "QueueSink maxsize": lambda: QueueSink(maxsize=0),
    "KafkaSource start": lambda: KafkaSource("t", bootstrap_servers=KAFKA, start="middle"),
    "KafkaSource value_format": lambda: KafkaSource("t", bootstrap_servers=KAFKA, value_format="xml"),
    "KafkaSink connect_attempts": lambda: KafkaSink("t", bootstrap_servers=KAFKA, connect_attempts=0),
    "RedisStreamSource count": lambda: RedisStreamSource("s", url=REDIS, count=0),
    "RedisStreamSink maxlen": lambda: RedisStreamSink("s", url=REDIS, maxlen=0),
    "RedisHashSink ttl": lambda: RedisHashSink(url=REDIS, key=str, ttl=-1),
}


@pytest.mark.parametrize("make", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_bad_options_raise_a_configuration_error_that_is_still_a_value_error(make: Callable[[], Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make()
    assert isinstance(caught.value, StreamcoreError) and isinstance(caught.value, ValueError)


def test_an_argument_of_the_wrong_kind_is_a_configuration_type_error() -> None:
    with pytest.raises(ConfigurationTypeError) as caught:
        IterableSource(42)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, StreamcoreError)


async def test_an_unreachable_kafka_broker_is_a_connector_error_on_each_side() -> None:
    servers = f"127.0.0.1:{free_port()}"
    source = KafkaSource("t", bootstrap_servers=servers, connect_attempts=1, connect_timeout_s=1.0)
    with pytest.raises(SourceConnectorError) as read_side:
        await source.open(SourceContext("unreachable"))
    await source.close()
    sink = KafkaSink("t", bootstrap_servers=servers, connect_attempts=1, connect_timeout_s=1.0)
    with pytest.raises(SinkConnectorError) as write_side:
        await sink.open(SinkContext("unreachable", "f"))
    for caught in (read_side, write_side):
        assert isinstance(caught.value, ConnectorError)
        assert caught.value.__cause__ is not None


async def test_an_unreachable_redis_is_a_connector_error_on_each_side() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SourceConnectorError) as read_side:
        await RedisStreamSource("s", url=url, connect_retries=0, socket_timeout_s=1).open(SourceContext("x"))
    with pytest.raises(SinkConnectorError) as write_side:
        await RedisStreamSink("s", url=url, connect_retries=0, socket_timeout_s=1).open(SinkContext("x", "f"))
    for caught in (read_side, write_side):
        assert isinstance(caught.value, ConnectorError)
        assert caught.value.__cause__ is not None
