"""Value and key formats of the Kafka connectors: bytes to Python values and back.

Formats:
1. ``"json"``: UTF-8 JSON through orjson (namedtuples are written as objects); integers
   beyond 64 bits are decoded exactly (``streamcore.exact_json``).
2. ``"avro"``: schemaless Avro (fastavro) with one schema, or the Confluent wire format
   (byte 0, a 4-byte big-endian schema id, then schemaless Avro). The source looks the
   id up in a local map ``confluent_schemas``; no schema registry is contacted.
3. ``"bytes"``: the value as it is (the sink also accepts ``str``, written as UTF-8).
Keys: ``"bytes"``, ``"str"`` (UTF-8) or ``"json"``. A ``None`` value or key is never
decoded or encoded: it is a tombstone, or a record without a key.
Design: docs/connectors-kafka.md#formats
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from streamcore import exact_json
from streamcore.errors import ConfigurationError

__all__ = [
    "KEY_FORMATS",
    "VALUE_FORMATS",
    "Decoder",
    "Encoder",
    "encode_headers",
    "encode_key",
    "key_decoder",
    "value_decoder",
    "value_encoder",
]

VALUE_FORMATS = ("json", "avro", "bytes")
KEY_FORMATS = ("bytes", "str", "json")

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], "bytes | None"]

_CONFLUENT_MAGIC = 0
_CONFLUENT_HEADER = 5


def _parse_schema(schema: Any, what: str) -> Any:
    try:
        from fastavro import parse_schema
    except ImportError as exc:  # pragma: no cover - fastavro is a declared extra
        raise ConfigurationError(f"{what}: Avro needs fastavro (pip install 'streamcore[avro]')") from exc
    try:
        return parse_schema(schema)
    except Exception as exc:
        raise ConfigurationError(f"{what}: not a valid Avro schema: {exc}") from exc


def value_decoder(
    value_format: str, avro_schema: Any = None, confluent_schemas: Mapping[int, Any] | None = None
) -> Decoder:
    """The function that turns a record's value bytes into the record's value."""
    if value_format not in VALUE_FORMATS:
        raise ConfigurationError(f"value_format must be one of {VALUE_FORMATS}, got {value_format!r}")
    if confluent_schemas is not None and value_format != "avro":
        raise ConfigurationError("confluent_schemas needs value_format='avro'")
    if value_format == "json":
        return exact_json.loads
    if value_format == "bytes":
        return _same
    from fastavro import schemaless_reader

    if confluent_schemas is not None:
        if not confluent_schemas:
            raise ConfigurationError("confluent_schemas is empty: map each schema id to its schema")
        parsed = {
            int(i): _parse_schema(s, f"confluent_schemas[{i}]")
            for i, s in confluent_schemas.items()
        }

        def decode_confluent(data: bytes) -> Any:
            if len(data) < _CONFLUENT_HEADER or data[0] != _CONFLUENT_MAGIC:
                raise ConfigurationError(
                    "not in the Confluent wire format (expected magic byte 0 and a 4-byte schema id)"
                )
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            schema = parsed.get(schema_id)
            if schema is None:
                raise ConfigurationError(
                    f"schema id {schema_id} is not in confluent_schemas (known: {sorted(parsed)})"
                )
            return _read_avro(schemaless_reader, data, _CONFLUENT_HEADER, schema)

        return decode_confluent
    if avro_schema is None:
        raise ConfigurationError("value_format='avro' needs avro_schema= or confluent_schemas=")
    schema = _parse_schema(avro_schema, "avro_schema")

    def decode_avro(data: bytes) -> Any:
        return _read_avro(schemaless_reader, data, 0, schema)

    return decode_avro


def _read_avro(reader: Any, data: bytes, start: int, schema: Any) -> Any:
    buffer = io.BytesIO(data)
    buffer.seek(start)
    try:
        value = reader(buffer, schema, None)
    except Exception as exc:
        # fastavro raises what the bytes lead to (EOFError, IndexError, UnicodeDecodeError...).
        raise ValueError(f"not Avro of the given schema: {type(exc).__name__}: {exc}") from exc
    if buffer.tell() != len(data):
        raise ValueError(f"{len(data) - buffer.tell()} bytes left after the Avro value")
    return value


def key_decoder(key_format: str) -> Decoder:
    """The function that turns a record's key bytes into the record's key."""
    if key_format == "bytes":
        return _same
    if key_format == "str":
        return _utf8
    if key_format == "json":
        return exact_json.loads
    raise ConfigurationError(f"key_format must be one of {KEY_FORMATS}, got {key_format!r}")


def _same(data: bytes) -> bytes:
    return data


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


def _namedtuple_default(value: Any) -> Any:
    """orjson ``default``: namedtuples become objects keyed by field name."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    raise TypeError(f"type {type(value).__name__} is not JSON serialisable")


def value_encoder(
    value_format: str, avro_schema: Any = None, confluent_schema_id: int | None = None
) -> Encoder:
    """The function that turns a record (the sink's input) into the value bytes."""
    if value_format not in VALUE_FORMATS:
        raise ConfigurationError(f"value_format must be one of {VALUE_FORMATS}, got {value_format!r}")
    if confluent_schema_id is not None and value_format != "avro":
        raise ConfigurationError("confluent_schema_id needs value_format='avro'")
    if value_format == "json":
        dumps = orjson.dumps

        def encode_json(record: Any) -> bytes:
            return dumps(record, default=_namedtuple_default)

        return encode_json
    if value_format == "bytes":
        return _as_bytes
    from fastavro import schemaless_writer

    if avro_schema is None:
        raise ConfigurationError("value_format='avro' needs avro_schema=")
    schema = _parse_schema(avro_schema, "avro_schema")
    prefix = b""
    if confluent_schema_id is not None:
        if not 0 <= confluent_schema_id < 1 << 32:
            raise ConfigurationError(f"confluent_schema_id must fit in 4 bytes, got {confluent_schema_id}")
        prefix = bytes([_CONFLUENT_MAGIC]) + confluent_schema_id.to_bytes(4, "big")

    def encode_avro(record: Any) -> bytes:
        buffer = io.BytesIO()
        buffer.write(prefix)
        schemaless_writer(buffer, schema, record)
        return buffer.getvalue()

    return encode_avro


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"value_format='bytes' needs bytes or str, got {type(value).__name__}")


def encode_key(key: Any) -> bytes | None:
    """A key as bytes: bytes as they are, str as UTF-8, anything else as JSON."""
    if key is None:
        return None
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    if isinstance(key, str):
        return key.encode("utf-8")
    return orjson.dumps(key, default=_namedtuple_default)


def encode_headers(headers: Iterable[tuple[str, Any]] | None) -> list[tuple[str, bytes]] | None:
    """Headers as aiokafka takes them: ``(str, bytes)`` pairs (str values as UTF-8)."""
    if headers is None:
        return None
    out = []
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"a header name must be str, got {type(name).__name__}")
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif isinstance(value, bytearray | memoryview):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise TypeError(
                f"header {name!r}: value must be bytes or str, got {type(value).__name__}"
            )
        out.append((name, value))
    return out or None
