"""The outbox's queries: claim due deliveries under a lease, find when one is due, record outcomes.

Each function takes an open Session; the caller owns the transaction (``Database.session()``).

Claims are leases. :func:`claim_group` selects a channel's due rows and moves their
``next_attempt_at`` to the lease's end in the same transaction, so no other worker sees them as
due until the lease runs out. On PostgreSQL the select takes ``FOR UPDATE SKIP LOCKED`` on the
delivery rows, so two replicas claiming at once each take different rows instead of queueing on
each other; on SQLite
every transaction is ``BEGIN IMMEDIATE`` (see :mod:`monitor.store.db`), which already serialises
claims. A worker that dies holding a lease leaves its rows due again when the lease ends: sent at
least once, never lost.

The lease's end is also its token. :func:`record` and :func:`release` change a row only while it
is still pending with ``next_attempt_at`` equal to the lease this worker was given; when that no
longer holds, the lease ran out and another worker took the row over, and the late outcome is not
written over the newer one (the caller logs the possible duplicate). No column is needed for it.

Possible duplicates are counted. :func:`open_claims` marks claimed rows ``in_flight`` and counts
the claim; :func:`record` clears the mark, unless the outcome is uncertain (a send cut off by a
timeout). A claim that finds the mark still set takes over from a claim that ended without a
known outcome (a worker killed mid-send, a send cancelled at shutdown and released, a send timed
out), whose message may have reached the service: the row's ``redeliveries`` goes up.
:func:`redelivery_total` sums them for the metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, update
from sqlalchemy.sql.expression import GenerativeSelect
from sqlmodel import Session, col, select

from monitor.store.repo import DEAD, PENDING
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow

__all__ = [
    "Claimed",
    "Group",
    "Outcome",
    "bury_unconfigured",
    "claim_group",
    "defer_due",
    "next_due_at",
    "next_unconfigured_due_at",
    "open_claims",
    "record",
    "redelivery_total",
    "release",
]

Claimed = tuple[DeliveryRow, MatchRow, ArticleRow]
"""A claimed delivery with the match and article its alert is built from."""

_Statement = TypeVar("_Statement", bound=GenerativeSelect)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt at a delivery came to, as the row should read afterwards."""

    status: str
    """PENDING (retry at ``next_attempt_at``), SENT or DEAD."""
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = None
    """The next attempt, for PENDING; None leaves the column as it is."""
    sent_at: datetime | None = None
    uncertain: bool = False
    """The attempt may have reached the service although it failed (it timed out): the row stays
    in flight, so its next claim counts a possible duplicate."""


@dataclass(frozen=True, slots=True)
class Group:
    """Rows claimed to be sent as one message: a single alert (``reason`` None), or a digest
    gathered by a batch (``throttle``, ``schedule``) or by a ``burst``."""

    rows: list[Claimed]
    reason: str | None = None


_BATCH_REASONS = {"throttle": "throttle", "digest": "schedule"}
"""A batch key's prefix (see monitor.notify.policy) -> the digest's reason."""


def claim_group(
    session: Session,
    channel: str,
    *,
    due_by: datetime,
    lease_until: datetime,
    burst: int,
    most: int = 500,
) -> Group | None:
    """Lease what ``channel`` sends next, oldest due first: one row; or with it every due row of
    its batch when it has one; or, when more than ``burst`` rows without a batch are due, up to
    ``most`` of them at once. The rows come back with ``next_attempt_at == lease_until``, the
    token :func:`record` and :func:`release` need. None when nothing of this channel is due (or
    every due row is being claimed by another worker right now)."""
    due = (
        DeliveryRow.channel == channel,
        DeliveryRow.status == PENDING,
        col(DeliveryRow.next_attempt_at) <= due_by,
    )
    first = session.exec(
        _locked(session, select(DeliveryRow).where(*due).order_by(*_OLDEST_DUE).limit(1))
    ).first()
    if first is None:
        return None
    if first.batch is not None:
        condition = col(DeliveryRow.batch) == first.batch
        reason: str | None = _BATCH_REASONS.get(first.batch.partition(":")[0], "throttle")
        limit = most
    else:
        waiting = session.exec(
            select(func.count()).where(*due, col(DeliveryRow.batch).is_(None))
        ).one()
        reason = "burst" if waiting > burst else None
        condition = col(DeliveryRow.batch).is_(None)
        limit = most if reason else 1
    statement = (
        select(DeliveryRow, MatchRow, ArticleRow)
        .join(MatchRow, col(DeliveryRow.match_id) == col(MatchRow.id))
        .join(ArticleRow, col(MatchRow.article_id) == col(ArticleRow.id))
        .where(*due, condition)
        .order_by(*_OLDEST_DUE)
        .limit(limit)
    )
    rows: list[Claimed] = [tuple(row) for row in session.exec(_locked(session, statement)).all()]  # type: ignore[misc]
    for delivery, _match, _article in rows:
        delivery.next_attempt_at = lease_until
        session.add(delivery)
    return Group(rows, reason) if rows else None


