"""Serialisation of state values: exact round trips, the plain-JSON fast path, errors."""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import IntEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamcore.errors import SerializationError, StateError
from streamcore.state import serde
from streamcore.state.serde import Codec, CodecRegistry, JsonCodec, PickleCodec

# Strategies. Fixed-offset zones must stay strictly within a day of UTC.
_offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
_zones: st.SearchStrategy[tzinfo | None] = st.one_of(
    st.none(),
    st.just(UTC),
    st.builds(timezone, _offsets),
    st.builds(timezone, _offsets, st.text(min_size=1, max_size=5)),
    st.timezones(),
)
_hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=16),
    st.datetimes(timezones=_zones),
    st.dates(),
    st.times(timezones=_zones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
_hashables = st.recursive(
    _hashable_scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
_scalars = _hashable_scalars | st.binary(max_size=16).map(bytearray)
values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
        st.dictionaries(_hashables, inner, max_size=4),
        st.sets(_hashables, max_size=4),
        st.frozensets(_hashables, max_size=4),
    ),
    max_leaves=24,
)
_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=24,
)


def typed(value: Any) -> Any:
    """A hashable picture of ``value`` that differs whenever a type, order or zone differs."""
    t = type(value)
    if t is list or t is tuple:
        return (t.__name__, tuple(typed(x) for x in value))
    if t is set or t is frozenset:
        return (t.__name__, frozenset(typed(x) for x in value))
    if t is dict:
        return ("dict", tuple((typed(k), typed(x)) for k, x in value.items()))
    if t is float:
        return ("float", repr(value))
    if t is datetime or t is time:
        naive = value.replace(tzinfo=None).isoformat()
        return (t.__name__, naive, value.fold, repr(value.tzinfo))
    if t is Decimal:
        return ("Decimal", str(value))
    if t is bytearray:
        return ("bytearray", bytes(value))
    return (t.__name__, value)


def assert_round_trips(value: Any, codec: Codec | None = None) -> bytes:
    codec = codec or JsonCodec()
    data = codec.encode(value)
    assert type(data) is bytes
    back = codec.decode(data)
    assert typed(back) == typed(value)
    return data


@settings(max_examples=400, deadline=None)
@given(values)
def test_any_supported_value_round_trips_with_the_same_types(value: Any) -> None:
    assert_round_trips(value)


@settings(max_examples=200, deadline=None)
@given(_plain)
def test_plain_json_values_are_written_as_plain_json(value: Any) -> None:
    data = serde.encode(value)
    assert data == orjson.dumps(value)
    assert serde.decode(data) == value


@settings(max_examples=200, deadline=None)
@given(values)
def test_decode_accepts_bytearray_and_memoryview(value: Any) -> None:
    data = serde.encode(value)
    assert typed(serde.decode(bytearray(data))) == typed(value)
    assert typed(serde.decode(memoryview(data))) == typed(value)


def test_a_value_needing_tags_is_enveloped_and_only_tagged_where_needed() -> None:
    data = serde.encode({"plain": {"a": [1, 2.5]}, "pair": (1, 2)})
    assert data.startswith(b"~1")
    assert orjson.loads(data[2:]) == {
        "plain": {"a": [1, 2.5]},
        "pair": {"~": "tuple", "v": [1, 2]},
    }


@pytest.mark.parametrize(
    "value",
    [
        {(1, "a"): 1, (2, "b"): 2},
        {1: "x", False: "y", None: "z", 2.5: "w"},
        {frozenset({1, 2}): [b"\x00"]},
        {"~": 1},
        {"~": (1,), "other": 2},
        [{"~": "tuple", "v": [1]}, (1,)],
        {"outer": {"~": "looks like a tag", "v": 1}, "t": ()},
        2**64,
        -(2**63) - 1,
        2**63,
        -(2**63),
        10**5000,
        -(10**5000),
        -0.0,
        float("inf"),
        float("-inf"),
        (),
        set(),
        frozenset(),
        b"",
        bytearray(b"\x00\xff"),
        datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5), "EST")),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=1, microseconds=5))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(0), "UTC")),
        time(23, 59, 59, 1, tzinfo=UTC),
        date(2024, 2, 29),
        timedelta(days=-3, microseconds=7),
        Decimal("-0.000"),
        Decimal("1E+400"),
        Decimal("Infinity"),
        UUID("12345678-1234-5678-1234-567812345678"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_edge_values_round_trip_exactly(value: Any) -> None:
    assert_round_trips(value)


def test_nan_round_trips_as_nan() -> None:
    back = serde.decode(serde.encode([float("nan"), (float("nan"),)]))
    assert math.isnan(back[0]) and type(back[1]) is tuple and math.isnan(back[1][0])


def test_state_keyed_by_tuples_keeps_key_types() -> None:
    state = {("user-1", 1_700_000_000_000): {"n": 3, "total": 12.5}, ("user-2", 0): {}}
    back = serde.decode(serde.encode(state))
    assert back == state
    assert all(type(key) is tuple for key in back)


# Errors.


class Unregistered:
    pass


def test_an_unknown_type_is_refused_naming_the_type_and_where_it_is() -> None:
    with pytest.raises(SerializationError) as caught:
        serde.encode({"window": [1, Unregistered()]})
    message = str(caught.value)
    assert "test_state_serde.Unregistered" in message
    assert "value['window'][1]" in message
    assert "register_codec" in message
    assert isinstance(caught.value, StateError)


def test_an_unknown_dict_key_type_is_refused_naming_it() -> None:
    with pytest.raises(SerializationError, match=r"Unregistered at a key of value"):
        serde.encode({Unregistered(): 1})


class Colour(IntEnum):
    RED = 1


Point = namedtuple("Point", "x y")


@pytest.mark.parametrize("value", [Colour.RED, OrderedDict(a=1), Point(1, 2), [object()]], ids=repr)
def test_subclasses_of_supported_types_are_refused_not_converted(value: Any) -> None:
    with pytest.raises(SerializationError, match="cannot serialise a value of type"):
        serde.encode(value)


class NotAZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)


