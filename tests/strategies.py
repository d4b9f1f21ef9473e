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


# -- joins: scripts of batches to either side and watermark moves --------------------

JOIN_KEYS = ("a", "b", "c")


@dataclass(frozen=True)
class JoinRecord:
    """One record of a join test: which side, its key, its event time, a unique id."""

    side: str
    key: str
    ts: int
    id: int


@st.composite
def join_scripts(draw: st.DrawFn, max_steps: int = 24) -> list[tuple[str, Any]]:
    """Steps ``("L" | "R", [JoinRecord, ...])`` (a batch to one side) and ``("W", w)`` (the
    join's watermark moves to ``w``), in order. Timestamps drift forward with jitter and a
    few very late outliers; one side often goes quiet for several steps while the other
    goes on (both sides idle in turn), and watermarks sometimes jump."""
    steps: list[tuple[str, Any]] = []
    clock = draw(st.integers(0, 20))
    watermark = -1_000
    next_id = 0
    side = draw(st.sampled_from("LR"))
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["batch", "batch", "batch", "switch", "watermark"]))
        if kind == "switch":
            side = "R" if side == "L" else "L"
            continue
        if kind == "watermark":
            watermark = max(watermark, clock - draw(st.integers(0, 25)))
            steps.append(("W", watermark))
            continue
        batch = []
        for _ in range(draw(st.integers(1, 4))):
            clock += draw(st.integers(0, 5))
            ts = clock - draw(st.integers(0, 12))
            if draw(st.integers(0, 9)) == 0:
                ts -= draw(st.integers(10, 60))  # an outlier, likely late
            batch.append(JoinRecord(side, draw(st.sampled_from(JOIN_KEYS)), ts, next_id))
            next_id += 1
        steps.append((side, batch))
    return steps


def in_order_join_inputs(max_records: int = 40) -> st.SearchStrategy[list[JoinRecord]]:
    """Records of both sides with timestamps never behind the other records of their side
    by more than 3 ms (a 3 ms out-of-orderness bound makes none of them late)."""

    @st.composite
    def build(draw: st.DrawFn) -> list[JoinRecord]:
        records = []
        clocks = {"L": 0, "R": 0}
        for i in range(draw(st.integers(0, max_records))):
            side = draw(st.sampled_from("LR"))
            clocks[side] += draw(st.integers(0, 6))
            ts = clocks[side] - draw(st.integers(0, 3))
            records.append(JoinRecord(side, draw(st.sampled_from(JOIN_KEYS)), max(ts, 0), i))
        return records

    return build()