_OLDEST_DUE = (col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))


def open_claims(session: Session, deliveries: Collection[DeliveryRow]) -> list[int]:
    """Count a claim on each of ``deliveries`` (rows just leased by :func:`claim_group`, in the same
    transaction) and mark it in flight; return the ids of those taken over from a claim that
    ended without an outcome (each counted in its ``redeliveries``)."""
    taken_over: list[int] = []
    for delivery in deliveries:
        delivery.claims += 1
        if delivery.in_flight:
            delivery.redeliveries += 1
            assert delivery.id is not None
            taken_over.append(delivery.id)
        delivery.in_flight = True
        session.add(delivery)
    return taken_over


def redelivery_total(session: Session) -> int:
    """Deliveries claimed again after a claim that ended without an outcome, over all rows: how
    many alerts may have been sent twice."""
    total: int | None = session.exec(select(func.sum(DeliveryRow.redeliveries))).one()
    return int(total or 0)


def record(session: Session, delivery_id: int, lease_until: datetime, outcome: Outcome) -> bool:
    """Write ``outcome`` to the delivery if the lease ending at ``lease_until`` is still held.

    False means the lease was lost (it ran out and another worker claimed the row); nothing was
    written.
    """
    values: dict[str, Any] = {
        "status": outcome.status,
        "attempts": outcome.attempts,
        "last_error": outcome.last_error,
        "in_flight": outcome.uncertain,
    }
    if outcome.next_attempt_at is not None:
        values["next_attempt_at"] = outcome.next_attempt_at
    if outcome.sent_at is not None:
        values["sent_at"] = outcome.sent_at
    return _update_leased(session, delivery_id, lease_until, values)


def release(session: Session, delivery_id: int, lease_until: datetime, now: datetime) -> bool:
    """Make a leased delivery due at ``now`` again, without counting an attempt (a send that was
    cancelled). It stays in flight: the cancelled send may have reached the service, so the next
    claim counts a possible duplicate. False means the lease had already been lost."""
    return _update_leased(session, delivery_id, lease_until, {"next_attempt_at": now})


