"""Field values in and out of Redis: decoding entries read, encoding what sinks write.

Redis stores field names and values as bytes. The source decodes them per its
``value_format``; the sinks encode a record's fields per theirs:

- ``"text"``: names and values are UTF-8 text. Writing, ``str`` and ``bytes`` go as they
  are, ``int`` and ``float`` as their decimal text, anything else (dict, list, bool,
  None) as JSON.
- ``"json"``: every value is JSON (names stay text), so a value reads back as the same
  type it was written as.
- ``"bytes"`` (source only): names and values stay ``bytes``.
Design: docs/connectors-redis.md#fields
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from streamcore.errors import ConfigurationError

__all__ = ["SINK_FORMATS", "SOURCE_FORMATS", "default_fields", "field_decoder", "field_encoder"]

SOURCE_FORMATS = ("text", "json", "bytes")
SINK_FORMATS = ("text", "json")

Raw = dict[bytes, bytes]


def _text(fields: Raw) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


def _json(fields: Raw) -> dict[str, Any]:
    loads = orjson.loads
    return {k.decode(): loads(v) for k, v in fields.items()}


def _bytes(fields: Raw) -> Raw:
    return fields


def field_decoder(value_format: str) -> Callable[[Raw], dict[Any, Any]]:
    """The function turning an entry's raw fields into the record's ``fields``."""
    if value_format == "text":
        return _text
    if value_format == "json":
        return _json
    if value_format == "bytes":
        return _bytes
    raise ConfigurationError(f"value_format must be one of {SOURCE_FORMATS}, got {value_format!r}")


def _encode_text(value: Any) -> bytes | str | int | float:
    cls = value.__class__
    if cls is str or cls is bytes or cls is int or cls is float:
        return value
    return orjson.dumps(value)


def field_encoder(value_format: str) -> Callable[[Mapping[Any, Any]], dict[Any, Any]]:
    """The function turning a mapping of fields into what redis-py sends (raises on a
    value JSON cannot hold)."""
    if value_format == "text":
        enc = _encode_text
        return lambda fields: {k: enc(v) for k, v in fields.items()}
    if value_format == "json":
        dumps = orjson.dumps
        return lambda fields: {k: dumps(v) for k, v in fields.items()}
    raise ConfigurationError(f"value_format must be one of {SINK_FORMATS}, got {value_format!r}")


def default_fields(record: Any) -> Mapping[Any, Any]:
    """The fields a sink writes when given no ``fields=``: a mapping as it is, a named
    tuple (``WindowResult``) or dataclass by its field names, anything else as ``value``."""
    if isinstance(record, Mapping):
        return record
    as_dict = getattr(record, "_asdict", None)
    if as_dict is not None:
        return as_dict()
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return {"value": record}


def encode_records(
    records: list[Any],
    fields: Callable[[Any], Mapping[Any, Any]],
    encode: Callable[[Mapping[Any, Any]], dict[Any, Any]],
    fail: Callable[[str], Exception],
) -> list[dict[Any, Any]]:
    """Every record's encoded fields, or ``fail(message)`` naming the first record that
    cannot be encoded (its index in the batch and its type) before anything is sent."""
    try:
        return [encode(fields(r)) for r in records]
    except Exception:
        pass
    out = []
    for i, r in enumerate(records):
        try:
            out.append(encode(fields(r)))
        except Exception as exc:
            raise fail(
                f"record {i} of the batch ({type(r).__name__}) cannot be written: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return out
