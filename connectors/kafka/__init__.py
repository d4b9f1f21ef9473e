"""Kafka connectors: ``KafkaSource`` and ``KafkaSink`` over aiokafka.

The source reads topics (or a pattern) in batches of ``KafkaRecord`` with the value
decoded (JSON, Avro, Confluent-framed Avro, bytes), is rewindable (its position is the
next offset per partition), and tells the runtime which partition each record came
from and which partitions are caught up, for per-partition watermarks. The sink writes
at least once, or exactly once with Kafka transactions committed in step with
checkpoints.
Design: docs/connectors-kafka.md
"""

from connectors.kafka._record import KafkaRecord
from connectors.kafka.sink import KafkaSink
from connectors.kafka.source import KafkaSource

__all__ = ["KafkaRecord", "KafkaSink", "KafkaSource"]
