"""The delivery worker: sends what the outbox holds, records each outcome, retries with backoff.

Every delivery row is one alert for one channel. The worker claims due rows, sends each through
its channel (channels in parallel, one channel's rows in order, so a slow target delays only
itself), then marks the row sent, or pending again with the reason and a later attempt time
(30 s doubling up to 1 h, with jitter), or dead once it has failed for longer than ``retry_for``.
A crash between a send and its mark means the alert is sent again on restart: at least once,
never lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.errors import DeliveryError
from monitor.models import Alert, Hit, Severity
from monitor.notify.channels import Channel
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow, utcnow

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
SEND_TIMEOUT = 60.0
"""Seconds one send may take before it counts as failed (Apprise's own timeouts are shorter)."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.dead


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Delay before the next attempt after ``attempts`` failures: 30 s doubling to 1 h, ±10%."""
    base = min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16)), MAX_RETRY)
    factor: float = (rng or random).uniform(0.9, 1.1)
    return base * factor


def build_alert(match: MatchRow, article: ArticleRow) -> Alert:
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
    )


class Outbox:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        retry_for: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.channels = channels
        self.retry_for = retry_for
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows may be due: deliver now instead of at the next timer."""
        self._wake.set()

    async def deliver_due(self) -> DeliveryReport:
        """Send every row due now, once each; return what happened."""
        report = DeliveryReport()
        now = self.clock()
        while True:
            rows = await asyncio.to_thread(self._claim, now)
            if not rows:
                return report
            by_channel: dict[str, list[tuple[DeliveryRow, MatchRow, ArticleRow]]] = defaultdict(
                list
            )
            for row in rows:
                by_channel[row[0].channel].append(row)
            outcomes = await asyncio.gather(
                *(self._send_all(channel, items) for channel, items in by_channel.items())
            )
            for outcome in outcomes:
                report.sent += outcome.sent
                report.failed += outcome.failed
                report.deferred += outcome.deferred
                report.dead += outcome.dead

    async def run(self, stop: asyncio.Event, idle: float = 30.0) -> None:
        """Deliver until ``stop`` is set; sleep until the next due row, a wake-up, or ``idle``."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due()
                delay = await asyncio.to_thread(self._seconds_to_next_due, idle)
            except Exception:
                log.exception("delivery pass failed; retrying", extra={"stage": "deliver"})
                delay = 5.0
            wake = asyncio.ensure_future(self._wake.wait())
            stopped = asyncio.ensure_future(stop.wait())
            _done, pending = await asyncio.wait(
                {wake, stopped}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    def _claim(self, now: datetime) -> list[tuple[DeliveryRow, MatchRow, ArticleRow]]:
        with self.db.session() as session:
            rows = repo.due_deliveries(session, now)
            # Push claimed rows past "now" so the same pass does not pick them again.
            for delivery, _match, _article in rows:
                delivery.next_attempt_at = now + timedelta(microseconds=1)
                session.add(delivery)
            return rows

    def _seconds_to_next_due(self, idle: float) -> float:
        with self.db.session() as session:
            due = repo.next_due_at(session)
        if due is None:
            return idle
        return max(0.0, min(idle, (due - self.clock()).total_seconds()))

    async def _send_all(
        self, channel_id: str, items: list[tuple[DeliveryRow, MatchRow, ArticleRow]]
    ) -> DeliveryReport:
        report = DeliveryReport()
        channel = self.channels.get(channel_id)
        for position, (delivery, match, article) in enumerate(items):
            error: str | None
            if channel is None:
                error = f"channel {channel_id!r} is not configured"
            else:
                try:
                    await asyncio.wait_for(channel.send(build_alert(match, article)), SEND_TIMEOUT)
                    error = None
                except DeliveryError as exc:
                    error = str(exc)
                except TimeoutError:
                    error = f"channel {channel_id!r}: no answer within {SEND_TIMEOUT:.0f}s"
            status = await asyncio.to_thread(self._record, delivery, error, channel is None)
            if status == repo.SENT:
                report.sent += 1
            elif status == repo.DEAD:
                report.dead += 1
            else:
                report.failed += 1
                # A target that just failed will most likely fail again: the rest of this pass
                # waits for the same retry instead of hammering it (and costing a timeout each).
                rest = [row[0] for row in items[position + 1 :]]
                await asyncio.to_thread(self._defer, rest, delivery, error or "")
                report.deferred += len(rest)
                return report
        return report

    def _defer(self, rows: list[DeliveryRow], failed: DeliveryRow, reason: str) -> None:
        """Move ``rows`` to the failed row's next attempt, without counting an attempt."""
        if not rows:
            return
        with self.db.session() as session:
            current = session.get(DeliveryRow, failed.id)
            assert current is not None
            for delivery in rows:
                row = session.get(DeliveryRow, delivery.id)
                assert row is not None
                row.next_attempt_at = current.next_attempt_at
                row.last_error = f"deferred: {reason}"
                session.add(row)

    def _record(self, delivery: DeliveryRow, error: str | None, permanent: bool) -> str:
        now = self.clock()
        extra = {"channel": delivery.channel, "stage": "deliver"}
        with self.db.session() as session:
            row = session.get(DeliveryRow, delivery.id)
            assert row is not None
            assert row.created_at is not None
            row.attempts += 1
            row.last_error = error
            if error is None:
                row.status, row.sent_at = repo.SENT, now
            elif permanent or now - row.created_at >= self.retry_for:
                row.status = repo.DEAD
                log.error("delivery %s dead: %s", row.id, error, extra=extra)
            else:
                row.next_attempt_at = now + backoff(row.attempts)
                log.warning(
                    "delivery %s failed (attempt %d), retry at %s: %s",
                    row.id,
                    row.attempts,
                    row.next_attempt_at.isoformat(timespec="seconds"),
                    error,
                    extra=extra,
                )
            session.add(row)
            return row.status
