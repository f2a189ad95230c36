"""The delivery worker: sends what the outbox holds, records each outcome, retries with backoff.

Every delivery row is one alert for one channel. Each configured channel has its own worker loop,
so a slow or hanging target delays only itself: the loop claims its channel's next due row under
a lease (see :mod:`monitor.store.outbox`), sends it, records the outcome, and goes on in order
until nothing of its channel is due; then it sleeps until its next due row, a :meth:`Outbox.wake`,
or an idle timeout. One more loop dead-letters rows whose channel is no longer configured.

Outcomes: sent; pending again with the reason and a later attempt (``retry_first``, 30 s,
doubling up to ``retry_max``, 1 h, ±10% jitter, and never before the service's Retry-After); or
dead, at once when the failure is permanent (a DeliveryError with ``permanent``: a bad token, an
unknown chat), else once the row has been failing for longer than ``retry_for`` since it was
created. After a failure, the channel's other rows due in the same pass wait for the same retry
time without counting an attempt, so a dead target is neither hammered nor costs a timeout per
row, and a Retry-After holds for the whole channel.

Pacing: a channel with rates (its service's documented limits, or its ``rate`` setting) waits for
a token from its :class:`~monitor.notify.pacing.Pacer` before each claim, inside its own loop, so
the wait delays that channel only and no lease is held while waiting.

What can go wrong, and what it costs:

- Any exception from building or sending one alert (a DeliveryError, a timeout, a bug in rendering,
  an Apprise exception) is that row's failure: recorded, logged once with ``channel`` and
  ``stage=deliver``, retried. It never ends a loop.
- A database error ends the current pass: logged, retried after a few seconds (doubling up to
  :data:`DB_RETRY_MAX`). A failing write of an outcome is retried while the lease lasts, so a
  locked database does not turn into a second send.
- A worker that dies between a send and its record leaves the row leased; it is due again when the
  lease ends and is sent again: at least once, never lost. A send cancelled at shutdown releases
  its lease at once instead. Either way the next claim counts a possible duplicate on the row
  (``redeliveries``, see :mod:`monitor.store.outbox`) and logs it at WARNING; so does the next
  claim after a send cut off by a timeout (ours, or a DeliveryError marked ``uncertain``), which
  may have reached the service all the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlmodel import Session

from monitor.errors import DeliveryError
from monitor.logs import redact
from monitor.metrics import Metrics
from monitor.models import Alert, Digest, Hit, Outlet, Severity
from monitor.notify.pacing import Pacer, Rate
from monitor.notify.policy import DEFAULT_BURST
from monitor.store import outbox as store
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.repo import DEAD, PENDING, SENT
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow, utcnow

__all__ = ["LEASE", "AlertChannel", "DeliveryReport", "Outbox", "backoff", "build_alert"]

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
SEND_TIMEOUT = 60.0
"""Seconds one send may take before it counts as failed (Apprise's own timeouts are shorter)."""
LEASE = timedelta(minutes=2)
"""How long a claimed row stays hidden from other workers, by default. A send is cut off at half
the lease (SEND_TIMEOUT at most), and a worker claims one row at a time, so a live worker records
its outcome before its lease can run out."""
IDLE = 30.0
"""Seconds a loop sleeps when nothing is due: it then looks for rows another process wrote."""
STOP_GRACE = 5.0
"""Seconds in-flight sends may take to finish once ``stop`` is set (less than the daemon's own
grace, so the outbox releases its leases before the daemon gives up on it)."""
DB_RETRY_FIRST = 2.0
DB_RETRY_MAX = 30.0
"""A loop's pause after a database error: DB_RETRY_FIRST seconds, doubling up to this."""
MIN_PAUSE = 0.05
"""A floor under a loop's sleep, so a row another worker is claiming right now is not spun on."""


class AlertChannel(Protocol):
    """What the outbox needs of a channel: :class:`monitor.notify.channels.Channel`, or
    :class:`monitor.notify.testing.FakeChannel` in tests."""

    @property
    def id(self) -> str: ...

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise DeliveryError when the target did not accept it."""

    async def send_digest(self, digest: Digest) -> None:
        """Deliver the alerts of ``digest`` as one message; raise as :meth:`send`."""


@dataclass
class DeliveryReport:
    """What one :meth:`Outbox.deliver_due` did: rows sent, failed (to be retried), deferred
    behind a failure without an attempt, and dead-lettered."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.dead

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        self.sent += other.sent
        self.failed += other.failed
        self.deferred += other.deferred
        self.dead += other.dead
        return self


def backoff(
    attempts: int,
    rng: random.Random | None = None,
    *,
    first: timedelta = FIRST_RETRY,
    maximum: timedelta = MAX_RETRY,
) -> timedelta:
    """Delay before the next attempt after ``attempts`` failures: ``first`` (30 s) doubling up to
    ``maximum`` (1 h), ±10%."""
    base = min(first * (1 << min(max(attempts - 1, 0), 16)), maximum)
    factor: float = (rng or random).uniform(0.9, 1.1)
    return base * factor


def build_alert(match: MatchRow, article: ArticleRow, outlets: Sequence[Outlet] = ()) -> Alert:
    """The alert of a stored match, with the other outlets that reported its story."""
    assert match.id is not None
    assert match.created_at is not None
    hits = tuple(Hit(**hit) for hit in match.hits)
    fields = {name: getattr(article, name) for name in {hit.field for hit in hits}}
    return Alert(
        match_id=match.id,
        rule_id=match.rule_id,
        rule_name=match.rule_name,
        severity=Severity(match.severity),
        title=article.title,
        source_id=article.source_id,
        link=article.url,
        location=article.location,
        published=article.published,
        matched_at=match.created_at,
        hits=hits,
        fields=fields,
        outlets=tuple(outlets),
    )


@dataclass(frozen=True, slots=True)
class _Claimed:
    """Rows claimed to go out as one message, with the other outlets of their matches."""

    group: store.Group
    outlets: Mapping[int, Sequence[Outlet]]


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    unexpected: BaseException | None = None
    """The exception, when it was not a DeliveryError or a timeout: logged with its traceback."""
    retry_after: float | None = None
    """Seconds the service asked us to wait (a DeliveryError's ``retry_after``)."""
    permanent: bool = False
    """No retry can succeed: dead-letter now."""
    uncertain: bool = False
    """Cut off by a timeout (ours or the channel's): the service may have the alert all the
    same."""


class Outbox:
    """Delivers the outbox's rows through ``channels`` (channel id -> channel).

    ``run(stop)`` is the daemon's worker; ``deliver_due()`` is one pass over everything due now
    (``monitor run --once``). Both may run in several processes on one database at once: leases
    keep each row with one worker.
    """

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, AlertChannel],
        retry_for: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
        *,
        retry_first: timedelta = FIRST_RETRY,
        retry_max: timedelta = MAX_RETRY,
        lease: timedelta = LEASE,
        rates: Mapping[str, Sequence[Rate]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        bursts: Mapping[str, int] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``rates`` maps a channel id to the rates it is paced to (none: not paced);
        ``monotonic`` is the pacers' clock; ``bursts`` maps a channel id to how many alerts
        due at once it takes one by one (more go out as one digest; default DEFAULT_BURST);
        ``metrics`` counts each attempt's outcome and times each alert sent."""
        self.db = db
        self.metrics = metrics if metrics is not None else Metrics()
        for channel_id in channels:
            for status in (SENT, "failed", "deferred", DEAD):
                self.metrics.deliveries.labels(channel_id, status)  # 0, not absent, until used
        self.channels = channels
        self.retry_for = retry_for
        self.clock = clock
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.lease = lease
        self.send_timeout = min(SEND_TIMEOUT, lease.total_seconds() / 2)
        self.monotonic = monotonic
        self.bursts = dict(bursts or {})
        start = monotonic()
        self._pacers = {
            channel_id: Pacer(channel_rates, start)
            for channel_id, channel_rates in (rates or {}).items()
            if channel_rates and channel_id in channels
        }
        self._wakes: list[asyncio.Event] = []

    def wake(self) -> None:
        """New rows may be due: every loop of :meth:`run` looks now instead of at its timer."""
        for event in self._wakes:
            event.set()

    async def deliver_due(self, stop: asyncio.Event | None = None) -> DeliveryReport:
        """Send every row due now, each at most once, channels concurrently; return what happened.

        Stops claiming once ``stop`` is set (a send in hand is finished and recorded first). Rows
        of channels not configured here are dead-lettered. Send failures are counted, never raised;
        a database error is raised once every channel's pass has ended.
        """
        due_by = self.clock()
        passes: list[Awaitable[DeliveryReport]] = [
            self._deliver_channel(channel_id, channel, due_by, stop)
            for channel_id, channel in self.channels.items()
        ]
        passes.append(self._bury_unconfigured(due_by))
        report = DeliveryReport()
        errors: list[BaseException] = []
        for result in await asyncio.gather(*passes, return_exceptions=True):
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                report += result
        if errors:
            raise errors[0]
        return report

    async def run(self, stop: asyncio.Event, idle: float = IDLE, grace: float = STOP_GRACE) -> None:
        """Deliver until ``stop`` is set: one loop per channel, one for unconfigured channels.

        Once ``stop`` is set, each loop finishes its in-flight send and returns; a send still
        going after ``grace`` seconds is cancelled and its row released (due again at once).
        Raises RuntimeError if a loop ends on its own, which only a bug can cause.
        """
        wakes: list[asyncio.Event] = []
        tasks: list[asyncio.Task[None]] = []
        for channel_id, channel in self.channels.items():
            wakes.append(wake := asyncio.Event())
            loop = self._serve(
                partial(self._deliver_channel, channel_id, channel, stop=stop),
                partial(store.next_due_at, channel=channel_id),
                stop,
                wake,
                idle,
                channel=channel_id,
            )
            tasks.append(asyncio.create_task(loop, name=f"outbox:{channel_id}"))
        wakes.append(wake := asyncio.Event())
        sweep = self._serve(
            self._bury_unconfigured,
            partial(store.next_unconfigured_due_at, configured=list(self.channels)),
            stop,
            wake,
            idle,
            channel=None,
        )
        tasks.append(asyncio.create_task(sweep, name="outbox:unconfigured"))
        self._wakes.extend(wakes)
        stopping = asyncio.create_task(stop.wait(), name="outbox:stop")
        try:
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                ended = next(task for task in tasks if task.done())
                cause = None if ended.cancelled() else ended.exception()
                raise RuntimeError(f"{ended.get_name()} ended unexpectedly") from cause
            _done, busy = await asyncio.wait(tasks, timeout=grace)
            if busy:
                log.warning(
                    "outbox: %s still sending %gs after stop; cancelled, deliveries released",
                    ", ".join(sorted(task.get_name() for task in busy)),
                    grace,
                    extra={"stage": "deliver"},
                )
        finally:
            for task in (stopping, *tasks):
                task.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
            for wake in wakes:
                self._wakes.remove(wake)

    # ----------------------------------------------------------------------------------------
    # One loop

    async def _serve(
        self,
        work: Callable[[datetime], Awaitable[DeliveryReport]],
        next_due: Callable[[Session], datetime | None],
        stop: asyncio.Event,
        wake: asyncio.Event,
        idle: float,
        *,
        channel: str | None,
    ) -> None:
        """Run ``work`` over what is due, then sleep until ``next_due``, a wake-up, ``idle`` or
        ``stop``; after a database error, pause a few seconds and go on."""
        extra = {"channel": channel, "stage": "deliver"} if channel else {"stage": "deliver"}
        retry = DB_RETRY_FIRST
        while not stop.is_set():
            wake.clear()
            try:
                await work(self.clock())
                delay = await asyncio.to_thread(self._seconds_until, next_due, idle)
                retry = DB_RETRY_FIRST
            except Exception:
                log.warning(
                    "outbox pass failed; retrying in %.0fs", retry, exc_info=True, extra=extra
                )
                delay, retry = retry, min(retry * 2, DB_RETRY_MAX)
            await _pause(max(delay, MIN_PAUSE), stop, wake)

    def _seconds_until(self, next_due: Callable[[Session], datetime | None], idle: float) -> float:
        with self.db.session() as session:
            due = next_due(session)
        if due is None:
            return idle
        return max(0.0, min(idle, (due - self.clock()).total_seconds()))

    # ----------------------------------------------------------------------------------------
    # One channel's pass

    async def _deliver_channel(
        self,
        channel_id: str,
        channel: AlertChannel,
        due_by: datetime,
        stop: asyncio.Event | None,
    ) -> DeliveryReport:
        """Send ``channel``'s rows due by ``due_by``, one claim at a time, in order: a claim is
        one row, or the rows of a digest (a batch, or a burst), sent as one message."""
        report = DeliveryReport()
        pacer = self._pacers.get(channel_id)
        while stop is None or not stop.is_set():
            if pacer is not None and (wait := pacer.delay(self.monotonic())) > 0:
                await _pause(wait, *([stop] if stop is not None else []))
                continue
            lease_until = self.clock() + self.lease
            claimed = await asyncio.to_thread(self._claim, channel_id, due_by, lease_until)
            if claimed is None:
                break
            if pacer is not None:
                pacer.take(self.monotonic())
            failure = await self._send(channel_id, channel, claimed, lease_until)
            retry_at: datetime | None = None
            rows = claimed.group.rows
            for number, (delivery, _match, article) in enumerate(rows):
                outcome = self._judge(delivery, failure, retry_at)
                await self._record(
                    channel_id,
                    delivery,
                    lease_until,
                    outcome,
                    failure=failure,
                    stop=stop,
                    # A digest's outcome is logged once, by its first row, with their number.
                    logged=None if number else len(rows),
                )
                if outcome.status == SENT:
                    report.sent += 1
                    assert outcome.sent_at is not None
                    self.metrics.alerted(
                        channel_id, article.published, article.created_at, outcome.sent_at
                    )
                elif outcome.status == DEAD:
                    report.dead += 1
                else:
                    report.failed += 1
                    retry_at = outcome.next_attempt_at
                self.metrics.delivered(
                    channel_id, outcome.status if outcome.status != PENDING else "failed"
                )
            if retry_at is not None:
                # A target that just failed will most likely fail again: the rest of this pass
                # waits for the same retry instead of hammering it (and costing a timeout each).
                assert failure is not None
                deferred = await asyncio.to_thread(
                    self._defer, channel_id, due_by, retry_at, failure.reason
                )
                report.deferred += deferred
                self.metrics.delivered(channel_id, "deferred", deferred)
                break
        return report

    async def _send(
        self, channel_id: str, channel: AlertChannel, claimed: _Claimed, lease: datetime
    ) -> _Failure | None:
        """Build and send one message (an alert, or a digest of the group's alerts); None when
        sent, else why not. Never raises but CancelledError, after releasing the rows."""
        group = claimed.group

        async def sending() -> None:
            # Built here, inside the handling below: a bug in building costs these rows only.
            alerts = [
                build_alert(match, article, claimed.outlets.get(match.id or 0, ()))
                for _delivery, match, article in group.rows
            ]
            if group.reason is None:
                await channel.send(alerts[0])
                return
            created = [d.created_at for d, _m, _a in group.rows if d.created_at is not None]
            await channel.send_digest(
                Digest(
                    channel_id,
                    group.reason,
                    tuple(alerts),
                    since=min(created, default=None),
                    until=self.clock(),
                )
            )

        try:
            await asyncio.wait_for(sending(), self.send_timeout)
        except asyncio.CancelledError:
            for delivery, _match, _article in group.rows:
                await self._release(channel_id, delivery, lease)
            raise
        except DeliveryError as exc:
            return _Failure(
                str(exc),
                retry_after=exc.retry_after,
                permanent=exc.permanent,
                uncertain=exc.uncertain,
            )
        except TimeoutError:
            return _Failure(
                f"channel {channel_id!r}: no answer within {self.send_timeout:g}s", uncertain=True
            )
        except Exception as exc:  # noqa: BLE001 (a bug in rendering or a library costs one row)
            return _Failure(f"channel {channel_id!r}: unexpected error: {redact(repr(exc))}", exc)
        return None

    def _judge(
        self,
        delivery: DeliveryRow,
        failure: _Failure | None,
        retry_at: datetime | None = None,
    ) -> store.Outcome:
        """The row's new state after one attempt ended in ``failure`` (None: sent); a row to
        retry is due at ``retry_at`` when given (the rows of one digest stay together)."""
        assert delivery.created_at is not None
        now = self.clock()
        attempts = delivery.attempts + 1
        if failure is None:
            return store.Outcome(SENT, attempts, None, sent_at=now)
        # A row retried by hand (`monitor deliveries retry`) gets a fresh retry_for from then.
        since = delivery.retry_since or delivery.created_at
        if failure.permanent or now - since >= self.retry_for:
            return store.Outcome(DEAD, attempts, failure.reason, uncertain=failure.uncertain)
        delay = backoff(attempts, first=self.retry_first, maximum=self.retry_max)
        if failure.retry_after is not None:
            # The service said when it will take more; asking earlier only prolongs the block.
            delay = max(delay, timedelta(seconds=failure.retry_after))
        return store.Outcome(
            PENDING,
            attempts,
            failure.reason,
            next_attempt_at=retry_at or now + delay,
            uncertain=failure.uncertain,
        )

    async def _record(
        self,
        channel_id: str,
        delivery: DeliveryRow,
        lease: datetime,
        outcome: store.Outcome,
        *,
        failure: _Failure | None,
        stop: asyncio.Event | None,
        logged: int | None = 1,
    ) -> None:
        """Write ``outcome``, retrying database errors while the lease lasts; then log it on
        behalf of ``logged`` deliveries sent together (None: not at all)."""
        assert delivery.id is not None
        together = f" (with {logged - 1} more of its digest)" if logged and logged > 1 else ""
        extra = {"channel": channel_id, "stage": "deliver"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease.total_seconds()
        retry = DB_RETRY_FIRST
        while True:
            try:
                held = await asyncio.to_thread(self._write, delivery.id, lease, outcome)
                break
            except Exception:
                if loop.time() + retry >= deadline or (stop is not None and stop.is_set()):
                    raise
                log.warning(
                    "could not record delivery %s; retrying in %.0fs",
                    delivery.id,
                    retry,
                    exc_info=True,
                    extra=extra,
                )
                await _pause(retry, *([stop] if stop is not None else []))
                retry = min(retry * 2, DB_RETRY_MAX)
        if not held:
            log.warning(
                "delivery %s: its lease ran out before its outcome (%s) was recorded; another "
                "worker took it over, so the alert may be delivered twice",
                delivery.id,
                outcome.status,
                extra=extra,
            )
        elif logged is None:
            return
        elif outcome.status == PENDING:
            assert outcome.next_attempt_at is not None
            log.warning(
                "delivery %s%s failed (attempt %d), retry at %s: %s",
                delivery.id,
                together,
                outcome.attempts,
                outcome.next_attempt_at.isoformat(timespec="seconds"),
                outcome.last_error,
                exc_info=failure.unexpected if failure else None,
                extra=extra,
            )
        elif outcome.status == DEAD:
            log.error(
                "delivery %s%s dead after %d attempts%s: %s",
                delivery.id,
                together,
                outcome.attempts,
                " (permanent failure)" if failure is not None and failure.permanent else "",
                outcome.last_error,
                exc_info=failure.unexpected if failure else None,
                extra=extra,
            )

    async def _release(self, channel_id: str, delivery: DeliveryRow, lease: datetime) -> None:
        assert delivery.id is not None
        try:
            await asyncio.to_thread(self._write_release, delivery.id, lease)
        except Exception:
            log.warning(
                "could not release delivery %s; it is due again when its lease ends",
                delivery.id,
                exc_info=True,
                extra={"channel": channel_id, "stage": "deliver"},
            )

    # ----------------------------------------------------------------------------------------
    # Unconfigured channels

    async def _bury_unconfigured(self, due_by: datetime) -> DeliveryReport:
        """Dead-letter every row due by ``due_by`` whose channel is not configured here."""
        report = DeliveryReport()
        while buried := await asyncio.to_thread(self._bury, due_by):
            for channel_id, count in sorted(buried.items()):
                log.error(
                    "%d deliveries dead: channel %r is not configured",
                    count,
                    channel_id,
                    extra={"channel": channel_id, "stage": "deliver"},
                )
                report.dead += count
                self.metrics.delivered(channel_id, DEAD, count)
        return report

    # ----------------------------------------------------------------------------------------
    # Transactions (blocking; run in threads)

    def _claim(self, channel_id: str, due_by: datetime, lease: datetime) -> _Claimed | None:
        burst = self.bursts.get(channel_id, DEFAULT_BURST)
        with self.db.session() as session:
            group = store.claim_group(
                session, channel_id, due_by=due_by, lease_until=lease, burst=burst
            )
            if group is None:
                return None
            taken_over = store.open_claims(session, [delivery for delivery, _m, _a in group.rows])
            outlets = repo.outlets_for(session, [m.id for _d, m, _a in group.rows if m.id])
        self.metrics.redelivered(channel_id, len(taken_over))
        for delivery_id in taken_over:
            log.warning(
                "delivery %s: its previous claim ended without a known outcome (worker killed, "
                "send cancelled or timed out), so this send may repeat it; counted as a possible "
                "duplicate",
                delivery_id,
                extra={"channel": channel_id, "stage": "deliver"},
            )
        return _Claimed(group, outlets)

    def _write(self, delivery_id: int, lease: datetime, outcome: store.Outcome) -> bool:
        with self.db.session() as session:
            return store.record(session, delivery_id, lease, outcome)

    def _write_release(self, delivery_id: int, lease: datetime) -> bool:
        with self.db.session() as session:
            return store.release(session, delivery_id, lease, self.clock())

    def _defer(self, channel_id: str, due_by: datetime, until: datetime, reason: str) -> int:
        with self.db.session() as session:
            return store.defer_due(
                session, channel_id, due_by=due_by, until=until, reason=f"deferred: {reason}"
            )

    def _bury(self, due_by: datetime) -> dict[str, int]:
        with self.db.session() as session:
            return dict(store.bury_unconfigured(session, list(self.channels), due_by=due_by))


async def _pause(seconds: float, *events: asyncio.Event) -> None:
    """Wait ``seconds``, or until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        if waiters:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(seconds)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
