"""File connectors: JSON lines, CSV and Avro sources and sinks.

Sources read one path or a sorted glob in batches, never a whole file at once, and are
rewindable: ``position()`` names the file by path and the place inside it. Sinks
write under ``<path>.pending`` and move the finished file to ``path`` atomically at the
end of the stream; under checkpointing they publish exactly once, sealed segment by
sealed segment, as checkpoints complete (``restore``/``pre_commit``/``commit``).
Each name is imported on first use (PEP 562), as streamcore's are, so importing the
package costs nothing until a connector is used (docs/performance.md#start-up).
Design: docs/connectors-files.md
"""

TYPE_CHECKING = False  # typing itself is not imported at start-up
if TYPE_CHECKING:
    from connectors.files.avro_files import AvroSink, AvroSource
    from connectors.files.csv_files import CsvSink, CsvSource
    from connectors.files.json_lines import JsonLinesSink, JsonLinesSource

_MODULES = {
    "AvroSink": "avro_files",
    "AvroSource": "avro_files",
    "CsvSink": "csv_files",
    "CsvSource": "csv_files",
    "JsonLinesSink": "json_lines",
    "JsonLinesSource": "json_lines",
}

__all__ = ["AvroSink", "AvroSource", "CsvSink", "CsvSource", "JsonLinesSink", "JsonLinesSource"]


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
