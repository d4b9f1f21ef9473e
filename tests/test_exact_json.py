"""JSON decoding keeps integers of any size exact, one text or a batch at a time."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamcore import exact_json

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.text(max_size=25)
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def typed(value: Any) -> Any:
    """A picture of ``value`` that differs whenever a type differs (1 vs 1.0 vs True)."""
    if isinstance(value, list):
        return ["list", [typed(x) for x in value]]
    if isinstance(value, dict):
        return ["dict", [[k, typed(x)] for k, x in value.items()]]
    return [type(value).__name__, value]


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, max_size=8))
def test_the_loads_chosen_for_a_batch_decodes_every_text_of_it_exactly(values: list[Any]) -> None:
    texts = [orjson.dumps(v) if _fits_orjson(v) else json.dumps(v).encode() for v in values]
    loads = exact_json.loads_for(texts)
    assert [typed(loads(t)) for t in texts] == [typed(json.loads(t)) for t in texts]


def test_one_big_integer_anywhere_in_a_batch_makes_the_whole_batch_exact() -> None:
    texts = [b'{"id": 2}'] * 50 + [b'{"id": 100000000000000000000000000001}']
    loads = exact_json.loads_for(texts)
    assert loads is exact_json.loads
    assert loads(texts[-1]) == {"id": 100000000000000000000000000001}


def test_a_batch_without_long_digit_runs_uses_orjson_alone() -> None:
    # Ten digits at the end of one text and ten at the start of the next are no run of 19.
    texts = [b"1234567890", b"1234567890", b'{"ts": 1749999998646}']
    assert exact_json.loads_for(texts) is orjson.loads
    assert exact_json.loads_for([]) is orjson.loads


def _fits_orjson(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True
