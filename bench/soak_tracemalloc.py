"""What grows in the soak daemon's Python heap: tracemalloc snapshots compared.

``bench_soak.py --tracemalloc-every S`` makes the daemon (``soak_job.trace_allocations``)
dump a snapshot every ``S`` seconds; after the run, ``report`` reads them and returns the
markdown section of the results file:

* the traced memory of every snapshot over time, and what each early snapshot is short
  of the last one;
* the allocation sites (file:line) that grew most from the first snapshot to the end of
  the warm-up (the first minutes), with what each added after it;
* the sites that grew most from the end of the warm-up to the last snapshot, with their
  size at evenly spaced snapshots in between, and whether each still rose to new highs
  in the second half of that span (growing) or not (bounded).
"""

from __future__ import annotations

import re
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

# tracemalloc's own bookkeeping and the import machinery are not the flow's memory.
_IGNORED = (
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)
# Up to and including these folders a file's path says nothing about what it is.
_PATH_PREFIX = re.compile(r"^.*?/(site-packages|lib/python3\.\d+|engine)/")
# How far a site's highest size in the second half of the span must rise above its
# highest in the first half, as a share of its growth, for the site to count as still
# growing: a steady leak rises by half of its growth, a buffer that filled up early and
# since goes up and down does not rise at all. Comparing highs, not the last snapshot,
# keeps a buffer that happens to be full at the end from looking like a leak.
GROWING_SHARE = 0.25
# Below this (bytes) a rise is noise, whatever its share.
NOISE_BYTES = 64 * 1024


Site = tuple[str, int]


@dataclass
class Point:
    """One snapshot reduced to its size per site: taken at ``t`` s from the soak's start."""

    t: float
    sites: dict[Site, tuple[int, int]]
    """(size in bytes, blocks) per (file, line)."""

    @property
    def size(self) -> int:
        """The traced bytes of the whole snapshot."""
        return sum(size for size, _ in self.sites.values())

    @property
    def blocks(self) -> int:
        """The traced memory blocks of the whole snapshot."""
        return sum(count for _, count in self.sites.values())

    def at(self, site: Site) -> tuple[int, int]:
        """(bytes, blocks) of ``site``; zero where it held nothing."""
        return self.sites.get(site, (0, 0))


def load(directory: Path, t0: float) -> list[Point]:
    """The snapshots in ``directory`` (``snap-<wall clock>.tracemalloc``) in time order,
    ``t`` relative to the wall clock ``t0``; one at a time, so only the sums stay."""
    points = []
    for path in sorted(directory.glob("snap-*.tracemalloc")):
        wall = float(path.name.removeprefix("snap-").removesuffix(".tracemalloc"))
        snapshot = tracemalloc.Snapshot.load(str(path)).filter_traces(
            [tracemalloc.Filter(False, pattern) for pattern in _IGNORED]
        )
        sites = {
            (s.traceback[0].filename, s.traceback[0].lineno): (s.size, s.count)
            for s in snapshot.statistics("lineno")
        }
        points.append(Point(wall - t0, sites))
    points.sort(key=lambda p: p.t)
    return points


def short(site: Site) -> str:
    """``file:line`` without the folders every path shares."""
    name = _PATH_PREFIX.sub("", site[0])
    for folder in ("bench", "streamcore", "connectors"):
        if f"/{folder}/" in name:
            name = folder + "/" + name.rsplit(f"/{folder}/", 1)[1]
            break
    return f"{name}:{site[1]}"


def _kib(n: float) -> str:
    return f"{n / 1024:+,.0f}" if n else "0"


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.2f}"


def _growth(old: Point, new: Point) -> list[tuple[Site, int, int]]:
    """(site, bytes added, blocks added) from ``old`` to ``new``, largest first."""
    out = []
    for site in old.sites.keys() | new.sites.keys():
        (s0, c0), (s1, c1) = old.at(site), new.at(site)
        out.append((site, s1 - s0, c1 - c0))
    out.sort(key=lambda x: x[1], reverse=True)
    return out


