"""Feed claims: which replica polls a feed now, under a lease, so that several daemons sharing one
database share the feeds and never fetch one feed twice at once.

Each function takes an open Session; the caller owns the transaction (``Database.session()``).
The design is the outbox's (see :mod:`monitor.store.outbox`), with two columns of its own on the
feed's row, ``claimed_by`` (the replica) and ``claimed_until`` (the lease's end):

- :func:`claim_due` selects due feeds that no live claim holds and sets both columns in the same
  transaction. On PostgreSQL the select takes ``FOR UPDATE SKIP LOCKED``, so replicas claiming at
  once each take other feeds instead of queueing on each other; on SQLite every transaction is
  ``BEGIN IMMEDIATE`` (see :mod:`monitor.store.db`), which serialises claims already (SQLAlchemy
  leaves the locking clause out there). :func:`claim_listed` claims named feeds the same way.
- A live replica renews the leases of the feeds it is polling (:func:`renew`, one statement for
  all of them, every third of the lease), so a poll that waits long for a parser or for the
  writer keeps its feed. A replica that dies stops renewing: when the lease ends the feed is free,
  and any replica claims it at its next selection. Times come from the database's clock
  (:mod:`monitor.store.clock`), so replicas whose host clocks disagree agree on when that is.
- The holder is the claim's token: a replica never selects a feed it is polling already, so a
  feed still claimed by a replica is claimed for the poll it has in flight. A poll's outcome is
  saved only while its feed is still claimed by its replica (:func:`held` checks it and locks the
  rows until the transaction ends); the save writes both columns back to NULL, which releases the
  claim. When the claim is gone, the lease ran out (the replica stalled) and another replica took
  the feed over: the late outcome is dropped, never written over the newer one.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, bindparam, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from monitor.errors import MonitorError
from monitor.store.repo import chunks
from monitor.store.tables import FeedRow

__all__ = [
    "LeaseLost",
    "claim_due",
    "claim_listed",
    "held",
    "release_all",
    "renew",
    "replica_id",
]

_HOLDER_CHARS = 200
"""The width of ``feeds.claimed_by``."""


class LeaseLost(MonitorError):
    """A feed's claim ran out and another replica took the feed over: this poll is stale."""

    def __init__(self, source_id: str) -> None:
        super().__init__(f"feed {source_id}: lease lost")
        self.source_id = source_id


def replica_id() -> str:
    """This process's name in claims: host name and pid, for an operator reading the table, and a
    random suffix, since a restarted container often has the same host name and pid (1)."""
    suffix = f":{os.getpid()}:{secrets.token_hex(4)}"
    return socket.gethostname()[: _HOLDER_CHARS - len(suffix)] + suffix


def _free(now: datetime) -> ColumnElement[bool]:
    """No live claim holds the feed: never claimed, released, or its lease over."""
    return or_(col(FeedRow.claimed_until).is_(None), col(FeedRow.claimed_until) <= now)


def claim_due(
    session: Session,
    *,
    holder: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    wanted: Callable[[str], bool],
    slack: int = 0,
) -> list[FeedRow]:
    """Claim up to ``limit`` feeds whose next check has come, that are enabled and free, most
    overdue first, among those ``wanted`` accepts (the feeds this replica polls, not polling
    already); ``slack`` more rows are read to make up for those it refuses. The rows come back
    with the claim set."""
    if limit <= 0:
        return []
    statement = (
        select(FeedRow)
        .where(
            col(FeedRow.next_check_at) <= now,
            col(FeedRow.disabled).is_(None),
            _free(now),
        )
        .order_by(col(FeedRow.next_check_at))
        .limit(limit + slack)
        .with_for_update(skip_locked=True, of=FeedRow)
    )
    rows = [row for row in session.exec(statement).all() if wanted(row.source_id)][:limit]
    _take(session, rows, holder, lease_until)
    return rows


