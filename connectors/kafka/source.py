"""``KafkaSource``: reads topics (or a topic pattern) in batches through aiokafka.

The source is rewindable: its position is ``{"<topic>:<partition>": next offset}``, and
the checkpoint, not Kafka, is the source of truth for it. Invariants:
1. The consumer never commits on its own (``enable_auto_commit=False``); offsets reach
   the consumer group only through ``commit_offsets(position)``, which the runtime calls
   once a checkpoint is complete (for lag monitoring; resuming uses the checkpoint).
2. ``position()`` holds, per partition, the consumer's position after the last batch
   returned: the last returned offset + 1, or further when the consumer stepped over
   transaction markers or aborted records. Partitions the consumer has a position for
   but returned nothing from are included, so a restart does not apply ``start`` to
   them again. Bad records count as returned: a restart does not see them again.
3. A partition with a known position is sought to it whenever it is assigned (at open
   and after a rebalance), in the rebalance listener and, for consumers without a
   group (which get no listener calls), when ``read_batch`` sees the assignment change.
   Other partitions follow the group's committed offset, else ``start``.
4. ``caught_up()`` is computed once per ``read_batch``: an assigned partition is caught
   up when the consumer's position has reached its high-water mark (the last stable
   offset under ``read_committed``), as the latest fetch reported it. An empty
   partition is caught up after its first fetch.
5. With ``stop_at_end=True``, the end of each partition is its end offset when it was
   first assigned; ``read_batch`` returns None once every assigned partition got there.
Design: docs/connectors-kafka.md#source
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from connectors.kafka._client import Connection, start_with_retry, stop_quietly
from connectors.kafka._errors import describe, retry
from connectors.kafka._formats import key_decoder, value_decoder
from connectors.kafka._record import KafkaRecord, parse_partition_id, partition_id
from streamcore import exact_json
from streamcore.errors import ConfigurationError, SourceConnectorError, SourceError
from streamcore.io import Source, SourceContext

if TYPE_CHECKING:
    from connectors.kafka.group import KafkaPartitionGroup

__all__ = ["KafkaSource"]

log = logging.getLogger("connectors.kafka")

_T = TypeVar("_T")
_STARTS = ("earliest", "latest")
_ISOLATION_LEVELS = ("read_uncommitted", "read_committed")
_ASSIGNMENT_POLL_S = 0.02


class _Listener(ConsumerRebalanceListener):
    """Seeks newly assigned partitions to the source's positions (group consumers)."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._source._seek_known(assigned)