def defer_due(
    session: Session, channel: str, *, due_by: datetime, until: datetime, reason: str
) -> int:
    """Move ``channel``'s rows due by ``due_by`` to ``until`` without counting an attempt.

    Rows leased by another worker are not due, so they are left alone. Returns how many moved.
    """
    statement = (
        update(DeliveryRow)
        .where(
            col(DeliveryRow.channel) == channel,
            col(DeliveryRow.status) == PENDING,
            col(DeliveryRow.next_attempt_at) <= due_by,
        )
        .values(next_attempt_at=until, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return session.exec(statement).rowcount


def bury_unconfigured(
    session: Session, configured: Collection[str], *, due_by: datetime, limit: int = 500
) -> Counter[str]:
    """Dead-letter up to ``limit`` rows due by ``due_by`` whose channel is not in ``configured``.

    The reason recorded is "channel '<id>' is not configured"; no attempt is counted, as nothing
    was sent. Rows not yet due (leased by a worker that has the channel, or waiting for a retry)
    are left for the next sweep. Returns how many rows died per channel; empty when none.
    """
    statement = (
        select(DeliveryRow)
        .where(
            col(DeliveryRow.channel).not_in(list(configured)),
            DeliveryRow.status == PENDING,
            col(DeliveryRow.next_attempt_at) <= due_by,
        )
        .order_by(col(DeliveryRow.id))
        .limit(limit)
    )
    buried: Counter[str] = Counter()
    for row in session.exec(_locked(session, statement)).all():
        row.status = DEAD
        row.last_error = f"channel {row.channel!r} is not configured"
        session.add(row)
        buried[row.channel] += 1
    return buried


def next_due_at(session: Session, channel: str) -> datetime | None:
    """When ``channel``'s earliest pending row is due (a lease's end, if it is claimed); None
    when it has none."""
    statement = select(func.min(DeliveryRow.next_attempt_at)).where(
        DeliveryRow.channel == channel, DeliveryRow.status == PENDING
    )
    value: datetime | None = session.exec(statement).one()
    return value


def next_unconfigured_due_at(session: Session, configured: Collection[str]) -> datetime | None:
    """When the earliest pending row of a channel not in ``configured`` is due; None if none."""
    statement = select(func.min(DeliveryRow.next_attempt_at)).where(
        col(DeliveryRow.channel).not_in(list(configured)), DeliveryRow.status == PENDING
    )
    value: datetime | None = session.exec(statement).one()
    return value


def _locked(session: Session, statement: _Statement) -> _Statement:
    """``statement`` locking the delivery rows it returns, skipping rows another transaction
    holds: on PostgreSQL only (SQLite has no row locks; BEGIN IMMEDIATE serialises instead)."""
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True, of=DeliveryRow)
    return statement


def _update_leased(
    session: Session, delivery_id: int, lease_until: datetime, values: dict[str, Any]
) -> bool:
    statement = (
        update(DeliveryRow)
        .where(
            col(DeliveryRow.id) == delivery_id,
            col(DeliveryRow.status) == PENDING,
            col(DeliveryRow.next_attempt_at) == lease_until,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return session.exec(statement).rowcount == 1


# --------------------------------------------------------------------------------------------
# Operator queries (`monitor deliveries`): listing and retrying by hand


def list_deliveries(
    session: Session,
    *,
    status: str | None = None,
    channel: str | None = None,
    rule_id: str | None = None,
    limit: int = 50,
) -> list[Claimed]:
    """Up to ``limit`` deliveries with their match and article, newest first (by creation, then
    id); only those with ``status``, of ``channel`` and of ``rule_id`` when given. Empty: none."""
    statement = (
        select(DeliveryRow, MatchRow, ArticleRow)
        .join(MatchRow, col(DeliveryRow.match_id) == col(MatchRow.id))
        .join(ArticleRow, col(MatchRow.article_id) == col(ArticleRow.id))
    )
    if status is not None:
        statement = statement.where(DeliveryRow.status == status)
    if channel is not None:
        statement = statement.where(DeliveryRow.channel == channel)
    if rule_id is not None:
        statement = statement.where(MatchRow.rule_id == rule_id)
    statement = statement.order_by(
        col(DeliveryRow.created_at).desc(), col(DeliveryRow.id).desc()
    ).limit(limit)
    return [tuple(row) for row in session.exec(statement).all()]  # type: ignore[misc]


def deliveries_by_id(session: Session, delivery_ids: Collection[int]) -> dict[int, DeliveryRow]:
    """The deliveries among ``delivery_ids`` that exist, by id; ids not in it are unknown.

    On PostgreSQL the rows stay locked until the transaction ends (waiting for a worker's claim
    in progress, which is short), so a decision taken on them holds when it is written.
    """
    if not delivery_ids:
        return {}
    statement = select(DeliveryRow).where(col(DeliveryRow.id).in_(list(delivery_ids)))
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return {row.id: row for row in session.exec(statement).all() if row.id is not None}


def retry_rows(
    session: Session, delivery_ids: Collection[int], *, now: datetime, waiting_after: datetime
) -> int:
    """Make the listed rows that are dead, or pending and not due before ``waiting_after``, due
    at ``now`` again, with ``retry_since = now`` (their ``retry_for`` starts afresh). Attempts and
    the last error are kept. Returns how many rows changed.

    ``waiting_after`` must be later than any lease a worker may hold now: a pending row due
    sooner is due already, or leased and being sent, and moving it would break that lease.
    """
    if not delivery_ids:
        return 0
    statement = (
        update(DeliveryRow)
        .where(
            col(DeliveryRow.id).in_(list(delivery_ids)),
            or_(
                col(DeliveryRow.status) == DEAD,
                and_(
                    col(DeliveryRow.status) == PENDING,
                    col(DeliveryRow.next_attempt_at) > waiting_after,
                ),
            ),
        )
        .values(status=PENDING, next_attempt_at=now, retry_since=now)
        .execution_options(synchronize_session=False)
    )
    return session.exec(statement).rowcount


def retry_dead(session: Session, channels: Collection[str], *, now: datetime) -> int:
    """Make every dead row of ``channels`` due at ``now`` again, as :func:`retry_rows` does;
    return how many."""
    statement = (
        update(DeliveryRow)
        .where(col(DeliveryRow.status) == DEAD, col(DeliveryRow.channel).in_(list(channels)))
        .values(status=PENDING, next_attempt_at=now, retry_since=now)
        .execution_options(synchronize_session=False)
    )
    return session.exec(statement).rowcount


def dead_counts(session: Session) -> Counter[str]:
    """How many dead rows each channel has (channels without any are absent)."""
    statement = (
        select(DeliveryRow.channel, func.count())
        .where(DeliveryRow.status == DEAD)
        .group_by(DeliveryRow.channel)
    )
    return Counter(dict(session.exec(statement).all()))