def test_a_datetime_with_a_foreign_tzinfo_is_refused_naming_it() -> None:
    with pytest.raises(SerializationError, match=r"NotAZone.*ZoneInfo"):
        serde.encode(datetime(2024, 1, 1, tzinfo=NotAZone()))


def test_a_reference_cycle_is_refused() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="cycle"):
        serde.encode(cycle)
    tagged_cycle: list[Any] = [(1,)]
    tagged_cycle.append(tagged_cycle)
    with pytest.raises(SerializationError, match="cycle"):
        serde.encode(tagged_cycle)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xff\xfe", "not written by"),
        (b"", "not written by"),
        (b"~9{}", "newer streamcore"),
        (b'~1{"~":"no-such-tag","v":1}', "unknown tag 'no-such-tag'"),
        (b'~1{"~":"tuple"}', "malformed"),
        (b'~1{"~":"bytes","v":"not base64!"}', "malformed"),
        (b'~1{"~":"int","v":"xyz"}', "malformed"),
        (b'~1{"~":"datetime","v":["2024-01-01T00:00:00",0,"No/Such_Zone"]}', "malformed"),
    ],
)
def test_unreadable_data_raises_serialization_error(data: bytes, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        serde.decode(data)


# Codecs for user classes.


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


def money_registry() -> CodecRegistry:
    registry = CodecRegistry()
    registry.register(Money, "test.Money", lambda m: (m.amount, m.currency), lambda d: Money(*d))
    return registry


def test_a_registered_class_round_trips_inside_other_values() -> None:
    codec = JsonCodec(money_registry())
    value = {("acct", 1): [Money(Decimal("1.50"), "EUR")], "set": {Money(Decimal(2), "USD")}}
    data = codec.encode(value)
    assert b'"~":"test.Money"' in data
    assert codec.decode(data) == value


def test_register_codec_extends_the_default_codec() -> None:
    serde.register_codec(
        Money,
        "test.Money.global",
        lambda m: [str(m.amount), m.currency],
        lambda d: Money(Decimal(d[0]), d[1]),
    )
    try:
        assert serde.decode(serde.encode([Money(Decimal("3"), "GBP")])) == [
            Money(Decimal("3"), "GBP")
        ]
    finally:
        serde.DEFAULT_REGISTRY.unregister(Money)
    with pytest.raises(SerializationError):
        serde.encode(Money(Decimal("3"), "GBP"))


def test_data_with_a_tag_nobody_registered_does_not_decode() -> None:
    data = JsonCodec(money_registry()).encode(Money(Decimal(1), "EUR"))
    with pytest.raises(SerializationError, match=r"unknown tag 'test\.Money'"):
        JsonCodec(CodecRegistry()).decode(data)


def test_registering_conflicting_codecs_is_refused() -> None:
    registry = money_registry()
    with pytest.raises(ValueError, match="already used"):
        registry.register(Point, "test.Money", tuple, tuple)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Money, "test.Money2", tuple, tuple)
    with pytest.raises(ValueError, match="built in"):
        registry.register(Point, "tuple", tuple, tuple)
    with pytest.raises(ValueError, match="natively"):
        registry.register(tuple, "test.tuple", tuple, tuple)
    registry.register(Money, "test.Money", lambda m: m.currency, lambda d: Money(Decimal(0), d))


def test_a_failing_codec_function_raises_serialization_error_with_its_cause() -> None:
    def broken(_: object) -> object:
        raise RuntimeError("boom")

    registry = CodecRegistry()
    registry.register(Money, "test.Money", broken, broken)
    with pytest.raises(SerializationError, match="boom") as caught:
        JsonCodec(registry).encode(Money(Decimal(1), "EUR"))
    assert isinstance(caught.value.__cause__, RuntimeError)
    data = JsonCodec(money_registry()).encode(Money(Decimal(1), "EUR"))
    with pytest.raises(SerializationError, match="boom"):
        JsonCodec(registry).decode(data)


def test_both_codecs_satisfy_the_codec_protocol() -> None:
    assert isinstance(JsonCodec(), Codec)
    assert isinstance(PickleCodec(), Codec)


def test_pickle_codec_is_opt_in_and_round_trips_what_json_refuses() -> None:
    value = {"p": Point(1, 2), "c": Colour.RED}
    assert PickleCodec().decode(PickleCodec().encode(value)) == value
    with pytest.raises(SerializationError):
        serde.encode(value)


def test_pickle_codec_maps_its_errors() -> None:
    with pytest.raises(SerializationError, match="cannot pickle"):
        PickleCodec().encode(lambda: None)
    with pytest.raises(SerializationError, match="cannot unpickle"):
        PickleCodec().decode(b"not a pickle")
