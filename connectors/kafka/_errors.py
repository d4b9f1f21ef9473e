"""How the Kafka connectors answer aiokafka's errors: retry, or fail with our error type.

One table, ``RULES``, sorts aiokafka's exception classes into two buckets:
- ``RETRIABLE``: the cluster is busy or moving (a coordinator loading or not elected
  yet, a leader being elected, a request timed out, a connection dropped). The same
  call a moment later usually works, so ``retry`` calls it again with a doubling pause,
  within a time budget.
- ``FATAL``: the call cannot succeed as made (authorisation, a fenced producer, a bad
  configuration). ``retry`` raises at once.
A class not in the table follows aiokafka's own ``retriable`` flag (its base classes'
rows apply first). Either way, what leaves the connector is the *side's* connector
error: ``SourceConnectorError`` for reading, group membership and repartition topics,
``SinkConnectorError`` for writing (both ``ConnectorError``; the caller passes ``fail``), with the aiokafka exception as ``__cause__``
and the row's hint in the message. Every retry in the connectors goes through
``retry``; nothing else in them decides whether an aiokafka error is worth a retry.
Design: docs/connectors-kafka.md#errors
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from time import monotonic
from typing import TypeVar

from aiokafka import errors as ak

__all__ = ["FATAL", "RETRIABLE", "RULES", "Bucket", "Rule", "describe", "is_retriable", "retry", "rule_for"]

log = logging.getLogger("connectors.kafka")

_T = TypeVar("_T")

FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0


class Bucket(Enum):
    """Whether a call that failed with an error is worth making again."""

    RETRIABLE = "retriable"
    FATAL = "fatal"


RETRIABLE = Bucket.RETRIABLE
FATAL = Bucket.FATAL


@dataclass(frozen=True)
class Rule:
    """One row of the table: the bucket, and advice for the message (may be empty)."""

    bucket: Bucket
    hint: str = ""


_BUSY = "the cluster was busy (starting, electing or moving); retried"
_CONNECT = "check that the broker runs and that bootstrap_servers and the security settings are right"
_AUTH = "the broker refused the credentials or the ACLs; check the security settings and ACLs"
_FENCED = "another producer with the same transactional id took over (a newer run of this sink)"

RULES: dict[type[BaseException], Rule] = {
    # Coordinators and leaders not there yet, or moving: a fresh or rebalancing cluster.
    ak.GroupCoordinatorNotAvailableError: Rule(RETRIABLE, _BUSY),
    ak.CoordinatorNotAvailableError: Rule(RETRIABLE, _BUSY),
    ak.GroupLoadInProgressError: Rule(RETRIABLE, _BUSY),
    ak.CoordinatorLoadInProgressError: Rule(RETRIABLE, _BUSY),
    ak.NotCoordinatorForGroupError: Rule(RETRIABLE, _BUSY),
    ak.NotCoordinatorError: Rule(RETRIABLE, _BUSY),
    ak.LeaderNotAvailableError: Rule(RETRIABLE, _BUSY),
    ak.NotLeaderForPartitionError: Rule(RETRIABLE, _BUSY),
    ak.NotControllerError: Rule(RETRIABLE, _BUSY),
    ak.NotEnoughReplicasError: Rule(RETRIABLE, _BUSY),
    ak.NotEnoughReplicasAfterAppendError: Rule(RETRIABLE, _BUSY),
    ak.ConcurrentTransactions: Rule(RETRIABLE, _BUSY),
    ak.StaleMetadata: Rule(RETRIABLE, _BUSY),
    ak.KafkaStorageError: Rule(RETRIABLE, _BUSY),
    ak.UnknownTopicOrPartitionError: Rule(RETRIABLE, "the topic or partition is unknown (yet); create it first"),
    # Slow or unreachable brokers. aiokafka marks KafkaTimeoutError not retriable; a
    # client-side timeout is, for us, the same as the broker's RequestTimedOut.
    ak.RequestTimedOutError: Rule(RETRIABLE, _BUSY),
    ak.KafkaTimeoutError: Rule(RETRIABLE, _CONNECT),
    ak.KafkaConnectionError: Rule(RETRIABLE, _CONNECT),
    ak.NodeNotReadyError: Rule(RETRIABLE, _CONNECT),
    ak.NoBrokersAvailable: Rule(RETRIABLE, _CONNECT),
    ak.MetadataEmptyBrokerList: Rule(RETRIABLE, _CONNECT),
    ak.TooManyInFlightRequests: Rule(RETRIABLE, _BUSY),
    # Cannot succeed as made.
    ak.ProducerFenced: Rule(FATAL, _FENCED),
    ak.InvalidProducerEpoch: Rule(FATAL, _FENCED),
    ak.TransactionCoordinatorFenced: Rule(FATAL, _FENCED),
    ak.InvalidTxnState: Rule(FATAL, "the transaction is in a state that does not allow this call"),
    ak.OutOfOrderSequenceNumber: Rule(FATAL, "the producer lost its sequence; the flow must restart"),
    ak.UnknownProducerId: Rule(FATAL, "the broker forgot this producer; the flow must restart"),
    ak.TopicAuthorizationFailedError: Rule(FATAL, _AUTH),
    ak.GroupAuthorizationFailedError: Rule(FATAL, _AUTH),
    ak.ClusterAuthorizationFailedError: Rule(FATAL, _AUTH),
    ak.TransactionalIdAuthorizationFailed: Rule(FATAL, _AUTH),
    ak.SaslAuthenticationFailed: Rule(FATAL, _AUTH),
    ak.AuthenticationFailedError: Rule(FATAL, _AUTH),
    ak.UnsupportedSaslMechanismError: Rule(FATAL, _AUTH),
    ak.UnsupportedVersionError: Rule(FATAL, "the broker is too old for this call"),
    ak.IncompatibleBrokerVersion: Rule(FATAL, "the broker is too old for this call"),
    ak.InvalidTopicError: Rule(FATAL, "the topic name is not valid"),
    ak.RecordTooLargeError: Rule(FATAL, "a record is larger than the producer's max_request_size"),
    ak.MessageSizeTooLargeError: Rule(FATAL, "a record is larger than the broker accepts (message.max.bytes)"),
    ak.KafkaConfigurationError: Rule(FATAL, "check the client options"),
    ak.IllegalStateError: Rule(FATAL, ""),
    ak.ProducerClosed: Rule(FATAL, ""),
    ak.RebalanceInProgressError: Rule(FATAL, "the group rebalanced meanwhile"),
    ak.IllegalGenerationError: Rule(FATAL, "the group moved to a newer generation meanwhile"),
    ak.UnknownMemberIdError: Rule(FATAL, "the group no longer knows this member"),
    ak.CommitFailedError: Rule(FATAL, "the group rebalanced meanwhile"),
}


def rule_for(exc: BaseException) -> Rule:
    """The row for ``exc``: its class's, else its nearest base class's, else aiokafka's flag.

    ``TimeoutError`` (a bound of ours ran out) and ``OSError`` (the socket) are retriable.
    """
    for cls in type(exc).__mro__:
        found = RULES.get(cls)
        if found is not None:
            return found
    if isinstance(exc, TimeoutError | OSError):
        return Rule(RETRIABLE, _CONNECT)
    if isinstance(exc, ak.KafkaError) and getattr(exc, "retriable", False):
        return Rule(RETRIABLE, _BUSY)
    return Rule(FATAL, "")


def is_retriable(exc: BaseException) -> bool:
    """Whether a call that raised ``exc`` is worth making again."""
    return rule_for(exc).bucket is RETRIABLE


def describe(exc: BaseException) -> str:
    """A short phrase for an aiokafka (or other) exception."""
    text = str(exc).strip()
    name = type(exc).__name__
    if not text or text == name:
        return name
    if text.startswith(name):
        return text
    return f"{name}: {text}"


async def retry(
    call: Callable[[], Awaitable[_T]],
    *,
    what: str,
    fail: Callable[[str], Exception],
    budget_s: float,
    attempts: int | None = None,
    advice: str = "",
) -> _T:
    """``await call()``; retry it while it fails with a retriable error, within bounds.

    Each attempt runs under ``asyncio.timeout`` (its share of what is left of
    ``budget_s``; with ``attempts``, an equal share per attempt left, so later attempts
    still run). Between attempts it pauses 0.1 s, doubling up to 2 s. A fatal error
    raises ``fail("cannot <what>: ...")`` at once; running out of attempts or time
    raises ``fail("cannot <what> after N attempt(s) in S s (...)")``, each with the
    aiokafka error as ``__cause__``. Cancellation is never swallowed.
    """
    started = monotonic()
    deadline = started + budget_s
    pause = FIRST_PAUSE_S
    last: BaseException | None = None
    made = 0
    while attempts is None or made < attempts:
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        share = remaining if attempts is None else remaining / (attempts - made)
        made += 1
        try:
            async with asyncio.timeout(share):
                return await call()
        except (TimeoutError, ak.KafkaError, OSError) as exc:
            rule = rule_for(exc)
            if rule.bucket is FATAL:
                hint = f"; {rule.hint}" if rule.hint else ""
                raise fail(f"cannot {what}: {describe(exc)}{hint}") from exc
            last = exc
            log.warning("kafka call failed, retrying what=%r attempt=%d error=%r", what, made, describe(exc))
        wait = min(pause, deadline - monotonic())
        if wait > 0 and (attempts is None or made < attempts):
            # The pause is the point: a coordinator or leader needs a moment to appear.
            await asyncio.sleep(wait)
        pause = min(pause * 2, MAX_PAUSE_S)
    elapsed = monotonic() - started
    if last is None:
        reason = "no time left"
    else:
        reason = "timed out" if isinstance(last, TimeoutError) else describe(last)
    tail = f"; {advice}" if advice else ""
    raise fail(f"cannot {what} after {made} attempt(s) in {elapsed:.1f}s ({reason}){tail}") from last
