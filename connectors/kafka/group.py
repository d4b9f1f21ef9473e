"""``KafkaPartitionGroup``: consumer-group membership for a scaled-out flow.

One consumer per process joins the group of a ``KafkaSource`` and subscribes to its
topics; it reads nothing itself (every partition it is given is paused at once). Its
only jobs are to learn which partitions are this process's, to tell the runtime (which
runs one task per partition, each with its own consumer on that partition alone), and
to commit offsets on behalf of those tasks once their checkpoints complete.

Invariants:
1. Partitions are reported revoked (and the runtime's callback has returned, so their
   tasks stopped at a checkpoint) before the consumer rejoins: aiokafka awaits the
   rebalance listener. aiokafka's protocol is eager, so a rebalance revokes every
   partition of every member first.
2. ``leave()`` revokes what is held, then stops the consumer, which leaves the group at
   once instead of after the session timeout.
3. Offsets are committed only for partitions held now (others belong to someone else).
Design: docs/scale-out.md
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from connectors.kafka._client import start_with_retry, stop_quietly
from connectors.kafka._errors import describe, retry
from connectors.kafka._record import parse_partition_id, partition_id
from connectors.kafka.repartition import KafkaRepartition, repartition_topic_name
from streamcore.errors import SourceConnectorError, SourceError
from streamcore.io import PartitionGroup, Source

if TYPE_CHECKING:
    from connectors.kafka.source import KafkaSource
    from streamcore.io import AssignmentCallback

__all__ = ["KafkaPartitionGroup"]

log = logging.getLogger("connectors.kafka")

_POLL_MS = 200
REBALANCE_TIMEOUT_MS = 300_000
"""How long the group waits for members to rejoin; above the runtime's suspend timeout."""


