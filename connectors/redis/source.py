"""``RedisStreamSource``: reads Redis streams with XREAD, or XREADGROUP in a consumer group.

Each stream is a partition: it has its own watermark and its own position, and the
checkpoint, not Redis, is the source of truth for where reading resumes. Invariants:
1. ``position()`` is ``{stream: id of the last entry returned}`` (``"0-0"`` before the
   first). Poison entries count as returned: a restart does not see them again.
2. Without a group, reading resumes after the position; ``start="$"`` is turned into
   the stream's last id at the first open, so the position is always a real id.
3. With a group (created at ``start`` when missing), an entry is delivered to one
   consumer of the group and stays in that consumer's pending list until it is XACKed,
   which happens only in ``commit_offsets``, once the checkpoint holding a position at
   or past it is complete. So after a crash the entries read since that checkpoint
   are still pending for this consumer: on open the source first re-reads its own
   pending entries after the restored position (``XREADGROUP ... <id>``, history),
   acknowledging those at or before it, and only then asks for new ones (``>``).
4. ``caught_up()`` is computed per read: a stream is caught up when the last read
   returned fewer entries for it than asked (so nothing was left after them) and it
   is not re-reading history. Only a caught-up stream can go idle for the watermark.
5. With ``stop_at_end=True`` the end of each stream is its last id at open; entries
   after it are not returned, and ``read_batch`` returns None once every stream got
   there (with a group: once nothing up to it is left undelivered to the group).
Design: docs/connectors-redis.md#source
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.redis._connection import Connection
from connectors.redis._fields import field_decoder
from connectors.redis._record import RedisStreamRecord, id_key
from streamcore.errors import ConfigurationError, SourceError
from streamcore.io import Source, SourceContext
from streamcore.state import RedisSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStreamSource"]

log = logging.getLogger("connectors.redis")

_STARTS = ("0", "$")
_ZERO = "0-0"
_ACK_CHUNK = 10_000
_PERMISSIONS = "+xread +xreadgroup +xgroup +xack +xpending +xinfo on the streams' keys"


class RedisStreamSource(Source):
    """Reads entries of one or more Redis streams as ``RedisStreamRecord``.

    ``flow.source(RedisStreamSource("clicks", url="redis://localhost:6379/0"),
    timestamp=lambda r: r.id_ms)`` uses the time Redis added each entry as event time.
    ``group`` reads in a consumer group as ``consumer`` (default: the host name; give
    each process of the group its own, stable across restarts); ``count`` caps the
    entries of one read; ``block`` caps how long one read waits for new entries.
    """

    default_name: ClassVar[str] = "redis"
    rewindable: ClassVar[bool] = True

    def __init__(
        self,
        streams: str | list[str],
        *,
        url: str,
        group: str | None = None,
        consumer: str | None = None,
        start: str = "0",
        count: int = 500,
        block: timedelta | int = timedelta(milliseconds=100),
        value_format: str = "text",
        stop_at_end: bool = False,
        socket_timeout_s: float = 5.0,
        connect_retries: int = 3,
    ) -> None:
        if isinstance(streams, str):
            streams = [streams]
        if not streams or len(set(streams)) != len(streams):
            raise ConfigurationError(f"RedisStreamSource needs distinct stream names, got {streams!r}")
        if start not in _STARTS:
            raise ConfigurationError(f'start must be "0" (from the beginning) or "$" (new entries), got {start!r}')
        if count < 1:
            raise ConfigurationError(f"count must be at least 1, got {count}")
        block_ms = block // timedelta(milliseconds=1) if isinstance(block, timedelta) else int(block)
        if block_ms < 1:
            raise ConfigurationError(f"block must be at least 1 ms, got {block!r}")
        if consumer is not None and group is None:
            raise ConfigurationError("consumer= only means something with group=")
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer if consumer is not None else socket.gethostname()
        self.start = start
        self.count = count
        self.block_ms = block_ms
        self.value_format = value_format
        self.stop_at_end = stop_at_end
        self._decode = field_decoder(value_format)
        self.connection = Connection(
            RedisSettings(url, socket_timeout_s, connect_retries),
            "RedisStreamSource",
            f"Redis stream source {','.join(self.streams)!r}",
            SourceError,
            _PERMISSIONS,
        )
        self._client: Redis | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._last: dict[str, str] = dict.fromkeys(self.streams, _ZERO)
        """Per stream: the id of the last entry returned (invariant 1)."""
        self._history: set[str] = set()
        """Group streams still re-reading this consumer's pending entries (invariant 3)."""
        self._history_drained = False
        self._unacked: dict[str, deque[tuple[tuple[int, int], list[bytes]]]] = {s: deque() for s in self.streams}
        """Group streams: the ids read and not acknowledged, per read, with the last id's key.
        A checkpoint's position is always at the end of a read, so reads are acked whole."""
        self._ends: dict[str, tuple[int, int]] = {}
        self._done: set[str] = set()
        self._caught: frozenset[str] = frozenset()
        self._last_parts: list[str] = []
        self._finished = False

    def __repr__(self) -> str:
        group = f" group={self.group!r} consumer={self.consumer!r}" if self.group else ""
        return f"<RedisStreamSource {self.streams!r}{group} {self.connection.describe()!r}>"

    def _error(self, message: str) -> SourceError:
        return SourceError(f"{self.connection.name}: {message}")

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Connect, create the group if missing, and resume at ``position``."""
        await super().open(context, position)
        await self.close()
        self._reset_run_state()
        restored = _parse_position(position, self.streams, self.connection.name)
        client = await self.connection.open(reply_timeout_s=self.block_ms / 1000 + self.connection.settings.socket_timeout_s)
        self._client = client
        try:
            if self.group is not None:
                await self._create_group(client)
                await self._ack_through(client, restored)
                self._history = set(self.streams)
            elif self.start == "$":
                for stream in self.streams:
                    if stream not in restored:
                        restored[stream] = await self._last_id(client, stream)
            self._last.update(restored)
            if self.stop_at_end:
                for stream in self.streams:
                    self._ends[stream] = id_key(await self._last_id(client, stream))
        except BaseException:
            self._client = None
            await self.connection.close(client)
            raise

    async def _create_group(self, client: Redis) -> None:
        from redis.exceptions import ResponseError

        for stream in self.streams:
            try:
                await client.xgroup_create(stream, self.group, id=self.start, mkstream=True)  # type: ignore[arg-type]
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise self.connection.error(exc, f"creating group {self.group!r} on stream {stream!r}") from exc
            except self.connection.errors as exc:
                raise self.connection.error(exc, f"creating group {self.group!r} on stream {stream!r}") from exc

    async def _ack_through(self, client: Redis, position: Mapping[str, str]) -> None:
        """XACK this consumer's pending entries at or before ``position`` (a crash between a
        checkpoint completing and its XACK leaves some)."""
        for stream, last in position.items():
            if last == _ZERO:
                continue
            try:
                while True:
                    pending = await client.xpending_range(
                        stream, self.group, min="-", max=last, count=_ACK_CHUNK, consumername=self.consumer  # type: ignore[arg-type]
                    )
                    ids = [p["message_id"] for p in pending]
                    if ids:
                        await client.xack(stream, self.group, *ids)  # type: ignore[arg-type]
                    if len(ids) < _ACK_CHUNK:
                        break
            except self.connection.errors as exc:
                raise self.connection.error(exc, f"acknowledging stream {stream!r} through id {last}") from exc

    async def _last_id(self, client: Redis, stream: str) -> str:
        try:
            newest: Any = await client.xrevrange(stream, count=1)
        except self.connection.errors as exc:
            raise self.connection.error(exc, f"reading the last id of stream {stream!r}") from exc
        return newest[0][0].decode() if newest else _ZERO

    async def close(self) -> None:
        """Disconnect; never acknowledges anything."""
        client, self._client = self._client, None
        await self.connection.close(client)

    # -- reading ---------------------------------------------------------------------

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` records (at most ``count`` per stream); None at the end
        with ``stop_at_end``."""
        client = self._client
        if client is None:
            raise self._error("read_batch needs open() first")
        if self._finished or (self.stop_at_end and self._reached_end()):
            self._finished = True
            self._last_parts = []
            return None
        records = await self._read(client, max_records, timeout_s)
        while not records and self._history_drained:
            # The last pending entries were read again: go on to new ones at once.
            records = await self._read(client, max_records, timeout_s)
        if not records and self.stop_at_end and self._reached_end():
            self._finished = True
            return None
        return records

    async def _read(self, client: Redis, max_records: int, timeout_s: float) -> list[Any]:
        """One XREAD or XREADGROUP over the streams not at their end."""
        active = [s for s in self.streams if s not in self._done]
        if not active:
            return []
        per_stream = max(1, min(max_records, self.count) // len(active))
        history = self._history
        # Re-reading history never blocks; XREADGROUP would not block with it anyway.
        block = None if history or timeout_s <= 0 else max(1, min(self.block_ms, int(timeout_s * 1000)))
        reply: Any
        try:
            if self.group is None:
                reply = await client.xread({s: self._last[s] for s in active}, count=per_stream, block=block)
            else:
                ids = {s: (self._last[s] if s in history else ">") for s in active}
                reply = await client.xreadgroup(self.group, self.consumer, ids, count=per_stream, block=block)  # type: ignore[arg-type]
        except self.connection.errors as exc:
            where = ", ".join(f"{s} after {self._last[s]}" for s in active)
            raise self.connection.error(exc, f"reading ({where})") from exc
        records: list[Any] = []
        parts: list[str] = []
        returned: dict[str, int] = {}
        for name, entries in reply or ():
            stream = name.decode() if name.__class__ is bytes else name
            before = len(records)
            returned[stream] = len(entries)
            self._take(stream, entries, records)
            parts.extend([stream] * (len(records) - before))
        caught = set(self._done)
        self._history_drained = False
        for stream in active:
            n = returned.get(stream, 0)
            if stream in history:
                if n < per_stream:
                    history.discard(stream)  # its pending entries are all read again
                    self._history_drained = True
            elif n < per_stream:
                caught.add(stream)
                if self.stop_at_end and self.group is not None:
                    self._done.add(stream)
        self._caught = frozenset(caught)
        self._last_parts = parts
        return records

    def _take(self, stream: str, entries: list[Any], out: list[Any]) -> None:
        """Decode ``entries`` of ``stream`` into ``out``; note ids and the position."""
        if not entries:
            return
        end = self._ends.get(stream) if self.stop_at_end and self.group is None else None
        if end is not None and id_key(entries[-1][0].decode()) > end:
            entries = [e for e in entries if id_key(e[0].decode()) <= end]
            self._done.add(stream)
            if not entries:
                return
        if self.group is not None and id_key(entries[0][0].decode()) <= id_key(self._last[stream]):
            entries = self._drop_covered(stream, entries)
            if not entries:
                return
        decode, bad = self._decode, self.context.bad_record
        append = out.append
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if fields is None:
                # A pending entry deleted (XDEL, XTRIM) before this consumer acknowledged it.
                bad(None, LookupError("the entry was deleted from the stream before it was processed"),
                    f"stream {stream} id {entry_id}")
                continue
            try:
                value = decode(fields)
            except Exception as exc:
                bad(fields, exc, f"stream {stream} id {entry_id}")
                continue
            append(RedisStreamRecord(stream, entry_id, value))
        last_id = entries[-1][0]
        self._last[stream] = last_id.decode()
        if self.group is not None:
            self._unacked[stream].append((id_key(self._last[stream]), [i for i, _ in entries]))
        if end is not None and id_key(self._last[stream]) >= end:
            self._done.add(stream)

    def _drop_covered(self, stream: str, entries: list[Any]) -> list[Any]:
        """Entries after the position; those at or before it are only acknowledged later.

        New entries (``>``) always come after what this consumer read, unless the group
        went back (Redis restored from an older snapshot while the checkpoint survived):
        those already read are not processed twice (invariant 3)."""
        last = id_key(self._last[stream])
        covered = [e for e in entries if id_key(e[0].decode()) <= last]
        log.warning(
            "group redelivered entries the checkpoint covers stream=%s group=%s count=%d through=%s",
            stream, self.group, len(covered), self._last[stream],
        )
        self._unacked[stream].appendleft((last, [i for i, _ in covered]))
        return [e for e in entries if id_key(e[0].decode()) > last]

    def position(self) -> dict[str, str]:
        """``{stream: id of the last entry returned}`` (invariant 1)."""
        return dict(self._last)

    def _reached_end(self) -> bool:
        if self.group is not None:
            return len(self._done) == len(self.streams)
        ends, last = self._ends, self._last
        return all(id_key(last[s]) >= ends[s] for s in self.streams)

    # -- partitions and watermarks ---------------------------------------------------

    def record_partitions(self) -> list[str]:
        """The stream of each record of the batch last returned, in order."""
        return self._last_parts

    def assigned(self) -> frozenset[str]:
        """Every stream: each is read by this source."""
        return frozenset(self.streams)

    def caught_up(self) -> frozenset[str]:
        """Streams with nothing left to read at the last read (invariant 4)."""
        return self._caught

    # -- acknowledging -----------------------------------------------------------------

    async def commit_offsets(self, position: Mapping[str, str] | None) -> None:
        """XACK, with a group, every entry read at or before ``position`` (a value
        ``position()`` returned): the runtime calls it once the checkpoint holding
        that position is complete. Without a group nothing is done."""
        client = self._client
        if self.group is None or client is None or not position:
            return
        for stream, last in position.items():
            unacked = self._unacked.get(stream)
            if not unacked:
                continue
            through = id_key(last)
            taken = []
            while unacked and unacked[0][0] <= through:
                taken.append(unacked.popleft())
            ids = [i for _, read in taken for i in read]
            try:
                for i in range(0, len(ids), _ACK_CHUNK):
                    await client.xack(stream, self.group, *ids[i : i + _ACK_CHUNK])
            except self.connection.errors as exc:
                unacked.extendleft(reversed(taken))
                raise self.connection.error(exc, f"XACK on stream {stream!r} through id {last}") from exc


def _parse_position(position: Any, streams: list[str], name: str) -> dict[str, str]:
    """A position as ``position()`` returns it, checked; ``{}`` for None."""
    if position is None:
        return {}
    try:
        if not isinstance(position, Mapping):
            raise TypeError("not a mapping")
        out = {}
        for stream, entry_id in position.items():
            if stream not in streams:
                continue  # a stream no longer read: its position is dropped
            if not isinstance(entry_id, str):
                raise TypeError(f"id {entry_id!r} of {stream!r} is not a string")
            id_key(entry_id)
            out[stream] = entry_id
        return out
    except (TypeError, ValueError) as exc:
        raise SourceError(
            f"{name}: cannot resume from position {position!r}: expected "
            f'{{"<stream>": "<entry id>"}} as returned by position(): {exc}'
        ) from exc
