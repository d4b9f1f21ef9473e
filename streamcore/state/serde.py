"""Values to bytes and back for the state store, exactly and without pickle.

Format (``JsonCodec``, the default):
1. A value made only of JSON types (dict with str keys, list, str, bool, None, int in
   the signed 64-bit range, finite float) is written as plain JSON by orjson; that is
   the fast path, and what redis-cli shows is readable.
2. Anything else is written as the two bytes ``~1`` and then JSON in which every part
   that JSON cannot hold is a *tagged node*, the object ``{"~": tag, "v": data}``
   (tuple, set, frozenset, bytes, bytearray, dict with a non-str key, big int,
   non-finite float, datetime, date, time, timedelta, Decimal, UUID, and the classes
   given to ``register_codec``). Plain parts stay plain JSON inside it. A dict with str
   keys that has a ``"~"`` key of its own is written as a tagged ``dict`` node, so in
   this format an object with a ``"~"`` key is always a tagged node.
3. Types are matched exactly, never by ``isinstance``: a subclass (IntEnum, OrderedDict,
   a namedtuple) is refused unless registered, so nothing comes back as a different
   type than it went in.

Invariants: ``decode(encode(v)) == v`` with the same type at every level; decoding only
calls the functions registered for a tag, so stored data cannot run code; an unknown
type raises ``SerializationError`` naming the type and where it sits in the value.
Design: docs/state.md#serialisation
"""

from __future__ import annotations

import base64
import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson

from streamcore.errors import SerializationError

__all__ = [
    "DEFAULT_REGISTRY",
    "Codec",
    "CodecRegistry",
    "JsonCodec",
    "PickleCodec",
    "TypeCodec",
    "decode",
    "encode",
    "register_codec",
]

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_TAG = "~"
_DATA = "v"
_ENVELOPE = b"~1"
_ONE_MICROSECOND = timedelta(microseconds=1)


@runtime_checkable
class Codec(Protocol):
    """Turns a whole state value into bytes and back (``JsonCodec``, ``PickleCodec``)."""

    def encode(self, value: Any) -> bytes:
        """The bytes for ``value``; ``SerializationError`` if it cannot be written."""
        ...

    def decode(self, data: bytes) -> Any:
        """The value ``data`` was made from; ``SerializationError`` if unreadable."""
        ...


@dataclass(frozen=True, slots=True)
class TypeCodec:
    """How one user class is written: ``to_data(obj)`` gives an encodable value, ``from_data`` undoes it."""

    cls: type
    tag: str
    to_data: Callable[[Any], Any]
    from_data: Callable[[Any], Any]


class CodecRegistry:
    """Which user classes ``JsonCodec`` can write, each under its own tag."""

    def __init__(self) -> None:
        self._by_type: dict[type, TypeCodec] = {}
        self._by_tag: dict[str, TypeCodec] = {}

    def __repr__(self) -> str:
        return f"<CodecRegistry tags={sorted(self._by_tag)}>"

    def register(
        self,
        cls: type,
        tag: str,
        to_data: Callable[[Any], Any],
        from_data: Callable[[Any], Any],
    ) -> None:
        """Write instances of exactly ``cls`` as ``{"~": tag, "v": to_data(obj)}``.

        ``to_data`` may return anything ``JsonCodec`` can write (tuples, other
        registered classes...). Re-registering the same class under the same tag
        replaces the functions; a tag is stored in the data, so never change it.
        """
        if not isinstance(cls, type):
            raise TypeError(f"register_codec needs a class, got {cls!r}")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"a codec tag must be a non-empty str, got {tag!r}")
        if tag in _BUILTIN_DECODERS:
            raise ValueError(f"tag {tag!r} is built in; pick another, e.g. 'myapp.{cls.__name__}'")
        if cls in _BUILTIN_TYPES:
            raise ValueError(f"{cls.__name__} is serialised natively; it cannot be registered")
        owner = self._by_tag.get(tag)
        if owner is not None and owner.cls is not cls:
            raise ValueError(f"tag {tag!r} is already used by {_type_name(owner.cls)}")
        previous = self._by_type.get(cls)
        if previous is not None and previous.tag != tag:
            raise ValueError(
                f"{_type_name(cls)} is already registered as tag {previous.tag!r}; "
                "unregister it first (data written under the old tag will not decode)"
            )
        codec = TypeCodec(cls, tag, to_data, from_data)
        self._by_type[cls] = codec
        self._by_tag[tag] = codec

    def unregister(self, cls: type) -> None:
        """Forget ``cls``; values already stored under its tag will no longer decode."""
        codec = self._by_type.pop(cls, None)
        if codec is not None:
            del self._by_tag[codec.tag]

    def for_type(self, cls: type) -> TypeCodec | None:
        """The codec registered for exactly ``cls``, if any."""
        return self._by_type.get(cls)

    def for_tag(self, tag: str) -> TypeCodec | None:
        """The codec registered under ``tag``, if any."""
        return self._by_tag.get(tag)


