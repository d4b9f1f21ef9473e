"""Random graphs of sources, stateless stages, unions and fan-outs deliver every record and end."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.graph.validate import consumers_of


class SlowSink(ListSink):
    """A list sink that yields to the loop before every batch."""

    async def write_batch(self, records: list[Any]) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.items.extend(records)


def build(seed: int) -> tuple[sc.Dataflow, list[tuple[ListSink, list[int]]]]:
    """A random flow, and each sink with the records it must receive (in any order)."""
    rnd = random.Random(seed)
    flow = sc.Dataflow(f"random-{seed}", mailbox_capacity=rnd.randint(1, 30), chaining=rnd.random() < 0.5)
    streams: list[tuple[sc.Stream, list[int]]] = []
    for i in range(rnd.randint(1, 3)):
        data = list(range(i * 1_000, i * 1_000 + rnd.randint(0, 200)))
        streams.append((flow.source(IterableSource(data), batch_size=rnd.randint(1, 20)), data))
    for _ in range(rnd.randint(1, 8)):
        stream, model = rnd.choice(streams)
        pick = rnd.random()
        if pick < 0.3:
            streams.append((stream.map(lambda x: x + 1), [x + 1 for x in model]))
        elif pick < 0.5:
            streams.append((stream.filter(lambda x: x % 3), [x for x in model if x % 3]))
        elif pick < 0.65:
            streams.append((stream.flat_map(lambda x: [x, x]), [y for x in model for y in (x, x)]))
        else:
            others = [(s, m) for s, m in streams if s.node is not stream.node]
            if others:
                other, other_model = rnd.choice(others)
                streams.append((stream.union(other), model + other_model))
    sinks: list[tuple[ListSink, list[int]]] = []
    for stream, model in streams:
        consumed = consumers_of(flow.nodes).get((stream.node.id, stream.port))
        if not consumed or rnd.random() < 0.3:
            out = SlowSink() if rnd.random() < 0.3 else ListSink()
            stream.sink(out)
            sinks.append((out, model))
    return flow, sinks


@pytest.mark.parametrize(
    "seeds", [range(i, i + 50) for i in range(0, 300, 50)], ids=lambda r: f"seeds {r.start}-{r.stop - 1}"
)
async def test_a_random_topology_delivers_every_record_to_every_sink_and_ends(seeds: range) -> None:
    for seed in seeds:
        flow, sinks = build(seed)
        try:
            await asyncio.wait_for(flow.run(), 5)
        except TimeoutError:
            pytest.fail(f"seed {seed}: the flow hung")
        for out, model in sinks:
            assert Counter(out.items) == Counter(model), f"seed {seed}"
            assert out.closed