class KafkaSource(Source):
    """Reads Kafka records as ``KafkaRecord`` with the value (and key) decoded.

    ``flow.source(KafkaSource("events", bootstrap_servers="host:9092"),
    timestamp=lambda r: r.timestamp_ms)`` uses the Kafka record time as event time.
    """

    default_name: ClassVar[str] = "kafka"
    rewindable: ClassVar[bool] = True

    def __init__(
        self,
        topics: str | list[str] | None = None,
        *,
        pattern: str | None = None,
        bootstrap_servers: str | list[str],
        group_id: str | None = None,
        value_format: str = "json",
        key_format: str = "bytes",
        avro_schema: Any = None,
        confluent_schemas: Mapping[int, Any] | None = None,
        start: str = "earliest",
        max_batch: int = 500,
        stop_at_end: bool = False,
        isolation_level: str = "read_uncommitted",
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_attempts: int = 3,
        connect_timeout_s: float = 15.0,
        assignment_timeout_s: float = 30.0,
        internal_replication_factor: int = 1,
        **consumer_options: Any,
    ) -> None:
        if isinstance(topics, str):
            topics = [topics]
        if (not topics) == (pattern is None):
            raise ConfigurationError("KafkaSource needs topics or pattern=, not both and not neither")
        if start not in _STARTS:
            raise ConfigurationError(f"start must be one of {_STARTS}, got {start!r}")
        if isolation_level not in _ISOLATION_LEVELS:
            raise ConfigurationError(
                f"isolation_level must be one of {_ISOLATION_LEVELS}, got {isolation_level!r}"
            )
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, got {max_batch}")
        for name in (
            "enable_auto_commit",
            "auto_offset_reset",
            "key_deserializer",
            "value_deserializer",
        ):
            if name in consumer_options:
                raise ConfigurationError(f"{name} is set by KafkaSource itself; remove it from the options")
        self.topics = list(topics) if topics else None
        self.pattern = pattern
        self.group_id = group_id
        self.value_format = value_format
        self.key_format = key_format
        self.start = start
        self.max_batch = max_batch
        self.stop_at_end = stop_at_end
        self.isolation_level = isolation_level
        self.assignment_timeout_s = assignment_timeout_s
        self.internal_replication_factor = internal_replication_factor
        """Replication of the repartition topics a scaled-out flow creates."""
        self.connection = Connection(
            bootstrap_servers,
            security_protocol,
            sasl_mechanism,
            sasl_plain_username,
            sasl_plain_password,
            ssl_context,
            connect_attempts,
            connect_timeout_s,
        )
        self.consumer_options = consumer_options
        self._decode_value = value_decoder(value_format, avro_schema, confluent_schemas)
        self._decode_key = key_decoder(key_format)
        self._consumer: AIOKafkaConsumer | None = None
        self._only: str | None = None
        """A task copy (scale-out): the one partition it reads, assigned by hand."""
        self._group: KafkaPartitionGroup | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._next: dict[str, int] = {}
        """Per partition: where reading resumes (invariant 2)."""
        self._tps: Collection[TopicPartition] | None = None
        """The assignment last seen (identity-compared: aiokafka keeps one per assignment)."""
        self._assigned: frozenset[str] = frozenset()
        self._caught: frozenset[str] = frozenset()
        self._pids: dict[TopicPartition, str] = {}
        self._last_parts: list[str] = []
        self._ends: dict[str, int] = {}
        """stop_at_end: the end offset of each partition when it was first assigned."""
        self._finished = False
        self._lag: dict[str, int] = {}
        """Per partition: records between the position and the end, at the last fetch."""

    def __repr__(self) -> str:
        what = self.topics if self.topics else f"pattern={self.pattern!r}"
        if self._only is not None:
            what = f"partition {self._only}"
        return f"<KafkaSource {what} {self.connection.servers!r}>"

    # -- scale-out -------------------------------------------------------------------

    def partition_group(self) -> KafkaPartitionGroup | None:
        """With ``group_id``: the consumer group whose members (processes running this
        flow) share the partitions; under checkpointing each partition then runs as a
        task of its own (docs/scale-out.md)."""
        if self.group_id is None or self._only is not None:
            return None
        from connectors.kafka.group import KafkaPartitionGroup

        return KafkaPartitionGroup(self)

    def _make_task(self, partition: str, group: KafkaPartitionGroup) -> None:
        """Turn this (shallow) copy into the source of one partition's task."""
        parse_partition_id(partition)
        self.group_id = None
        self._only = partition
        self._group = group
        self._consumer = None
        self._reset_run_state()

    @property
    def _name(self) -> str:
        what = ",".join(self.topics) if self.topics else f"pattern {self.pattern}"
        return f"Kafka source {what!r}"

    def _error(self, message: str) -> SourceError:
        return SourceError(f"{self._name}: {message}")

    def _client_error(self, message: str) -> SourceConnectorError:
        return SourceConnectorError(f"{self._name}: {message}")

    async def _retry(self, call: Callable[[], Awaitable[_T]], what: str) -> _T:
        """``call()`` retried as ``_errors.retry`` does, within ``connect_timeout_s``."""
        return await retry(call, what=what, fail=self._client_error, budget_s=self.connection.timeout_s)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, context: SourceContext, position: Any | None = None) -> None:
        """Connect, subscribe, wait for the assignment and seek to ``position``."""
        await super().open(context, position)
        await self.close()  # a consumer left by an earlier run of this source
        self._reset_run_state()
        self._next = _parse_position(position, self._name)
        options = {
            **self.connection.options(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": self.start,
            "isolation_level": self.isolation_level,
            **self.consumer_options,
        }

        async def start(consumer: AIOKafkaConsumer) -> None:
            await consumer.start()

        consumer = await start_with_retry(
            lambda: AIOKafkaConsumer(**options), start, _stop_consumer, self.connection, self._client_error
        )
        self._consumer = consumer
        try:
            if self._only is not None:
                await self._assign_only(consumer, self._only)
            else:
                await self._subscribe(consumer)
            await self._sync_assignment()
        except BaseException:
            self._consumer = None
            await stop_quietly(_stop_consumer, consumer)
            raise

    async def _check_topics(self, consumer: AIOKafkaConsumer) -> None:
        """Fail naming the listed topics that do not exist."""
        if self.topics:
            existing = await self._retry(consumer.topics, "list the topics")
            missing = sorted(set(self.topics) - set(existing))
            if missing:
                raise self._error(
                    f"topic(s) {missing} do not exist at {self.connection.servers!r}; create them "
                    "first (or check the names)"
                )

    async def _assign_only(self, consumer: AIOKafkaConsumer, partition: str) -> None:
        """A task reads one partition: resume at the checkpoint, else the group's offset."""
        topic, number = parse_partition_id(partition)
        consumer.assign([TopicPartition(topic, number)])
        if partition not in self._next and self._group is not None:
            committed = await self._group.committed(partition)
            if committed is not None:
                self._next[partition] = committed

    async def _subscribe(self, consumer: AIOKafkaConsumer) -> None:
        """Check the topics exist, subscribe, and wait (bounded) for an assignment."""
        await self._check_topics(consumer)
        try:
            consumer.subscribe(
                topics=self.topics or (), pattern=self.pattern, listener=_Listener(self)
            )
        except (KafkaError, ValueError) as exc:
            raise self._client_error(f"cannot subscribe: {describe(exc)}") from exc
        # A group consumer joins in the background and a consumer without a group is
        # assigned on the next metadata update: wait for either, within a bound.
        deadline = monotonic() + self.assignment_timeout_s
        while not consumer.assignment():
            if monotonic() >= deadline:
                if self.topics and self.group_id is None:
                    raise self._error(
                        f"no partition was assigned within {self.assignment_timeout_s}s"
                    )
                # A pattern may match nothing yet; other group members may hold everything.
                log.info("kafka source has no partitions yet source=%s", self._name)
                return
            await asyncio.sleep(_ASSIGNMENT_POLL_S)

    async def close(self) -> None:
        """Leave the group (if any) and close the connections; never commits offsets."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_quietly(_stop_consumer, consumer)

    # -- reading ---------------------------------------------------------------------

    async def read_batch(self, max_records: int, timeout_s: float) -> list[Any] | None:
        """Up to ``max_records`` decoded records (at most ``max_batch``); None at the end
        with ``stop_at_end``."""
        consumer = self._consumer
        if consumer is None:
            raise self._error("read_batch needs open() first")
        if self._finished:
            return None
        if consumer.assignment() is not self._tps:
            await self._sync_assignment()
        if self.stop_at_end and self._reached_end():
            self._finished = True
            self._last_parts = []
            return None
        fetched = await retry(
            lambda: consumer.getmany(
                timeout_ms=max(0, int(timeout_s * 1000)),
                max_records=max(1, min(max_records, self.max_batch)),
            ),
            what="read",
            fail=self._client_error,
            budget_s=self.connection.timeout_s + timeout_s,
        )
        records: list[Any] = []
        parts: list[str] = []
        for tp, messages in fetched.items():
            if not messages:
                continue
            pid = self._pid(tp)
            before = len(records)
            self._decode(messages, records)
            parts.extend([pid] * (len(records) - before))
            self._next[pid] = messages[-1].offset + 1
        self._last_parts = parts
        await self._refresh_progress(consumer)
        if not records and self.stop_at_end and self._reached_end():
            self._finished = True
            return None
        return records

    def _decode(self, messages: list[Any], out: list[Any]) -> None:
        decode_value, decode_key = self._decode_value, self._decode_key
        if decode_value is exact_json.loads:
            decode_value = exact_json.loads_for([m.value for m in messages if m.value is not None])
        append = out.append
        for m in messages:
            try:
                value = m.value
                if value is not None:
                    value = decode_value(value)
                key = m.key
                if key is not None:
                    key = decode_key(key)
            except Exception as exc:
                self.context.bad_record(
                    m.value, exc, f"topic {m.topic} partition {m.partition} offset {m.offset}"
                )
                continue
            headers = m.headers
            append(
                KafkaRecord(
                    m.topic,
                    m.partition,
                    m.offset,
                    m.timestamp,
                    key,
                    value,
                    headers if headers.__class__ is tuple else tuple(headers),
                )
            )

    def position(self) -> dict[str, int]:
        """``{"<topic>:<partition>": next offset}`` (see invariant 2)."""
        return dict(self._next)

    # -- partitions and watermarks ---------------------------------------------------

    def record_partitions(self) -> list[str]:
        """``"<topic>:<partition>"`` of each record of the batch last returned, in order."""
        return self._last_parts

    def assigned(self) -> frozenset[str]:
        """The partitions assigned to this source now."""
        return self._assigned

    def lag(self) -> dict[str, int]:
        """Consumer lag per assigned partition: records left to read at the last fetch."""
        return {p: n for p, n in self._lag.items() if p in self._assigned}

    def caught_up(self) -> frozenset[str]:
        """Assigned partitions whose position reached the high-water mark at the last fetch."""
        return self._caught

    def _pid(self, tp: TopicPartition) -> str:
        pid = self._pids.get(tp)
        if pid is None:
            pid = self._pids[tp] = partition_id(tp.topic, tp.partition)
        return pid

    async def _sync_assignment(self) -> None:
        """The assignment changed: seek known partitions, note their ends (stop_at_end)."""
        consumer = self._consumer
        assert consumer is not None
        tps = consumer.assignment()
        self._tps = tps
        self._assigned = frozenset(self._pid(tp) for tp in tps)
        self._seek_known(tps)
        if self.stop_at_end:
            new = [tp for tp in tps if self._pid(tp) not in self._ends]
            if new:
                ends = await self._retry(lambda: consumer.end_offsets(new), "read the end offsets")
                for tp, end in ends.items():
                    self._ends[self._pid(tp)] = end
        self._caught = self._caught & self._assigned

    def _seek_known(self, tps: Collection[TopicPartition]) -> None:
        """Seek every partition of ``tps`` with a known position there (invariant 3)."""
        consumer = self._consumer
        if consumer is None:
            return
        for tp in tps:
            offset = self._next.get(self._pid(tp))
            if offset is None:
                continue
            try:
                consumer.seek(tp, offset)
            except (KafkaError, ValueError) as exc:
                raise self._client_error(
                    f"cannot seek {self._pid(tp)} to {offset}: {describe(exc)}"
                ) from exc

    async def _refresh_progress(self, consumer: AIOKafkaConsumer) -> None:
        """Update positions and the caught-up set from the latest fetch (invariant 4)."""
        committed = self.isolation_level == "read_committed"
        caught = []
        nxt = self._next
        for tp in self._tps or ():
            end = consumer.last_stable_offset(tp) if committed else None
            if end is None or end < 0:
                end = consumer.highwater(tp)
            if end is None:
                continue  # not fetched since it was assigned: position may be unknown yet
            try:
                pos = await consumer.position(tp)
            except KafkaError:
                continue  # revoked meanwhile; the next read_batch sees the new assignment
            pid = self._pid(tp)
            if pos > nxt.get(pid, -1):
                nxt[pid] = pos
            self._lag[pid] = max(0, end - pos)
            if pos >= end:
                caught.append(pid)
        self._caught = frozenset(caught)

    def _reached_end(self) -> bool:
        ends, nxt = self._ends, self._next
        return all(ends.get(pid, 0) <= nxt.get(pid, 0) for pid in self._assigned)

    # -- offsets in Kafka --------------------------------------------------------------

    async def commit_offsets(self, position: Mapping[str, int] | None) -> None:
        """Commit ``position`` (a value ``position()`` returned) to the consumer group.

        For monitoring (lag) and for other tools: this source resumes from checkpoints.
        Partitions not assigned now are left out; without ``group_id`` nothing is done.
        """
        if self._group is not None:
            await self._group.commit(position or {})
            return
        consumer = self._consumer
        if consumer is None or self.group_id is None or not position:
            return
        assigned = consumer.assignment()
        offsets = {}
        for pid, offset in position.items():
            topic, partition = parse_partition_id(pid)
            tp = TopicPartition(topic, partition)
            if tp in assigned:
                offsets[tp] = int(offset)
        if not offsets:
            return
        await self._retry(lambda: consumer.commit(offsets), f"commit offsets to group {self.group_id!r}")


async def _stop_consumer(consumer: AIOKafkaConsumer) -> None:
    await consumer.stop()


def _parse_position(position: Any, name: str) -> dict[str, int]:
    """A position as ``position()`` returns it, checked; ``{}`` for None."""
    if position is None:
        return {}
    try:
        if not isinstance(position, Mapping):
            raise TypeError("not a mapping")
        out = {}
        for pid, offset in position.items():
            parse_partition_id(pid)
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset {offset!r} of {pid!r} is not a non-negative integer")
            out[str(pid)] = offset
        return out
    except (TypeError, ValueError, AttributeError) as exc:
        raise SourceError(
            f"{name}: cannot resume from position {position!r}: expected "
            f'{{"<topic>:<partition>": offset}} as returned by position(): {exc}'
        ) from exc