DEFAULT_REGISTRY = CodecRegistry()


class _Unsupported(Exception):
    """Raised deep in the encoder; ``JsonCodec.encode`` turns it into a SerializationError."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


def _type_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _is_plain(value: Any) -> bool:
    """True when orjson alone writes ``value`` so that it reads back identical."""
    t = type(value)
    if t is dict:
        for key in value:
            if type(key) is not str:
                return False
        return _all_plain(value.values())
    if t is list:
        return _all_plain(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return _I64_MIN <= value <= _I64_MAX
    if t is float:
        return math.isfinite(value)
    return False


def _all_plain(items: Iterable[Any]) -> bool:
    for item in items:
        # Scalars are checked inline: a call per leaf would dominate large states.
        ti = type(item)
        if ti is str or ti is bool or item is None:
            continue
        if ti is int:
            if not _I64_MIN <= item <= _I64_MAX:
                return False
        elif ti is float:
            if not math.isfinite(item):
                return False
        elif not _is_plain(item):
            return False
    return True


def _tz_to_data(value: object, tz: tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is ZoneInfo:
        if tz.key is None:
            raise _Unsupported(value, "its ZoneInfo was loaded from a file and has no key")
        return tz.key
    if type(tz) is timezone:
        offset = tz.utcoffset(None)
        # timezone keeps no public flag for "named explicitly"; its repr shows the name
        # only when one was given, which is what decides how to rebuild it.
        named = repr(tz) != repr(timezone(offset))
        return [offset // _ONE_MICROSECOND, tz.tzname(None) if named else None]
    raise _Unsupported(
        value,
        f"its tzinfo is a {_type_name(type(tz))}; only zoneinfo.ZoneInfo and "
        "datetime.timezone are stored exactly, convert to one of them first",
    )


def _tz_from_data(data: Any) -> tzinfo | None:
    if data is None:
        return None
    if type(data) is str:
        return ZoneInfo(data)
    offset_us, name = data
    offset = timedelta(microseconds=offset_us)
    return timezone(offset) if name is None else timezone(offset, name)


def _naive_iso(value: datetime | time) -> str:
    return value.replace(tzinfo=None, fold=0).isoformat()


# Encoders of the built-in tagged types: each returns the node's data, with any nested
# values already turned into JSON trees by the codec passed in.
_BUILTIN_ENCODERS: dict[type, tuple[str, Callable[[JsonCodec, Any], Any]]] = {
    tuple: ("tuple", lambda c, v: [c._tree(x) for x in v]),
    set: ("set", lambda c, v: [c._tree(x) for x in v]),
    frozenset: ("frozenset", lambda c, v: [c._tree(x) for x in v]),
    bytes: ("bytes", lambda c, v: base64.b64encode(v).decode("ascii")),
    bytearray: ("bytearray", lambda c, v: base64.b64encode(v).decode("ascii")),
    datetime: ("datetime", lambda c, v: [_naive_iso(v), v.fold, _tz_to_data(v, v.tzinfo)]),
    date: ("date", lambda c, v: v.isoformat()),
    time: ("time", lambda c, v: [_naive_iso(v), v.fold, _tz_to_data(v, v.tzinfo)]),
    timedelta: ("timedelta", lambda c, v: [v.days, v.seconds, v.microseconds]),
    Decimal: ("decimal", lambda c, v: str(v)),
    UUID: ("uuid", lambda c, v: str(v)),
}

_BUILTIN_DECODERS: dict[str, Callable[[JsonCodec, Any], Any]] = {
    "tuple": lambda c, d: tuple([c._value(x) for x in d]),
    "set": lambda c, d: {c._value(x) for x in d},
    "frozenset": lambda c, d: frozenset([c._value(x) for x in d]),
    "bytes": lambda c, d: base64.b64decode(d, validate=True),
    "bytearray": lambda c, d: bytearray(base64.b64decode(d, validate=True)),
    "dict": lambda c, d: {c._value(k): c._value(x) for k, x in d},
    # Hex, because str(int) refuses ints past 4300 digits and int(s, 16) has no limit.
    "int": lambda c, d: int(d, 16),
    "float": lambda c, d: float(d),
    "datetime": lambda c, d: datetime.fromisoformat(d[0]).replace(
        fold=d[1], tzinfo=_tz_from_data(d[2])
    ),
    "date": lambda c, d: date.fromisoformat(d),
    "time": lambda c, d: time.fromisoformat(d[0]).replace(fold=d[1], tzinfo=_tz_from_data(d[2])),
    "timedelta": lambda c, d: timedelta(days=d[0], seconds=d[1], microseconds=d[2]),
    "decimal": lambda c, d: Decimal(d),
    "uuid": lambda c, d: UUID(d),
}

_BUILTIN_TYPES = frozenset({str, int, float, bool, type(None), list, dict, *_BUILTIN_ENCODERS})


class JsonCodec:
    """The default codec: orjson plus tagged nodes for what JSON cannot hold (see module doc)."""

    def __init__(self, registry: CodecRegistry | None = None) -> None:
        self._registry = DEFAULT_REGISTRY if registry is None else registry

    def __repr__(self) -> str:
        return f"<JsonCodec registry={self._registry!r}>"

    @property
    def registry(self) -> CodecRegistry:
        """The user classes this codec can write."""
        return self._registry

    def encode(self, value: Any) -> bytes:
        """The bytes for ``value``; ``SerializationError`` naming an unsupported type."""
        try:
            if _is_plain(value):
                return orjson.dumps(value)
            return _ENVELOPE + orjson.dumps(self._tree(value))
        except _Unsupported as exc:
            path = _find_path(value, exc.value)
            where = f" at {path}" if path else ""
            raise SerializationError(
                f"cannot serialise a value of type {_type_name(type(exc.value))}{where} for the state "
                f"store: {exc.reason}"
            ) from None
        except RecursionError:
            raise SerializationError(
                "cannot serialise a value that nests too deeply or contains a reference "
                "cycle; flatten it or register a codec for the nesting class"
            ) from None
        except orjson.JSONEncodeError as exc:
            raise SerializationError(f"cannot serialise the value: {exc}") from exc

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The value ``data`` was made from; ``SerializationError`` if it is unreadable."""
        try:
            if not data or data[0] != _ENVELOPE[0]:
                return orjson.loads(data)
            if data[:2] == _ENVELOPE:
                return self._value(orjson.loads(memoryview(data)[2:]))
            raise SerializationError(
                f"state value has format {bytes(data[:2])!r}, which this version of "
                "streamcore cannot read; it was written by a newer streamcore"
            )
        except orjson.JSONDecodeError as exc:
            raise SerializationError(
                f"cannot decode a state value ({exc}); it was not written by "
                f"streamcore.state.serde or is corrupt (starts {bytes(data[:24])!r})"
            ) from exc
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise SerializationError(
                f"cannot decode a state value: malformed data ({type(exc).__name__}: {exc}); "
                f"it was not written by streamcore.state.serde or is corrupt"
            ) from exc

    def _tree(self, value: Any) -> Any:
        """``value`` as a JSON tree (only JSON types), with tagged nodes where needed."""
        t = type(value)
        if t is str or t is bool or value is None:
            return value
        if t is int:
            if _I64_MIN <= value <= _I64_MAX:
                return value
            return {_TAG: "int", _DATA: format(value, "x")}
        if t is float:
            return value if math.isfinite(value) else {_TAG: "float", _DATA: repr(value)}
        if t is list:
            return [self._tree(x) for x in value]
        if t is dict:
            if _TAG not in value and all(type(k) is str for k in value):
                return {k: self._tree(x) for k, x in value.items()}
            return {_TAG: "dict", _DATA: [[self._tree(k), self._tree(x)] for k, x in value.items()]}
        builtin = _BUILTIN_ENCODERS.get(t)
        if builtin is not None:
            tag, to_data = builtin
            return {_TAG: tag, _DATA: to_data(self, value)}
        codec = self._registry.for_type(t)
        if codec is None:
            raise _Unsupported(
                value,
                f"no codec for this type; register one with streamcore.state.serde."
                f"register_codec({t.__qualname__}, tag, to_data, from_data)",
            )
        try:
            data = codec.to_data(value)
        except Exception as exc:
            raise SerializationError(
                f"the codec {codec.tag!r} for {_type_name(t)} failed to encode {value!r}: {exc}"
            ) from exc
        return {_TAG: codec.tag, _DATA: self._tree(data)}

    def _value(self, tree: Any) -> Any:
        """The value a JSON tree from ``_tree`` stands for."""
        t = type(tree)
        if t is list:
            return [self._value(x) for x in tree]
        if t is dict:
            if _TAG in tree:
                return self._tagged(tree)
            return {k: self._value(x) for k, x in tree.items()}
        return tree

    def _tagged(self, node: dict[str, Any]) -> Any:
        if len(node) != 2 or _DATA not in node:
            raise ValueError(
                f"a tagged node must be {{'~': tag, 'v': data}}, got keys {list(node)}"
            )
        tag = node[_TAG]
        builtin = _BUILTIN_DECODERS.get(tag)
        if builtin is not None:
            return builtin(self, node[_DATA])
        codec = self._registry.for_tag(tag)
        if codec is None:
            raise SerializationError(
                f"cannot decode a state value: unknown tag {tag!r}; register the codec for "
                "it (streamcore.state.serde.register_codec) before reading"
            )
        data = self._value(node[_DATA])
        try:
            return codec.from_data(data)
        except Exception as exc:
            raise SerializationError(
                f"the codec {tag!r} for {_type_name(codec.cls)} failed to decode {data!r}: {exc}"
            ) from exc


