"""Gauges read from the database at scrape time: the outbox's depth, and feeds by health and lag.

Each function is one aggregate query, cheap at any size: the outbox query reads only the rows
that are not sent (by the ``(status, next_attempt_at)`` index), the feed query one row per feed.
Each takes an open Session; the caller owns the transaction (a read-only one will do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, col, select

from monitor.store.repo import DEAD, PENDING
from monitor.store.tables import DeliveryRow, FeedRow

__all__ = ["FEED_STATES", "FeedStats", "OutboxDepth", "feed_stats", "outbox_depth"]

FEED_STATES = ("new", "ok", "failing", "disabled", "stale")
"""A feed's health, as :mod:`monitor.sources.health` names it."""


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """The deliveries of one channel in one status that is not ``sent``."""

    channel: str
    status: str
    """PENDING or DEAD."""
    count: int
    oldest: datetime | None
    """When the oldest of them was created."""


def outbox_depth(session: Session) -> list[OutboxDepth]:
    """How many deliveries each channel has pending and dead, and since when; a channel and
    status without any is absent."""
    statement = (
        select(
            DeliveryRow.channel,
            DeliveryRow.status,
            func.count(),
            func.min(DeliveryRow.created_at),
        )
        .where(col(DeliveryRow.status).in_((PENDING, DEAD)))
        .group_by(DeliveryRow.channel, DeliveryRow.status)
    )
    return [OutboxDepth(*row) for row in session.exec(statement).all()]


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Feeds by health state, and how far behind schedule the due ones are."""

    states: dict[str, int] = field(default_factory=dict)
    """State -> how many feeds are in it (states without any are absent)."""
    due: int = 0
    """Feeds whose next check has come (polling right now, or waiting for a slot)."""
    oldest_due: datetime | None = None
    """The earliest next check among them: the lag is how long ago that was."""


def feed_stats(session: Session, now: datetime, stale_after: timedelta) -> FeedStats:
    """Every configured feed (a row with a next check, or disabled) by health state, as
    :func:`monitor.sources.health.source_health` tells them apart, and the feeds due at ``now``.
    A feed no longer configured keeps its row but has neither (sync() clears both), so it is
    not counted."""
    state = case(
        (col(FeedRow.disabled).is_not(None), "disabled"),
        (col(FeedRow.consecutive_failures) > 0, "failing"),
        (col(FeedRow.last_success_at).is_(None), "new"),
        (
            func.coalesce(FeedRow.last_item_at, FeedRow.last_success_at) < now - stale_after,
            "stale",
        ),
        else_="ok",
    ).label("state")
    due = and_(col(FeedRow.next_check_at) <= now, col(FeedRow.disabled).is_(None))
    statement = (
        select(
            state,
            func.count(),
            func.count(case((due, 1))),
            func.min(case((due, FeedRow.next_check_at))),
        )
        .where(or_(col(FeedRow.next_check_at).is_not(None), col(FeedRow.disabled).is_not(None)))
        .group_by(state)
    )
    states: dict[str, int] = {}
    due_count = 0
    oldest: datetime | None = None
    for name, count, due_here, earliest in session.exec(statement).all():
        states[name] = count
        due_count += due_here
        if earliest is not None and (oldest is None or earliest < oldest):
            oldest = earliest
    return FeedStats(states, due_count, oldest)
