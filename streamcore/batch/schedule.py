"""Running a pipeline on a schedule: a cron expression or a fixed interval.

Protocol of ``run_scheduled`` (one loop per scheduled pipeline):
1. Wait on the clock for the next fire time (or for ``stop_event``).
2. If the loop woke late and several fire times have passed, they count as one: the
   latest (nothing piles up after a pause).
3. If a run is still going and overlap is not allowed, the fire time is *missed*:
   recorded in the history, and with ``missed="catch_up_once"`` one run starts as soon
   as the current one ends (however many were missed); with ``"skip"`` it is dropped.
4. Otherwise a run starts, with run id ``<pipeline>-<fire time, UTC, %Y%m%dT%H%M%SZ>``
   (the same fire time gives the same id, so a restarted daemon resumes it from the store).
5. When ``stop_event`` is set, no new run starts; runs in flight are awaited.
Cron expressions and intervals are in UTC; intervals are aligned to the epoch
(``every="10m"`` fires at :00, :10, :20...).
Design: docs/batch.md#scheduling
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from streamcore.batch.clock import Clock
from streamcore.batch.history import RunHistory
from streamcore.batch.progress import ProgressReporter
from streamcore.batch.result import PipelineResult
from streamcore.duration import to_seconds
from streamcore.errors import PipelineValidationError
from streamcore.state.store import StateStore

if TYPE_CHECKING:
    from streamcore.batch.checkpoints import Codec
    from streamcore.batch.pipeline import Pipeline

__all__ = ["MissedPolicy", "Schedule", "run_scheduled"]

log = logging.getLogger("streamcore.batch")

MissedPolicy = Literal["skip", "catch_up_once"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, init=False)
class Schedule:
    """When a pipeline runs: ``Schedule("*/5 * * * *")`` or ``Schedule(every="10m")``."""

    cron: str | None
    every_s: float | None
    allow_overlap: bool
    missed: MissedPolicy

    def __init__(
        self,
        cron: str | None = None,
        *,
        every: str | timedelta | float | None = None,
        allow_overlap: bool = False,
        missed: MissedPolicy = "skip",
    ) -> None:
        if (cron is None) == (every is None):
            raise PipelineValidationError("a Schedule needs exactly one of cron='...' or every='...'")
        every_s: float | None = None
        if cron is not None:
            from croniter import croniter

            if not isinstance(cron, str) or not croniter.is_valid(cron):
                raise PipelineValidationError(
                    f"{cron!r} is not a cron expression; write five fields, e.g. '*/5 * * * *'"
                )
        else:
            assert every is not None
            try:
                every_s = to_seconds(every, "Schedule every")
            except (TypeError, ValueError) as exc:
                raise PipelineValidationError(str(exc)) from None
            if every_s <= 0:
                raise PipelineValidationError(f"Schedule every must be positive, got {every!r}")
        if missed not in ("skip", "catch_up_once"):
            raise PipelineValidationError(f"Schedule missed must be 'skip' or 'catch_up_once', got {missed!r}")
        object.__setattr__(self, "cron", cron)
        object.__setattr__(self, "every_s", every_s)
        object.__setattr__(self, "allow_overlap", bool(allow_overlap))
        object.__setattr__(self, "missed", missed)

    def __str__(self) -> str:
        when = f"cron {self.cron!r}" if self.cron is not None else f"every {self.every_s:g}s"
        return f"{when}, overlap {'allowed' if self.allow_overlap else 'not allowed'}, missed runs: {self.missed}"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if self.cron is not None:
            from croniter import croniter

            nxt = croniter(self.cron, moment.astimezone(UTC)).get_next(datetime)
            return nxt if nxt.tzinfo is not None else nxt.replace(tzinfo=UTC)
        assert self.every_s is not None
        elapsed_s = (moment - _EPOCH).total_seconds()
        count = math.floor(elapsed_s / self.every_s) + 1
        return _EPOCH + timedelta(seconds=count * self.every_s)

    def run_id(self, pipeline: str, fire_time: datetime) -> str:
        """The run id of the run for ``fire_time``. Step 4."""
        return f"{pipeline}-{fire_time.astimezone(UTC):%Y%m%dT%H%M%SZ}"


ResultCallback = Callable[[PipelineResult], Awaitable[None] | None]


async def run_scheduled(
    pipe: Pipeline,
    schedule: Schedule,
    *,
    clock: Clock,
    stop_event: asyncio.Event,
    on_result: ResultCallback | None = None,
    history: RunHistory | None = None,
    store: StateStore | None = None,
    codec: Codec | None = None,
    progress: bool | ProgressReporter = False,
    triggers: asyncio.Queue[asyncio.Future[str]] | None = None,
) -> None:
    """Run ``pipe`` at every fire time of ``schedule`` until ``stop_event`` is set.

    A run that raises (rather than returning a failed result) stops the loop: the error
    is recorded in ``history`` and raised once the runs in flight have ended.

    ``triggers`` asks for runs now (the daemon's ``POST /api/pipelines/<name>/runs``):
    each future put there gets the new run's id, or a ``RuntimeError`` when a run is in
    flight and the schedule does not allow overlap.
    """
    pipe.validate()
    in_flight: dict[asyncio.Task[None], datetime] = {}
    catch_up: datetime | None = None
    next_fire = schedule.next_after(clock.now())
    stop_wait = asyncio.ensure_future(stop_event.wait())

    async def one_run(fire: datetime, run_id: str | None = None) -> None:
        run_id = run_id or schedule.run_id(pipe.name, fire)
        try:
            result = await pipe.run(run_id=run_id, store=store, codec=codec, progress=progress, clock=clock)
        except Exception as exc:
            if history is not None:
                history.record_error(pipe.name, run_id, fire, exc)
            raise
        if history is not None:
            history.record(result, scheduled_for=fire)
        if on_result is not None:
            outcome = on_result(result)
            if inspect.isawaitable(outcome):
                await outcome

    def start(fire: datetime, run_id: str | None = None) -> None:
        log.info("scheduled run starting pipeline=%s scheduled_for=%s", pipe.name, fire.isoformat())
        run = asyncio.ensure_future(one_run(fire, run_id))
        in_flight[run] = fire

    def triggered(asked: asyncio.Future[str]) -> None:
        if asked.done():
            return  # the one who asked gave up waiting
        if in_flight and not schedule.allow_overlap:
            asked.set_exception(RuntimeError(f"a run of pipeline {pipe.name!r} is in flight"))
            return
        now = clock.now()
        run_id = f"{pipe.name}-now-{now.strftime('%Y%m%dT%H%M%S%f')}"
        log.info("run asked for now pipeline=%s run=%s", pipe.name, run_id)
        start(now, run_id)
        asked.set_result(run_id)

    trigger_wait: asyncio.Future[asyncio.Future[str]] | None = None

    def reap() -> None:
        for run in [r for r in in_flight if r.done()]:
            del in_flight[run]
            if not run.cancelled() and run.exception() is not None:
                raise run.exception()  # type: ignore[misc]

    try:
        while not stop_event.is_set():
            reap()
            if catch_up is not None and not in_flight:
                start(catch_up)
                catch_up = None
                continue
            # Step 1.
            sleeper = asyncio.ensure_future(clock.sleep_until(next_fire))
            if triggers is not None and trigger_wait is None:
                trigger_wait = asyncio.ensure_future(triggers.get())
            waits = {sleeper, stop_wait, *in_flight} | ({trigger_wait} if trigger_wait is not None else set())
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not sleeper.done():
                    sleeper.cancel()
            if stop_event.is_set():
                break
            if trigger_wait is not None and trigger_wait.done():
                reap()
                triggered(trigger_wait.result())
                trigger_wait = None
                continue
            now = clock.now()
            if now < next_fire:
                continue  # a run ended; go round to reap it and maybe catch up
            # Step 2.
            fire = next_fire
            while (following := schedule.next_after(fire)) <= now:
                fire = following
            next_fire = schedule.next_after(fire)
            reap()
            # Step 3.
            if in_flight and not schedule.allow_overlap:
                log.warning(
                    "scheduled run missed, previous still running pipeline=%s scheduled_for=%s policy=%s",
                    pipe.name, fire.isoformat(), schedule.missed,
                )
                if history is not None:
                    history.record_missed(pipe.name, schedule.run_id(pipe.name, fire), fire)
                if schedule.missed == "catch_up_once":
                    catch_up = fire
                continue
            # Step 4.
            start(fire)
    except asyncio.CancelledError:
        for run in in_flight:
            run.cancel()
        raise
    finally:
        stop_wait.cancel()
        if trigger_wait is not None:
            trigger_wait.cancel()
        # Step 5.
        if in_flight:
            await asyncio.wait(set(in_flight))
    reap()


