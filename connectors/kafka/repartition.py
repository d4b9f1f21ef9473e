"""Repartition topics: how a scaled-out flow brings each key's records to one task.

When a flow keys its records by something other than what the input topic is
partitioned by, the tasks of the input partitions (*stage 1*) write each record to an
internal topic, ``<flow>-<stage>-repartition``, in the partition of its new key, and
the tasks of that topic's partitions (*stage 2*) run the keyed part of the flow. This is
Kafka Streams' repartition topic, with event time carried across:

- Data: the records of one batch bound for one partition travel as one Kafka record,
  key ``b"c<partition>"``, value ``encode([[event_time_ms, ...], [record, ...]])``, the
  event times and the records as two lists of one length (one Kafka record per batch
  and partition, not per record: the client's cost is per Kafka record; two columns,
  not a pair per record, so neither side builds or takes apart a list per record).
  Stage 2 also reads the earlier row format, key ``b"b<partition>"``, value
  ``encode([[event_time_ms, record], ...])``, which a topic may still hold after an
  upgrade. A record's partition is ``crc32(key) % partitions`` of its new key (UTF-8
  for a ``str``, ``encode(key)`` otherwise), whatever the producer's partitioner.
- A watermark marker: key ``b"w<partition>"`` (it goes to that partition), value
  ``encode({"p": writer, "w": watermark})``, ``{"p": writer, "idle": bool}`` or
  ``{"p": writer, "end": True}``. Every stage-1 task (a *writer*, named by its input
  partition) writes one to every partition whenever its watermark advances, its input
  goes idle or active, and at the end of its stream.

Invariants:
1. A writer's records and markers reach each partition in the order it wrote them, so a
   marker ``w`` follows every record that writer wrote before its watermark reached ``w``.
2. A stage-2 task's watermark is the minimum over every writer (all the input topic's
   partitions) that is not idle; a writer not heard from yet holds it at its start, and
   an ended writer counts as +inf. The stream of a stage-2 task ends once every writer
   has ended: all their records were read by then (invariant 1).
3. Writes are transactional and committed with stage 1's checkpoints; stage 2 reads with
   ``read_committed`` and keeps its offset and the writers' watermarks in its checkpoint.
4. Once a stage-2 checkpoint is complete, the records of its partition before the
   checkpointed offset are deleted (``delete_records``), as Kafka Streams purges its
   repartition topics: a restore starts from that checkpoint or a newer one, never
   before. A restore that finds its offset deleted fails instead of skipping records.
Design: docs/scale-out.md#repartition-topics
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from connectors.kafka._client import start_with_retry, stop_quietly
from connectors.kafka._errors import describe, retry
from connectors.kafka._record import parse_partition_id, partition_id
from connectors.kafka._transactions import Item
from connectors.kafka.sink import KafkaSink
from connectors.kafka.source import KafkaSource
from streamcore.errors import SourceConnectorError, SourceError
from streamcore.io import Repartition, Sink, SinkContext, Source, SourceContext

if TYPE_CHECKING:
    from connectors.kafka.group import KafkaPartitionGroup

__all__ = ["KafkaRepartition", "RepartitionSink", "RepartitionSource", "repartition_topic_name"]

log = logging.getLogger("connectors.kafka")

_T = TypeVar("_T")

BATCH = b"b"
"""The row format of earlier versions: still read, no longer written."""
COLUMNS = b"c"
MARK = b"w"
# str keys whose partition a writer remembers, at most (then it starts again): a dict
# lookup instead of encoding and hashing the key of every record.
_PARTITION_CACHE_MAX = 65_536
_NEG_INF = float("-inf")
_POS_INF = float("inf")


def repartition_topic_name(flow: str, stage: str) -> str:
    """``<flow>-<stage>-repartition`` with the characters Kafka refuses replaced."""
    name = re.sub(r"[^a-zA-Z0-9._-]", "_", f"{flow}-{stage}-repartition")
    return name[-249:]


def _partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Batches and markers name their partition in their key."""
    assert key is not None and key[:1] in (COLUMNS, MARK, BATCH)
    return int(key[1:])


def key_partition(key: Any, partitions: int, encode: Callable[[Any], bytes]) -> int:
    """The repartition topic's partition of records with ``key``."""
    data = key.encode("utf-8", "surrogatepass") if key.__class__ is str else encode(key)
    return zlib.crc32(data) % partitions


