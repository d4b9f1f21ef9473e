"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# -- stateless stages: a small library of pure functions, by name ---------------------


async def _async_add_three(x: int) -> int:
    return x + 3


async def _async_is_odd(x: int) -> bool:
    return x % 2 == 1


async def _async_split(x: int) -> list[int]:
    return [x // 2, x - x // 2]


MAPS: dict[str, Callable[[int], Any]] = {
    "inc": lambda x: x + 1,
    "double": lambda x: x * 2,
    "negate": lambda x: -x,
    "square_mod": lambda x: (x * x) % 1009,
    "async_add_three": _async_add_three,
}
FILTERS: dict[str, Callable[[int], Any]] = {
    "even": lambda x: x % 2 == 0,
    "positive": lambda x: x > 0,
    "small": lambda x: abs(x) < 60,
    "not_multiple_of_3": lambda x: x % 3 != 0,
    "async_odd": _async_is_odd,
}
FLAT_MAPS: dict[str, Callable[[int], Iterable[int]]] = {
    "duplicate": lambda x: [x, x],
    "drop_all": lambda x: [],
    "up_to_mod_3": lambda x: range(x % 3),
    "with_offset": lambda x: (x, x + 100),
    "async_split": _async_split,
}
LIBRARY: dict[str, dict[str, Callable[[int], Any]]] = {
    "map": MAPS,
    "filter": FILTERS,
    "flat_map": FLAT_MAPS,
}


@dataclass(frozen=True)
class StageSpec:
    """One stateless stage: its operator, the library function's name, its error policy."""

    op: str
    fn_name: str
    on_error: str = "fail"

    @property
    def fn(self) -> Callable[[int], Any]:
        return LIBRARY[self.op][self.fn_name]

    @property
    def is_async(self) -> bool:
        return self.fn_name.startswith("async_")


def stage_specs() -> st.SearchStrategy[StageSpec]:
    """Any stage from the library; a few use ``on_error="skip"`` (their functions never fail)."""
    return st.sampled_from(sorted(LIBRARY)).flatmap(
        lambda op: st.builds(
            StageSpec,
            op=st.just(op),
            fn_name=st.sampled_from(sorted(LIBRARY[op])),
            on_error=st.sampled_from(["fail", "fail", "skip"]),
        )
    )


def chains(max_stages: int = 6) -> st.SearchStrategy[list[StageSpec]]:
    """Chains of 1 to ``max_stages`` stateless stages."""
    return st.lists(stage_specs(), min_size=1, max_size=max_stages)


def int_records(max_size: int = 60) -> st.SearchStrategy[list[int]]:
    """Small lists of small ints (negative ones included)."""
    return st.lists(st.integers(min_value=-200, max_value=200), max_size=max_size)


def batch_sizes() -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=25)


def mailbox_capacities() -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=64)
