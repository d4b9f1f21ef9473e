"""The checkpoint coordinator: triggers barriers, collects snapshots, commits checkpoints.

Invariants (the protocol is in docs/checkpoints.md):
1. At most one checkpoint is in flight; ids only grow, also across restarts.
2. A checkpoint is complete only once its manifest and the index naming it were written
   in one ``store.commit``, after every blob it refers to was stored.
3. Sinks are told to publish (``commit``) only after that, in checkpoint order.
4. An actor that finished stands in every later checkpoint with its final snapshot.
5. Chains (which checkpoints a stage's state is built from) change only when a
   checkpoint completes; a failed one forces the next to be full.
6. A ``FencedError`` from the store (a scaled-out task whose partition a newer owner
   took) is raised at once, never retried or counted as a tolerable failure.
Design: docs/checkpoints.md
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from streamcore.errors import CheckpointError, FencedError, SerializationError, StateError
from streamcore.io import Sink, Source
from streamcore.state.checkpointing import Checkpointing
from streamcore.state.serde import decode, encode
from streamcore.state.snapshot import ActorPart, apply_blob

__all__ = ["ActorPart", "CheckpointCoordinator", "CheckpointStatistics", "Restored"]

log = logging.getLogger("streamcore.checkpoint")

_PUT_CHUNK = 256


@dataclass(frozen=True)
class CheckpointStatistics:
    """Counters of a flow's checkpoints in this run."""

    completed: int
    failed: int
    consecutive_failures: int
    last_id: int | None
    last_duration_s: float | None
    last_bytes: int | None
    last_full: bool | None
    restored_from: int | None
    last_completed_unix_s: float | None = None
    """When the last checkpoint completed (seconds since the epoch)."""


@dataclass
class Restored:
    """A checkpoint read back: metas per actor and stage, merged entries per stage."""

    checkpoint_id: int
    metas: dict[str, dict[str, Any]]
    entries: dict[str, dict[Any, Any]]

    def meta(self, actor: str, stage: str) -> Any:
        """The meta of ``stage`` as ``actor`` wrote it, else as any actor of that stage did."""
        own = self.metas.get(actor, {})
        if stage in own:
            return own[stage]
        for metas in self.metas.values():
            if stage in metas:
                return metas[stage]
        return None


@dataclass
class _Pending:
    checkpoint_id: int
    full: bool
    started: float
    parts: dict[str, ActorPart] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Unusable(Exception):
    """A stored checkpoint failed a check; the message says which."""


class _Unencodable(CheckpointError):
    """A value in the manifest cannot be encoded: retrying cannot help."""