class _Listener(ConsumerRebalanceListener):
    def __init__(self, group: KafkaPartitionGroup) -> None:
        self._group = group

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._group._revoke([partition_id(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._group._assign(assigned)


class KafkaPartitionGroup(PartitionGroup):
    """The consumer group of ``source``, shared by every process running the flow."""

    def __init__(self, source: KafkaSource) -> None:
        assert source.group_id is not None
        self.source = source
        self.group_id = source.group_id
        self.finite = source.stop_at_end
        self.held: set[str] = set()
        """Partitions this process holds now (their tasks run)."""
        self._consumer: AIOKafkaConsumer | None = None
        self._leaving = asyncio.Event()
        self._on_assigned: AssignmentCallback | None = None
        self._on_revoked: AssignmentCallback | None = None
        self.repartitions: list[KafkaRepartition] = []
        self.generation: int | None = None
        """The group generation of the current assignment (fences the tasks' checkpoints)."""

    def repartition(
        self,
        flow: str,
        stage: str,
        key: Callable[[Any], Any],
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
    ) -> KafkaRepartition:
        """The repartition topic of ``stage`` (a ``key_by``) of ``flow``: created on demand
        when ``run`` starts, its partitions shared by this group beside the input's."""
        r = KafkaRepartition(self, repartition_topic_name(flow, stage), key, encode, decode)
        self.repartitions.append(r)
        return r

    def __repr__(self) -> str:
        return f"<KafkaPartitionGroup {self.group_id!r} held={sorted(self.held)}>"

    def _error(self, message: str) -> SourceError:
        return SourceError(f"Kafka consumer group {self.group_id!r}: {message}")

    def _client_error(self, message: str) -> SourceConnectorError:
        return SourceConnectorError(f"Kafka consumer group {self.group_id!r}: {message}")

    async def run(self, on_assigned: AssignmentCallback, on_revoked: AssignmentCallback) -> None:
        """Join, report assignment changes, and leave once ``leave()`` is called."""
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        src = self.source
        options = {
            **src.connection.options(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": src.start,
            # A revoke stops tasks at a checkpoint before this member rejoins: the group
            # must wait that long (aiokafka's default is the session timeout, 10 s).
            "rebalance_timeout_ms": REBALANCE_TIMEOUT_MS,
            **src.consumer_options,
        }

        async def start(consumer: AIOKafkaConsumer) -> None:
            await consumer.start()

        async def stop(consumer: AIOKafkaConsumer) -> None:
            await consumer.stop()

        consumer = await start_with_retry(
            lambda: AIOKafkaConsumer(**options), start, stop, src.connection, self._client_error
        )
        self._consumer = consumer
        try:
            await src._check_topics(consumer)
            for r in self.repartitions:
                await r.prepare()
            topics = [*(src.topics or ()), *(r.topic for r in self.repartitions)]
            try:
                consumer.subscribe(topics=topics, pattern=src.pattern, listener=_Listener(self))
            except (KafkaError, ValueError) as exc:
                raise self._client_error(f"cannot subscribe: {describe(exc)}") from exc
            while not self._leaving.is_set():
                # Polling keeps the membership alive (max_poll_interval_ms); every
                # partition is paused, so nothing is fetched.
                waiter = asyncio.ensure_future(self._leaving.wait())
                poll = asyncio.ensure_future(
                    retry(
                        lambda: consumer.getmany(timeout_ms=_POLL_MS),
                        what="stay in the group",
                        fail=self._client_error,
                        budget_s=src.connection.timeout_s,
                    )
                )
                try:
                    await asyncio.wait([waiter, poll], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    if not poll.done():
                        poll.cancel()
                if poll.done() and not poll.cancelled():
                    poll.result()  # raises the SourceError retry() made of a failure
            await self._revoke(sorted(self.held))
        finally:
            self._consumer = None
            await stop_quietly(stop, consumer)
            for r in self.repartitions:
                await r.close()

    def leave(self) -> None:
        """Revoke every partition held and leave the group (``run`` then returns)."""
        self._leaving.set()

    async def _assign(self, assigned: Collection[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)
        self.generation = _generation(consumer)
        new = sorted(partition_id(tp.topic, tp.partition) for tp in assigned)
        new = [p for p in new if p not in self.held]
        if self._leaving.is_set():
            return
        # Reported even when empty: a finite run given nothing ends (docs/scale-out.md).
        self.held.update(new)
        assert self._on_assigned is not None
        await self._on_assigned(new)

    async def _revoke(self, partitions: list[str]) -> None:
        # Taken out of ``held`` before awaiting: a revoke from the listener and one from
        # ``leave`` may overlap, and each partition must be revoked once.
        gone = [p for p in partitions if p in self.held]
        if not gone:
            return
        self.held.difference_update(gone)
        assert self._on_revoked is not None
        await self._on_revoked(gone)

    def task_source(self, partition: str) -> Source:
        """A copy of the source reading ``partition`` only, committing through this group."""
        task = copy.copy(self.source)
        task._make_task(partition, self)
        return task

    async def committed(self, partition: str) -> int | None:
        """The group's committed offset of ``partition`` (None if it has none)."""
        consumer = self._consumer
        if consumer is None:
            return None
        topic, number = parse_partition_id(partition)
        # Failing (after the retries) beats guessing with ``start``, which could skip or
        # repeat records: the task restarts.
        found: int | None = await retry(
            lambda: consumer.committed(TopicPartition(topic, number)),
            what=f"read the committed offset of {partition}",
            fail=self._client_error,
            budget_s=self.source.connection.timeout_s,
        )
        return found

    async def commit(self, position: Mapping[str, Any]) -> None:
        """Commit the offsets of ``position`` for the partitions held now (invariant 3)."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {}
        for pid, offset in position.items():
            if pid in self.held:
                topic, number = parse_partition_id(pid)
                offsets[TopicPartition(topic, number)] = int(offset)
        if not offsets:
            return
        # Bounded: this runs inside a revoke callback too, which the group waits for.
        await retry(
            lambda: consumer.commit(offsets),
            what="commit offsets",
            fail=self._client_error,
            budget_s=self.source.connection.timeout_s,
        )


def _generation(consumer: AIOKafkaConsumer | None) -> int | None:
    """The generation the member joined (aiokafka keeps it on its group coordinator, which
    has set it before the listener is called); None if it is not known."""
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", None)
    return generation if isinstance(generation, int) and generation >= 0 else None
