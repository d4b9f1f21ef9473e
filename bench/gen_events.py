"""Deterministic JSON-lines click events for the benchmark suite.

One event per line::

    {"user": "u<k>", "page": "/page/<j>", "amount": <0..100, 2 dp>, "ts": <int ms>}

* ``user``: ``k`` in ``[0, 10000)`` with a Zipf-like skew (weight ``1 / (k + 1)``), so a
  few keys are hot and most are rare, as in real click streams.
* ``page``: one of 100 paths, uniform.
* ``amount``: a whole number of cents in ``[0, 10000]``, divided by 100.
* ``ts``: a hidden clock starts at ``T0`` and moves 0, 1 or 2 ms per event; each event
  is stamped with that clock minus up to ``MAX_DISORDER_MS``. Because the clock never
  goes back, ``ts >= max(ts so far) - MAX_DISORDER_MS`` holds for every event, so a
  watermark of ``max - 2 s`` never sees a late record.

The output depends only on ``n`` and ``seed``. ``cached_events(n, seed)`` returns the
path of a cached file under ``/tmp``, writing it only when it is missing.

Usage: ``python bench/gen_events.py [--events N] [--seed S] [--out PATH]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from pathlib import Path

N_USERS = 10_000
N_PAGES = 100
T0 = 1_750_000_000_000
MAX_DISORDER_MS = 2_000
DEFAULT_EVENTS = 1_000_000
DEFAULT_SEED = 7
CACHE_DIR = Path("/tmp/streamcore-bench")
_CHUNK = 50_000


def cache_path(n: int, seed: int) -> Path:
    """Where the file for ``n`` events and ``seed`` is cached."""
    return CACHE_DIR / f"events-n{n}-s{seed}.jsonl"


def write_events(n: int, seed: int, out: Path) -> Path:
    """Write ``n`` events to ``out`` (atomically: readers never see a partial file)."""
    rng = random.Random(seed)
    users = [f"u{k}" for k in range(N_USERS)]
    cum_weights = list(itertools.accumulate(1.0 / (k + 1) for k in range(N_USERS)))
    pages = [f"/page/{j}" for j in range(N_PAGES)]
    clock = T0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        written = 0
        while written < n:
            m = min(_CHUNK, n - written)
            lines = []
            for user in rng.choices(users, cum_weights=cum_weights, k=m):
                clock += rng.randrange(3)
                ts = clock - rng.randrange(MAX_DISORDER_MS + 1)
                amount = rng.randrange(10_001) / 100
                page = pages[rng.randrange(N_PAGES)]
                lines.append(f'{{"user":"{user}","page":"{page}","amount":{amount!r},"ts":{ts}}}\n')
            f.writelines(lines)
            written += m
    os.replace(tmp, out)
    return out


def cached_events(n: int = DEFAULT_EVENTS, seed: int = DEFAULT_SEED) -> Path:
    """The path of the events file for ``n`` and ``seed``, generated if missing."""
    path = cache_path(n, seed)
    if not path.exists():
        write_events(n, seed, path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=None, help="write here instead of the cache")
    a = ap.parse_args(argv)
    path = write_events(a.events, a.seed, a.out) if a.out else cached_events(a.events, a.seed)
    print(path)


if __name__ == "__main__":
    sys.exit(main())
