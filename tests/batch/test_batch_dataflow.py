"""A pipeline task may run a stream ``Dataflow``: batch and streams share one runtime."""

from __future__ import annotations

from datetime import timedelta

import streamcore as sc
from connectors.memory import IterableSource, ListSink
from streamcore.batch import Pipeline


async def test_an_async_task_runs_a_dataflow_over_its_dependency_output() -> None:
    pipe = Pipeline("stream_inside")

    @pipe.task()
    def extract() -> list[dict[str, int]]:
        return [{"user": i % 3, "amount": i * 10, "ts": i * 1000} for i in range(12)]

    @pipe.task(depends_on=[extract])
    async def big_spenders(rows: list[dict[str, int]]) -> list[dict[str, int]]:
        flow = sc.Dataflow("big_spenders")
        out = ListSink()
        (
            flow.source(IterableSource(rows), timestamp=lambda e: e["ts"], max_out_of_orderness=timedelta(0))
            .filter(lambda e: e["amount"] >= 50)
            .map(lambda e: {"user": e["user"], "amount": e["amount"]})
            .sink(out)
        )
        await flow.run()
        return list(out.items)

    @pipe.task(depends_on=[big_spenders])
    def total(rows: list[dict[str, int]]) -> int:
        return sum(row["amount"] for row in rows)

    result = await pipe.run()
    assert result.ok, result.tasks
    assert len(result.outputs["big_spenders"]) == 7
    assert result.outputs["total"] == sum(i * 10 for i in range(5, 12))