def _find_path(root: object, target: object) -> str | None:
    """Where ``target`` sits inside ``root`` (``value[0]['k']``), for error messages."""
    seen: set[int] = set()

    def walk(node: Any, path: str) -> str | None:
        if node is target:
            return path
        if id(node) in seen:
            return None
        t = type(node)
        if t is list or t is tuple:
            seen.add(id(node))
            for i, item in enumerate(node):
                found = walk(item, f"{path}[{i}]")
                if found:
                    return found
        elif t is dict:
            seen.add(id(node))
            for key, item in node.items():
                found = walk(key, f"a key of {path}") or walk(item, f"{path}[{key!r}]")
                if found:
                    return found
        elif t is set or t is frozenset:
            seen.add(id(node))
            for item in node:
                found = walk(item, f"an element of {path}")
                if found:
                    return found
        return None

    return walk(root, "value")


class PickleCodec:
    """Opt-in codec for any picklable value. Never the default.

    Unpickling runs code named by the stored bytes: use it only with a store that
    nobody but this application can write to.
    """

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self._protocol = protocol

    def encode(self, value: Any) -> bytes:
        """The pickle of ``value``; ``SerializationError`` if it cannot be pickled."""
        try:
            return pickle.dumps(value, protocol=self._protocol)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise SerializationError(
                f"cannot pickle a {_type_name(type(value))} for the state store: {exc}"
            ) from exc

    def decode(self, data: bytes) -> Any:
        """The unpickled value; ``SerializationError`` if ``data`` is not a readable pickle."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(f"cannot unpickle a state value: {exc}") from exc


_DEFAULT_CODEC = JsonCodec()


def encode(value: Any) -> bytes:
    """``value`` as bytes with the default ``JsonCodec`` and ``DEFAULT_REGISTRY``."""
    return _DEFAULT_CODEC.encode(value)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The value ``encode`` made ``data`` from."""
    return _DEFAULT_CODEC.decode(data)


def register_codec(
    cls: type,
    tag: str,
    to_data: Callable[[Any], Any],
    from_data: Callable[[Any], Any],
) -> None:
    """Let the default codec write instances of exactly ``cls`` (see ``CodecRegistry.register``)."""
    DEFAULT_REGISTRY.register(cls, tag, to_data, from_data)
