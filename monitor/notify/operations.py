"""What the operator commands do with the outbox: list deliveries, retry them, send a test alert.

The commands in :mod:`monitor.cli` only parse and print; the decisions live here.

Retrying by hand makes a row pending and due now, and sets its ``retry_since``, so the outbox
gives it a fresh ``retry_for`` instead of dead-lettering it at its first failure because it was
created long ago. Attempts and the last error are kept: they are the row's history. A row is
retried only when that cannot cause a second send: dead rows, and pending rows waiting for a
backoff longer than any lease (a pending row due sooner is due already, or leased by a worker
sending it right now). Sent rows are never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.errors import DeliveryError
from monitor.logs import redact
from monitor.models import Alert, Hit, Severity
from monitor.notify.outbox import LEASE, SEND_TIMEOUT, AlertChannel
from monitor.store import outbox as store
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.repo import DEAD, PENDING, SENT

__all__ = [
    "STATUSES",
    "DeliveryView",
    "RetryReport",
    "list_deliveries",
    "retry_all_dead",
    "retry_ids",
    "sample_alert",
    "send_test",
]

STATUSES = (DEAD, PENDING, SENT)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery as the operator sees it. ``last_error`` is redacted (with the secrets this
    process knows: register the channels' URLs first)."""

    id: int
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    """When a pending row is due (or its lease ends); None for sent and dead rows."""
    sent_at: datetime | None
    created_at: datetime | None
    retry_since: datetime | None
    last_error: str | None
    match_id: int
    rule_id: str
    severity: str
    title: str
    link: str | None

    def as_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value is not None else None

        return {
            "id": self.id,
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": when(self.next_attempt_at),
            "sent_at": when(self.sent_at),
            "created_at": when(self.created_at),
            "retry_since": when(self.retry_since),
            "last_error": self.last_error,
            "match": self.match_id,
            "rule": self.rule_id,
            "severity": self.severity,
            "title": self.title,
            "link": self.link,
        }


def list_deliveries(
    db: Database,
    *,
    status: str | None = None,
    channel: str | None = None,
    rule_id: str | None = None,
    limit: int = 50,
) -> list[DeliveryView]:
    """Up to ``limit`` deliveries, newest first, filtered as :func:`store.list_deliveries`.
    Empty on a database the daemon never ran on."""
    with db.reading() as session:
        if not repo.schema_exists(session):
            return []
        rows = store.list_deliveries(
            session, status=status, channel=channel, rule_id=rule_id, limit=limit
        )
    views = []
    for delivery, match, article in rows:
        assert delivery.id is not None
        assert match.id is not None
        views.append(
            DeliveryView(
                id=delivery.id,
                channel=delivery.channel,
                status=delivery.status,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at if delivery.status == PENDING else None,
                sent_at=delivery.sent_at,
                created_at=delivery.created_at,
                retry_since=delivery.retry_since,
                last_error=redact(delivery.last_error) if delivery.last_error else None,
                match_id=match.id,
                rule_id=match.rule_id,
                severity=match.severity,
                title=article.title,
                link=article.url or article.location,
            )
        )
    return views


@dataclass
class RetryReport:
    """What a retry did: the rows made due again, the ids that do not exist, the rows left as
    they were with the reason, and (for ``--all-dead``) dead rows of unconfigured channels left."""

    retried: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    count: int = 0
    """How many rows were made due again."""
    unconfigured: dict[str, int] = field(default_factory=dict)


def retry_ids(
    db: Database, delivery_ids: Sequence[int], *, now: datetime, configured: Collection[str]
) -> RetryReport:
    """Make the deliveries ``delivery_ids`` due at ``now`` again, all in one transaction.

    When any id is unknown nothing is changed and the report lists the unknown ids. Otherwise
    each row is retried, or skipped with the reason: already sent; due already or being sent;
    its channel is not in ``configured`` (it would only be dead-lettered again).
    """
    report = RetryReport()
    wanted = list(dict.fromkeys(delivery_ids))
    with db.session() as session:
        if not repo.schema_exists(session):
            report.unknown = wanted
            return report
        rows = store.deliveries_by_id(session, wanted)
        report.unknown = [delivery_id for delivery_id in wanted if delivery_id not in rows]
        if report.unknown:
            return report
        waiting_after = now + LEASE
        for delivery_id in wanted:
            row = rows[delivery_id]
            reason = _not_retryable(row.status, row.next_attempt_at, waiting_after)
            if reason is None and row.channel not in configured:
                reason = f"channel {row.channel!r} is not configured"
            if reason is None:
                report.retried.append(delivery_id)
            else:
                report.skipped[delivery_id] = reason
        report.count = store.retry_rows(
            session, report.retried, now=now, waiting_after=waiting_after
        )
    return report


def retry_all_dead(
    db: Database, *, now: datetime, configured: Collection[str], channel: str | None = None
) -> RetryReport:
    """Make every dead row of the configured channels (of ``channel`` only, when given) due at
    ``now`` again; dead rows of channels not configured are left and counted per channel."""
    report = RetryReport()
    channels = [channel] if channel is not None else list(configured)
    with db.session() as session:
        if not repo.schema_exists(session):
            return report
        if channel is None:
            report.unconfigured = {
                name: count
                for name, count in sorted(store.dead_counts(session).items())
                if name not in configured
            }
        report.count = store.retry_dead(session, channels, now=now)
    return report


def _not_retryable(
    status: str, next_attempt_at: datetime | None, waiting_after: datetime
) -> str | None:
    if status == SENT:
        return "already sent"
    if status == PENDING and (next_attempt_at is None or next_attempt_at <= waiting_after):
        return "due already or being sent"
    return None


# --------------------------------------------------------------------------------------------
# notify-test

_SAMPLE_BODY = (
    "This is a test alert sent by `monitor notify-test` to check that this channel works. "
    "It is not about any real article; nothing needs to be done."
)


def sample_alert(now: datetime) -> Alert:
    """A fixed alert, clearly labelled as a test, with one hit and a snippet around it."""
    term = "test alert"
    start = _SAMPLE_BODY.index(term)
    return Alert(
        match_id=0,
        rule_id="monitor-test",
        rule_name="Test alert (monitor notify-test)",
        severity=Severity.INFO,
        title="[TEST] monitor test alert: please ignore",
        source_id="monitor",
        link="https://example.org/monitor-test-alert",
        location=None,
        published=now,
        matched_at=now,
        hits=(Hit(term=term, field="body", start=start, end=start + len(term), text=term),),
        fields={"body": _SAMPLE_BODY},
    )


async def send_test(channel: AlertChannel, now: datetime) -> str | None:
    """Send :func:`sample_alert` through ``channel``: None when the service accepted it, else
    why not (the DeliveryError message, which names the channel; redacted). Never raises but
    CancelledError."""
    try:
        await asyncio.wait_for(channel.send(sample_alert(now)), SEND_TIMEOUT)
    except DeliveryError as exc:
        return redact(str(exc))
    except TimeoutError:
        return f"channel {channel.id!r}: no answer within {SEND_TIMEOUT:.0f}s"
    except Exception as exc:  # noqa: BLE001 (the operator asked what happens: say it, whatever it is)
        return f"channel {channel.id!r}: unexpected error: {redact(repr(exc))}"
    return None
