"""``KafkaSink``: writes records to one topic, at least once or exactly once.

At least once (the default): ``write_batch`` serialises the whole batch first (so a
record that cannot be serialised fails the batch before anything is sent), sends every
record without waiting, then waits for all deliveries: when it returns, the batch is
acknowledged (``acks="all"`` unless overridden).

Exactly once (``exactly_once=True``) uses one transactional producer whose
``transactional_id`` is stable across restarts (default
``streamcore-<flow>-<stage>``), so starting it fences an earlier process still
running with that id and aborts that process's open transaction. Under checkpointing
it is a two-phase commit against the checkpoint protocol:
1. Records written between two barriers go into one Kafka transaction; ``write_batch``
   does not wait for their acknowledgements, steps 2 and 4 do (``_wait_acked``).
2. Every item sent is also appended to the open transaction's *journal*
   (``_transactions.py``: one compact byte string, not an object per record).
   ``pre_commit(n)`` flushes that transaction and seals its journal as a *group*; the
   state it returns is a write-ahead log of every group not known to be published
   (their journals), and the sequence number of the last one.
3. Kafka allows one open transaction per transactional id: records written after
   ``pre_commit(n)`` and before ``commit(n)`` go to a journal only (``_buffer``), as do
   groups sealed meanwhile; they are read back and sent once ``commit(n)`` starts the
   next transaction. Such a write does not wait for a commit in progress.
4. ``commit(n)`` publishes every sealed group of a checkpoint up to ``n`` in the open
   transaction (sending those not sent yet), commits the *marker* (the sequence number
   of the last group, as an offset of the consumer group ``marker_group``) in the same
   transaction, commits it, then opens the next transaction for what waited.
5. ``restore(state)`` (before ``open``) keeps the state; ``open`` starts the producer
   (which aborts whatever the crashed process left open), reads the marker and
   publishes, in one new transaction, the groups of the state past the marker.
6. ``close()`` at the end of the stream comes before the coordinator commits the final
   checkpoint: the producer stays open (for at most ``commit_wait_s``) until that
   ``commit``. A ``commit`` that finds no producer publishes from its state as
   ``restore`` would. After a failure ``close()`` aborts the open transaction.
Without checkpointing, an exactly-once sink writes the whole stream in one transaction,
committed by ``close()`` at the end of the stream and aborted when the flow fails.
Design: docs/connectors-kafka.md#sink, docs/connectors-kafka.md#exactly-once
"""

from __future__ import annotations

import asyncio
import copy
import logging
import ssl
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from connectors.kafka._client import Connection, start_with_retry, stop_quietly
from connectors.kafka._errors import describe, retry
from connectors.kafka._formats import encode_headers, encode_key, value_encoder
from connectors.kafka._transactions import (
    Group,
    Item,
    Journal,
    State,
    decode_state,
    encode_state,
    read_journal,
)
from streamcore.errors import ConfigurationError, SinkConnectorError, SinkError
from streamcore.io import Sink, SinkContext

__all__ = ["KafkaSink"]

log = logging.getLogger("connectors.kafka")

_RESERVED = (
    "bootstrap_servers", "transactional_id", "key_serializer", "value_serializer",
    "compression_type", "linger_ms",
)  # fmt: skip
_INIT_TIMEOUT_S = 60.0
# A fresh cluster creates its offsets topic on the first request for a coordinator;
# that can take several seconds on a loaded machine.
_MARKER_BUDGET_S = 60.0
# A transaction that completed just before this process started may need a moment
# before its marker can be read (the broker materialises transactional offsets after
# writing the commit markers); restore looks again after this long before sending twice.
_MARKER_SETTLE_S = 0.5
# Keys whose partition a sink remembers, at most (then it starts again).
_BY_KEY_MAX = 65_536


