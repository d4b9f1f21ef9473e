"""``RedisStreamSink``: adds each record as one entry of a Redis stream, at least once or
exactly once.

At least once (the default): ``write_batch`` encodes the whole batch first (a record
that cannot be encoded fails the batch before anything is sent), then sends its XADDs
in one pipeline; when it returns, every entry of the batch is in the stream.

Exactly once (``exactly_once=True``) under checkpointing is a two-phase commit against
the checkpoint protocol, with the keys and the script of ``_staging.py``:
1. ``open`` takes a new epoch (INCR), which fences any earlier process of this sink,
   publishes what the restored checkpoint sealed and the marker does not show yet, and
   deletes every other staged list (output after that checkpoint, written again by the
   replay).
2. ``write_batch`` RPUSHes the batch's entries to the staged list of the current
   sequence number: durable in Redis, invisible in the stream.
3. ``pre_commit(n)`` seals that list: its state is ``{"epoch", "seq"}``, and later
   batches go to ``seq + 1``.
4. ``commit(n, state)`` runs the publish script up to ``state["seq"]``: in one atomic
   step every sealed list after the marker is added to the stream, deleted, and the
   marker moves. A commit already applied does nothing, so commits may repeat.
5. ``close`` under checkpointing publishes nothing: the final checkpoint's ``commit``
   does (with a client of its own if the sink is closed by then).
Without checkpointing, an exactly-once sink stages the whole stream and publishes it
at ``close``; ``abort`` deletes what was staged.
Design: docs/connectors-redis.md#exactly-once
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.redis._sink import RedisSink
from connectors.redis._staging import PUBLISH, SinkKeys, flatten
from streamcore.errors import ConfigurationError, SinkError
from streamcore.io import SinkContext
from streamcore.state.redis_settings import glob_escape

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStreamSink"]

log = logging.getLogger("connectors.redis")

_PERMISSIONS = "+xadd on the stream and, for exactly_once, +rpush +incr +get +del +scan +evalsha +eval on the sink's keys"
_PUSH_CHUNK = 50_000
_SCAN_COUNT = 1_000


class RedisStreamSink(RedisSink):
    """Adds each record as an entry of ``stream`` (see the module docstring).

    ``fields(record)`` returns the entry's fields (default: a mapping as it is, a
    ``WindowResult`` by its field names); values are encoded per ``value_format``.
    ``maxlen`` trims the stream to about that many entries (``XADD MAXLEN ~``).
    """

    default_name: ClassVar[str] = "redis"

    def __init__(
        self,
        stream: str,
        *,
        url: str,
        fields: Callable[[Any], Mapping[Any, Any]] | None = None,
        maxlen: int | None = None,
        exactly_once: bool = False,
        value_format: str = "text",
        key_prefix: str = "streamcore-sink",
        socket_timeout_s: float = 5.0,
        connect_retries: int = 3,
    ) -> None:
        if not stream:
            raise ConfigurationError("RedisStreamSink needs a stream name")
        if maxlen is not None and maxlen < 1:
            raise ConfigurationError(f"maxlen must be at least 1, got {maxlen}")
        super().__init__("RedisStreamSink", f"Redis stream sink {stream!r}", url, fields, value_format,
                         socket_timeout_s, connect_retries, _PERMISSIONS)
        self.stream = stream
        self.maxlen = maxlen
        self.exactly_once = exactly_once
        self.key_prefix = key_prefix
        # Checkpoint hooks only for exactly-once sinks: others are at-least-once.
        self.supports_checkpoints = exactly_once  # type: ignore[misc]
        self._restored: dict[str, int] | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._keys: SinkKeys | None = None
        self._epoch = 0
        self._seq = 0
        """The sequence number batches are staged under now (exactly once)."""
        self._staged = False
        self._failed = False

    def for_task(self, task: str) -> RedisStreamSink:
        """A sink of its own for one partition task (its keys carry the task's flow name)."""
        sink = copy.copy(self)
        sink._client = None
        sink._restored = None
        sink._reset_run_state()
        return sink

    def __repr__(self) -> str:
        mode = "exactly-once" if self.exactly_once else "at-least-once"
        return f"<RedisStreamSink {self.stream!r} {self.connection.describe()!r} {mode}>"

    # -- lifecycle -------------------------------------------------------------------

    async def restore(self, state: Any | None) -> None:
        """Keep ``state`` (what ``pre_commit`` returned for the checkpoint restored, or
        None): ``open`` publishes what it sealed and discards what came after it."""
        self._restored = _parse_state(state, self.connection.name)

    async def open(self, context: SinkContext) -> None:
        """Connect; for exactly once, take an epoch and recover (step 1)."""
        self._reset_run_state()
        await super().open(context)
        if self.exactly_once and self._client is not None:
            try:
                await self._recover(self._client, SinkKeys(self.key_prefix, self.stream, context.flow, context.stage))
            except BaseException:
                await self._disconnect()
                raise

    async def _recover(self, client: Redis, keys: SinkKeys) -> None:
        # Step 1.
        restored, self._restored = self._restored, None
        try:
            epoch = int(await client.incr(keys.epoch))
            published = int(await client.get(keys.published) or 0)
        except self.connection.errors as exc:
            raise self.connection.error(exc, f"taking an epoch at {keys.epoch!r}") from exc
        sealed = 0
        if restored is not None and restored["seq"] > published:
            await self._publish(client, keys, restored["epoch"], restored["seq"], epoch)
            sealed = restored["seq"]
        await self._delete_staged(client, keys, keep_epoch=None)
        self._keys = keys
        self._epoch = epoch
        self._seq = max(published, sealed) + 1

    async def _delete_staged(self, client: Redis, keys: SinkKeys, keep_epoch: int | None) -> None:
        """Delete the staged lists (all of them, or those of other epochs than ``keep_epoch``)."""
        pattern = glob_escape(keys.staged_root) + "*"
        keep = None if keep_epoch is None else keys.staged_prefix(keep_epoch).encode()
        try:
            names = [n async for n in client.scan_iter(match=pattern, count=_SCAN_COUNT)]
            names = [n for n in names if keep is None or not n.startswith(keep)]
            for i in range(0, len(names), 1000):
                await client.delete(*names[i : i + 1000])
        except self.connection.errors as exc:
            raise self.connection.error(exc, f"deleting staged entries under {keys.staged_root!r}") from exc

    async def _publish(self, client: Redis, keys: SinkKeys, epoch: int, upto: int, mine: int) -> int:
        """Run the publish script: staged lists of ``epoch`` after the marker up to ``upto``."""
        try:
            added = await client.eval(
                PUBLISH, 3, self.stream, keys.published, keys.epoch,
                keys.staged_prefix(epoch), upto, mine, "" if self.maxlen is None else self.maxlen,
            )  # fmt: skip
        except self.connection.errors as exc:
            if "FENCED" in str(exc):
                raise self._error(
                    f"another process took over this sink (flow {keys.base!r}); this one stops "
                    "publishing: is the same flow running twice?"
                ) from exc
            raise self.connection.error(exc, f"publishing staged entries up to {upto} into the stream") from exc
        return int(added)

    async def close(self) -> None:
        """End of the stream: without checkpoints an exactly-once sink publishes what it
        staged; under checkpoints the final ``commit`` does (step 5)."""
        client = self._client
        if client is None:
            return
        try:
            keys = self._keys
            if self.exactly_once and keys is not None and not self.context.checkpointing and not self._failed:
                await self._publish(client, keys, self._epoch, self._seq, self._epoch)
        finally:
            await self._disconnect()

    async def abort(self) -> None:
        """The flow failed: nothing more is published; without checkpoints what was staged is deleted."""
        self._failed = True
        client, keys = self._client, self._keys
        try:
            if client is not None and keys is not None and not self.context.checkpointing:
                await self._delete_staged(client, keys, keep_epoch=None)
        except SinkError as exc:
            log.warning("cannot delete staged entries stream=%s error=%r", self.stream, str(exc))
        finally:
            await self._disconnect()

    # -- writing ---------------------------------------------------------------------

    async def write_batch(self, records: list[Any]) -> None:
        """Add the batch to the stream (at least once) or to the staged list (step 2)."""
        client, entries = self._encoded(records)
        if not entries:
            return
        try:
            if self.exactly_once:
                keys = self._keys
                assert keys is not None
                flat = flatten(entries)
                key = keys.staged(self._epoch, self._seq)
                for i in range(0, len(flat), _PUSH_CHUNK):
                    await client.rpush(key, *flat[i : i + _PUSH_CHUNK])
                return
            async with client.pipeline(transaction=False) as pipe:
                stream, maxlen = self.stream, self.maxlen
                for fields in entries:
                    pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
                await pipe.execute()
        except self.connection.errors as exc:
            raise self.connection.error(exc, f"adding {len(entries)} entries to stream {self.stream!r}") from exc

    # -- checkpoint hooks (exactly once) --------------------------------------------

    def pre_commit(self, checkpoint_id: int) -> dict[str, int] | None:
        """Seal the staged list written since the last barrier (step 3)."""
        if not self.exactly_once:
            return None
        state = {"epoch": self._epoch, "seq": self._seq}
        self._seq += 1
        return state

    async def commit(self, checkpoint_id: int, state: Any) -> None:
        """Publish every sealed list up to ``state`` into the stream (step 4)."""
        sealed = _parse_state(state, self.connection.name)
        if sealed is None or self._keys is None:
            return
        client = self._client
        own = client is None
        if client is None:
            client = await self.connection.open()
        try:
            await self._publish(client, self._keys, sealed["epoch"], sealed["seq"], self._epoch)
        finally:
            if own:
                await self.connection.close(client)


def _parse_state(state: Any, name: str) -> dict[str, int] | None:
    if state is None:
        return None
    try:
        epoch, seq = state["epoch"], state["seq"]
        if not isinstance(epoch, int) or not isinstance(seq, int) or epoch < 0 or seq < 0:
            raise TypeError("epoch and seq must be non-negative integers")
    except (TypeError, KeyError) as exc:
        raise SinkError(f"{name}: cannot restore from state {state!r}: expected {{'epoch', 'seq'}}: {exc}") from exc
    return {"epoch": epoch, "seq": seq}
