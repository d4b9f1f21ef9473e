"""The one table of aiokafka errors (connectors/kafka/_errors.py): each class in its
bucket, and ``retry`` retrying the retriable ones only, within its bounds."""

from __future__ import annotations

import inspect

import pytest
from aiokafka import errors as ak

from connectors.kafka._errors import FATAL, RETRIABLE, RULES, is_retriable, retry, rule_for
from streamcore.errors import SinkError, SourceError

# What the issue names, and what a fresh or moving cluster answers: always retried.
MUST_RETRY = [
    ak.GroupCoordinatorNotAvailableError,
    ak.CoordinatorNotAvailableError,
    ak.GroupLoadInProgressError,
    ak.CoordinatorLoadInProgressError,
    ak.NotCoordinatorForGroupError,
    ak.NotCoordinatorError,
    ak.LeaderNotAvailableError,
    ak.NotLeaderForPartitionError,
    ak.RequestTimedOutError,
    ak.KafkaTimeoutError,
    ak.KafkaConnectionError,
    ak.NodeNotReadyError,
    ak.NoBrokersAvailable,
]
# Retrying cannot help: raised at once.
MUST_FAIL = [
    ak.ProducerFenced,
    ak.InvalidProducerEpoch,
    ak.TransactionalIdAuthorizationFailed,
    ak.TopicAuthorizationFailedError,
    ak.GroupAuthorizationFailedError,
    ak.SaslAuthenticationFailed,
    ak.UnsupportedVersionError,
    ak.RecordTooLargeError,
    ak.KafkaConfigurationError,
]

AIOKAFKA_ERRORS = sorted(
    (c for c in vars(ak).values() if inspect.isclass(c) and issubclass(c, ak.KafkaError)),
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("cls", MUST_RETRY, ids=lambda c: c.__name__)
def test_a_busy_cluster_error_is_retriable(cls: type[Exception]) -> None:
    assert RULES[cls].bucket is RETRIABLE
    assert is_retriable(cls())


@pytest.mark.parametrize("cls", MUST_FAIL, ids=lambda c: c.__name__)
def test_an_error_retrying_cannot_cure_is_fatal(cls: type[Exception]) -> None:
    assert RULES[cls].bucket is FATAL
    assert not is_retriable(cls())


@pytest.mark.parametrize("cls", AIOKAFKA_ERRORS, ids=lambda c: c.__name__)
def test_every_aiokafka_error_lands_in_a_bucket_and_never_less_retriable_than_aiokafka_says(
    cls: type[ak.KafkaError],
) -> None:
    rule = rule_for(cls())
    if cls in RULES:
        assert rule is RULES[cls]
    if getattr(cls, "retriable", False):
        # aiokafka's own flag is a floor: only a row of the table may say otherwise.
        assert rule.bucket is RETRIABLE or RULES.get(cls) is rule


def test_our_own_timeouts_and_socket_errors_are_retriable() -> None:
    assert is_retriable(TimeoutError())
    assert is_retriable(ConnectionResetError())


async def test_retry_calls_again_after_retriable_errors_and_returns_the_result() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ak.GroupCoordinatorNotAvailableError()
        return "ok"

    assert await retry(flaky, what="read", fail=SinkError, budget_s=30) == "ok"
    assert calls == 3


async def test_retry_raises_a_fatal_error_at_once_as_the_sides_error() -> None:
    calls = 0

    async def fenced() -> None:
        nonlocal calls
        calls += 1
        raise ak.ProducerFenced()

    with pytest.raises(SinkError, match=r"cannot commit: ProducerFenced.*transactional id took over") as caught:
        await retry(fenced, what="commit", fail=SinkError, budget_s=30)
    assert calls == 1
    assert isinstance(caught.value.__cause__, ak.ProducerFenced)


async def test_retry_gives_up_after_its_attempts_naming_the_last_error() -> None:
    async def down() -> None:
        raise ak.LeaderNotAvailableError()

    with pytest.raises(SourceError, match=r"cannot read after 3 attempt\(s\) in .*LeaderNotAvailableError") as caught:
        await retry(down, what="read", fail=SourceError, budget_s=30, attempts=3)
    assert isinstance(caught.value.__cause__, ak.LeaderNotAvailableError)