class KafkaRepartition(Repartition):
    """One repartition topic of a scaled-out flow: created on demand, subscribed by the
    flow's consumer group beside the input topics."""

    def __init__(
        self,
        group: KafkaPartitionGroup,
        topic: str,
        key: Callable[[Any], Any],
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
    ) -> None:
        self.group = group
        self.topic = topic
        self.key = key
        self.encode = encode
        self.decode = decode
        self.partitions = 0
        self.writers: list[str] = []
        """The input partitions: every stage-2 task waits for the markers of all of them."""
        self.purged: dict[str, int] = {}
        """Per partition: the offset records before which were deleted (invariant 4)."""
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<KafkaRepartition {self.topic!r} partitions={self.partitions}>"

    def owns(self, partition: str) -> bool:
        """Whether ``partition`` is one of this topic's (a stage-2 task's)."""
        return parse_partition_id(partition)[0] == self.topic

    async def prepare(self) -> None:
        """Learn the input partitions and create the topic with as many partitions as the
        largest input topic if it is missing (an existing one keeps its count)."""
        source = self.group.source
        if not source.topics:
            raise SourceError(f"repartition {self.topic!r} needs the input topics listed (topics=), not a pattern")
        topics = source.topics
        admin = await self._admin_client()
        try:
            counts = await self._retry(lambda: self._partition_counts(admin, topics), "describe the input topics")
            self.writers = [partition_id(t, n) for t in topics for n in range(counts[t])]

            async def own_count() -> int:
                return (await self._partition_counts(admin, [self.topic], missing_ok=True)).get(self.topic, 0)

            if not await self._retry(own_count, "describe it"):
                await self._retry(lambda: self._create(admin, max(counts.values())), "create it")
            deadline = asyncio.get_running_loop().time() + source.connection.timeout_s
            while not (found := await self._retry(own_count, "describe it")):
                if asyncio.get_running_loop().time() > deadline:
                    raise SourceError(f"repartition topic {self.topic!r} did not appear after it was created")
                # A topic just created shows up in the metadata shortly after.
                await asyncio.sleep(0.1)
            self.partitions = found
        finally:
            await stop_quietly(_close_admin, admin)

    def _error(self, message: str) -> SourceError:
        return SourceError(f"repartition topic {self.topic!r}: {message}")

    def _client_error(self, message: str) -> SourceConnectorError:
        return SourceConnectorError(f"repartition topic {self.topic!r}: {message}")

    async def purge(self, offsets: dict[str, int]) -> None:
        """Invariant 4: delete the records before ``offsets`` (a stage-2 task's position in
        a checkpoint that is complete); partitions already purged that far are skipped."""
        todo = {p: o for p, o in offsets.items() if self.owns(p) and o > self.purged.get(p, 0)}
        if not todo:
            return
        async with self._admin_lock:
            if self._admin is None:
                self._admin = await self._admin_client()
            admin = self._admin
        wanted = {TopicPartition(*parse_partition_id(p)): RecordsToDelete(o) for p, o in todo.items()}
        low = await self._retry(lambda: admin.delete_records(wanted), "delete the records stage 2 checkpointed past")
        for tp, offset in low.items():
            pid = partition_id(tp.topic, tp.partition)
            self.purged[pid] = max(self.purged.get(pid, 0), offset)
        log.debug("repartition topic purged topic=%s offsets=%s", self.topic, todo)

    async def close(self) -> None:
        """Close the admin client ``purge`` opened (the group calls it when leaving)."""
        admin, self._admin = self._admin, None
        if admin is not None:
            await stop_quietly(_close_admin, admin)

    async def _retry(self, call: Callable[[], Awaitable[_T]], what: str) -> _T:
        return await retry(call, what=what, fail=self._client_error, budget_s=self.group.source.connection.timeout_s)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        connection = self.group.source.connection
        options = connection.options()

        async def start(admin: AIOKafkaAdminClient) -> None:
            await admin.start()

        return await start_with_retry(lambda: AIOKafkaAdminClient(**options), start, _close_admin, connection, self._client_error)

    @staticmethod
    async def _partition_counts(
        admin: AIOKafkaAdminClient, topics: list[str], *, missing_ok: bool = False
    ) -> dict[str, int]:
        out = {}
        for t in await admin.describe_topics(topics):
            if t.get("error_code") or not t.get("partitions"):
                if missing_ok:
                    continue
                raise SourceError(f"topic {t.get('topic')!r} has no partitions (error {t.get('error_code')})")
            out[t["topic"]] = len(t["partitions"])
        return out

    async def _create(self, admin: AIOKafkaAdminClient, partitions: int) -> None:
        source = self.group.source
        response = await admin.create_topics(
            [NewTopic(self.topic, partitions, source.internal_replication_factor)],
            timeout_ms=int(source.connection.timeout_s * 1000),
        )
        for err in response.to_object().get("topic_errors", []):
            code = err.get("error_code")
            if code and code != 36:  # 36: it exists already (another process made it)
                raise SourceError(
                    f"cannot create repartition topic {self.topic!r}: error {code} {err.get('error_message')}"
                )
        log.info("created repartition topic topic=%s partitions=%d", self.topic, partitions)

    def sink_for(self, writer: str) -> Sink:
        """Stage 1's sink for the task of input partition ``writer``."""
        return RepartitionSink(self, writer)

    def source_for(self, partition: str) -> Source:
        """Stage 2's source for the task of repartition partition ``partition``."""
        source = RepartitionSource(self)
        source._make_task(partition, self.group)
        return source