def claim_listed(
    session: Session,
    source_ids: Sequence[str],
    *,
    holder: str,
    now: datetime,
    lease_until: datetime,
) -> list[FeedRow]:
    """Claim those of ``source_ids`` that are enabled and free, whatever their next check (a
    round of ``run --once``), in the order given. The rows come back with the claim set."""
    found: dict[str, FeedRow] = {}
    for chunk in chunks(source_ids):
        statement = (
            select(FeedRow)
            .where(
                col(FeedRow.source_id).in_(chunk),
                col(FeedRow.disabled).is_(None),
                _free(now),
            )
            .with_for_update(skip_locked=True, of=FeedRow)
        )
        found.update((row.source_id, row) for row in session.exec(statement).all())
    rows = [found[source_id] for source_id in dict.fromkeys(source_ids) if source_id in found]
    _take(session, rows, holder, lease_until)
    return rows


def _take(session: Session, rows: Sequence[FeedRow], holder: str, lease_until: datetime) -> None:
    """Set the claim on ``rows`` (locked by the caller's select): one UPDATE per chunk, and the
    loaded objects brought up to date without being marked changed (no second write)."""
    ids = [row.source_id for row in rows]
    for chunk in chunks(ids):
        session.exec(
            update(FeedRow)
            .where(col(FeedRow.source_id).in_(chunk))
            .values(claimed_by=holder, claimed_until=lease_until)
            .execution_options(synchronize_session=False)
        )
    for row in rows:
        set_committed_value(row, "claimed_by", holder)
        set_committed_value(row, "claimed_until", lease_until)


def held(session: Session, holder: str, source_ids: Collection[str]) -> set[str]:
    """Those of ``source_ids`` still claimed by ``holder``. Their rows stay locked until the
    transaction ends, so a save written after this in the same transaction cannot race a
    takeover (rows are locked in source id order: two savers never wait on each other in a
    cycle)."""
    kept: set[str] = set()
    ids = sorted(source_ids)
    connection = session.connection()
    for chunk in chunks(ids):
        rows = connection.execute(_HELD, {"ids": chunk})
        kept.update(source_id for source_id, claimed_by in rows if claimed_by == holder)
    return kept


def _held_statement() -> Select[str, str | None]:
    return (
        core_select(col(FeedRow.source_id), col(FeedRow.claimed_by))
        .where(col(FeedRow.source_id).in_(bindparam("ids", expanding=True)))
        .order_by(col(FeedRow.source_id))
        .with_for_update(of=FeedRow)
    )


_HELD = _held_statement()
"""The query of :func:`held`, built once: every feed's ingest runs it, and building and keying
a statement cost more than running it on SQLite."""


def renew(
    session: Session, holder: str, source_ids: Collection[str], lease_until: datetime
) -> set[str]:
    """Move the lease's end of ``holder``'s claims on ``source_ids`` to ``lease_until``; return
    those renewed. A claim another replica took over is not renewed, nor is a row being saved at
    this moment (locked: it is being released), so a renewal never waits for a lock."""
    renewed: set[str] = set()
    ids = sorted(source_ids)
    for chunk in chunks(ids):
        statement = (
            select(FeedRow.source_id)
            .where(
                col(FeedRow.source_id).in_(chunk),
                col(FeedRow.claimed_by) == holder,
            )
            .with_for_update(skip_locked=True, of=FeedRow)
        )
        mine = list(session.exec(statement).all())
        if mine:
            session.exec(
                update(FeedRow)
                .where(col(FeedRow.source_id).in_(mine))
                .values(claimed_until=lease_until)
                .execution_options(synchronize_session=False)
            )
        renewed.update(mine)
    return renewed


def release_all(session: Session, holder: str) -> int:
    """Release every claim ``holder`` still has (a replica stopping: its feeds need not wait for
    the leases to run out). Returns how many there were."""
    statement = (
        update(FeedRow)
        .where(col(FeedRow.claimed_by) == holder)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return session.exec(statement).rowcount