def _unwinding() -> bool:
    """True when called while an exception or a cancellation is propagating (a failure)."""
    if sys.exc_info()[1] is not None:
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class KafkaSink(Sink):
    """Writes each record as one Kafka record of ``topic`` (see the module docstring)."""

    default_name: ClassVar[str] = "kafka"

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | list[str],
        key: Callable[[Any], Any] | None = None,
        headers: Callable[[Any], Iterable[tuple[str, Any]] | None] | None = None,
        value_format: str = "json",
        avro_schema: Any = None,
        confluent_schema_id: int | None = None,
        compression_type: str | None = None,
        linger_ms: int = 5,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_attempts: int = 3,
        connect_timeout_s: float = 15.0,
        commit_wait_s: float = 60.0,
        **producer_options: Any,
    ) -> None:
        if not topic:
            raise ConfigurationError("KafkaSink needs a topic")
        if transactional_id is not None and not exactly_once:
            raise ConfigurationError("transactional_id is only used with exactly_once=True")
        for name in _RESERVED:
            if name in producer_options:
                raise ConfigurationError(f"{name} is set by KafkaSink itself; remove it from the options")
        self.topic = topic
        self.key = key
        self.headers = headers
        self.value_format = value_format
        self.exactly_once = exactly_once
        self.transactional_id = transactional_id
        self.commit_wait_s = commit_wait_s
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
        self.producer_options = {"acks": "all", **producer_options}
        self.producer_options["compression_type"] = compression_type
        self.producer_options["linger_ms"] = linger_ms
        self._encode = value_encoder(value_format, avro_schema, confluent_schema_id)
        self._partitioner = producer_options.get("partitioner") or DefaultPartitioner()
        # Checkpoint hooks only for exactly-once sinks: others are at-least-once.
        self.supports_checkpoints = exactly_once  # type: ignore[misc]
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._restore_state: Any = None
        self._watchdog: asyncio.Task[None] | None = None
        self._run = 0
        """Counts ``open`` calls: a commit of an earlier run does not touch a later one."""
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._checkpointing = False
        self._tid = ""
        self._marker_group = ""
        self._txn_open = False
        self._broken = False
        """A send or commit failed: the open transaction can only be aborted."""
        self._failed = False
        self._current = Journal()
        """Checkpointing: items in the open transaction, not sealed yet."""
        self._groups: list[Group] = []
        """Sealed groups not yet published, in order; only the first can be ``sent``."""
        self._buffer = Journal()
        """Items written while a sealed group holds the open transaction (not sent)."""
        self._seq = 0
        self._parked = False
        self._unacked: list[asyncio.Future[Any]] = []
        """Checkpointing: deliveries of the open transaction not awaited yet (see _send)."""
        # aiokafka's default partitioner hashes a key (murmur2, in Python) to the same
        # partition every time for one list of partitions: remember it per key instead.
        self._by_key: dict[bytes, int] | None = {} if type(self._partitioner) is DefaultPartitioner else None
        self._by_key_for: list[int] = []

    def for_task(self, task: str) -> KafkaSink:
        """A sink of its own for one partition task of a scaled-out flow: a transactional
        id per task (``<transactional_id>-<task>`` when one was given; by default the
        task's flow name is in it), so a task that moved fences its earlier owner."""
        sink = copy.copy(self)
        if self.transactional_id is not None:
            sink.transactional_id = f"{self.transactional_id}-{task}"
        sink.producer_options = dict(self.producer_options)
        sink._producer = None
        sink._lock = asyncio.Lock()
        sink._restore_state = None
        sink._watchdog = None
        sink._run = 0
        sink._reset_run_state()
        return sink

    def __repr__(self) -> str:
        mode = "exactly-once" if self.exactly_once else "at-least-once"
        return f"<KafkaSink {self.topic!r} {self.connection.servers!r} {mode}>"

    @property
    def _name(self) -> str:
        return f"Kafka sink {self.topic!r}"

    def _error(self, message: str) -> SinkError:
        return SinkError(f"{self._name}: {message}")

    def _client_error(self, message: str) -> SinkConnectorError:
        return SinkConnectorError(f"{self._name}: {message}")

    # -- lifecycle -------------------------------------------------------------------

    async def restore(self, state: Any | None) -> None:
        """Keep ``state`` (what ``pre_commit`` returned for the checkpoint restored, or
        None): ``open`` fences the previous producer and publishes what it lost."""
        self._restore_state = state

    async def open(self, context: SinkContext) -> None:
        """Start the producer; exactly once, fence earlier producers and recover."""
        await super().open(context)
        # The lock: a commit of an earlier run of this sink (in the same process, before
        # a restart) may still be finishing; it completes before this run starts.
        async with self._lock:
            await self._open(context)

    async def _open(self, context: SinkContext) -> None:
        await self._shutdown()  # a producer left waiting by an earlier run of this sink
        self._reset_run_state()
        self._run += 1
        self._checkpointing = self.exactly_once and context.checkpointing
        self._tid = self.transactional_id or f"streamcore-{context.flow}-{context.stage}"
        self._marker_group = f"streamcore-sink-{context.flow}-{context.stage}"
        state, self._restore_state = self._restore_state, None
        producer = await self._start_producer()
        self._producer = producer
        try:
            if self.exactly_once:
                await self._init_transactions(producer)
            if self._checkpointing:
                await self._recover(state)
        except BaseException:
            self._producer = None
            await stop_quietly(_stop_producer, producer)
            raise

    async def _start_producer(self) -> AIOKafkaProducer:
        options = {**self.connection.options(), **self.producer_options}
        if self.exactly_once:
            options["transactional_id"] = self._tid

        async def start(producer: AIOKafkaProducer) -> None:
            await producer.start()

        producer = await start_with_retry(
            lambda: AIOKafkaProducer(**options), start, _stop_producer, self.connection, self._client_error
        )
        try:
            await retry(
                lambda: producer.partitions_for(self.topic),
                what=f"find the topic at {self.connection.servers!r}",
                fail=self._client_error,
                budget_s=self.connection.timeout_s,
                advice="the topic does not exist or has no leader; create it first",
            )
        except BaseException:
            await stop_quietly(_stop_producer, producer)
            raise
        return producer

    async def _init_transactions(self, producer: AIOKafkaProducer) -> None:
        """Get a producer id for the transactional id: fences an earlier producer and
        aborts (or completes) its open transaction before returning."""
        # aiokafka initialises the id on start; beginning a transaction waits for it.
        await retry(
            producer.begin_transaction,
            what=f"initialise transactions for transactional id {self._tid!r}",
            fail=self._client_error,
            budget_s=_INIT_TIMEOUT_S,
        )
        self._txn_open = True

    async def abort(self) -> None:
        """The flow failed: abort the open transaction (nothing of it becomes visible)."""
        self._failed = True
        await self.close()

    async def close(self) -> None:
        """At the end of the stream: flush (at least once), commit the transaction
        (exactly once without checkpoints), or keep the producer for the final
        ``commit`` (under checkpoints). After a failure: abort the open transaction."""
        failed = self._failed or _unwinding()
        async with self._lock:
            producer = self._producer
            if producer is None:
                return
            if self._checkpointing and not failed and self._groups:
                # Step 6: the final checkpoint is committed after close().
                self._parked = True
                self._watchdog = asyncio.get_running_loop().create_task(
                    self._expire_parked(self._run), name=f"kafka-sink-{self._tid}-commit-wait"
                )
                return
            error: SinkError | None = None
            try:
                if self.exactly_once and self._txn_open:
                    if failed or self._checkpointing or self._broken:
                        await self._abort_quietly(producer)
                    else:
                        try:
                            await producer.commit_transaction()
                            self._txn_open = False
                        except KafkaError as exc:
                            error = self._client_error(
                                f"committing the transaction failed: {describe(exc)}"
                            )
                            error.__cause__ = exc
                elif not failed:
                    try:
                        await producer.flush()
                    except KafkaError as exc:
                        error = self._client_error(f"flushing failed: {describe(exc)}")
                        error.__cause__ = exc
            finally:
                await self._shutdown()
            if error is not None:
                raise error

    async def _expire_parked(self, run: int) -> None:
        """Stop a producer kept for the final commit that did not come in time."""
        try:
            await asyncio.sleep(self.commit_wait_s)
        finally:
            async with self._lock:
                if run == self._run and self._parked and self._producer is not None:
                    log.warning(
                        "kafka sink gave up waiting for the final commit topic=%s waited_s=%s",
                        self.topic,
                        self.commit_wait_s,
                    )
                    await self._abort_quietly(self._producer)
                    await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop the producer (no commit) and the watchdog; the caller holds the lock."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        self._parked = False
        self._forget_unacked()
        producer, self._producer = self._producer, None
        self._txn_open = False
        if producer is not None:
            await stop_quietly(_stop_producer, producer)

    async def _abort_quietly(self, producer: AIOKafkaProducer) -> None:
        self._forget_unacked()
        if not self._txn_open:
            return
        self._txn_open = False
        try:
            async with asyncio.timeout(self.connection.timeout_s):
                await producer.abort_transaction()
        except (TimeoutError, KafkaError) as exc:
            # The broker aborts it at the transaction timeout, or the next start does.
            log.warning("kafka sink abort failed topic=%s error=%r", self.topic, describe(exc))

    # -- writing ---------------------------------------------------------------------

    async def write_batch(self, records: list[Any]) -> None:
        """Serialise the whole batch, then send it; returns once it is acknowledged
        (exactly once under checkpoints: once it is in the open transaction, or kept
        in memory while a sealed transaction waits for its commit)."""
        await self._write_items(self._serialise(records))

    async def _write_items(self, items: list[Item]) -> None:
        """Send serialised items the way ``write_batch`` does (see there)."""
        if not items:
            return
        if self._checkpointing and self._groups:
            # Step 3 without waiting for the lock, which a commit publishing the sealed
            # groups holds across its round trips to the broker. These items only join
            # the buffer: the commit tests the groups and takes the buffer with no await
            # in between, and nothing runs between this test and the append either.
            self._usable()
            self._buffer.append(items)
            return
        async with self._lock:
            self._usable()
            if self._checkpointing:
                if self._groups:
                    self._buffer.append(items)  # step 3
                    return
                await self._send(items)
                self._current.append(items)  # step 2: the write-ahead, as it is written
            else:
                await self._send(items)

    def _serialise(self, records: list[Any]) -> list[Item]:
        encode, key_of, headers_of = self._encode, self.key, self.headers
        items: list[Item] = []
        for index, record in enumerate(records):
            try:
                value = encode(record)
                key = None if key_of is None else encode_key(key_of(record))
                headers = None if headers_of is None else encode_headers(headers_of(record))
            except Exception as exc:
                raise self._error(
                    f"cannot serialise record {index} of the batch (type {type(record).__name__}) "
                    f"as {self.value_format}: {describe(exc)}; convert it in a map() before the sink"
                ) from exc
            items.append((key, value, headers))
        return items

    def _usable(self) -> AIOKafkaProducer:
        producer = self._producer
        if producer is None:
            raise self._error("not open; write_batch needs open() first")
        if self._broken:
            raise self._error(
                "an earlier send failed inside the transaction; the flow must restart"
            )
        return producer

    async def _send(self, items: list[Item]) -> None:
        """Send ``items`` (in the open transaction when exactly once) and wait for them;
        under checkpoints, hand them over only (the deliveries are awaited before the
        transaction is sealed or committed, ``_wait_acked``).

        Records are appended to one batch per partition and handed over with
        ``send_batch``, not sent one by one: ``send`` is a coroutine per record, which was
        the largest cost of writing small records. Partitions are chosen as ``send``
        would, with the producer's partitioner; within a partition the order is kept.
        Nothing of an exactly-once transaction is visible before its commit, so waiting
        for each write's acknowledgement there only adds a linger and a round trip to
        every batch; the accumulator still bounds what is handed over (one batch per
        partition waiting to be drained). aiokafka's default partitioner gives a key the
        same partition every time for one list of partitions, so its choice is remembered
        per key (``_by_key``, emptied when the partitions change or it grows large)."""
        producer = self._usable()
        if self.exactly_once and not self._txn_open:
            await self._begin(producer)
        futures: list[asyncio.Future[Any]] = []
        topic, choose, by_key = self.topic, self._partitioner, self._by_key
        try:
            partitions = sorted(await producer.partitions_for(topic))
            if by_key is not None and (partitions != self._by_key_for or len(by_key) >= _BY_KEY_MAX):
                by_key.clear()
                self._by_key_for = partitions
            batches: dict[int, Any] = {}
            for key, value, headers in items:
                if key is None or by_key is None:
                    partition = choose(key, partitions, partitions)
                else:
                    partition = by_key.get(key, -1)
                    if partition < 0:
                        partition = by_key[key] = choose(key, partitions, partitions)
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                    # Full: hand it over (the accumulator keeps the partition's order).
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=headers or [])
            for partition, batch in batches.items():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            if self._checkpointing:
                self._unacked.extend(futures)
                futures = []
                self._check_acked()
        except KafkaError as exc:
            for future in futures:
                future.add_done_callback(_consume_exception)
            raise self._send_failed(exc) from exc
        if futures:
            await self._wait_delivered(futures)

    def _send_failed(self, exc: BaseException) -> SinkError:
        self._failed = True
        if self.exactly_once:
            self._broken = True
        return self._client_error(f"sending failed: {describe(exc)}")

    def _check_acked(self) -> None:
        """Drop the deliveries already done; raise (KafkaError) if one of them failed."""
        unacked = self._unacked
        if not unacked or (len(unacked) < 64 and not unacked[0].done()):
            return
        pending = []
        for future in unacked:
            if not future.done():
                pending.append(future)
            elif not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self._unacked = pending

    async def _wait_acked(self) -> None:
        """Wait for every delivery handed over in the open transaction."""
        futures, self._unacked = self._unacked, []
        await self._wait_delivered(futures)

    async def _wait_delivered(self, futures: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            for future in futures:
                future.add_done_callback(_consume_exception)
            raise self._send_failed(exc) from exc

    def _forget_unacked(self) -> None:
        """The transaction is aborted or the producer stopped: its deliveries do not matter."""
        futures, self._unacked = self._unacked, []
        for future in futures:
            future.add_done_callback(_consume_exception)

    async def _begin(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.begin_transaction()
        except KafkaError as exc:
            self._failed = self._broken = True
            raise self._client_error(f"cannot begin a transaction: {describe(exc)}") from exc
        self._txn_open = True

    # -- checkpoint hooks ------------------------------------------------------------

    async def pre_commit(self, checkpoint_id: int) -> dict[str, Any] | None:
        """Step 2: seal what was written since the last seal; return the write-ahead state."""
        if not self._checkpointing:
            return None
        async with self._lock:
            producer = self._usable()
            if self._groups:
                if self._buffer:
                    count = len(self._buffer)
                    self._groups.append(
                        Group(self._next_seq(), checkpoint_id, self._buffer.seal(), count)
                    )
            elif self._current:
                try:
                    await producer.flush()
                except KafkaError as exc:
                    self._failed = self._broken = True
                    raise self._client_error(
                        f"flushing for checkpoint {checkpoint_id} failed: {describe(exc)}"
                    ) from exc
                await self._wait_acked()
                count = len(self._current)
                self._groups.append(
                    Group(self._next_seq(), checkpoint_id, self._current.seal(), count, sent=True)
                )
            return encode_state(self._tid, self._marker_group, self._seq, self._groups)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def commit(self, checkpoint_id: int, state: Any) -> None:
        """Step 4: checkpoint ``checkpoint_id`` is complete; publish every group sealed
        for it or earlier. Idempotent; after ``close()`` too."""
        if not self.exactly_once:
            return
        # Shielded: the coordinator's task may be cancelled while it waits (the flow is
        # ending); the commit then still finishes, so no transaction is left half done.
        task = asyncio.ensure_future(self._commit(checkpoint_id, state, self._run))
        task.add_done_callback(self._commit_done)
        await asyncio.shield(task)

    def _commit_done(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Seen by the caller too, unless it was cancelled meanwhile: then only here.
            log.warning(
                "kafka sink commit failed topic=%s error=%r", self.topic, str(task.exception())
            )

    async def _commit(self, checkpoint_id: int, state: Any, run: int) -> None:
        async with self._lock:
            if run != self._run:
                return  # a later open() restored (and published) what this would have
            if self._producer is None:
                if state is not None:
                    await self._publish_state(state)
                return
            ready = 0
            while ready < len(self._groups) and self._groups[ready].checkpoint <= checkpoint_id:
                ready += 1
            if ready:
                await self._publish(self._groups[:ready])
                del self._groups[:ready]
                if self._groups:
                    head = self._groups[0]
                    await self._send(read_journal(head.journal))
                    head.sent = True
                elif self._buffer:
                    self._current, self._buffer = self._buffer, Journal()
                    await self._send(read_journal(bytes(self._current.data)))
            if self._parked and not self._groups:
                await self._shutdown()

    async def _publish(self, groups: list[Group]) -> None:
        """Send what of ``groups`` is not in the open transaction, add the marker, commit."""
        producer = self._usable()
        for group in groups:
            if not group.sent:
                await self._send(read_journal(group.journal))
                group.sent = True
        if not self._txn_open:
            await self._begin(producer)
        await self._wait_acked()
        marker = {TopicPartition(self.topic, 0): groups[-1].seq}
        try:
            await producer.send_offsets_to_transaction(marker, self._marker_group)
            await producer.commit_transaction()
        except KafkaError as exc:
            self._failed = self._broken = True
            raise self._client_error(
                f"committing the transaction of checkpoint {groups[-1].checkpoint} failed: "
                f"{describe(exc)}"
            ) from exc
        self._txn_open = False

    # -- recovery ------------------------------------------------------------------------

    async def _recover(self, raw: Any | None) -> None:
        """Step 5, with the producer started and fenced: publish the groups of ``raw``
        (a checkpoint state) that the marker says are not published."""
        state = self._decode(raw) if raw is not None else None
        marker = await self._read_marker()
        pending = [g for g in state.groups if g.seq > marker] if state else []
        if pending:
            await asyncio.sleep(_MARKER_SETTLE_S)
            marker = await self._read_marker()
            pending = [g for g in pending if g.seq > marker]
        if pending:
            await self._publish(pending)
            log.info(
                "kafka sink published again after a restart topic=%s groups=%d records=%d",
                self.topic,
                len(pending),
                sum(g.count for g in pending),
            )
        if state is not None and marker > state.seq:
            log.warning(
                "kafka sink output is ahead of the restored checkpoint topic=%s marker=%d "
                "checkpoint_seq=%d: records published after that checkpoint will be written again",
                self.topic,
                marker,
                state.seq,
            )
        self._seq = max(0, marker, state.seq if state else 0)

    async def _publish_state(self, raw: Any) -> None:
        """``commit`` without a producer (it was stopped): start one and recover."""
        self._checkpointing = True
        producer = await self._start_producer()
        self._producer = producer
        try:
            await self._init_transactions(producer)
            await self._recover(raw)
        finally:
            await self._shutdown()

    def _decode(self, raw: Any) -> State:
        try:
            state = decode_state(raw)
        except ValueError as exc:
            raise self._error(f"cannot restore: {exc}") from exc
        if state.transactional_id != self._tid or state.marker_group != self._marker_group:
            raise self._error(
                f"the checkpoint was written with transactional id {state.transactional_id!r} "
                f"and marker group {state.marker_group!r}, this sink uses {self._tid!r} and "
                f"{self._marker_group!r}; keep transactional_id=, the flow name and the stage "
                "name unchanged across restarts"
            )
        return state

    async def _read_marker(self) -> int:
        """The sequence number of the last published group, or -1 (see _transactions.py)."""
        options = self.connection.options()

        async def start(admin: AIOKafkaAdminClient) -> None:
            await admin.start()

        async def stop(admin: AIOKafkaAdminClient) -> None:
            await admin.close()

        admin = await start_with_retry(
            lambda: AIOKafkaAdminClient(**options), start, stop, self.connection, self._client_error
        )
        tp = TopicPartition(self.topic, 0)
        try:
            # On a fresh cluster the group coordinator appears a moment after the
            # broker answers: that error is retriable, so it is retried here.
            offsets = await retry(
                lambda: admin.list_consumer_group_offsets(self._marker_group, partitions=[tp]),
                what=f"read the commit marker of group {self._marker_group!r}",
                fail=self._client_error,
                budget_s=_MARKER_BUDGET_S,
            )
        finally:
            await stop_quietly(stop, admin)
        found = offsets.get(tp)
        return -1 if found is None or found.offset is None else int(found.offset)


async def _stop_producer(producer: AIOKafkaProducer) -> None:
    await producer.stop()