class RepartitionSink(KafkaSink):
    """Writes records by their new key, and watermark markers, to a repartition topic."""

    wants_time = True

    def __init__(self, repartition: KafkaRepartition, writer: str) -> None:
        source = repartition.group.source
        super().__init__(
            repartition.topic,
            bootstrap_servers=source.connection.bootstrap_servers,
            value_format="bytes",
            exactly_once=True,
            partitioner=_partitioner,
        )
        self.connection = source.connection
        self.repartition = repartition
        self.writer = writer
        self._marked: float = _NEG_INF
        self._partition_of: dict[str, int] = {}
        self._cached_for = 0
        self._held: list[Item] = []
        """The last batch's items, not handed to the producer yet: the marker of the
        watermark advance that follows a batch goes with them, one Kafka batch per
        partition instead of two (each costs a produce request, and a second batch for
        a partition waits until the sender took the first). Nothing of the topic is
        visible before the transaction commits, so holding them delays nothing: they are
        sent with the next marker, the next batch, or first thing in ``pre_commit``."""

    def __repr__(self) -> str:
        return f"<RepartitionSink {self.topic!r} writer={self.writer!r}>"

    async def open(self, context: SinkContext) -> None:
        """Start (again): markers of an earlier run may have been aborted with it."""
        self._marked = _NEG_INF
        self._held = []
        await super().open(context)

    async def write_timed(self, records: list[Any], timestamps: list[int]) -> None:
        """Write the records to the partitions of their new keys, with their event times:
        one Kafka record per partition of the batch."""
        r = self.repartition
        key, encode, n = r.key, r.encode, r.partitions
        if len(timestamps) != len(records):
            timestamps = [0] * len(records)  # no event time upstream, and none needed after
        cache = self._partition_of
        if self._cached_for != n:
            cache.clear()
            self._cached_for = n
        try:
            columns: dict[int, tuple[list[int], list[Any]]] = {}
            for rec, ts in zip(records, timestamps, strict=True):
                k = key(rec)
                # Only exact str keys are remembered: other types may be unhashable, or
                # equal across types (1 == 1.0) while they encode differently.
                q = cache.get(k) if k.__class__ is str else None
                if q is None:
                    q = key_partition(k, n, encode)
                    if k.__class__ is str:
                        if len(cache) >= _PARTITION_CACHE_MAX:
                            cache.clear()
                        cache[k] = q
                found = columns.get(q)
                if found is None:
                    columns[q] = ([ts], [rec])
                else:
                    found[0].append(ts)
                    found[1].append(rec)
            items: list[Item] = [
                (COLUMNS + b"%d" % q, encode([stamps, batch]), None)
                for q, (stamps, batch) in sorted(columns.items())
            ]
        except Exception as exc:
            raise self._error(
                f"cannot write a record to the repartition topic: {describe(exc)}; records "
                "crossing a repartition must be values the state serde can encode"
            ) from exc
        if not self._held:
            self._held = items  # sent with the marker that usually follows (see _held)
            return
        items, self._held = self._held + items, []
        await self._write_items(items)

    async def pre_commit(self, checkpoint_id: int) -> dict[str, Any] | None:
        """Send what is held, then seal the transaction (``KafkaSink.pre_commit``)."""
        await self._write_held()
        return await super().pre_commit(checkpoint_id)

    async def close(self) -> None:
        """Send what is held (unless the flow failed), then close as ``KafkaSink`` does."""
        try:
            if not self._failed:
                await self._write_held()
        finally:
            self._held = []
            await super().close()

    async def _write_held(self) -> None:
        items, self._held = self._held, []
        if items:
            await self._write_items(items)

    async def on_watermark(self, timestamp_ms: float) -> None:
        """A marker to every partition (after the records it follows)."""
        if timestamp_ms <= self._marked:
            return
        self._marked = timestamp_ms
        if timestamp_ms == _POS_INF:
            await self._mark({"p": self.writer, "end": True})
        else:
            await self._mark({"p": self.writer, "w": int(timestamp_ms)})

    async def on_idle(self, idle: bool) -> None:
        """Tell every partition this writer is idle (left out of their watermarks) or back."""
        await self._mark({"p": self.writer, "idle": idle})

    async def _mark(self, marker: dict[str, Any]) -> None:
        value = self.repartition.encode(marker)
        items: list[Item] = [(MARK + b"%d" % q, value, None) for q in range(self.repartition.partitions)]
        items, self._held = self._held + items, []
        await self._write_items(items)