class CheckpointCoordinator:
    """One per running flow (and per restart): owns the flow's keys in the store."""

    def __init__(self, flow: str, config: Checkpointing, *, owns_store: bool = True) -> None:
        self.flow = flow
        self.owns_store = owns_store
        """False when the store is shared (the tasks of a scaled-out flow): whoever
        shares it opens and closes it."""
        self.config = config
        self.store = config.store
        self.actors: list[str] = []
        self.barrier_targets: dict[str, Callable[[int, bool], None]] = {}
        """Running sources, by actor name: ``request(checkpoint_id, full)``."""
        self.sinks: dict[str, Sink] = {}
        self.sources: dict[str, Source] = {}
        self.next_id = 1
        self.completed_ids: list[int] = []
        self.finals: dict[str, ActorPart] = {}
        self._finals_written: set[str] = set()
        self._chains: dict[str, dict[str, Any]] = {}
        self._refs: dict[int, set[int]] = {}
        self._unclean: dict[int, list[str]] = {}
        """Blob keys of checkpoints that did not complete and are not cleaned up yet."""
        self._keys_of: dict[int, list[str]] = {}
        """The keys each known checkpoint wrote, so pruning needs no SCAN."""
        self._pending: _Pending | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        """Set by ``stop`` and ``suspend``: ``run_periodic`` looks at its flags at once."""
        self._periodic_off = False
        self._one_at_a_time = asyncio.Lock()
        self._deferred: list[Callable[[], Awaitable[None]]] = []
        self._force_full = True
        self._since_full = 0
        self._completed = 0
        self._failed = 0
        self._consecutive = 0
        self._last: tuple[int, float, int, bool] | None = None
        self._last_completed_unix_s: float | None = None
        self.restored_from: int | None = None

    # -- keys ------------------------------------------------------------------------

    @property
    def index_key(self) -> str:
        """The key holding the ids of complete checkpoints."""
        return f"{self.flow}/index"

    @property
    def attempts_key(self) -> str:
        """The key naming what checkpoints not (yet) complete wrote, for cleaning up."""
        return f"{self.flow}/attempts"

    def manifest_key(self, checkpoint_id: int) -> str:
        """The key of checkpoint ``checkpoint_id``'s manifest."""
        return f"{self.flow}/cp/{checkpoint_id}/manifest"

    def _blob_key(self, checkpoint_id: int, actor: str, stage: str, group: int) -> str:
        return f"{self.flow}/cp/{checkpoint_id}/{stage}/{actor}/{group}"

    # -- start: open and restore ---------------------------------------------------------

    async def open(self) -> None:
        """Connect to the store (a ``StateError`` names where it could not)."""
        if self.owns_store:
            await self.store.open()

    async def close(self) -> None:
        """Disconnect from the store."""
        if self.owns_store:
            await self.store.close()

    async def restore(self) -> Restored | None:
        """The newest usable complete checkpoint, or None when there is none at all."""
        found = await self.store.get_many([self.index_key, self.attempts_key])
        raw = found.get(self.index_key)
        complete: list[int] = [] if raw is None else [int(i) for i in decode(raw)["complete"]]
        attempts = found.get(self.attempts_key)
        unclean: dict[int, list[str]] = {} if attempts is None else decode(attempts)
        self.next_id = max([0, *complete, *unclean]) + 1
        # What checkpoints that never completed (a crash, a failure) left behind.
        for n, keys in unclean.items():
            if n not in complete:
                await self.store.delete_many(keys)
        if unclean:
            await self.store.delete_many([self.attempts_key])
        for n in reversed(complete):
            try:
                restored, manifests = await self._read(n)
            except _Unusable as exc:
                log.warning("checkpoint unusable flow=%s checkpoint=%d reason=%r", self.flow, n, str(exc))
                continue
            self.completed_ids = [i for i in complete if i <= n]
            self._refs = manifests
            self.restored_from = n
            log.info("restoring flow=%s checkpoint=%d", self.flow, n)
            return restored
        if complete:
            raise CheckpointError(
                f"flow {self.flow!r}: none of the complete checkpoints {complete} in "
                f"{self.store.describe()} is usable (see the warnings); delete the keys "
                f"starting with {self.flow + '/'!r} to start from scratch"
            )
        return None

    async def _load_manifest(self, n: int) -> dict[str, Any]:
        data = await self.store.get(self.manifest_key(n))
        if data is None:
            raise _Unusable(f"manifest {self.manifest_key(n)!r} is missing")
        return _unwrap_manifest(data, self.manifest_key(n))

    def _blobs_key(self, checkpoint_id: int) -> str:
        return f"{self.flow}/cp/{checkpoint_id}/blobs"

    async def _read(self, n: int) -> tuple[Restored, dict[int, set[int]]]:
        manifest = await self._load_manifest(n)
        chains: dict[str, dict[str, Any]] = manifest["chains"]
        ids = sorted({i for chain in chains.values() for i in chain["ids"]})
        lists = await self.store.get_many([self._blobs_key(i) for i in ids])
        crcs: dict[int, dict[str, int]] = {}
        for i in ids:
            data = lists.get(self._blobs_key(i))
            if data is None:
                raise _Unusable(f"the blob list of checkpoint {i} ({self._blobs_key(i)!r}) is missing")
            crcs[i] = _unwrap_manifest(data, self._blobs_key(i))
            self._keys_of[i] = [*crcs[i], self._blobs_key(i), self.manifest_key(i)]
        wanted: dict[str, int] = {}
        for chain_name, chain in chains.items():
            for i in chain["ids"]:
                prefix = f"{self.flow}/cp/{i}/{chain_name}/"
                wanted.update((k, c) for k, c in crcs[i].items() if k.startswith(prefix))
        found = await self.store.get_many(list(wanted))
        entries: dict[str, dict[Any, Any]] = {}
        for chain_name, chain in chains.items():
            merged = entries.setdefault(chain["stage"], {})
            for i in chain["ids"]:
                prefix = f"{self.flow}/cp/{i}/{chain_name}/"
                for key in sorted(k for k in crcs[i] if k.startswith(prefix)):
                    blob = found.get(key)
                    if blob is None:
                        raise _Unusable(f"state blob {key!r} is missing")
                    if zlib.crc32(blob) != wanted[key]:
                        raise _Unusable(f"state blob {key!r} fails its checksum")
                    try:
                        apply_blob(merged, blob)
                    except (SerializationError, CheckpointError) as exc:
                        raise _Unusable(f"state blob {key!r} cannot be decoded: {exc}") from exc
        refs = {n: set(ids)}
        # Keep what the other retained checkpoints refer to (they may be restored later).
        raw = await self.store.get(self.index_key)
        older = [] if raw is None else [int(i) for i in decode(raw)["complete"] if int(i) < n]
        for m in older[-(self.config.keep - 1):] if self.config.keep > 1 else []:
            try:
                other = await self._load_manifest(m)
            except _Unusable:
                continue
            refs[m] = {i for chain in other["chains"].values() for i in chain["ids"]}
        self._chains = chains
        return Restored(n, manifest["actors"], entries), refs

    # -- during the run --------------------------------------------------------------------

    def ack(self, checkpoint_id: int, part: ActorPart) -> None:
        """An actor snapshotted at barrier ``checkpoint_id`` (called from its task)."""
        pending = self._pending
        if pending is None or pending.checkpoint_id != checkpoint_id:
            return  # a checkpoint that already failed or timed out
        pending.parts[part.actor] = part
        self._check_done()

    def final(self, part: ActorPart) -> None:
        """An actor finished; its final snapshot stands for every later checkpoint."""
        self.finals[part.actor] = part
        self.barrier_targets.pop(part.actor, None)
        self._check_done()

    def _check_done(self) -> None:
        pending = self._pending
        if pending is None or pending.done.is_set():
            return
        if all(a in pending.parts or a in self.finals for a in self.actors):
            pending.done.set()

    @property
    def all_finished(self) -> bool:
        """True once every actor handed over its final snapshot."""
        return all(a in self.finals for a in self.actors)

    def defer_close(self, close: Callable[[], Awaitable[None]]) -> None:
        """Close a connector once the final checkpoint is committed (``close_deferred``)."""
        self._deferred.append(close)

    async def close_deferred(self) -> None:
        """Close what ``defer_close`` was given; raise the first error after closing all."""
        first: BaseException | None = None
        deferred, self._deferred = self._deferred, []
        for close in deferred:
            try:
                await close()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def stop(self) -> None:
        """End ``run_periodic`` and abandon a checkpoint waiting for snapshots.

        A flag rather than ``Task.cancel()``: a cancellation can be lost (in
        ``asyncio.wait_for`` when the awaited event fires in the same loop step, or
        inside a client library), and a flow must not outlive its actors.
        """
        self._stopping.set()
        self._wake.set()

    async def run_periodic(self) -> None:
        """Take a checkpoint every interval until ``stop()`` or ``suspend()``; raise once
        failures are too many."""
        stopping, wake = self._stopping, self._wake
        while not stopping.is_set():
            waiter = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait([waiter], timeout=self.config.interval_s)
            finally:
                waiter.cancel()
            if stopping.is_set() or self._periodic_off or self.all_finished:
                return
            async with self._one_at_a_time:
                if self._periodic_off:
                    return
                await self.checkpoint()

    async def suspend(self) -> int:
        """Stop the periodic checkpoints and take one more now, retrying within the limits.

        For a flow stopping without ending its stream (its sources paused first, so the
        checkpoint holds everything read): the sinks have committed its output when this
        returns. Returns the checkpoint's id."""
        self._periodic_off = True
        self._wake.set()
        async with self._one_at_a_time:
            while True:
                if self._stopping.is_set():
                    raise CheckpointError(f"flow {self.flow!r} stopped before its suspend checkpoint")
                n = self.next_id
                if await self.checkpoint():
                    return n
                # Pausing between attempts is the point: the store may be back soon.
                await asyncio.sleep(min(self.config.interval_s, 1.0))

    async def checkpoint(self) -> bool:
        """Take one checkpoint; True when it completed. Raises ``CheckpointError`` when failures
        pass ``tolerable_failures``, or when a state value cannot be encoded."""
        n = self.next_id
        self.next_id += 1
        full = self._force_full or self._since_full + 1 >= self.config.compact_every
        pending = _Pending(n, full, time.perf_counter())
        self._pending = pending
        for request in list(self.barrier_targets.values()):
            request(n, full)
        self._check_done()
        written: list[str] = []
        try:
            waiters = [asyncio.ensure_future(pending.done.wait()), asyncio.ensure_future(self._stopping.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.config.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if not pending.done.is_set():
                if self._stopping.is_set():
                    self._pending = None
                    return False  # the flow is ending: nothing to count
                missing = [a for a in self.actors if a not in pending.parts and a not in self.finals]
                raise CheckpointError(
                    f"checkpoint {n} timed out after {self.config.timeout_s}s waiting for {missing}"
                )
            size = await self._write(pending, written)
        except (_Unencodable, FencedError):
            # Retrying cannot help: a newer owner holds these keys (docs/scale-out.md#fencing).
            self._pending = None
            raise
        except (StateError, CheckpointError) as exc:
            self._pending = None
            self._failed += 1
            self._consecutive += 1
            self._force_full = True
            log.warning(
                "checkpoint failed flow=%s checkpoint=%d consecutive=%d error=%r",
                self.flow, n, self._consecutive, str(exc),
            )
            await self._forget(n, written)
            if self._consecutive > self.config.tolerable_failures:
                raise CheckpointError(
                    f"flow {self.flow!r}: {self._consecutive} checkpoints in a row failed "
                    f"(tolerable_failures={self.config.tolerable_failures}); last error: {exc}"
                ) from exc
            return False
        self._pending = None
        self._completed += 1
        self._consecutive = 0
        self._force_full = False
        self._since_full = 0 if full else self._since_full + 1
        duration = time.perf_counter() - pending.started
        self._last = (n, duration, size, full)
        self._last_completed_unix_s = time.time()
        log.info(
            "checkpoint complete flow=%s checkpoint=%d full=%s bytes=%d duration_ms=%.1f",
            self.flow, n, full, size, duration * 1000,
        )
        await self._commit_sinks(n, pending)
        await self._prune()
        return True

    async def _write(self, pending: _Pending, written: list[str]) -> int:
        """Store every blob, then the manifest and index in one commit; return bytes written."""
        n = pending.checkpoint_id
        chains = {name: {"stage": c["stage"], "ids": list(c["ids"])} for name, c in self._chains.items()}
        crcs: dict[str, int] = {}
        metas: dict[str, dict[str, Any]] = {}
        blobs: dict[str, bytes] = {}
        new_finals: list[str] = []
        for actor in self.actors:
            part = pending.parts.get(actor)
            is_final_part = part is None
            if part is None:
                part = self.finals[actor]
            metas[actor] = {snap.stage: snap.meta for snap in part.snapshots}
            if is_final_part and actor in self._finals_written:
                continue  # already stored by an earlier checkpoint; its chain stands
            if is_final_part:
                new_finals.append(actor)
            for snap in part.snapshots:
                name = f"{snap.stage}/{actor}"
                chain = chains.get(name)
                if snap.full or chain is None:
                    chain = chains[name] = {"stage": snap.stage, "ids": []}
                if snap.blobs:
                    chain["ids"].append(n)
                for group, blob in snap.blobs.items():
                    key = self._blob_key(n, actor, snap.stage, group)
                    blobs[key] = blob
                    crcs[key] = zlib.crc32(blob)
        items = list(blobs.items())
        if items:
            # Recorded with the first blobs, so a crash mid-way leaves a list to clean up.
            self._unclean[n] = list(blobs)
        for i in range(0, len(items), _PUT_CHUNK):
            chunk = dict(items[i:i + _PUT_CHUNK])
            written.extend(chunk)
            if i == 0:
                chunk[self.attempts_key] = encode(self._unclean)
            await self.store.put_many(chunk)
        manifest = {"id": n, "flow": self.flow, "created_ms": int(time.time() * 1000),
                    "actors": metas, "chains": chains}
        try:
            body = encode(manifest)
        except SerializationError as exc:
            raise _Unencodable(f"checkpoint {n}: cannot encode a stage's meta: {exc}") from exc
        completed = [*self.completed_ids, n]
        blob_list = encode(crcs)
        unclean = {i: keys for i, keys in self._unclean.items() if i != n}
        await self.store.commit(
            {
                self._blobs_key(n): _wrap_manifest(blob_list),
                self.manifest_key(n): _wrap_manifest(body),
                self.index_key: encode({"complete": completed}),
                self.attempts_key: encode(unclean),
            },
            (),
        )
        self._unclean = unclean
        self.completed_ids = completed
        self._chains = chains
        self._refs[n] = {i for c in chains.values() for i in c["ids"]}
        self._keys_of[n] = [*blobs, self._blobs_key(n), self.manifest_key(n)]
        self._finals_written.update(new_finals)
        return sum(len(b) for b in blobs.values()) + len(body) + len(blob_list)

    async def _commit_sinks(self, n: int, pending: _Pending) -> None:
        """Publish the sinks' output and tell sources their positions are safe."""
        for actor in self.actors:
            part = pending.parts.get(actor) or self.finals.get(actor)
            if part is None:
                continue
            for snap in part.snapshots:
                sink = self.sinks.get(snap.stage)
                if sink is not None and snap.meta is not None:
                    done = sink.commit(n, snap.meta)
                    if done is not None and inspect.isawaitable(done):
                        await done
                source = self.sources.get(snap.stage)
                commit_offsets = getattr(source, "commit_offsets", None)
                if commit_offsets is not None and snap.meta is not None:
                    # For lag monitoring only: positions live in the checkpoint.
                    try:
                        done = commit_offsets(snap.meta["position"])
                        if done is not None and inspect.isawaitable(done):
                            await done
                    except Exception as exc:
                        log.warning("committing source positions failed stage=%s error=%r", snap.stage, str(exc))

    async def _forget(self, n: int, written: list[str]) -> None:
        """Best effort: drop what a failed checkpoint wrote (restore deletes leftovers too)."""
        try:
            await self.store.delete_many(written)
            self._unclean.pop(n, None)
        except StateError:
            pass

    async def _prune(self) -> None:
        """Keep the last ``keep`` complete checkpoints and every blob their chains use."""
        keep = self.completed_ids[-self.config.keep:]
        dropped = [i for i in self.completed_ids if i not in keep]
        if not dropped:
            return
        referenced = set(keep).union(*(self._refs.get(m, {m}) for m in keep))
        candidates = set(dropped).union(*(self._refs.get(m, set()) for m in dropped))
        try:
            await self.store.commit({self.index_key: encode({"complete": keep})},
                                    [self.manifest_key(m) for m in dropped])
            self.completed_ids = keep
            for m in dropped:
                self._refs.pop(m, None)
            for old in sorted(candidates - referenced):
                keys = self._keys_of.pop(old, None)
                if keys is None:
                    await self.store.delete_prefix(f"{self.flow}/cp/{old}/")
                else:
                    await self.store.delete_many(keys)
        except StateError as exc:
            log.warning("pruning old checkpoints failed flow=%s error=%r", self.flow, str(exc))

    # -- end ---------------------------------------------------------------------------------

    async def finish(self) -> None:
        """Every actor finished: commit the final checkpoint (retrying within the limits)."""
        self._stopping.clear()
        while True:
            if await self.checkpoint():
                return
            await asyncio.sleep(min(self.config.interval_s, 1.0))

    def statistics(self) -> CheckpointStatistics:
        """Counters of this run's checkpoints."""
        last = self._last
        return CheckpointStatistics(
            completed=self._completed,
            failed=self._failed,
            consecutive_failures=self._consecutive,
            last_id=None if last is None else last[0],
            last_duration_s=None if last is None else last[1],
            last_bytes=None if last is None else last[2],
            last_full=None if last is None else last[3],
            restored_from=self.restored_from,
            last_completed_unix_s=self._last_completed_unix_s,
        )


def _wrap_manifest(body: bytes) -> bytes:
    return b"%08x " % zlib.crc32(body) + body


def _unwrap_manifest(data: bytes, key: str) -> Any:
    head, _, body = data.partition(b" ")
    try:
        ok = int(head, 16) == zlib.crc32(body)
    except ValueError:
        ok = False
    if not ok:
        raise _Unusable(f"{key!r} fails its checksum")
    try:
        manifest = decode(body)
    except SerializationError as exc:
        raise _Unusable(f"{key!r} cannot be decoded: {exc}") from exc
    return manifest