def _spaced(points: list[Point], n: int) -> list[Point]:
    """``n`` points evenly spaced from the first to the last (all when fewer)."""
    if len(points) <= n:
        return points
    return [points[round(i * (len(points) - 1) / (n - 1))] for i in range(n)]


def report(points: list[Point], warmup: float, every: float, frames: int, top: int) -> str:
    """The results file's tracemalloc section (markdown)."""
    if len(points) < 3:
        return f"## tracemalloc\n\nOnly {len(points)} snapshots were written: nothing to compare.\n"
    first, last = points[0], points[-1]
    # The snapshot nearest the end of the warm-up (the first one after it if none before).
    before = [p for p in points if p.t <= warmup]
    warm = before[-1] if before else points[1]
    after = [p for p in points if p.t >= warm.t]
    half = len(after) // 2
    mid = after[half]
    lines = [
        "## tracemalloc",
        "",
        f"The daemon traced its allocations ({frames} frame per trace) and dumped a snapshot "
        f"every {every:g} s; {len(points)} snapshots from t = {first.t:.0f} s to "
        f"{last.t:.0f} s (t from the producer's start; the first is taken when the flow is "
        f"built, before any input). Traced memory is Python's own allocations; RSS adds the "
        f"interpreter, C libraries and the allocator's free space.",
        "",
        "Traced memory over time, and what each snapshot is short of the last:",
        "",
        "| t (s) | traced MiB | blocks | last - this (KiB) | last - this (blocks) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        mark = " (end of warm-up)" if p is warm else ""
        lines.append(
            f"| {p.t:.0f}{mark} | {_mib(p.size)} | {p.blocks:,} | {_kib(last.size - p.size)} | "
            f"{last.blocks - p.blocks:+,} |"
        )
    lines += [
        "",
        f"Top {top} sites by growth in the first minutes, first snapshot (t = {first.t:.0f} s) "
        f"to the end of the warm-up (t = {warm.t:.0f} s), and what each added after it (to "
        f"t = {last.t:.0f} s):",
        "",
        "| site | KiB added | blocks added | KiB at end of warm-up | KiB added after it |",
        "|---|---:|---:|---:|---:|",
    ]
    for site, size, count in [g for g in _growth(first, warm) if g[1] > 0][:top]:
        lines.append(
            f"| `{short(site)}` | {_kib(size)} | {count:+,} | {warm.at(site)[0] / 1024:,.0f} | "
            f"{_kib(last.at(site)[0] - warm.at(site)[0])} |"
        )
    cols = _spaced(after, 5)
    lines += [
        "",
        f"Top {top} sites by growth after the warm-up (t = {warm.t:.0f} s to {last.t:.0f} s), "
        f"KiB at evenly spaced snapshots; *growing* when its highest size in the second half "
        f"(from t = {mid.t:.0f} s) rose above its highest before by more than "
        f"{GROWING_SHARE:.0%} of its growth and more than {NOISE_BYTES // 1024} KiB, else "
        f"*bounded*:",
        "",
        "| site | KiB added | blocks added | "
        + " | ".join(f"KiB at {p.t:.0f} s" for p in cols)
        + " | rise of the high, 2nd half (KiB) | |",
        "|---|---:|---:|" + "---:|" * len(cols) + "---:|---|",
    ]
    for site, size, count in [g for g in _growth(warm, last) if g[1] > 0][:top]:
        highs = [
            max((p.at(site)[0] for p in part), default=0) for part in (after[:half], after[half:])
        ]
        late = highs[1] - highs[0]
        growing = late > GROWING_SHARE * size and late > NOISE_BYTES
        series = " | ".join(f"{p.at(site)[0] / 1024:,.0f}" for p in cols)
        lines.append(
            f"| `{short(site)}` | {_kib(size)} | {count:+,} | {series} | {_kib(late)} | "
            f"{'growing' if growing else 'bounded'} |"
        )
    total, late_total = last.size - warm.size, last.size - mid.size
    lines += [
        "",
        f"All sites: {_kib(total)} KiB after the warm-up, of which {_kib(late_total)} KiB in "
        f"its second half.",
    ]
    return "\n".join(lines) + "\n"
