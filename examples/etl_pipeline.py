"""A small ETL pipeline: extract orders, clean them as a stream, score them in processes, load.

Run: ``python examples/etl_pipeline.py [output.jsonl]``

It shows a generator task streaming into a ``streaming=True`` task, a CPU-bound task on
the process executor, blocking file I/O on the thread executor, retries with backoff,
a timeout, resource requests, the plan, progress output, and resuming a run from a
state store with the same run id.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

from streamcore.batch import Pipeline, Retry
from streamcore.state import MemoryStateStore

pipe = Pipeline("orders-etl", max_concurrency=8)


@pipe.task()
def extract() -> Iterator[dict[str, object]]:
    """Orders as they come out of the source system (some of them broken)."""
    rng = random.Random(42)
    for order_id in range(1, 501):
        amount: object = round(rng.uniform(1, 500), 2) if order_id % 50 else "n/a"
        yield {"id": order_id, "customer": f"c{rng.randrange(40)}", "amount": amount}


@pipe.task()
def exchange_rates() -> dict[str, float]:
    """A small lookup every order needs."""
    return {"EUR": 1.0, "USD": 1.08}


@pipe.task(depends_on=[extract, exchange_rates], streaming=True)
async def clean(orders: AsyncIterator[dict[str, object]], rates: dict[str, float]) -> list[dict[str, object]]:
    """Read orders one by one while ``extract`` still runs; drop unusable ones."""
    kept = []
    async for order in orders:
        if isinstance(order["amount"], float):
            kept.append({**order, "amount_usd": round(order["amount"] * rates["USD"], 2)})
    return kept


def score(orders: list[dict[str, object]]) -> dict[str, float]:
    """CPU-bound work, run in another process: total spend per customer."""
    totals: dict[str, float] = {}
    for order in orders:
        customer = str(order["customer"])
        totals[customer] = round(totals.get(customer, 0.0) + float(order["amount_usd"]), 2)  # type: ignore[arg-type]
    return totals


pipe.add_task(
    score,
    depends_on=[clean],
    executor="process",
    timeout=timedelta(seconds=60),
    resources={"cpu": 1},
)


@pipe.task()
def destination() -> str:
    """Where the report goes: the first command-line argument, or a temporary file."""
    if len(sys.argv) > 1:
        return sys.argv[1]
    return str(Path(tempfile.gettempdir()) / "orders-etl.jsonl")


@pipe.task(
    depends_on=["score", destination],
    executor="thread",
    retry=Retry(attempts=3, backoff="exponential", delay=timedelta(milliseconds=100)),
)
def load(totals: dict[str, float], path: str) -> str:
    """Blocking file I/O on a worker thread; retried if the disk hiccups."""
    with Path(path).open("w") as out:
        for customer, total in sorted(totals.items()):
            out.write(json.dumps({"customer": customer, "total_usd": total}) + "\n")
    return path


def main() -> None:
    """Print the plan, run with progress, then run again with the same id to resume."""
    print(pipe.plan(), end="\n\n")
    store = MemoryStateStore()
    result = pipe.run_sync(run_id="2024-01-01", store=store, progress=True)
    print(f"\nok={result.ok}; wrote {len(result.outputs['score'])} customers to {result.outputs['load']}")
    again = pipe.run_sync(run_id="2024-01-01", store=store)
    print("second run with the same run id:", again.statuses())


if __name__ == "__main__":
    main()
