"""File connectors: JSON lines, CSV and Avro sources and sinks.

Sources read one path or a sorted glob in batches, never a whole file at once, and are
rewindable: ``position()`` names the file by path and the place inside it. Sinks
write under ``<path>.pending`` and move the finished file to ``path`` atomically at the
end of the stream; under checkpointing they publish exactly once, sealed segment by
sealed segment, as checkpoints complete (``restore``/``pre_commit``/``commit``).
Design: docs/connectors-files.md
"""

from connectors.files.avro_files import AvroSink, AvroSource
from connectors.files.csv_files import CsvSink, CsvSource
from connectors.files.json_lines import JsonLinesSink, JsonLinesSource

__all__ = [
    "AvroSink",
    "AvroSource",
    "CsvSink",
    "CsvSource",
    "JsonLinesSink",
    "JsonLinesSource",
]
