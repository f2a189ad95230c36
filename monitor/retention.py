"""Retention: old articles that never matched a rule are deleted, in bounded batches.

With ``retention: 90d`` the daemon deletes, once a day, every stored article version created
more than 90 days ago whose article (its source and key, over all its versions) has no row in
any table that references articles (today: no match). A matched article is evidence and is kept
whole; so is every version of it, since forgetting one would make the next fetch of the entry a
"new" article that could alert again. Matches, their deliveries and outlets are never touched.

Batches of :data:`PURGE_BATCH` rows, each in its own transaction, keep the write lock short on
SQLite and the row locks few on PostgreSQL; several daemons on one database may purge at the same
time (a row deleted by one is simply not found by the other).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Column, ColumnElement, Table, delete, exists, select
from sqlmodel import Session, SQLModel

from monitor.store.db import Database
from monitor.store.repo import core_table
from monitor.store.tables import ArticleRow, utcnow

__all__ = ["PURGE_BATCH", "purge", "purge_batch", "referencing_columns", "run_retention"]

log = logging.getLogger(__name__)

PURGE_BATCH = 1000
"""Articles deleted per transaction."""


def referencing_columns() -> list[Column[object]]:
    """Every column of every table that holds a foreign key to ``articles.id``: read from the
    schema, so a table added later protects its articles without a change here."""
    articles = core_table(ArticleRow)
    return sorted(
        (
            fk.parent
            for table in SQLModel.metadata.tables.values()
            for fk in table.foreign_keys
            if fk.column.table is articles
        ),
        key=lambda column: (column.table.name, column.name),
    )


def _unreferenced(articles: Table) -> list[ColumnElement[bool]]:
    """Conditions on ``articles``: no version of the same (source, key) is referenced."""
    conditions = []
    for column in referencing_columns():
        version = articles.alias("version")
        conditions.append(
            ~exists(
                select(1)
                .select_from(column.table.join(version, column == version.c.id))
                .where(
                    version.c.source_id == articles.c.source_id,
                    version.c.key == articles.c.key,
                )
            )
        )
    return conditions


def purge_batch(session: Session, before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` article versions created before ``before`` whose article is
    referenced nowhere; return how many were deleted."""
    articles = core_table(ArticleRow)
    chosen = (
        select(articles.c.id)
        .where(articles.c.created_at < before, *_unreferenced(articles))
        .order_by(articles.c.id)
        .limit(limit)
    )
    ids: Sequence[int] = session.connection().execute(chosen).scalars().all()
    if ids:
        session.connection().execute(delete(articles).where(articles.c.id.in_(ids)))
    return len(ids)


def purge(
    db: Database,
    before: datetime,
    *,
    batch: int = PURGE_BATCH,
    stop: threading.Event | None = None,
) -> int:
    """Delete every article created before ``before`` that has no matches, one transaction per
    ``batch``; stop between batches once ``stop`` is set. Blocking: run it in a thread."""
    total = 0
    while stop is None or not stop.is_set():
        with db.session() as session:
            deleted = purge_batch(session, before, batch)
        total += deleted
        if deleted < batch:
            break
    return total


async def run_retention(
    db: Database, retention: timedelta | None, stop: threading.Event | None = None
) -> int | None:
    """The daemon's daily job: purge what ``retention`` allows, log how much; None when no
    retention is configured. Errors are logged once and end this run only (it runs again the
    next day)."""
    if retention is None:
        return None
    before = utcnow() - retention
    extra = {"stage": "retention"}
    try:
        count = await asyncio.to_thread(purge, db, before, stop=stop)
    except Exception:
        log.exception("retention: purge failed; trying again at the next run", extra=extra)
        return None
    log.info(
        "retention: purged %d articles stored before %s with no matches",
        count,
        before.isoformat(timespec="seconds"),
        extra=extra,
    )
    return count