class RepartitionSource(KafkaSource):
    """Reads one partition of a repartition topic: records with their event time, and
    the watermark as the minimum over the writers (see the module docstring)."""

    def __init__(self, repartition: KafkaRepartition) -> None:
        source = repartition.group.source
        options = {k: v for k, v in source.consumer_options.items() if k not in _GROUP_OPTIONS}
        super().__init__(
            repartition.topic,
            bootstrap_servers=source.connection.bootstrap_servers,
            value_format="bytes",
            isolation_level="read_committed",
            max_batch=source.max_batch,
            **options,
        )
        self.connection = source.connection
        self.repartition = repartition
        self._times: list[int] = []
        self._writers: dict[str, list[Any]] = {}
        """Per writer: ``[watermark, idle, ended]``."""

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Resume at the checkpointed offset with the writers' watermarks of that moment."""
        offsets = None
        self._writers = {w: [_NEG_INF, False, False] for w in self.repartition.writers}
        if isinstance(position, dict) and "offsets" in position:
            offsets = position["offsets"]
            for w, state in position.get("writers", {}).items():
                self._writers[w] = [_NEG_INF if state[0] is None else state[0], state[1], state[2]]
        await super().open(context, offsets)
        if offsets:
            try:
                await self._check_not_purged(offsets)
            except BaseException:
                await self.close()
                raise

    async def _check_not_purged(self, offsets: dict[str, int]) -> None:
        """Fail, rather than skip records, when the checkpoint restored needs records that
        were purged (invariant 4: only a fallback to an older checkpoint can)."""
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(*parse_partition_id(p)) for p in offsets]
        starts = await self._retry(lambda: consumer.beginning_offsets(tps), "read the start of the topic")
        for tp, start in starts.items():
            offset = offsets[partition_id(tp.topic, tp.partition)]
            if offset < start:
                raise self._error(
                    f"the checkpoint restored resumes {tp.topic}:{tp.partition} at offset {offset}, "
                    f"but records before {start} were deleted (purged after a newer checkpoint, or "
                    "by retention); this checkpoint cannot be replayed: restore a newer one"
                )

    def position(self) -> dict[str, Any]:
        """The offset and every writer's ``[watermark, idle, ended]``."""
        return {
            "offsets": super().position(),
            "writers": {w: [None if s[0] == _NEG_INF else s[0], s[1], s[2]] for w, s in self._writers.items()},
        }

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Records of the partition; None once every writer has ended (invariant 2)."""
        if self._writers and all(s[2] for s in self._writers.values()):
            return None
        self._times = []
        return await super().read_batch(max_records, timeout_s)

    def _decode(self, messages: list[Any], out: list[Any]) -> None:
        decode, times, writers = self.repartition.decode, self._times, self._writers
        for m in messages:
            try:
                if m.key[:1] == MARK:
                    marker = decode(m.value)
                    state = writers.setdefault(marker["p"], [_NEG_INF, False, False])
                    if "w" in marker:
                        state[0] = max(state[0], marker["w"])
                        state[1] = False
                    elif "idle" in marker:
                        state[1] = bool(marker["idle"])
                    elif marker.get("end"):
                        state[0], state[1], state[2] = _POS_INF, False, True
                    continue
                if m.key[:1] == COLUMNS:
                    stamps, records = decode(m.value)
                    if type(stamps) is not list or type(records) is not list or len(stamps) != len(records):
                        raise ValueError("a batch must be two lists of one length (event times, records)")
                else:
                    rows = decode(m.value)
                    stamps = [ts for ts, _ in rows]
                    records = [record for _, record in rows]
            except Exception as exc:
                self.context.bad_record(
                    m.value, exc, f"repartition topic {m.topic} partition {m.partition} offset {m.offset}"
                )
                continue
            out.extend(records)
            times.extend(stamps)

    async def commit_offsets(self, position: Any) -> None:
        """The checkpoint holding ``position`` is complete: commit its offset to the group
        (lag monitoring) and delete what comes before it (invariant 4)."""
        if isinstance(position, dict) and "offsets" in position:
            await super().commit_offsets(position["offsets"])
            await self.repartition.purge(position["offsets"])

    def record_timestamps(self) -> list[int]:
        """Event times of the records of the last batch, as stage 1 wrote them."""
        return self._times

    def watermark(self) -> float | None:
        """The minimum over writers not idle; None while every writer is idle."""
        active = [s[0] for s in self._writers.values() if not s[1]]
        return min(active) if active else None


# Options of the group's consumer that a stage-2 task's consumer (no group) does not take.
_GROUP_OPTIONS = frozenset(
    {"session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms", "rebalance_timeout_ms",
     "partition_assignment_strategy", "group_instance_id", "isolation_level"}
)


async def _close_admin(admin: AIOKafkaAdminClient) -> None:
    await admin.close()
